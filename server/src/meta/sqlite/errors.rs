//! How SQLite failures become backend-neutral [`MetaError`]s. The only place that knows
//! rusqlite error codes, so `ApiError` (and any other caller) can tell a full disk or a
//! busy database apart without depending on the driver.

use crate::meta::MetaError;
use rusqlite::ErrorCode;

/// The neutral class of a SQLite error code (a pure policy, table-tested below).
fn class_of(code: ErrorCode) -> Class {
    match code {
        ErrorCode::DiskFull => Class::Full,
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Class::Busy,
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Class::Corrupt,
        _ => Class::Other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Full,
    Busy,
    Corrupt,
    Other,
}

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => match class_of(f.code) {
                Class::Full => MetaError::StorageFull,
                Class::Busy => MetaError::Unavailable(e.to_string()),
                Class::Corrupt => MetaError::Corrupt(e.to_string()),
                Class::Other => MetaError::backend(e),
            },
            // A stored value that no longer parses (see `rows`): the data is inconsistent.
            rusqlite::Error::FromSqlConversionFailure(..) => MetaError::Corrupt(e.to_string()),
            _ => MetaError::backend(e),
        }
    }
}

impl From<rusqlite_migration::Error> for MetaError {
    fn from(e: rusqlite_migration::Error) -> Self {
        match e {
            rusqlite_migration::Error::RusqliteError { err, .. } => MetaError::from(err),
            other => MetaError::backend(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn failure(code: i32) -> MetaError {
        MetaError::from(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None))
    }

    #[test]
    fn sqlite_codes_map_to_neutral_errors() {
        type Expect = fn(&MetaError) -> bool;
        let table: &[(i32, Expect)] = &[
            (ffi::SQLITE_FULL, |e| matches!(e, MetaError::StorageFull)),
            (ffi::SQLITE_BUSY, |e| matches!(e, MetaError::Unavailable(_))),
            (ffi::SQLITE_LOCKED, |e| matches!(e, MetaError::Unavailable(_))),
            (ffi::SQLITE_CORRUPT, |e| matches!(e, MetaError::Corrupt(_))),
            (ffi::SQLITE_NOTADB, |e| matches!(e, MetaError::Corrupt(_))),
            (ffi::SQLITE_CONSTRAINT, |e| matches!(e, MetaError::Backend(_))),
            (ffi::SQLITE_IOERR, |e| matches!(e, MetaError::Backend(_))),
            (ffi::SQLITE_CANTOPEN, |e| matches!(e, MetaError::Backend(_))),
        ];
        for (code, expected) in table {
            let got = failure(*code);
            assert!(expected(&got), "code {code}: {got:?}");
        }
    }

    #[test]
    fn an_unparsable_stored_value_is_corrupt() {
        let e = rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(std::fmt::Error),
        );
        assert!(matches!(MetaError::from(e), MetaError::Corrupt(_)));
    }

    #[test]
    fn other_driver_errors_are_backend_errors() {
        assert!(matches!(
            MetaError::from(rusqlite::Error::QueryReturnedNoRows),
            MetaError::Backend(_)
        ));
    }
}
