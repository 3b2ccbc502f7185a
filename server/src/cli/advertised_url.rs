//! The URL `pair` prints and encodes in the QR code, and the warning when it is a guess.
//!
//! Without `public_url` the only hint is the listen address, which is often not what a
//! device can use: `0.0.0.0` means "every interface" and is no destination at all, and
//! `127.0.0.1` only works on the server itself. Printing either silently gives the user a
//! pair command that fails on the device, so we guess better where we can and say so.

use crate::config::Config;

/// What to show devices, and why it may be wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedUrl {
    pub url: String,
    /// Set when `url` is a guess or reachable only from this machine.
    pub warning: Option<String>,
}

const HOW_TO_FIX: &str = "Set --public-url (or SAVESYNC_PUBLIC_URL, or public_url in the \
                          config file) to the URL devices use to reach the server.";

/// Decide the URL for `config`; `host_name` is this machine's name, if known.
#[must_use]
pub fn advertised_url(config: &Config, host_name: Option<&str>) -> AdvertisedUrl {
    if config.public_url.is_some() {
        return AdvertisedUrl { url: config.device_url(), warning: None };
    }
    let listen = config.listen;
    let port = listen.port();
    if listen.ip().is_unspecified() {
        let usable = host_name.map(str::trim).filter(|h| !h.is_empty() && *h != "localhost");
        return match usable {
            Some(host) => AdvertisedUrl {
                url: format!("http://{host}:{port}"),
                warning: Some(format!(
                    "the listen address {listen} is not an address devices can connect to; \
                     guessed http://{host}:{port} from this machine's host name. {HOW_TO_FIX}"
                )),
            },
            None => AdvertisedUrl {
                url: format!("http://SERVER-ADDRESS:{port}"),
                warning: Some(format!(
                    "the listen address {listen} is not an address devices can connect to, \
                     and this machine's host name is unknown: replace SERVER-ADDRESS below. \
                     {HOW_TO_FIX}"
                )),
            },
        };
    }
    let url = config.device_url();
    let warning = listen.ip().is_loopback().then(|| {
        format!(
            "{url} is only reachable from this machine. For other devices, listen on a \
             reachable address (--listen) and set the URL they use. {HOW_TO_FIX}"
        )
    });
    AdvertisedUrl { url, warning }
}

/// This machine's host name, from the kernel (Linux) or the usual files and variables.
#[must_use]
pub fn local_host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|file| std::fs::read_to_string(file).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, public_url: Option<&str>) -> Config {
        let mut c = Config::with_data_dir("/d");
        c.listen = listen.parse().unwrap();
        c.public_url = public_url.map(str::to_owned);
        c
    }

    #[test]
    fn an_explicit_public_url_is_used_without_warning() {
        let shown = advertised_url(&config("0.0.0.0:7878", Some("https://saves.example/")), None);
        assert_eq!(shown, AdvertisedUrl { url: "https://saves.example".into(), warning: None });
    }

    #[test]
    fn the_unspecified_address_is_replaced_by_the_host_name_with_a_warning() {
        let shown = advertised_url(&config("0.0.0.0:7878", None), Some("nas\n"));
        assert_eq!(shown.url, "http://nas:7878");
        let warning = shown.warning.unwrap();
        assert!(warning.contains("0.0.0.0:7878") && warning.contains("--public-url"), "{warning}");
        let v6 = advertised_url(&config("[::]:9000", None), Some("deck"));
        assert_eq!(v6.url, "http://deck:9000");
    }

    #[test]
    fn without_a_host_name_the_url_has_a_placeholder_never_0_0_0_0() {
        let shown = advertised_url(&config("0.0.0.0:7878", None), Some("localhost"));
        assert_eq!(shown.url, "http://SERVER-ADDRESS:7878");
        assert!(shown.warning.unwrap().contains("SERVER-ADDRESS"));
    }

    #[test]
    fn loopback_is_kept_but_flagged_as_this_machine_only() {
        let shown = advertised_url(&config("127.0.0.1:7878", None), Some("nas"));
        assert_eq!(shown.url, "http://127.0.0.1:7878");
        assert!(shown.warning.unwrap().contains("only reachable from this machine"));
    }

    #[test]
    fn a_concrete_lan_address_needs_no_warning() {
        let shown = advertised_url(&config("192.168.1.20:7878", None), Some("nas"));
        assert_eq!(shown, AdvertisedUrl { url: "http://192.168.1.20:7878".into(), warning: None });
    }
}
