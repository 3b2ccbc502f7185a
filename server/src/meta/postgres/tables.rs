//! [`TableAccess`] for the Postgres store: tables, columns and foreign keys from the
//! catalog of the current schema (the migration history `_sqlx_migrations` is not data),
//! cells converted by column type (booleans travel as 0/1, like SQLite stores them), and
//! identity sequences moved past the imported ids at the end.

use super::PgMetaStore;
use crate::meta::MetaError;
use crate::meta::tables::{
    Cell, Rows, TableAccess, checked_identifier, column_list, dependency_order,
    order_by_every_column,
};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Column, PgConnection, Row, TypeInfo};
use std::collections::HashMap;

const BOOKKEEPING: &str = "_sqlx_migrations";

async fn table_names(c: &mut PgConnection) -> Result<Vec<String>, MetaError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname <> $1
         ORDER BY c.oid",
    )
    .bind(BOOKKEEPING)
    .fetch_all(&mut *c)
    .await?;
    Ok(names)
}

async fn foreign_keys(c: &mut PgConnection) -> Result<HashMap<String, Vec<String>>, MetaError> {
    let pairs: Vec<(String, String)> = sqlx::query_as(
        "SELECT src.relname::text, dst.relname::text FROM pg_constraint k
         JOIN pg_class src ON src.oid = k.conrelid
         JOIN pg_class dst ON dst.oid = k.confrelid
         JOIN pg_namespace n ON n.oid = src.relnamespace
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *c)
    .await?;
    let mut refs: HashMap<String, Vec<String>> = HashMap::new();
    for (src, dst) in pairs {
        refs.entry(src).or_default().push(dst);
    }
    Ok(refs)
}

/// Column names and their SQL types, in declared order.
async fn column_types(
    c: &mut PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, MetaError> {
    let cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *c)
    .await?;
    Ok(cols)
}

fn cell(row: &PgRow, i: usize) -> Result<Cell, MetaError> {
    let kind = row.columns()[i].type_info().name().to_owned();
    let cell = match kind.as_str() {
        "INT8" => row.try_get::<Option<i64>, _>(i)?.map(Cell::Int),
        "INT4" => row.try_get::<Option<i32>, _>(i)?.map(|v| Cell::Int(v.into())),
        "INT2" => row.try_get::<Option<i16>, _>(i)?.map(|v| Cell::Int(v.into())),
        "BOOL" => row.try_get::<Option<bool>, _>(i)?.map(|b| Cell::Int(b.into())),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
            row.try_get::<Option<String>, _>(i)?.map(Cell::Text)
        }
        "BYTEA" => row.try_get::<Option<Vec<u8>>, _>(i)?.map(|b| Cell::bytes(&b)),
        other => return Err(MetaError::Corrupt(format!("column of unsupported type {other}"))),
    };
    Ok(cell.unwrap_or(Cell::Null))
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Bind `value` as the SQL type `kind` of its target column.
fn bind<'q>(q: Query<'q>, kind: &str, value: &Cell) -> Result<Query<'q>, MetaError> {
    let mismatch = || MetaError::Corrupt(format!("{value:?} does not fit a {kind} column"));
    Ok(match (kind, value) {
        ("bigint" | "integer" | "smallint", Cell::Null) => q.bind(None::<i64>),
        ("bigint" | "integer" | "smallint", Cell::Int(v)) => q.bind(*v),
        ("boolean", Cell::Null) => q.bind(None::<bool>),
        ("boolean", Cell::Int(v)) => q.bind(*v != 0),
        ("text" | "character varying", Cell::Null) => q.bind(None::<String>),
        ("text" | "character varying", Cell::Text(t)) => q.bind(t.clone()),
        ("bytea", Cell::Null) => q.bind(None::<Vec<u8>>),
        ("bytea", v) => q.bind(v.to_bytes()?),
        _ => return Err(mismatch()),
    })
}

#[async_trait::async_trait]
impl TableAccess for PgMetaStore {
    async fn tables(&self) -> Result<Vec<String>, MetaError> {
        self.run(|pool| async move {
            let mut c = super::conn(&pool).await?;
            let names = table_names(&mut c).await?;
            let refs = foreign_keys(&mut c).await?;
            dependency_order(&names, &|t| refs.get(t).cloned().unwrap_or_default())
        })
        .await
    }

    async fn columns(&self, table: &str) -> Result<Vec<String>, MetaError> {
        let table = checked_identifier(table)?.to_owned();
        self.run(|pool| async move {
            let mut c = super::conn(&pool).await?;
            Ok(column_types(&mut c, &table).await?.into_iter().map(|(n, _)| n).collect())
        })
        .await
    }

    async fn count(&self, table: &str) -> Result<u64, MetaError> {
        let table = checked_identifier(table)?.to_owned();
        self.run(|pool| async move {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&pool).await?;
            Ok(n as u64)
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
        self.run(move |pool| async move {
            let order = order_by_every_column(width);
            let sql = format!("SELECT {cols} FROM {table} {order} LIMIT $1 OFFSET $2");
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(limit as i64)
                .bind(offset as i64)
                .fetch_all(&pool)
                .await?;
            rows.iter().map(|r| (0..width).map(|i| cell(r, i)).collect()).collect()
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
        let (columns, rows) = (columns.to_vec(), rows.clone());
        self.run(move |pool| async move {
            let mut tx = super::begin(&pool).await?;
            let types: HashMap<String, String> =
                column_types(&mut tx, &table).await?.into_iter().collect();
            let kinds: Vec<&str> = columns
                .iter()
                .map(|c| {
                    types.get(c).map(String::as_str).ok_or_else(|| {
                        MetaError::Corrupt(format!("{table} has no column {c} here"))
                    })
                })
                .collect::<Result<_, _>>()?;
            let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
            let sql = format!("INSERT INTO {table} ({cols}) VALUES ({})", marks.join(", "));
            for row in &rows {
                let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
                for (kind, value) in kinds.iter().zip(row) {
                    q = bind(q, kind, value)?;
                }
                q.execute(&mut *tx).await?;
            }
            super::finish(tx).await
        })
        .await
    }

    async fn finish_import(&self) -> Result<(), MetaError> {
        self.run(|pool| async move {
            let identities: Vec<(String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND is_identity = 'YES'",
            )
            .fetch_all(&pool)
            .await?;
            for (table, column) in identities {
                let (table, column) = (checked_identifier(&table)?, checked_identifier(&column)?);
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                        COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                );
                sqlx::query(AssertSqlSafe(sql)).execute(&pool).await?;
            }
            Ok(())
        })
        .await
    }
}
