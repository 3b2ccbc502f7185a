//! How sqlx and Postgres failures become backend-neutral [`MetaError`]s: the only place
//! that knows SQLSTATE codes. The policy on a code is a pure function, table-tested below.

use crate::meta::MetaError;

/// The neutral class of a Postgres SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A uniqueness rule refused the write.
    Conflict,
    /// Out of disk: nothing was written.
    Full,
    /// Retrying may succeed: serialization failures, deadlocks, lost or refused
    /// connections, a server shutting down or out of connections.
    Busy,
    /// The server reports damaged data.
    Corrupt,
    Other,
}

fn class_of(sqlstate: &str) -> Class {
    match sqlstate {
        "23505" => Class::Conflict,
        "53100" => Class::Full,
        "40001" | "40P01" | "55P03" | "57014" => Class::Busy,
        "XX001" | "XX002" => Class::Corrupt,
        // Connection exceptions, insufficient resources, operator intervention
        // (admin shutdown, crash shutdown, cannot connect now).
        s if s.starts_with("08") || s.starts_with("53") || s.starts_with("57P") => Class::Busy,
        _ => Class::Other,
    }
}

impl From<sqlx::Error> for MetaError {
    fn from(e: sqlx::Error) -> Self {
        classify(e)
    }
}

impl From<sqlx::migrate::MigrateError> for MetaError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            // A statement of a migration failed: classify the database's own error.
            sqlx::migrate::MigrateError::Execute(inner)
            | sqlx::migrate::MigrateError::ExecuteMigration(inner, _) => classify(inner),
            other => MetaError::backend(other),
        }
    }
}

/// Map one sqlx error.
pub fn classify(e: sqlx::Error) -> MetaError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match class_of(&code) {
                Class::Conflict => MetaError::Conflict(db.message().to_owned()),
                Class::Full => MetaError::StorageFull,
                Class::Busy => MetaError::Unavailable(e.to_string()),
                Class::Corrupt => MetaError::Corrupt(e.to_string()),
                Class::Other => MetaError::backend(e),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => MetaError::Unavailable(e.to_string()),
        // A stored value that no longer decodes: the data is inconsistent.
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            MetaError::Corrupt(e.to_string())
        }
        _ => MetaError::backend(e),
    }
}

#[cfg(test)]
mod tests {
    use super::{Class, class_of, classify};
    use crate::meta::MetaError;

    #[test]
    fn sqlstates_map_to_neutral_classes() {
        let table = [
            ("23505", Class::Conflict),
            ("53100", Class::Full),
            ("40001", Class::Busy),
            ("40P01", Class::Busy),
            ("55P03", Class::Busy),
            ("08006", Class::Busy),
            ("08001", Class::Busy),
            ("53300", Class::Busy),
            ("57P01", Class::Busy),
            ("57P03", Class::Busy),
            ("XX001", Class::Corrupt),
            ("23503", Class::Other),
            ("42P01", Class::Other),
            ("", Class::Other),
        ];
        for (code, class) in table {
            assert_eq!(class_of(code), class, "SQLSTATE {code}");
        }
    }

    #[test]
    fn transport_failures_are_unavailable_and_decoding_failures_corrupt() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(classify(sqlx::Error::Io(io)), MetaError::Unavailable(_)));
        assert!(matches!(classify(sqlx::Error::PoolTimedOut), MetaError::Unavailable(_)));
        let decode = sqlx::Error::Decode(Box::new(std::fmt::Error));
        assert!(matches!(classify(decode), MetaError::Corrupt(_)));
        assert!(matches!(classify(sqlx::Error::RowNotFound), MetaError::Backend(_)));
    }
}
