//! Parts of the S3-compatible blob store ([`super::S3BlobStore`]) that are plain
//! functions: its settings and URL, and the mapping of its errors.

mod errors;
mod settings;

pub(crate) use errors::blob_error;
pub(crate) use settings::S3File;
pub use settings::{BlobUrl, S3Settings};
