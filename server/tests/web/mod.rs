//! Helpers for the dashboard tests: a cookie-keeping HTTP session that signs in through
//! the real login form (CSRF token, Origin header and all), and small HTML probes.

#![allow(dead_code)]

use crate::common::TestServer;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};

/// A password long enough for the server's rules.
pub const PASSWORD: &str = "correct horse battery";

/// A browser-like HTTP session without a browser: keeps cookies, sends `Origin`, and never
/// follows redirects (tests look at them).
#[derive(Debug, Clone)]
pub struct WebClient {
    http: reqwest::Client,
    pub base: String,
    cookies: Vec<(String, String)>,
}

/// The `value` of the first `name="csrf"` input in `html`.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_owned())
}

impl WebClient {
    pub fn new(server: &TestServer) -> WebClient {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(crate::common::DEADLINE)
            .build()
            .unwrap();
        WebClient { http, base: server.base_url.clone(), cookies: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// The raw `Set-Cookie` lines of `response`, after remembering them.
    pub fn keep_cookies(&mut self, response: &reqwest::Response) -> Vec<String> {
        let lines: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for line in &lines {
            let Some((name, rest)) = line.split_once('=') else { continue };
            let value = rest.split(';').next().unwrap_or("").to_owned();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value));
            }
        }
        lines
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(k, _)| k != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// GET a page expected to be 200, returning its HTML.
    pub async fn page(&mut self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.unwrap()
    }

    /// POST a form with exactly these fields and this `Origin` (None: no Origin header).
    pub async fn post_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(fields);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        let response = request.send().await.unwrap();
        self.keep_cookies(&response);
        response
    }

    /// POST a form from a page of this dashboard: its own Origin, and the CSRF token that
    /// page `from` carries.
    pub async fn post(
        &mut self,
        from: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let html = self.page(from).await;
        let token = csrf_in(&html).expect("the page has a form with a CSRF token");
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        let origin = self.base.clone();
        self.post_raw(path, &all, Some(&origin)).await
    }

    /// Sign in through the login form; returns the login POST's response.
    pub async fn try_sign_in(&mut self, name: &str, password: &str) -> reqwest::Response {
        self.post("/web/login", "/web/login", &[("name", name), ("password", password)]).await
    }

    /// Sign in, expecting success.
    pub async fn signed_in(server: &TestServer, name: &str, password: &str) -> WebClient {
        let mut web = WebClient::new(server);
        let response = web.try_sign_in(name, password).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "sign-in of {name}");
        assert_eq!(location(&response), "/web/saves");
        assert!(web.cookie("savesync_session").is_some(), "a session cookie was set");
        web
    }
}

/// The `Location` of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// Give `user` (created by pairing a device first) the dashboard password [`PASSWORD`].
pub async fn set_password(server: &TestServer, user: &str) {
    savesync_server::web::set_user_password(&server.app, user, PASSWORD).await.unwrap();
}
