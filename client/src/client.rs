//! [`Client`]: one server, one (optional) device token, and the plumbing every endpoint
//! shares: URL building, authentication, timeouts, retries, status and body decoding.
//!
//! Assumptions: the base URL is the server root (`http://host:7878` or a reverse-proxy
//! prefix such as `https://host/savesync/`); endpoints live under `/api/v1` below it,
//! except `/metrics`. Save paths always travel as the `path` query parameter, encoded by
//! `url` (never by string formatting), so spaces, `#`, `?`, `&` and non-ASCII names are safe.

use crate::error::{ClientError, Result};
use crate::retry::{self, Repeat, RetryPolicy};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, Response};
use savesync_core::wire::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;
use url::Url;

/// Default limit for one request/response round trip (bodies of saves get more, see
/// [`Client::transfer_timeout`]).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a TCP (and TLS) connection before calling the server offline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Slowest transfer rate still considered progress when sizing a transfer's deadline.
const MIN_TRANSFER_BYTES_PER_SEC: u64 = 256 * 1024;
/// At most this much of an unexpected error body is kept for the error message.
const ERROR_SNIPPET_CHARS: usize = 200;

/// A handle on one savesync server, cheap to clone (clones share the connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// `Bearer <token>`, marked sensitive so reqwest never prints it.
    auth: Option<HeaderValue>,
    retry: RetryPolicy,
    request_timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl Client {
    /// A client for the server at `base_url`, authenticated with a device `token` (pairing,
    /// health and metrics need none). Uses [`RetryPolicy::default`] and a 30 s timeout.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Client> {
        let base = parse_base_url(base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // Requests go out in several writes too (headers, then the body): no Nagle.
            .tcp_nodelay(true)
            .user_agent(concat!("savesync-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Setup)?;
        let mut client = Client {
            http,
            base,
            auth: None,
            retry: RetryPolicy::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        };
        if let Some(token) = token {
            client = client.with_token(&token)?;
        }
        Ok(client)
    }

    /// The same client with another device token (e.g. the one [`Client::pair`] returned).
    pub fn with_token(mut self, token: &str) -> Result<Client> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::InvalidToken)?;
        value.set_sensitive(true);
        self.auth = Some(value);
        Ok(self)
    }

    /// The same client with another retry policy.
    #[must_use]
    pub fn with_retry(mut self, policy: RetryPolicy) -> Client {
        self.retry = policy;
        self
    }

    /// The same client with another per-request timeout. Long-polls get this on top of
    /// their wait; save transfers get it on top of a minimum-throughput allowance; the
    /// event stream has none (it detects a dead server by missing keep-alives instead).
    #[must_use]
    pub fn with_timeout(mut self, request_timeout: Duration) -> Client {
        self.request_timeout = request_timeout;
        self
    }

    /// The server root this client talks to.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// True when a device token is configured.
    #[must_use]
    pub fn has_token(&self) -> bool {
        self.auth.is_some()
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Deadline for moving `bytes` of save content in one request.
    pub(crate) fn transfer_timeout(&self, bytes: u64) -> Duration {
        self.request_timeout + Duration::from_secs(bytes / MIN_TRANSFER_BYTES_PER_SEC)
    }

    /// `<base>/api/v1/<segments...>`; segments are percent-encoded as path segments.
    pub(crate) fn api_url(&self, segments: &[&str]) -> Url {
        let mut all = vec!["api", "v1"];
        all.extend_from_slice(segments);
        self.root_url(&all)
    }

    /// `<base>/<segments...>` (only `/metrics` lives outside `/api/v1`).
    pub(crate) fn root_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A request with the device token attached (when there is one).
    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.auth {
            Some(auth) => builder.header(AUTHORIZATION, auth.clone()),
            None => builder,
        }
    }

    /// Send once with `timeout` (None: no overall deadline); a non-2xx answer becomes an error.
    pub(crate) async fn send(
        &self,
        builder: RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<Response> {
        let builder = match timeout {
            Some(t) => builder.timeout(t),
            None => builder,
        };
        let response =
            builder.send().await.map_err(|e| transport_error(e, timeout.unwrap_or_default()))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(error_from_response(response).await)
        }
    }

    /// Run `attempt` under this client's retry policy.
    pub(crate) async fn retrying<T, F, Fut>(&self, repeat: Repeat, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        retry::run(&self.retry, repeat, attempt).await
    }

    /// `method url` with an optional JSON body, answer decoded as JSON, with retries.
    pub(crate) async fn call_json<B, T>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        repeat: Repeat,
    ) -> Result<T>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.retrying(repeat, || async {
            let mut builder = self.request(method.clone(), url.clone());
            if let Some(body) = body {
                builder = builder.json(body);
            }
            let response = self.send(builder, Some(self.request_timeout)).await?;
            decode_json(response, self.request_timeout).await
        })
        .await
    }

    /// `method url` expecting an empty success (204), with retries.
    pub(crate) async fn call_empty<B>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        repeat: Repeat,
    ) -> Result<()>
    where
        B: Serialize + ?Sized,
    {
        self.retrying(repeat, || async {
            let mut builder = self.request(method.clone(), url.clone());
            if let Some(body) = body {
                builder = builder.json(body);
            }
            self.send(builder, Some(self.request_timeout)).await.map(drop)
        })
        .await
    }
}

