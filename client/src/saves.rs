//! Save content and history: list, download, upload, delete, history, restore.
//!
//! Writes are compare-and-swap on the save's revision: `base` is the revision the device
//! believes is the head (`Rev::NONE` when it believes no save exists). A stale base is
//! refused with `409 conflict` carrying the head ([`crate::ClientError::conflict_head`]).
//! Re-sending an upload whose bytes are already the head is answered with the head, so
//! every write here is retried on transient failures except restore.

use crate::client::{Client, decode_json, transport_error};
use crate::error::{ClientError, Result};
use crate::retry::Repeat;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::HeaderMap;
use savesync_core::wire::{HASH_HEADER, History, REV_HEADER, RestoreRequest, SaveList, SaveMeta};
use savesync_core::{ContentHash, Rev, SavePath, Version};
use url::Url;

/// A downloaded save, its hash already verified against the server's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub bytes: Bytes,
    pub rev: Rev,
    pub hash: ContentHash,
}

impl Downloaded {
    /// The `(rev, hash)` to remember as the device's base for this save.
    #[must_use]
    pub fn version(&self) -> Version {
        Version { rev: self.rev, hash: Some(self.hash) }
    }
}

impl Client {
    /// Live saves (and tombstones with `include_deleted`) at or below `prefix`, sorted by
    /// path, plus the feed cursor the listing reflects.
    pub async fn list(&self, prefix: Option<&SavePath>, include_deleted: bool) -> Result<SaveList> {
        let mut url = self.api_url(&["saves"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(prefix) = prefix {
                query.append_pair("prefix", prefix.as_str());
            }
            query.append_pair("include_deleted", if include_deleted { "true" } else { "false" });
        }
        self.call_json::<(), _>(Method::GET, url, None, Repeat::Safe).await
    }

    /// The head's bytes (or those of revision `rev`), verified against their SHA-256.
    /// A tombstone head, an unknown save or a pruned revision is `404 not_found`.
    pub async fn download(&self, path: &SavePath, rev: Option<Rev>) -> Result<Downloaded> {
        self.download_from(self.content_url(path, rev.map(|r| ("rev", r)))).await
    }

    /// The bytes of history entry `version_id` of `path` (a commit or a conflict version,
    /// as listed by [`Client::history`]), verified against their SHA-256. `rev` is the
    /// version's rev (for a conflict version, the base it was made on).
    pub async fn download_version(&self, path: &SavePath, version_id: i64) -> Result<Downloaded> {
        let mut url = self.api_url(&["saves", "content"]);
        url.query_pairs_mut()
            .append_pair("path", path.as_str())
            .append_pair("version_id", &version_id.to_string());
        self.download_from(url).await
    }

    /// GET one content URL whole, verifying the bytes against the hash header.
    async fn download_from(&self, url: Url) -> Result<Downloaded> {
        self.retrying(Repeat::Safe, || async {
            let request = self.request(Method::GET, url.clone());
            // The size is unknown before the headers arrive: allow the plain request timeout
            // for the headers, then extend by the announced length.
            let headers_limit = self.request_timeout();
            let response = tokio::time::timeout(headers_limit, self.send(request, None))
                .await
                .map_err(|_| ClientError::Timeout(headers_limit))??;
            let (rev, hash) = content_headers(response.headers())?;
            let limit = self.transfer_timeout(response.content_length().unwrap_or(0));
            let bytes = tokio::time::timeout(limit, response.bytes())
                .await
                .map_err(|_| ClientError::Timeout(limit))?
                .map_err(|e| transport_error(e, limit))?;
            let actual = ContentHash::of(&bytes);
            if actual != hash {
                return Err(ClientError::HashMismatch { expected: hash, actual });
            }
            Ok(Downloaded { bytes, rev, hash })
        })
        .await
    }

    /// Make `bytes` the new head of `path`, conditional on the head being `base`.
    pub async fn upload(&self, path: &SavePath, base: Rev, bytes: Bytes) -> Result<SaveMeta> {
        let url = self.content_url(path, Some(("base_rev", base)));
        let hash = ContentHash::of(&bytes).to_hex();
        let limit = self.transfer_timeout(bytes.len() as u64);
        self.retrying(Repeat::Safe, || async {
            let request = self
                .request(Method::PUT, url.clone())
                .header(HASH_HEADER, hash.as_str())
                .body(bytes.clone());
            let response = self.send(request, Some(limit)).await?;
            decode_json(response, limit).await
        })
        .await
    }

    /// Commit a tombstone for `path`, conditional on the head being `base`. Deleting an
    /// already deleted save answers with the tombstone.
    pub async fn delete(&self, path: &SavePath, base: Rev) -> Result<SaveMeta> {
        let url = self.content_url(path, Some(("base_rev", base)));
        self.call_json::<(), _>(Method::DELETE, url, None, Repeat::Safe).await
    }

    /// Every kept version of `path`, newest first: commits and conflict uploads.
    pub async fn history(&self, path: &SavePath) -> Result<History> {
        let mut url = self.api_url(&["saves", "history"]);
        url.query_pairs_mut().append_pair("path", path.as_str());
        self.call_json::<(), _>(Method::GET, url, None, Repeat::Safe).await
    }

    /// Commit an old version's bytes as the new head (CAS on `req.base_rev`). Not retried
    /// once the server may have seen it: a second restore would be refused as a conflict.
    pub async fn restore(&self, req: &RestoreRequest) -> Result<SaveMeta> {
        let url = self.api_url(&["saves", "restore"]);
        self.call_json(Method::POST, url, Some(req), Repeat::OnlyIfNeverSent).await
    }

    /// `/saves/content?path=P[&<name>=<rev>]`.
    pub(crate) fn content_url(&self, path: &SavePath, rev: Option<(&str, Rev)>) -> Url {
        let mut url = self.api_url(&["saves", "content"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("path", path.as_str());
            if let Some((name, rev)) = rev {
                query.append_pair(name, &rev.0.to_string());
            }
        }
        url
    }
}

/// The revision and hash a content response announces.
pub(crate) fn content_headers(headers: &HeaderMap) -> Result<(Rev, ContentHash)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Decode(format!("missing or non-text header {name}")))
    };
    let rev = header(REV_HEADER)?
        .parse::<u64>()
        .map_err(|e| ClientError::Decode(format!("header {REV_HEADER}: {e}")))?;
    let hash = header(HASH_HEADER)?
        .parse::<ContentHash>()
        .map_err(|e| ClientError::Decode(format!("header {HASH_HEADER}: {e}")))?;
    Ok((Rev(rev), hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_query_encoded_not_formatted() {
        let client = Client::new("http://127.0.0.1:7878", None).unwrap();
        let path = SavePath::parse("snes/Chrono Trigger & #1?.srm").unwrap();
        let url = client.content_url(&path, Some(("base_rev", Rev(3))));
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:7878/api/v1/saves/content\
             ?path=snes%2FChrono+Trigger+%26+%231%3F.srm&base_rev=3"
        );
        let back: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(back[0].1, path.as_str());
    }
}
