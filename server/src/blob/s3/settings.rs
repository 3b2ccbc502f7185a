//! [`S3Settings`]: where an S3-compatible bucket is and how to sign requests to it, from the
//! config file's `[s3]` table and the environment; and [`BlobUrl`], the parsed
//! `blob_url = "s3://bucket/prefix"`. Kept apart from the store so the parsing rules are
//! plain functions with table tests, and so the secret key has exactly one `Debug` impl
//! (which redacts it).

use anyhow::Context;
use serde::Deserialize;

/// Endpoint, region and credentials of the S3-compatible store. `None` fields fall back to
/// AWS defaults (region `us-east-1`, the AWS endpoint).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// e.g. `https://s3.eu-central-003.backblazeb2.com` or `http://127.0.0.1:9000`; `None`
    /// for AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    /// Never logged: `Debug` prints `<redacted>`.
    pub secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint that is not on loopback (a LAN MinIO). Loopback
    /// endpoints may always be plain HTTP.
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// The config file's `[s3]` table.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct S3File {
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    allow_http: Option<bool>,
}

impl std::fmt::Debug for S3File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3File").finish_non_exhaustive()
    }
}

impl S3File {
    pub(crate) fn apply(self, s3: &mut S3Settings) {
        s3.endpoint = self.endpoint.or(s3.endpoint.take());
        s3.region = self.region.or(s3.region.take());
        s3.access_key_id = self.access_key_id.or(s3.access_key_id.take());
        s3.secret_access_key = self.secret_access_key.or(s3.secret_access_key.take());
        s3.allow_http = self.allow_http.unwrap_or(s3.allow_http);
    }
}

impl S3Settings {
    /// `SAVESYNC_S3_ENDPOINT`, `SAVESYNC_S3_ALLOW_HTTP` and the standard `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.
    pub fn apply_env(&mut self, lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        if let Some(v) = get("SAVESYNC_S3_ENDPOINT") {
            self.endpoint = Some(v);
        }
        if let Some(v) = get("AWS_REGION") {
            self.region = Some(v);
        }
        if let Some(v) = get("AWS_ACCESS_KEY_ID") {
            self.access_key_id = Some(v);
        }
        if let Some(v) = get("AWS_SECRET_ACCESS_KEY") {
            self.secret_access_key = Some(v);
        }
        if let Some(v) = get("SAVESYNC_S3_ALLOW_HTTP") {
            self.allow_http = v.parse().context("SAVESYNC_S3_ALLOW_HTTP must be true or false")?;
        }
        Ok(())
    }

    /// Whether requests may go over plain HTTP: never for AWS, always for a loopback
    /// endpoint, otherwise only with `allow_http`. An `http://` endpoint that is not allowed
    /// is an error, so a typo cannot silently send data in the clear.
    pub fn plain_http(&self) -> anyhow::Result<bool> {
        let Some(endpoint) = &self.endpoint else { return Ok(false) };
        let url = url::Url::parse(endpoint)
            .with_context(|| format!("S3 endpoint {endpoint:?} is not a URL"))?;
        match url.scheme() {
            "https" => Ok(false),
            "http" if self.allow_http || is_loopback(&url) => Ok(true),
            "http" => anyhow::bail!(
                "S3 endpoint {endpoint} is plain HTTP and not on loopback; use https, or set \
                 allow_http = true in [s3] (SAVESYNC_S3_ALLOW_HTTP) if the network is trusted"
            ),
            other => anyhow::bail!("S3 endpoint {endpoint}: unsupported scheme {other}"),
        }
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `s3://bucket/prefix`, parsed. The prefix has no leading or trailing slash and may be
/// empty (blobs at the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobUrl {
    pub bucket: String,
    pub prefix: String,
}

impl std::str::FromStr for BlobUrl {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<BlobUrl> {
        let rest = text
            .strip_prefix("s3://")
            .with_context(|| format!("blob_url {text:?}: only s3://bucket/prefix is supported"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(
            (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'.'),
            "blob_url {text:?}: {bucket:?} is not a valid bucket name"
        );
        let prefix = prefix.trim_matches('/');
        anyhow::ensure!(
            prefix.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
                || prefix.is_empty(),
            "blob_url {text:?}: the prefix must be plain path segments"
        );
        Ok(BlobUrl { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn blob_urls_parse_to_bucket_and_prefix_or_are_refused() {
        let table: &[(&str, Option<(&str, &str)>)] = &[
            ("s3://saves/prod", Some(("saves", "prod"))),
            ("s3://saves/prod/blobs/", Some(("saves", "prod/blobs"))),
            ("s3://saves", Some(("saves", ""))),
            ("s3://saves/", Some(("saves", ""))),
            ("s3://my.bucket-1/x", Some(("my.bucket-1", "x"))),
            ("https://saves/prod", None),
            ("s3://", None),
            ("s3://Upper/x", None),
            ("s3://ab/x", None),
            ("s3://saves/a//b", None),
            ("s3://saves/../etc", None),
            ("s3://saves/a/./b", None),
        ];
        for (text, expected) in table {
            let parsed = text.parse::<BlobUrl>().ok();
            let expected = expected.map(|(bucket, prefix)| BlobUrl {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
            assert_eq!(parsed, expected, "{text}");
        }
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let table: &[(Option<&str>, bool, Option<bool>)] = &[
            (None, false, Some(false)),
            (Some("https://s3.example.com"), false, Some(false)),
            (Some("http://127.0.0.1:9000"), false, Some(true)),
            (Some("http://[::1]:9000"), false, Some(true)),
            (Some("http://localhost:9000"), false, Some(true)),
            (Some("http://10.0.0.5:9000"), false, None),
            (Some("http://10.0.0.5:9000"), true, Some(true)),
            (Some("ftp://127.0.0.1"), true, None),
            (Some("not a url"), false, None),
        ];
        for (endpoint, allow_http, expected) in table {
            let s3 = S3Settings {
                endpoint: endpoint.map(str::to_owned),
                allow_http: *allow_http,
                ..S3Settings::default()
            };
            assert_eq!(s3.plain_http().ok(), *expected, "{endpoint:?} allow_http={allow_http}");
        }
    }

    #[test]
    fn file_then_env_and_the_secret_never_shows_in_debug() {
        let mut s3 = S3Settings::default();
        let file: S3File = toml::from_str(
            "endpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"AKID\"\n\
             secret_access_key = \"file-secret-value\"\n",
        )
        .unwrap();
        file.apply(&mut s3);
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        let env: HashMap<&str, &str> = [
            ("AWS_SECRET_ACCESS_KEY", "env-secret-value"),
            ("AWS_REGION", "eu-west-1"),
            ("SAVESYNC_S3_ALLOW_HTTP", "true"),
        ]
        .into();
        s3.apply_env(&|k: &str| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(s3.secret_access_key.as_deref(), Some("env-secret-value"));
        assert_eq!(s3.access_key_id.as_deref(), Some("AKID"));
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        assert!(s3.allow_http);
        let shown = format!("{s3:?}");
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
