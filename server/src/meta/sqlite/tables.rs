//! [`TableAccess`] for the SQLite store: table and column lists from the schema itself
//! (`sqlite_master`, `pragma_table_info`, `pragma_foreign_key_list`), rows as they are
//! stored. Inserts run in one IMMEDIATE transaction with foreign keys checked at commit.

use super::store::SqliteMeta;
use crate::meta::MetaError;
use crate::meta::tables::{
    Cell, Rows, TableAccess, checked_identifier, column_list, dependency_order,
    order_by_every_column,
};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, params_from_iter};

fn table_names(conn: &Connection) -> Result<Vec<String>, MetaError> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY rowid",
    )?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

fn referenced(conn: &Connection, table: &str) -> Vec<String> {
    let Ok(mut stmt) = conn.prepare("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)")
    else {
        return Vec::new();
    };
    stmt.query_map([table], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

fn column_names(conn: &Connection, table: &str) -> Result<Vec<String>, MetaError> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let cols = stmt.query_map([table], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
    Ok(cols)
}

fn cell(v: ValueRef<'_>) -> Result<Cell, MetaError> {
    Ok(match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Text(t) => Cell::Text(
            String::from_utf8(t.to_vec()).map_err(|e| MetaError::Corrupt(e.to_string()))?,
        ),
        ValueRef::Blob(b) => Cell::bytes(b),
        ValueRef::Real(r) => return Err(MetaError::Corrupt(format!("unexpected REAL {r}"))),
    })
}

fn value(c: &Cell) -> Result<Value, MetaError> {
    Ok(match c {
        Cell::Null => Value::Null,
        Cell::Int(i) => Value::Integer(*i),
        Cell::Text(t) => Value::Text(t.clone()),
        Cell::Bytes { .. } => Value::Blob(c.to_bytes()?),
    })
}

#[async_trait::async_trait]
impl TableAccess for SqliteMeta {
    async fn tables(&self) -> Result<Vec<String>, MetaError> {
        self.run(|db| {
            db.read(|conn| {
                let names = table_names(conn)?;
                dependency_order(&names, &|t| referenced(conn, t))
            })
        })
        .await
    }

    async fn columns(&self, table: &str) -> Result<Vec<String>, MetaError> {
        let table = checked_identifier(table)?.to_owned();
        self.run(move |db| db.read(|conn| column_names(conn, &table))).await
    }

    async fn count(&self, table: &str) -> Result<u64, MetaError> {
        let table = checked_identifier(table)?.to_owned();
        self.run(move |db| {
            db.read(|conn| {
                let n: i64 =
                    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
                Ok(n as u64)
            })
        })
        .await
    }

    async fn read_rows(
        &self,
        table: &str,
        columns: &[String],
        offset: u64,
        limit: u64,
    ) -> Result<Rows, MetaError> {
        let table = checked_identifier(table)?.to_owned();
        let cols = column_list(columns)?;
        let width = columns.len();
        self.run(move |db| {
            db.read(|conn| {
                let order = order_by_every_column(width);
                let sql = format!("SELECT {cols} FROM {table} {order} LIMIT ?1 OFFSET ?2");
                let mut stmt = conn.prepare(&sql)?;
                let mut rows = stmt.query([limit as i64, offset as i64])?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    let cells: Result<Vec<Cell>, MetaError> =
                        (0..width).map(|i| cell(row.get_ref(i)?)).collect();
                    out.push(cells?);
                }
                Ok(out)
            })
        })
        .await
    }

    async fn insert_rows(
        &self,
        table: &str,
        columns: &[String],
        rows: &Rows,
    ) -> Result<(), MetaError> {
        let table = checked_identifier(table)?.to_owned();
        let cols = column_list(columns)?;
        let marks = vec!["?"; columns.len()].join(", ");
        let rows = rows.clone();
        self.run(move |db| {
            db.write_alone(|tx| {
                tx.pragma_update(None, "defer_foreign_keys", "ON")?;
                let mut stmt =
                    tx.prepare(&format!("INSERT INTO {table} ({cols}) VALUES ({marks})"))?;
                for row in &rows {
                    let values: Result<Vec<Value>, MetaError> = row.iter().map(value).collect();
                    stmt.execute(params_from_iter(values?))?;
                }
                Ok(())
            })
        })
        .await
    }
}
