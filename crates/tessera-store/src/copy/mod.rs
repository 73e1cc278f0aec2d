//! Copying a whole database into another, of either backend (`tessera db copy`).
//!
//! This is the one place that works on both backends at once, at the SQL level. The
//! two schemas match column for column (times are BIGINT milliseconds everywhere), so
//! every table is read with an explicit column list and written with the same list;
//! only booleans differ (SQLite INTEGER 0/1, PostgreSQL BOOLEAN), and sqlx converts
//! them when a value is decoded as `bool` and bound as `bool`.
//!
//! How a copy goes:
//!
//! 1. Both ends are opened through [`crate::open`], which creates and migrates them.
//! 2. The copy refuses when source and target are the same database, and when either
//!    holds a table or column this module does not know (a migration added one and
//!    [`TABLES`] was not updated), so nothing is silently left behind.
//! 3. A target that holds anything (users, tokens, resources, projects, audit rows,
//!    custom roles, …; the seeded built-in roles and `meta` do not count) is refused with
//!    [`StoreError::Conflict`], unless [`CopyOptions::force`]: then everything in it is
//!    deleted first, in one transaction, children first.
//! 4. The source is read in one snapshot (a read transaction; `REPEATABLE READ` on
//!    PostgreSQL), table by table in foreign-key order, in keyset pages of
//!    [`CopyOptions::batch_size`] rows; each page is one multi-row `INSERT`, and each
//!    table one target transaction. Nothing but one page is ever in memory.
//! 5. Ids, digests, audit ids and change sequence numbers are kept. On PostgreSQL the
//!    `BIGSERIAL` sequences of `audit` and `changes` are then moved past the copied
//!    rows (SQLite's `AUTOINCREMENT` follows explicit ids by itself).
//! 6. Every table is counted again in both databases (fresh reads, not the snapshot),
//!    so a source written to during the copy shows as a mismatch in the report.
//!
//! Row contents never appear in progress events, errors or logs: digests, password
//! hashes and audit details stay in the databases.

mod db;
mod tables;

use self::db::{Db, End};
use self::tables::{TABLES, replaced_in_target};
use crate::sql::Value;
use crate::{StoreError, StoreResult};

/// Rows per `INSERT` (and per page read from the source) unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// The largest batch accepted: keeps the widest table (`tokens`, 24 columns) well under
/// both backends' bind-parameter limits (SQLite 32766, PostgreSQL 65535).
const MAX_BATCH_SIZE: usize = 1000;

/// How a copy behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Delete everything in a non-empty target first, instead of refusing.
    pub force: bool,
    /// Rows per `INSERT` and per page read (1 to 1000).
    pub batch_size: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            force: false,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// What a copy is doing, for a progress display. Carries names and counts only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyProgress {
    /// `force`: the target's previous contents were deleted (`rows` in all tables,
    /// the seeded built-in roles included).
    TargetCleared { rows: u64 },
    /// A table's copy begins; `total` rows are in the source snapshot.
    TableStarted { table: &'static str, total: u64 },
    /// `done` of `total` rows of `table` are written (after every batch).
    Rows {
        table: &'static str,
        done: u64,
        total: u64,
    },
    /// A table is copied and committed.
    TableFinished { table: &'static str, rows: u64 },
    /// Counting every table in both databases.
    Checking,
}

/// One table's counts after a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    /// Rows copied (the source snapshot's count).
    pub copied: u64,
    /// Rows in the source when the copy had finished.
    pub source: u64,
    /// Rows in the target when the copy had finished.
    pub target: u64,
}

impl TableCount {
    /// Whether source and target hold the same number of rows, and the copy took all
    /// of them (a source written to during the copy fails this).
    pub fn matches(&self) -> bool {
        self.source == self.target && self.copied == self.source
    }
}

/// The outcome of [`copy_database`]. Check [`CopyReport::mismatches`]: a copy whose
/// counts differ returns `Ok` with the tables named there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// `"sqlite"` or `"postgres"`.
    pub source_backend: &'static str,
    pub target_backend: &'static str,
    /// Every table, in copy order.
    pub tables: Vec<TableCount>,
}

impl CopyReport {
    /// The tables whose counts differ.
    pub fn mismatches(&self) -> Vec<&TableCount> {
        self.tables
            .iter()
            .filter(|count| !count.matches())
            .collect()
    }

    /// Rows copied, all tables together.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|count| count.copied).sum()
    }
}

