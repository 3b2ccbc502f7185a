//! savesync-core: the vocabulary the server and every device share.
//!
//! This crate owns validated save paths ([`SavePath`]), content hashes ([`ContentHash`]),
//! server-assigned counters ([`Rev`], [`Seq`]), the JSON wire types of the HTTP API
//! ([`wire`]), the stable error codes ([`ErrorCode`]) and the three-way comparison
//! ([`decide`]) that both sides use to agree on what happens to a save.
//!
//! It has no network, no disk and no async: everything here is a pure function of its
//! inputs, so the decision table can be tested exhaustively and by property.

pub mod bulk;
mod counters;
mod decide;
mod error_code;
mod hash;
mod local_only;
mod names;
mod path;
mod str_visitor;
pub mod wire;

pub use counters::{Rev, Seq};
pub use decide::{Decision, Version, decide};
pub use error_code::ErrorCode;
pub use hash::{ContentHash, ContentHasher, ParseHashError};
pub use local_only::is_local_only_name;
pub use names::{fold_key, invisible_char, is_reserved_conflict_name, to_nfc};
pub use path::{
    CONFLICT_SUFFIX, MAX_COMPONENT_BYTES, MAX_PATH_BYTES, PathError, SavePath, validate_component,
};
pub use path::{MAX_PATH_COMPONENTS, NAME_MAX_BYTES};
