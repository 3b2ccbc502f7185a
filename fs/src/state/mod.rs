//! The mount's durable state: one SQLite file (`data_dir/state.db`, WAL,
//! `synchronous=FULL` because a closed save must survive a power cut, not only a crash).
//! Everything the daemon must remember across kill -9 and reboots lives here; the cache
//! files hold only bytes.

mod db;
mod folder;
mod in_flight;
mod rows;
mod schema;
mod specials;

pub use db::{DbError, StateDb};
pub use rows::{
    ConflictRow, GivenUpRow, InodeKind, InodeRow, PendingRow, Record, SpecialData, StatKey,
    StatusRow,
};
