//! Raw, backend-neutral access to the metadata tables, for moving an install from one
//! backend to another (`crate::transfer`: `savesync-server export` / `import`).
//!
//! Both backends keep the same tables with the same columns (the Postgres schema mirrors
//! the SQLite one), so a table is copied as rows of [`Cell`]s by column name. Each backend
//! converts a cell to its own column type on the way in (SQLite integers 0/1 become
//! Postgres booleans and back). Bookkeeping tables (migration history) are not data and
//! are not listed.

use super::MetaError;
use serde::{Deserialize, Serialize};

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    /// Binary data, hex in the dump so it stays readable JSON.
    Bytes {
        hex: String,
    },
}

impl Cell {
    /// A binary cell.
    #[must_use]
    pub fn bytes(b: &[u8]) -> Cell {
        Cell::Bytes { hex: hex::encode(b) }
    }

    /// The bytes of a binary cell, or of a text cell's UTF-8.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MetaError> {
        match self {
            Cell::Bytes { hex } => hex::decode(hex).map_err(|e| MetaError::Corrupt(e.to_string())),
            Cell::Text(t) => Ok(t.clone().into_bytes()),
            other => Err(MetaError::Corrupt(format!("expected bytes, found {other:?}"))),
        }
    }
}

/// Rows of one table, all with the same columns.
pub type Rows = Vec<Vec<Cell>>;

/// Table-level reads and writes for export and import.
#[async_trait::async_trait]
pub trait TableAccess: Send + Sync {
    /// The data tables, each after every table it references (an import order).
    async fn tables(&self) -> Result<Vec<String>, MetaError>;

    /// The columns of `table`, in their declared order.
    async fn columns(&self, table: &str) -> Result<Vec<String>, MetaError>;

    /// How many rows `table` holds.
    async fn count(&self, table: &str) -> Result<u64, MetaError>;

    /// Up to `limit` rows of `table` after skipping `offset`, in a stable order (by every
    /// column), with the columns given.
    async fn read_rows(
        &self,
        table: &str,
        columns: &[String],
        offset: u64,
        limit: u64,
    ) -> Result<Rows, MetaError>;

    /// Insert `rows` (values for `columns`) into `table` in one transaction.
    async fn insert_rows(
        &self,
        table: &str,
        columns: &[String],
        rows: &Rows,
    ) -> Result<(), MetaError>;

    /// After an import: let generated ids continue after the highest imported one.
    async fn finish_import(&self) -> Result<(), MetaError> {
        Ok(())
    }
}

/// Order `tables` so every table comes after the tables it references (`refs` gives the
/// referenced tables of each); ties keep the input order. A cycle is an error.
pub fn dependency_order(
    tables: &[String],
    refs: &dyn Fn(&str) -> Vec<String>,
) -> Result<Vec<String>, MetaError> {
    let mut out: Vec<String> = Vec::with_capacity(tables.len());
    let mut left: Vec<&String> = tables.iter().collect();
    while !left.is_empty() {
        let ready = left.iter().position(|t| {
            refs(t).iter().all(|r| r == *t || out.contains(r) || !tables.contains(r))
        });
        let Some(i) = ready else {
            return Err(MetaError::Corrupt(format!("foreign keys form a cycle among {left:?}")));
        };
        out.push(left.remove(i).clone());
    }
    Ok(out)
}

/// A table name as the backends list it: letters, digits and `_` only, so it can be put
/// into SQL text safely.
pub fn checked_identifier(name: &str) -> Result<&str, MetaError> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok { Ok(name) } else { Err(MetaError::Corrupt(format!("not a plain identifier: {name:?}"))) }
}

/// `columns` as a SQL column list, each checked to be a plain identifier.
pub fn column_list(columns: &[String]) -> Result<String, MetaError> {
    let cols: Result<Vec<&str>, MetaError> =
        columns.iter().map(|c| checked_identifier(c)).collect();
    Ok(cols?.join(", "))
}

/// `ORDER BY 1, 2, ..., width`: every column, a total order, so pages read with LIMIT and
/// OFFSET neither skip nor repeat rows.
#[must_use]
pub fn order_by_every_column(width: usize) -> String {
    let positions: Vec<String> = (1..=width).map(|i| i.to_string()).collect();
    format!("ORDER BY {}", positions.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn referenced_tables_come_first_and_ties_keep_their_order() {
        let refs = |t: &str| -> Vec<String> {
            match t {
                "devices" => names(&["users"]),
                "saves" => names(&["users", "devices"]),
                "versions" => names(&["versions", "users"]),
                "remote_runs" => names(&["remotes", "elsewhere"]),
                _ => Vec::new(),
            }
        };
        let cases: [(&[&str], &[&str]); 4] = [
            (&["users", "devices", "saves"], &["users", "devices", "saves"]),
            (&["saves", "devices", "users"], &["users", "devices", "saves"]),
            // A self-reference and a reference outside the list do not block a table.
            (&["versions", "users"], &["users", "versions"]),
            (&["remote_runs", "remotes"], &["remotes", "remote_runs"]),
        ];
        for (input, expected) in cases {
            assert_eq!(dependency_order(&names(input), &refs).unwrap(), names(expected));
        }
    }

    #[test]
    fn a_cycle_is_an_error() {
        let refs = |t: &str| names(if t == "a" { &["b"] } else { &["a"] });
        assert!(dependency_order(&names(&["a", "b"]), &refs).is_err());
    }

    #[test]
    fn identifiers_are_plain() {
        for ok in ["users", "device_saves", "t2"] {
            assert!(checked_identifier(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2t", "users; DROP TABLE x", "a\"b", "sp ace"] {
            assert!(checked_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cells_round_trip_through_json() {
        let row = vec![Cell::Null, Cell::Int(-7), Cell::Text("a".into()), Cell::bytes(&[0, 255])];
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"[null,-7,"a",{"hex":"00ff"}]"#);
        let back: Vec<Cell> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, row);
        assert_eq!(back[3].to_bytes().unwrap(), [0, 255]);
    }
}
