//! A real headless Chromium for the dashboard tests, driven over WebDriver (`fantoccini`)
//! through Debian's `chromedriver` on a loopback port.
//!
//! Chromium runs with `--no-sandbox` (the tests run as root, where its sandbox refuses to
//! start), a throwaway `--user-data-dir`, and `--headless=new`. Every wait has a deadline.
//! When chromium or chromedriver is missing the tests FAIL under `CI=true` and otherwise
//! skip with a visible `SKIPPED:` line.
//!
//! Screenshots: [`Browser::screenshot`] always takes one (so the rendering is exercised),
//! keeps it under the target directory, and with `SAVESYNC_UPDATE_SCREENSHOTS=1` also
//! writes it to `docs/screenshots/NAME.png` (so CI never dirties the tree).

#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound for any single wait on the browser.
pub const BROWSER_DEADLINE: Duration = Duration::from_secs(20);

/// A running chromedriver and one browser session on it; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    pub base: String,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// chromium and chromedriver, or why not.
fn programs() -> Result<(PathBuf, PathBuf), String> {
    let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"])
        .ok_or("chromium is not installed (Debian package `chromium`)")?;
    let driver = on_path(&["chromedriver"])
        .ok_or("chromedriver is not installed (Debian package `chromium-driver`)")?;
    Ok((chromium, driver))
}

/// A free loopback port (bound and released; chromedriver takes it right after).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Browser {
    /// Start a browser for a dashboard at `base`, or `None` (after printing `SKIPPED:`)
    /// when chromium is missing outside CI.
    pub async fn start(base: &str, test: &str) -> Option<Browser> {
        let (chromium, driver_bin) = match programs() {
            Ok(found) => found,
            Err(why) => {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and {why}");
                eprintln!("SKIPPED: {test}: {why}");
                return None;
            }
        };
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so ending it also ends the chromium it started.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1100,820",
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + BROWSER_DEADLINE;
        let mut guard = DriverGuard(Some(driver));
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromedriver did not start a session: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let driver = guard.0.take().unwrap();
        Some(Browser { client, driver, _profile: profile, base: base.to_owned() })
    }

    pub async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    /// Wait (bounded) for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(BROWSER_DEADLINE)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within {BROWSER_DEADLINE:?}: {e}"))
    }

    /// Poll `script` (a JS expression returning a boolean) until true, bounded.
    pub async fn wait_until_js(&self, what: &str, script: &str) {
        let deadline = Instant::now() + BROWSER_DEADLINE;
        loop {
            let value = self.client.execute(&format!("return ({script});"), vec![]).await.unwrap();
            if value.as_bool() == Some(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The current page's path.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Visible text of the page's body.
    pub async fn text(&self) -> String {
        self.client.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
    }

    /// Sign in through the login form.
    pub async fn sign_in(&self, name: &str, password: &str) {
        self.goto("/web/login").await;
        self.wait_for("input[name=name]").await.send_keys(name).await.unwrap();
        self.wait_for("input[name=password]").await.send_keys(password).await.unwrap();
        self.wait_for("button[type=submit]").await.click().await.unwrap();
    }

    /// Take a screenshot named `name` (see the module docs for where it goes).
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::write(kept.join(format!("{name}.png")), &png).unwrap();
        if std::env::var("SAVESYNC_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
        }
    }

    /// End the session and chromedriver.
    pub async fn close(self) {
        let _ = tokio::time::timeout(BROWSER_DEADLINE, self.client.clone().close()).await;
    }
}

/// Kill chromedriver's process group (it and the chromium it started) and reap it.
fn end_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--"])
        .arg(format!("-{}", child.id()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        end_group(&mut self.driver);
    }
}

/// Ends chromedriver if starting the session fails.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            end_group(child);
        }
    }
}
