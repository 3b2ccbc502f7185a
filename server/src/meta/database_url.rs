//! Which metadata backend a `database_url` names, and the URL as it may be shown. Pure
//! functions (table-tested below): the config check, the store choice and the logs use
//! them, and the password in a URL never reaches a log or an error message.

/// The metadata backend the config selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend<'a> {
    /// No `database_url`: the SQLite file in the data directory (the default).
    Sqlite,
    /// `postgres://` or `postgresql://`: the URL, handed to the driver as is.
    Postgres(&'a str),
}

/// The backend `url` names; an error (naming the scheme, never the URL) for any other.
pub fn backend(url: Option<&str>) -> Result<Backend<'_>, String> {
    let Some(url) = url else { return Ok(Backend::Sqlite) };
    let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => Ok(Backend::Postgres(url)),
        Some(other) => Err(format!(
            "database_url: unsupported scheme {other:?}; use postgres://USER:PASSWORD@HOST/DB, \
             or leave database_url unset for the SQLite file in the data directory"
        )),
        None => Err("database_url: not a URL; use postgres://USER:PASSWORD@HOST/DB, or leave \
                     database_url unset for the SQLite file in the data directory"
            .to_owned()),
    }
}

/// `url` with any password replaced by `***`, for logs and error messages. A URL that does
/// not parse is shown as its scheme only.
#[must_use]
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://<unparsable>"),
            None => "<unparsable>".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, backend, redacted};

    #[test]
    fn the_scheme_picks_the_backend_and_others_are_refused() {
        let table: &[(Option<&str>, Result<Backend<'_>, &str>)] = &[
            (None, Ok(Backend::Sqlite)),
            (Some("postgres://u:p@h/db"), Ok(Backend::Postgres("postgres://u:p@h/db"))),
            (Some("postgresql://h/db"), Ok(Backend::Postgres("postgresql://h/db"))),
            (Some("POSTGRES://h/db"), Ok(Backend::Postgres("POSTGRES://h/db"))),
            (Some("mysql://u:secret@h/db"), Err("unsupported scheme \"mysql\"")),
            (Some("sqlite:///var/lib/x.db"), Err("unsupported scheme \"sqlite\"")),
            (Some("secret-without-scheme"), Err("not a URL")),
        ];
        for (url, expected) in table {
            match (backend(*url), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{url:?}"),
                (Err(got), Err(want)) => {
                    assert!(got.contains(want), "{url:?}: {got}");
                    assert!(!got.contains("secret"), "{url:?}: the URL leaked: {got}");
                }
                (got, want) => panic!("{url:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn passwords_never_show() {
        let table = [
            ("postgres://app:hunter2@db:5432/savesync", "postgres://app:***@db:5432/savesync"),
            ("postgres://app@db/savesync", "postgres://app@db/savesync"),
            ("postgres://db/savesync?sslmode=require", "postgres://db/savesync?sslmode=require"),
            ("postgres://app:hunter2@[::1", "postgres://<unparsable>"),
        ];
        for (url, shown) in table {
            assert_eq!(redacted(url), shown);
        }
    }
}
