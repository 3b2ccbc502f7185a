//! [`GroupWriter`]: group commit on the one SQLite writer connection.
//!
//! With `synchronous=FULL` every COMMIT costs one fsync of the WAL, and with several
//! devices uploading at once that fsync, not the SQL, bounds the write rate. So writes that
//! arrive while another is being applied share a transaction:
//!
//! - a caller locks the connection; if no batch transaction is open it opens one
//!   (`BEGIN IMMEDIATE`);
//! - it runs its write inside its own `SAVEPOINT`: a write that fails (or panics) is rolled
//!   back to that savepoint alone, so it never undoes or fails the others in the batch;
//! - if nobody else is queued for the connection (or the batch is full) it COMMITs, one
//!   fsync for the whole batch, and tells every member the outcome; otherwise it leaves the
//!   transaction open for the next caller and waits;
//! - each caller returns only once the batch's COMMIT has returned, so nothing is
//!   acknowledged before it is durable, exactly as with one transaction per write. If the
//!   COMMIT fails (or SQLite rolled the transaction back on an I/O error or a full disk),
//!   every member of the batch gets the error and none of its writes is kept.
//!
//! Each write still sees the writes before it in the same batch, so a compare-and-swap
//! stays a compare-and-swap: two uploads on the same base in one batch give one commit
//! and one conflict, as they would in two transactions. A batch never holds more than
//! [`MAX_BATCH`] writes, so a steady stream of writers still commits regularly.

use crate::meta::MetaError;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The most writes one transaction takes before it is committed even with others queued.
pub const MAX_BATCH: usize = 64;

/// The writer connection and the batch transaction open on it, if any.
#[derive(Debug)]
pub struct GroupWriter {
    state: Mutex<WriterState>,
    /// Callers queued for `state`: while there are some, the holder leaves the batch open.
    queued: AtomicUsize,
}

#[derive(Debug)]
struct WriterState {
    conn: Connection,
    /// The open batch transaction and how many writes it holds.
    batch: Option<(Arc<Batch>, usize)>,
}

/// One batch transaction's outcome, announced to its members once.
#[derive(Debug, Default)]
struct Batch {
    outcome: Mutex<Option<Result<(), Failure>>>,
    done: Condvar,
}

/// Why a batch stored nothing; every member gets an equal [`MetaError`].
#[derive(Debug, Clone)]
enum Failure {
    StorageFull,
    Unavailable(String),
    Corrupt(String),
    Other(String),
}

impl Failure {
    fn of(e: &MetaError) -> Failure {
        match e {
            MetaError::StorageFull => Failure::StorageFull,
            MetaError::Unavailable(m) => Failure::Unavailable(m.clone()),
            MetaError::Corrupt(m) => Failure::Corrupt(m.clone()),
            other => Failure::Other(other.to_string()),
        }
    }

    fn error(&self) -> MetaError {
        match self {
            Failure::StorageFull => MetaError::StorageFull,
            Failure::Unavailable(m) => MetaError::Unavailable(m.clone()),
            Failure::Corrupt(m) => MetaError::Corrupt(m.clone()),
            Failure::Other(m) => MetaError::backend(std::io::Error::other(format!(
                "the write's transaction was not committed: {m}"
            ))),
        }
    }
}

impl Batch {
    fn finish(&self, outcome: Result<(), Failure>) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        self.done.notify_all();
    }

    fn wait(&self) -> Result<(), Failure> {
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(outcome) = outcome.as_ref() {
                return outcome.clone();
            }
            outcome = self.done.wait(outcome).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// What one member's write did inside its savepoint.
enum Member<T> {
    Done(Result<T, MetaError>),
    Panicked(Box<dyn std::any::Any + Send>),
}

impl GroupWriter {
    #[must_use]
    pub fn new(conn: Connection) -> GroupWriter {
        GroupWriter {
            state: Mutex::new(WriterState { conn, batch: None }),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WriterState> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        state
    }

    /// Run `f` as one member of a batch transaction; see the module doc. Returns only once
    /// the batch is committed (`f`'s result) or has failed (the batch's error).
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let mut state = self.lock();
        let batch = state.join()?;
        let member = state.run_member(f);
        if state.conn.is_autocommit() {
            // SQLite rolled the whole transaction back (I/O error, full disk): the writes of
            // the members before this one are gone too.
            let why = match &member {
                Member::Done(Err(e)) => Failure::of(e),
                _ => Failure::Other("the transaction was rolled back".to_owned()),
            };
            state.batch = None;
            batch.finish(Err(why));
        } else {
            let full = state.batch.as_ref().is_some_and(|(_, n)| *n >= MAX_BATCH);
            if full || self.queued.load(Ordering::SeqCst) == 0 {
                state.commit();
            }
        }
        drop(state);
        let outcome = batch.wait();
        match member {
            Member::Panicked(panic) => resume_unwind(panic),
            Member::Done(Err(e)) => Err(e),
            Member::Done(Ok(value)) => outcome.map(|()| value).map_err(|f| f.error()),
        }
    }

    /// Run `f` in a transaction of its own (after committing any open batch), for writes
    /// that must not share one: bulk imports with deferred constraints checked at COMMIT.
    pub fn write_alone<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let mut state = self.lock();
        state.commit();
        let tx = state.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// The connection itself, with no batch open.
    #[cfg(test)]
    pub fn with_connection<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let mut state = self.lock();
        state.commit();
        f(&mut state.conn)
    }
}

