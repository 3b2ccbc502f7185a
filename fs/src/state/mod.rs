//! The mount's durable state: one SQLite file (`data_dir/state.db`, WAL). Everything the
//! daemon must remember across kill -9 and reboots lives here; the cache files hold only
//! bytes. Two connections: one commits with `synchronous=FULL` (renames, deletes, mkdir),
//! the other with `NORMAL` (closes, creates, the engine's bookkeeping); what a power cut
//! takes back from the second is found again at the next start (`tree::power_cut`).

mod db;
mod folder;
mod in_flight;
mod rows;
mod schema;
mod specials;

pub use db::{DbError, DbResult, StateDb};
pub use rows::{
    ConflictRow, GivenUpRow, InodeKind, InodeRow, PendingRow, Record, SpecialData, StatKey,
    StatusRow,
};
