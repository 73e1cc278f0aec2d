//! The tables `db copy` knows, and the SQL it reads and writes them with (one text for
//! both backends, see [`crate::sql::Sql`]).

use crate::sql::{Kind, Sql, Value};

/// A table and the columns copied, the primary key first.
#[derive(Debug)]
pub(super) struct Table {
    pub(super) name: &'static str,
    pub(super) columns: &'static [(&'static str, Kind)],
    /// How many leading columns make the primary key (the keyset for paging).
    pub(super) key_len: usize,
}

impl Table {
    /// The kinds of the columns, in order.
    pub(super) fn kinds(&self) -> Vec<Kind> {
        self.columns.iter().map(|(_, kind)| *kind).collect()
    }
}

use Kind::{Blob, Boolean, Integer, Text};

/// Every table, in an order that respects foreign keys: a table comes after the
/// tables it references (sessions and tokens after users, tokens after projects,
/// usage after tokens). Deletion goes the other way round.
#[rustfmt::skip]
pub(super) const TABLES: &[Table] = &[
    Table { name: "roles", key_len: 1, columns: &[
        ("name", Text), ("description", Text), ("permissions", Text), ("builtin", Boolean),
        ("created_at", Integer), ("updated_at", Integer),
    ] },
    Table { name: "users", key_len: 1, columns: &[
        ("id", Text), ("email", Text), ("email_key", Text), ("name", Text), ("role", Text),
        ("password_hash", Text), ("active", Boolean), ("created_at", Integer),
        ("updated_at", Integer),
    ] },
    Table { name: "sessions", key_len: 1, columns: &[
        ("digest", Blob), ("user_id", Text), ("created_at", Integer), ("expires_at", Integer),
    ] },
    Table { name: "projects", key_len: 1, columns: &[
        ("slug", Text), ("name", Text), ("created_at", Integer),
    ] },
    Table { name: "resources", key_len: 1, columns: &[
        ("name", Text), ("description", Text), ("actions", Text), ("created_at", Integer),
        ("updated_at", Integer),
    ] },
    Table { name: "tokens", key_len: 1, columns: &[
        ("id", Text), ("kind", Text), ("name", Text), ("name_key", Text),
        ("description", Text), ("token_type", Text), ("permissions", Text), ("project", Text),
        ("owner_id", Text), ("status", Text), ("lifespan", Text), ("expires_at", Integer),
        ("api_version", Text), ("hint", Text), ("digest", Blob), ("grace_digest", Blob),
        ("grace_until", Integer), ("created_at", Integer), ("created_by", Text),
        ("updated_at", Integer), ("last_used_at", Integer), ("rate_limit_requests", Integer),
        ("rate_limit_seconds", Integer), ("revision", Integer), ("external_id", Text),
        ("metadata", Text),
    ] },
    Table { name: "usage_daily", key_len: 2, columns: &[
        ("token_id", Text), ("day", Text), ("allowed", Integer), ("denied", Integer),
    ] },
    Table { name: "audit", key_len: 1, columns: &[
        ("id", Integer), ("at", Integer), ("actor", Text), ("action", Text), ("target", Text),
        ("client_address", Text), ("changes", Text),
    ] },
    Table { name: "changes", key_len: 1, columns: &[
        ("sequence", Integer), ("kind", Text), ("key", Text), ("at", Integer),
    ] },
    Table { name: "meta", key_len: 1, columns: &[("key", Text), ("value", Text)] },
];

/// Tables whose rows in the target give way to the source's, and do not make the
/// target count as holding data: the seeded built-in roles, and `meta` (the pepper
/// fingerprint a `migrate` of the target recorded, say; the copied digests need the
/// source's pepper, so its fingerprint is the one that holds).
pub(super) fn replaced_in_target(table: &str) -> Option<&'static str> {
    match table {
        // `NOT builtin` reads an INTEGER 0/1 (SQLite) and a BOOLEAN alike.
        "roles" => Some("NOT builtin"),
        "meta" => Some("1 = 0"),
        _ => None,
    }
}

/// PostgreSQL tables whose ids come from a `BIGSERIAL`: (table, column).
pub(super) const SERIAL_COLUMNS: &[(&str, &str)] = &[("audit", "id"), ("changes", "sequence")];

/// The SQLite search index over token names (migration 0005) and its FTS5 shadow
/// tables: derived from `tokens`, so never copied; a SQLite target rebuilds them once
/// the tokens are in, before they commit (`Tx::index_token_names`).
pub(super) fn is_derived(table: &str) -> bool {
    table == "token_names" || table.starts_with("token_names_")
}

/// The migrator's own bookkeeping, which each end keeps for itself.
pub(super) const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

fn column_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT <columns> FROM t [WHERE (key) > (after)] ORDER BY key LIMIT n`. Row-value
/// comparison works on both backends (SQLite since 3.15).
pub(super) fn page_query(table: &Table, after: Option<&[Value]>, limit: usize) -> Sql {
    let key: Vec<&str> = table.columns[..table.key_len]
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let key = key.join(", ");
    let mut sql = Sql::new(format!("SELECT {} FROM {}", column_list(table), table.name));
    if let Some(after) = after {
        sql.push(&format!(" WHERE ({key}) > ("));
        for (index, value) in after.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.push_bind(value.clone());
        }
        sql.push(")");
    }
    sql.push(&format!(" ORDER BY {key} LIMIT {limit}"));
    sql
}

/// `INSERT INTO t (<columns>) VALUES (…), (…), …`.
pub(super) fn insert_query(table: &Table, rows: Vec<Vec<Value>>) -> Sql {
    let mut sql = Sql::new(format!(
        "INSERT INTO {} ({}) VALUES ",
        table.name,
        column_list(table)
    ));
    for (row_index, row) in rows.into_iter().enumerate() {
        sql.push(if row_index == 0 { "(" } else { ", (" });
        for (index, value) in row.into_iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.push_bind(value);
        }
        sql.push(")");
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_after_the_tables_they_reference() {
        let position = |name: &str| TABLES.iter().position(|t| t.name == name).unwrap();
        for (child, parent) in [
            ("sessions", "users"),
            ("tokens", "users"),
            ("tokens", "projects"),
            ("usage_daily", "tokens"),
        ] {
            assert!(
                position(child) > position(parent),
                "{child} before {parent}"
            );
        }
        for table in TABLES {
            assert!(table.key_len >= 1 && table.key_len <= table.columns.len());
        }
    }

    #[test]
    fn the_widest_batch_stays_under_the_bind_limits() {
        let widest = TABLES.iter().map(|t| t.columns.len()).max().unwrap();
        assert!(widest * super::super::MAX_BATCH_SIZE < 32_766);
    }
}