/// Copies every table of the database at `from` into the database at `to` (either
/// backend each), as described in the [module documentation](self). `progress` hears
/// what happens, names and counts only.
///
/// Errors: [`StoreError::Conflict`] when the target is not empty (and not
/// `options.force`) or is the source itself; [`StoreError::NotFound`] when `from` is a
/// SQLite file that does not exist; otherwise what opening, reading or writing met.
/// A copy that fails part way leaves the tables committed so far in the target; run it
/// again with `force`.
pub async fn copy_database(
    from: &str,
    to: &str,
    options: CopyOptions,
    progress: &mut dyn FnMut(CopyProgress),
) -> StoreResult<CopyReport> {
    if from == to {
        return Err(StoreError::Conflict {
            what: "the source and the target are the same database".into(),
        });
    }
    let batch_size = options.batch_size.clamp(1, MAX_BATCH_SIZE);
    let source = Db::connect(from, End::Source).await?;
    let target = match Db::connect(to, End::Target).await {
        Ok(target) => target,
        Err(error) => {
            source.close().await;
            return Err(error);
        }
    };
    let result = copy_between(&source, &target, options.force, batch_size, progress).await;
    source.close().await;
    target.close().await;
    result
}

async fn copy_between(
    source: &Db,
    target: &Db,
    force: bool,
    batch_size: usize,
    progress: &mut dyn FnMut(CopyProgress),
) -> StoreResult<CopyReport> {
    if source.same_as(target).await? {
        return Err(StoreError::Conflict {
            what: "the source and the target are the same database".into(),
        });
    }
    source.check_schema(End::Source).await?;
    target.check_schema(End::Target).await?;

    let contents = target.contents().await?;
    if !contents.is_empty() && !force {
        let listed: Vec<String> = contents
            .iter()
            .map(|(table, rows)| format!("{table}: {rows}"))
            .collect();
        return Err(StoreError::Conflict {
            what: format!(
                "the target database is not empty ({}); copy into an empty database, \
                 or pass --force to delete everything in the target first",
                listed.join(", ")
            ),
        });
    }
    if force {
        let rows = target.clear().await?;
        progress(CopyProgress::TargetCleared { rows });
    }

    let mut snapshot = source.begin_snapshot().await?;
    let mut totals = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        totals.push(snapshot.count(table.name).await?);
    }
    let mut copied = Vec::with_capacity(TABLES.len());
    for (table, &total) in TABLES.iter().zip(&totals) {
        progress(CopyProgress::TableStarted {
            table: table.name,
            total,
        });
        let mut tx = target.begin_write().await?;
        if replaced_in_target(table.name).is_some() {
            // The target's seeded built-in roles give way to the source's (which may
            // have been edited), its `meta` to the source's; `force` has already
            // emptied the table.
            tx.execute(
                &format!("DELETE FROM {}", table.name),
                &format!("cannot replace the target's {}", table.name),
            )
            .await?;
        }
        let mut done: u64 = 0;
        let mut last_key: Option<Vec<Value>> = None;
        loop {
            let rows = snapshot
                .page(table, last_key.as_deref(), batch_size)
                .await?;
            let Some(last) = rows.last() else { break };
            last_key = Some(last[..table.key_len].to_vec());
            let count = rows.len();
            tx.insert(table, rows).await?;
            done += count as u64;
            progress(CopyProgress::Rows {
                table: table.name,
                done,
                total: total.max(done),
            });
            if count < batch_size {
                break;
            }
        }
        if table.name == "tokens" {
            tx.index_token_names().await?;
        }
        tx.commit(&format!("cannot commit the target's {}", table.name))
            .await?;
        progress(CopyProgress::TableFinished {
            table: table.name,
            rows: done,
        });
        copied.push(done);
    }
    snapshot.commit("cannot end the read transaction").await?;
    target.advance_sequences().await?;

    progress(CopyProgress::Checking);
    let mut tables = Vec::with_capacity(TABLES.len());
    for (table, copied) in TABLES.iter().zip(copied) {
        tables.push(TableCount {
            table: table.name,
            copied,
            source: source.count(table.name, None).await?,
            target: target.count(table.name, None).await?,
        });
    }
    Ok(CopyReport {
        source_backend: source.backend(),
        target_backend: target.backend(),
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_name_mismatched_tables() {
        let report = CopyReport {
            source_backend: "sqlite",
            target_backend: "postgres",
            tables: vec![
                TableCount {
                    table: "users",
                    copied: 2,
                    source: 2,
                    target: 2,
                },
                TableCount {
                    table: "tokens",
                    copied: 5,
                    source: 6,
                    target: 5,
                },
            ],
        };
        let mismatches: Vec<&str> = report.mismatches().iter().map(|t| t.table).collect();
        assert_eq!(mismatches, vec!["tokens"]);
        assert_eq!(report.total_rows(), 7);
    }
}
