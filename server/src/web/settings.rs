//! [`WebSettings`]: the dashboard's knobs (session lifetime, login link lifetime, the login
//! rate limit), with defaults and `SAVESYNC_WEB_*` environment overrides. Kept out of
//! `crate::config` so the dashboard's settings live beside the code that uses them.

use std::time::Duration;

/// How the dashboard signs users in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// How long a signed-in browser stays signed in.
    pub session_ttl: Duration,
    /// How long a printed login link works (once).
    pub login_link_ttl: Duration,
    /// Login attempts (password or link) one client address may make at once...
    pub login_burst: u32,
    /// ...and then one more per this interval.
    pub login_interval: Duration,
    /// Most signed-in sessions per user; signing in once more ends the oldest.
    pub max_sessions_per_user: u32,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            session_ttl: Duration::from_secs(7 * 24 * 60 * 60),
            login_link_ttl: Duration::from_secs(15 * 60),
            login_burst: 5,
            login_interval: Duration::from_secs(20),
            max_sessions_per_user: 20,
        }
    }
}

impl WebSettings {
    /// Apply `SAVESYNC_WEB_SESSION_HOURS`, `SAVESYNC_WEB_LOGIN_LINK_MINUTES`,
    /// `SAVESYNC_WEB_LOGIN_BURST` and `SAVESYNC_WEB_LOGIN_INTERVAL_SECS`.
    pub fn apply_env(&mut self, lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let get = |name: &str| -> anyhow::Result<Option<u64>> {
            match lookup(name).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => {
                    v.trim().parse().map(Some).map_err(|e| anyhow::anyhow!("{name}={v:?}: {e}"))
                }
            }
        };
        if let Some(h) = get("SAVESYNC_WEB_SESSION_HOURS")? {
            self.session_ttl = Duration::from_secs(h.saturating_mul(3600));
        }
        if let Some(m) = get("SAVESYNC_WEB_LOGIN_LINK_MINUTES")? {
            self.login_link_ttl = Duration::from_secs(m.saturating_mul(60));
        }
        if let Some(n) = get("SAVESYNC_WEB_LOGIN_BURST")? {
            self.login_burst = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(s) = get("SAVESYNC_WEB_LOGIN_INTERVAL_SECS")? {
            self.login_interval = Duration::from_secs(s);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::WebSettings;
    use std::time::Duration;

    #[test]
    fn environment_overrides_each_setting_and_refuses_garbage() {
        let mut s = WebSettings::default();
        let env = |name: &str| match name {
            "SAVESYNC_WEB_SESSION_HOURS" => Some("2".to_owned()),
            "SAVESYNC_WEB_LOGIN_LINK_MINUTES" => Some("3".to_owned()),
            "SAVESYNC_WEB_LOGIN_BURST" => Some("9".to_owned()),
            "SAVESYNC_WEB_LOGIN_INTERVAL_SECS" => Some("4".to_owned()),
            _ => None,
        };
        s.apply_env(&env).unwrap();
        assert_eq!(s.session_ttl, Duration::from_secs(7200));
        assert_eq!(s.login_link_ttl, Duration::from_secs(180));
        assert_eq!((s.login_burst, s.login_interval), (9, Duration::from_secs(4)));
        let bad = |_: &str| Some("soon".to_owned());
        assert!(WebSettings::default().apply_env(&bad).is_err());
    }
}