/// Run a statement of the batch's own bookkeeping (BEGIN, SAVEPOINT, RELEASE, COMMIT) from
/// the statement cache: every commit runs four of them, and parsing each anew showed in
/// the server's profile.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

impl WriterState {
    /// The open batch, opening one if there is none; counts this member in.
    fn join(&mut self) -> Result<Arc<Batch>, MetaError> {
        if self.batch.is_none() {
            run(&self.conn, "BEGIN IMMEDIATE")?;
            self.batch = Some((Arc::new(Batch::default()), 0));
        }
        let (batch, members) = self.batch.as_mut().expect("a batch is open");
        *members += 1;
        Ok(Arc::clone(batch))
    }

    /// Run `f` inside a savepoint, rolling back to it when `f` fails or panics.
    fn run_member<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T, MetaError>) -> Member<T> {
        if let Err(e) = run(&self.conn, "SAVEPOINT member") {
            return Member::Done(Err(e.into()));
        }
        let conn = &self.conn;
        let member = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
            Ok(result) => Member::Done(result),
            Err(panic) => Member::Panicked(panic),
        };
        let keep = matches!(member, Member::Done(Ok(_)));
        if !self.conn.is_autocommit() {
            let end = if keep {
                run(&self.conn, "RELEASE member")
            } else {
                self.conn.execute_batch("ROLLBACK TO member; RELEASE member")
            };
            if let Err(e) = end {
                // The savepoint could not be closed: the transaction cannot be trusted.
                let _ = self.conn.execute_batch("ROLLBACK");
                if keep {
                    return Member::Done(Err(e.into()));
                }
            }
        }
        member
    }

    /// Commit the open batch, if any, and announce the outcome to its members.
    fn commit(&mut self) {
        let Some((batch, _)) = self.batch.take() else { return };
        let outcome = run(&self.conn, "COMMIT").map_err(|e| {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            Failure::of(&MetaError::from(e))
        });
        batch.finish(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    fn writer() -> (tempfile::TempDir, Arc<GroupWriter>) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("g.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)").unwrap();
        (dir, Arc::new(GroupWriter::new(conn)))
    }

    fn count(w: &GroupWriter) -> i64 {
        w.with_connection(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap())
    }

    #[test]
    fn concurrent_writes_all_land_and_a_failing_one_fails_alone() {
        let (dir, w) = writer();
        let threads = 16;
        let start = Barrier::new(threads);
        let results: Vec<Result<i64, MetaError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let (w, start) = (&w, &start);
                    s.spawn(move || {
                        start.wait();
                        w.write(|c| {
                            c.execute("INSERT INTO t VALUES (?1, ?2)", (format!("k{i}"), i))?;
                            if i % 5 == 0 {
                                // Fails after writing: its row must not survive.
                                return Err(MetaError::Conflict(format!("refused {i}")));
                            }
                            Ok(i as i64)
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, result) in results.iter().enumerate() {
            match result {
                Ok(v) => assert!(i % 5 != 0 && *v == i as i64),
                Err(MetaError::Conflict(m)) => assert!(i % 5 == 0 && *m == format!("refused {i}")),
                Err(e) => panic!("{i}: {e}"),
            }
        }
        assert_eq!(count(&w), (0..threads).filter(|i| i % 5 != 0).count() as i64);
        // Everything acknowledged is committed: another connection sees it.
        let other = Connection::open(dir.path().join("g.db")).unwrap();
        let seen: i64 = other.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(seen, count(&w));
    }

    #[test]
    fn a_write_that_breaks_a_constraint_keeps_the_batch_usable() {
        let (_dir, w) = writer();
        w.write(|c| Ok(c.execute("INSERT INTO t VALUES ('a', 1)", [])?)).unwrap();
        let dup = w.write(|c| Ok(c.execute("INSERT INTO t VALUES ('a', 2)", [])?));
        assert!(dup.is_err());
        w.write(|c| Ok(c.execute("INSERT INTO t VALUES ('b', 2)", [])?)).unwrap();
        assert_eq!(count(&w), 2);
    }

    #[test]
    fn a_panicking_write_is_rolled_back_and_the_writer_goes_on() {
        let (_dir, w) = writer();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            w.write(|c| -> Result<(), MetaError> {
                c.execute("INSERT INTO t VALUES ('p', 1)", [])?;
                panic!("bug in a write");
            })
        }));
        assert!(panicked.is_err());
        w.write(|c| Ok(c.execute("INSERT INTO t VALUES ('q', 1)", [])?)).unwrap();
        assert_eq!(count(&w), 1);
    }

    #[test]
    fn a_failed_commit_fails_every_member() {
        let (_dir, w) = writer();
        w.with_connection(|c| {
            c.execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
                 PRAGMA foreign_keys = ON;",
            )
            .unwrap();
        });
        // A deferred foreign key is checked at COMMIT, so this write succeeds on its own
        // but its batch's COMMIT fails: the write must not be acknowledged.
        let broken = w.write(|c| Ok(c.execute("INSERT INTO child VALUES (7)", [])?));
        assert!(broken.is_err(), "{broken:?}");
        let rows: i64 = w.with_connection(|c| {
            c.query_row("SELECT count(*) FROM child", [], |r| r.get(0)).unwrap()
        });
        assert_eq!(rows, 0);
        w.write(|c| Ok(c.execute("INSERT INTO t VALUES ('after', 1)", [])?)).unwrap();
        assert_eq!(count(&w), 1);
    }
}
