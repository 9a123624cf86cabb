//! The one thread that writes to SQLite, committing queued jobs in groups.
//!
//! Jobs arrive through a bounded channel. The writer takes every job waiting (at most
//! [`WRITE_BATCH_MAX`]), runs each inside its own savepoint of one transaction, commits
//! once, and only then answers each job: many writes share one fsync, and one job's error
//! rolls back that job alone.

use crate::{StoreError, StoreResult};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tokio::sync::{mpsc, oneshot};

/// Jobs waiting for the writer; a caller past this waits for room.
const WRITE_QUEUE_MAX: usize = 1024;

/// Jobs committed together at most.
const WRITE_BATCH_MAX: usize = 256;

/// Runs a job's work inside the open transaction and hands back how to answer it once the
/// transaction's fate is known.
type Job = Box<dyn FnOnce(&Transaction<'_>) -> Finished + Send>;

struct Finished {
    failed: bool,
    /// Called after the commit, with the commit's error if it failed.
    answer: Answer,
}

/// The handle through which callers queue writes.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`; it stops once every handle is dropped.
    pub(super) fn start(conn: Connection) -> StoreResult<Writer> {
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE_MAX);
        std::thread::Builder::new()
            .name("assent-sqlite-writer".into())
            .spawn(move || run(conn, queue))
            .map_err(|e| StoreError::Database(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Writer { jobs })
    }

    /// Runs `work` in the writer's next transaction; answers once that transaction is
    /// committed (or, if `work` failed, once its savepoint is rolled back).
    pub(super) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.write_unless(work, |_| false).await
    }

    /// As [`Writer::write`], but also rolls `work` back when it succeeded with a value
    /// `roll_back` refuses; that value is still the answer.
    pub(super) async fn write_unless<T, F, R>(&self, work: F, roll_back: R) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
        R: FnOnce(&T) -> bool + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |txn| {
            let result = work(txn);
            let failed = result.as_ref().map_or(true, roll_back);
            let answer = Box::new(move |commit_error: Option<&str>| {
                let result = match commit_error {
                    Some(detail) if !failed => Err(StoreError::Database(detail.to_owned())),
                    _ => result,
                };
                let _ = reply.send(result);
            });
            Finished { failed, answer }
        });

        let writer_gone = || StoreError::Database("the SQLite writer dropped the write".into());
        self.jobs.send(job).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

fn run(mut conn: Connection, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH_MAX);
    while queue.blocking_recv_many(&mut batch, WRITE_BATCH_MAX) > 0 {
        commit_batch(&mut conn, batch.drain(..));
    }
    super::close(conn);
    tracing::debug!("SQLite writer stopped");
}

fn commit_batch(conn: &mut Connection, batch: impl Iterator<Item = Job>) {
    let txn = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(txn) => txn,
        Err(e) => {
            tracing::error!(error = %e, "SQLite write batch refused: cannot begin");
            // Dropping the jobs unanswered tells each caller that its write failed.
            return;
        }
    };

    let mut answers = Vec::with_capacity(WRITE_BATCH_MAX);
    let mut savepoints_closed = true;
    for job in batch {
        let (answer, closed) = run_job(&txn, job);
        answers.push(answer);
        savepoints_closed &= closed;
    }

    // A savepoint that could not be rolled back may hold a failed job's writes: keep none.
    let commit_error = if savepoints_closed {
        txn.commit().err().map(|e| format!("commit failed: {e}"))
    } else {
        Some("a savepoint could not be closed; the batch was rolled back".to_owned())
    };
    if let Some(detail) = &commit_error {
        tracing::error!(%detail, "SQLite write batch lost");
    }
    for answer in answers {
        answer(commit_error.as_deref());
    }
}

type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// Runs one job inside its own savepoint, so that a failed or panicking job is rolled back
/// alone. Also says whether the savepoint was closed cleanly.
fn run_job(txn: &Transaction<'_>, job: Job) -> (Answer, bool) {
    if let Err(e) = run_cached(txn, "SAVEPOINT job") {
        tracing::error!(error = %e, "SQLite savepoint refused; the write is dropped");
        return (Box::new(move |_| drop(job)), true);
    }

    let finished = catch_unwind(AssertUnwindSafe(|| job(txn)));
    let failed = finished.as_ref().map_or(true, |f| f.failed);
    let close = |txn| match failed {
        true => run_cached(txn, "ROLLBACK TO job").and_then(|()| run_cached(txn, "RELEASE job")),
        false => run_cached(txn, "RELEASE job"),
    };
    let closed = match close(txn) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "SQLite savepoint could not be closed");
            false
        }
    };

    match finished {
        Ok(finished) => (finished.answer, closed),
        Err(_) => {
            tracing::error!("a SQLite write job panicked; it was rolled back");
            (Box::new(|_| ()), closed)
        }
    }
}

/// Runs a statement without parameters from the connection's statement cache: savepoints
/// open and close once per write, and parsing them each time showed in profiles.
fn run_cached(txn: &Transaction<'_>, sql: &str) -> rusqlite::Result<()> {
    txn.prepare_cached(sql)?.execute([]).map(drop)
}
