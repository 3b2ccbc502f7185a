//! [`FsError`]: every failure of the filesystem layer, carrying the errno the FUSE adapter
//! replies with and a message that names the inode or path. The adapter maps errors to
//! errno in exactly one place (`FsError::errno`), so the filesystem layer never touches
//! FUSE types and can be tested without a mount.

use savesync_core::PathError;

/// Result of a filesystem-layer operation.
pub type FsResult<T> = Result<T, FsError>;

/// A failed filesystem operation: the errno for the kernel plus context for the log.
#[derive(Debug, thiserror::Error)]
#[error("{message} (errno {errno})")]
pub struct FsError {
    errno: i32,
    message: String,
}

impl FsError {
    /// An error with an explicit errno.
    pub fn new(errno: i32, message: impl Into<String>) -> FsError {
        FsError { errno, message: message.into() }
    }

    /// The errno the kernel receives.
    #[must_use]
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The human message (names the inode or path).
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn not_found(what: impl std::fmt::Display) -> FsError {
        FsError::new(libc::ENOENT, format!("{what}: no such entry"))
    }

    pub fn exists(what: impl std::fmt::Display) -> FsError {
        FsError::new(libc::EEXIST, format!("{what}: already exists"))
    }

    pub fn not_dir(what: impl std::fmt::Display) -> FsError {
        FsError::new(libc::ENOTDIR, format!("{what}: not a directory"))
    }

    pub fn is_dir(what: impl std::fmt::Display) -> FsError {
        FsError::new(libc::EISDIR, format!("{what}: is a directory"))
    }

    pub fn bad_handle(fh: u64) -> FsError {
        FsError::new(libc::EBADF, format!("file handle {fh} is not open"))
    }

    /// An I/O error on the local cache or state DB.
    pub fn io(context: impl std::fmt::Display, err: &std::io::Error) -> FsError {
        FsError::new(err.raw_os_error().unwrap_or(libc::EIO), format!("{context}: {err}"))
    }

    /// A state DB failure: the kernel sees ENOSPC when the disk is full (the application
    /// can tell the user what to do), EIO otherwise.
    pub fn db(context: impl std::fmt::Display, err: &crate::state::DbError) -> FsError {
        let errno = if err.is_disk_full() { libc::ENOSPC } else { libc::EIO };
        FsError::new(errno, format!("{context}: state db: {err}"))
    }

    /// A name the save library cannot hold.
    pub fn bad_name(name: &str, err: &PathError) -> FsError {
        let errno = match err {
            PathError::ComponentTooLong | PathError::TooLong => libc::ENAMETOOLONG,
            _ => libc::EINVAL,
        };
        FsError::new(errno, format!("{name:?} is not a valid save name: {err}"))
    }
}