/// Accept `http`/`https` URLs that can carry a path; drop any query or fragment.
fn parse_base_url(base_url: &str) -> Result<Url> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: base_url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https are supported"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("the URL has no host"));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Classify a reqwest failure: timeouts get their own variant so callers see the limit.
pub(crate) fn transport_error(err: reqwest::Error, limit: Duration) -> ClientError {
    if err.is_timeout() && !err.is_connect() {
        ClientError::Timeout(limit)
    } else {
        ClientError::Transport(err)
    }
}

/// Turn a non-2xx answer into [`ClientError::Api`] (savesync error body) or
/// [`ClientError::UnexpectedStatus`] (anything else, e.g. from a proxy).
pub(crate) async fn error_from_response(response: Response) -> ClientError {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => ClientError::Api { status: status.as_u16(), body: Box::new(body) },
        Err(_) => ClientError::UnexpectedStatus {
            status: status.as_u16(),
            snippet: String::from_utf8_lossy(&bytes).chars().take(ERROR_SNIPPET_CHARS).collect(),
        },
    }
}

/// Read the whole body and decode it as `T`.
pub(crate) async fn decode_json<T: DeserializeOwned>(
    response: Response,
    limit: Duration,
) -> Result<T> {
    let what = std::any::type_name::<T>();
    let bytes = response.bytes().await.map_err(|e| transport_error(e, limit))?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let client = Client::new("http://127.0.0.1:1", Some("ss_supersecret".into())).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn urls_keep_a_proxy_prefix_and_encode_segments() {
        let c = Client::new("https://example.org/savesync/", None).unwrap();
        assert_eq!(
            c.api_url(&["saves", "content"]).as_str(),
            "https://example.org/savesync/api/v1/saves/content"
        );
        let c = Client::new("http://127.0.0.1:7878", None).unwrap();
        assert_eq!(c.root_url(&["metrics"]).as_str(), "http://127.0.0.1:7878/metrics");
        assert_eq!(
            c.api_url(&["sessions", "12", "complete"]).as_str(),
            "http://127.0.0.1:7878/api/v1/sessions/12/complete"
        );
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_without_echoing_it() {
        let err = Client::new("http://127.0.0.1:1", Some("ss_bad\ntoken".into())).unwrap_err();
        assert!(matches!(err, ClientError::InvalidToken));
        assert!(!err.to_string().contains("ss_bad"));
    }

    #[test]
    fn rejects_unusable_base_urls() {
        for bad in ["not a url", "ftp://host/", "mailto:someone@example.org", "file:///tmp"] {
            assert!(matches!(Client::new(bad, None), Err(ClientError::InvalidUrl { .. })), "{bad}");
        }
    }
}
