//! Write transactions that keep command counters in memory, and the queue that lets
//! many small writes share one transaction.
//!
//! A [`Batch`] is a write transaction plus the counters of every command it touched.
//! Changes to invocations are written as they happen; the counters, the engine's
//! decisions (release more invocations, stop after too many errors) and the derived
//! command status are written once per command at commit. A reply that finishes an
//! invocation therefore costs a few row updates, and a batch of a hundred replies to
//! one command updates the command's row once.
//!
//! The messages API (claims, acknowledgements, replies) is the busiest writer: every
//! node calls it several times per command. Its writes go through [`Store::in_batch`],
//! which queues them for one task that runs every queued write in one transaction
//! (group commit). Under load a transaction carries many writes; alone, a write waits
//! for nothing. A caller's answer is given only after its transaction committed. When
//! one write of a batch fails on a database error, the transaction is rolled back and
//! every write that ran in it fails with that error: none is half applied, and the
//! node retries as after any failed call.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::commands::{COUNTER_COLUMNS, counters_from_row};
use super::{Store, StoreError, WriteTx, messages};
use crate::engine::{self, Counters, Detail, Limit, Resolution};

/// Most writes one batch transaction carries, so that other writers (a `SendCommand`,
/// say) wait for the write lock at most this long.
const MAX_BATCH: usize = 32;

/// The future of a write run inside a batch, borrowing the batch.
pub(crate) type BatchFuture<'b, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'b>>;

/// A write transaction and the counters of the commands it changed.
pub(crate) struct Batch {
    tx: WriteTx,
    /// The write now running: the one that finished an invocation is told about the
    /// nodes that this freed room for.
    job: usize,
    commands: BTreeMap<String, Touched>,
}

/// A command whose counters this batch holds.
struct Touched {
    limits: Limits,
    counters: Counters,
    /// Set when an invocation of the command ended, so more may be released.
    advance: Option<Advance>,
}

/// What releasing more invocations of a command needs.
struct Advance {
    /// The topic suffix of released messages.
    topic: String,
    /// When.
    now_ms: i64,
    /// The write (batch position) whose caller wakes the released nodes.
    job: usize,
}

/// The command settings the engine decides with.
struct Limits {
    max_concurrency: Limit,
    max_errors: Limit,
    cancel_requested: bool,
    resolution: Resolution,
}

/// Nodes that received a message, by the write (batch position) that freed the room.
type Released = Vec<(usize, Vec<String>)>;

impl Batch {
    /// Starts a batch (on SQLite, after the writers ahead of it).
    pub(crate) async fn begin(store: &Store) -> Result<Batch, StoreError> {
        Ok(Batch {
            tx: store.begin_write().await?,
            job: 0,
            commands: BTreeMap::new(),
        })
    }

    /// The connection to run statements on.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx.tx
    }

    /// The counters of `command_id`, read on first use; changes are written at commit.
    pub(crate) async fn counters(&mut self, command_id: &str) -> Result<&mut Counters, StoreError> {
        Ok(&mut self.touch(command_id).await?.counters)
    }

    /// Marks `command_id` for the engine's decisions at commit, as when an
    /// invocation ended: release what concurrency allows, or stop after too many
    /// errors. `topic` is the message topic suffix of any released invocation.
    pub(crate) async fn advance(
        &mut self,
        command_id: &str,
        topic: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let job = self.job;
        self.touch(command_id).await?.advance = Some(Advance {
            topic: topic.to_owned(),
            now_ms,
            job,
        });
        Ok(())
    }

    /// Ends an open invocation with the terminal `detail`; `false` when it had ended.
    pub(crate) async fn finish(
        &mut self,
        ended: Ending<'_>,
        detail: Detail,
        trace: &str,
    ) -> Result<bool, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT detail, released FROM invocations WHERE command_id = $1 AND instance_id = $2",
        )
        .bind(ended.command_id)
        .bind(ended.instance_id)
        .fetch_optional(self.conn())
        .await?;
        let Some((previous, released)) = row else {
            return Ok(false);
        };
        let previous = Detail::parse(&previous).unwrap_or(Detail::InProgress);
        if previous.is_terminal() {
            return Ok(false);
        }

        sqlx::query(
            "UPDATE invocations SET detail = $1, end_ms = $2, updated_ms = $2, \
             trace_output = CASE WHEN $3 = '' THEN trace_output ELSE $3 END \
             WHERE command_id = $4 AND instance_id = $5",
        )
        .bind(detail.as_str())
        .bind(ended.now_ms)
        .bind(trace)
        .bind(ended.command_id)
        .bind(ended.instance_id)
        .execute(self.conn())
        .await?;
        self.count_finished(ended, previous, released == 1, detail)
            .await?;
        Ok(true)
    }

    /// Accounts for an invocation that moved from the open `previous` detail to the
    /// terminal `detail`, its row already written.
    pub(crate) async fn count_finished(
        &mut self,
        ended: Ending<'_>,
        previous: Detail,
        released: bool,
        detail: Detail,
    ) -> Result<(), StoreError> {
        let counters = self.counters(ended.command_id).await?;
        counters.finish(detail, released);
        if previous == Detail::Cancelling {
            counters.cancelling = counters.cancelling.saturating_sub(1);
        }
        self.advance(ended.command_id, ended.topic, ended.now_ms)
            .await
    }

    /// Writes every touched command's counters and status, applying the engine's
    /// decisions to those marked with [`Batch::advance`], then commits.
    pub(crate) async fn commit(mut self) -> Result<Released, StoreError> {
        let mut released = Vec::new();
        let commands = std::mem::take(&mut self.commands);
        for (command_id, mut touched) in commands {
            if let Some(advance) = touched.advance.take() {
                let nodes = decide(&mut self, &command_id, &mut touched, &advance).await?;
                if !nodes.is_empty() {
                    released.push((advance.job, nodes));
                }
            }
            save(&mut self, &command_id, &touched).await?;
        }
        self.tx.commit().await?;
        Ok(released)
    }

    /// [`Batch::commit`] for a batch of one caller: every node that got a message.
    pub(crate) async fn commit_alone(self) -> Result<Vec<String>, StoreError> {
        let released = self.commit().await?;
        Ok(released.into_iter().flat_map(|(_, nodes)| nodes).collect())
    }

    async fn touch(&mut self, command_id: &str) -> Result<&mut Touched, StoreError> {
        if !self.commands.contains_key(command_id) {
            let touched = load(self, command_id).await?;
            self.commands.insert(command_id.to_owned(), touched);
        }
        self.commands
            .get_mut(command_id)
            .ok_or_else(|| StoreError::Query(sqlx::Error::RowNotFound))
    }
}

/// The invocation a change applies to, when, and the message topic suffix
/// (`us.east.1.1`) of any invocation it releases.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending<'a> {
    /// The command.
    pub(crate) command_id: &'a str,
    /// The node.
    pub(crate) instance_id: &'a str,
    /// The topic suffix of released messages.
    pub(crate) topic: &'a str,
    /// Now, in epoch milliseconds.
    pub(crate) now_ms: i64,
}

async fn load(batch: &mut Batch, command_id: &str) -> Result<Touched, StoreError> {
    let sql = format!(
        "SELECT max_concurrency, max_errors, cancel_requested, no_targets, \
         resolve_after, {COUNTER_COLUMNS} \
         FROM commands WHERE command_id = $1"
    );
    let row = sqlx::query(&sql)
        .bind(command_id)
        .fetch_one(batch.conn())
        .await?;
    let max_concurrency: String = row.try_get("max_concurrency")?;
    let max_errors: String = row.try_get("max_errors")?;
    let cancel_requested: i64 = row.try_get("cancel_requested")?;
    let no_targets: i64 = row.try_get("no_targets")?;
    let resolve_after: Option<String> = row.try_get("resolve_after")?;
    let resolution = match (no_targets == 1, resolve_after.is_some()) {
        (true, _) => Resolution::NoneFound,
        (false, true) => Resolution::Partial,
        (false, false) => Resolution::Complete,
    };
    let counters = counters_from_row(&row)?;
    Ok(Touched {
        limits: Limits {
            max_concurrency: Limit::parse(&max_concurrency).unwrap_or(Limit::Count(50)),
            max_errors: Limit::parse(&max_errors).unwrap_or(Limit::Count(0)),
            cancel_requested: cancel_requested == 1,
            resolution,
        },
        counters,
        advance: None,
    })
}

/// Stops the command after too many errors, else releases what concurrency allows.
/// Returns the nodes that received a message.
async fn decide(
    batch: &mut Batch,
    command_id: &str,
    touched: &mut Touched,
    advance: &Advance,
) -> Result<Vec<String>, StoreError> {
    let Touched {
        limits, counters, ..
    } = touched;
    if counters.unreleased() == 0 {
        return Ok(Vec::new());
    }
    if engine::errors_exceeded(counters, limits.max_errors) {
        terminate_unreleased(batch, command_id, counters, advance.now_ms).await?;
        return Ok(Vec::new());
    }
    if limits.cancel_requested {
        return Ok(Vec::new());
    }
    let room = engine::releasable(counters, limits.max_concurrency, limits.max_errors);
    let released = release(batch, command_id, room, advance).await?;
    counters.in_flight += released.len() as u64;
    Ok(released)
}

async fn save(batch: &mut Batch, command_id: &str, touched: &Touched) -> Result<(), StoreError> {
    let limits = &touched.limits;
    let (status, details) = engine::command_status(
        &touched.counters,
        limits.max_errors,
        limits.cancel_requested,
        limits.resolution,
    );
    super::commands::save_counters(
        batch.conn(),
        command_id,
        &touched.counters,
        (status.as_str(), details),
    )
    .await
}

/// Releases up to `room` pending invocations, in order, by queueing their messages.
async fn release(
    batch: &mut Batch,
    command_id: &str,
    room: u64,
    advance: &Advance,
) -> Result<Vec<String>, StoreError> {
    if room == 0 {
        return Ok(Vec::new());
    }
    let instances: Vec<(String, i64)> = sqlx::query_as(
        "SELECT instance_id, seq FROM invocations WHERE command_id = $1 AND released = 0 \
         AND detail = 'Pending' ORDER BY seq LIMIT $2",
    )
    .bind(command_id)
    .bind(i64::try_from(room).unwrap_or(i64::MAX))
    .fetch_all(batch.conn())
    .await?;
    let Some(&(_, last_seq)) = instances.last() else {
        return Ok(Vec::new());
    };

    // The rows chosen are exactly the unreleased pending ones up to `last_seq`, so two
    // set-wise statements release them, whatever their number.
    let (topic, now_ms) = (&advance.topic, advance.now_ms);
    messages::enqueue_sends(batch.conn(), command_id, last_seq, topic, now_ms).await?;
    sqlx::query(
        "UPDATE invocations SET released = 1 WHERE command_id = $1 AND released = 0 \
         AND detail = 'Pending' AND seq <= $2",
    )
    .bind(command_id)
    .bind(last_seq)
    .execute(batch.conn())
    .await?;
    Ok(instances.into_iter().map(|(id, _)| id).collect())
}

/// Ends every invocation not yet released with `Terminated`.
async fn terminate_unreleased(
    batch: &mut Batch,
    command_id: &str,
    counters: &mut Counters,
    now_ms: i64,
) -> Result<(), StoreError> {
    let terminated = sqlx::query(
        "UPDATE invocations SET detail = 'Terminated', end_ms = $1, updated_ms = $1 \
         WHERE command_id = $2 AND released = 0 AND detail = 'Pending'",
    )
    .bind(now_ms)
    .bind(command_id)
    .execute(batch.conn())
    .await?;
    for _ in 0..terminated.rows_affected() {
        counters.finish(Detail::Terminated, false);
    }
    Ok(())
}

/// A queued write: runs in a batch (or hears that none could start), then hears
/// whether the batch committed.
type Job = Box<
    dyn for<'b> FnOnce(Result<&'b mut Batch, Arc<StoreError>>) -> BatchFuture<'b, Deliver> + Send,
>;

/// Tells a queued write's caller how its batch ended: committed, with the nodes its
/// write released, or failed.
type Deliver = Box<dyn FnOnce(Result<Vec<String>, Arc<StoreError>>) + Send>;

/// The sending end of the write queue.
#[derive(Clone)]
pub(crate) struct BatchQueue {
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for BatchQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchQueue").finish_non_exhaustive()
    }
}

impl BatchQueue {
    /// Starts the task that runs queued writes on `store`, a store without a queue.
    pub(crate) fn start(store: Store) -> BatchQueue {
        let (jobs, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(store, receiver));
        BatchQueue { jobs }
    }
}

impl Store {
    /// Runs `write` in the next batch transaction and returns its result, with the
    /// nodes it released, once that transaction committed.
    pub(crate) async fn in_batch<T, F>(&self, write: F) -> Result<(T, Vec<String>), StoreError>
    where
        T: Send + 'static,
        F: for<'b> FnOnce(&'b mut Batch) -> BatchFuture<'b, T> + Send + 'static,
    {
        let Some(queue) = &self.queue else {
            // The queue's own store: a batch of one.
            let mut batch = Batch::begin(self).await?;
            let value = write(&mut batch).await?;
            return Ok((value, batch.commit_alone().await?));
        };
        let (sender, receiver) = oneshot::channel();
        let job: Job = Box::new(move |batch| {
            Box::pin(async move {
                let value = match batch {
                    Ok(batch) => write(batch).await.map_err(Arc::new),
                    Err(error) => Err(error),
                };
                match value {
                    Ok(value) => {
                        let deliver: Deliver = Box::new(move |committed| {
                            // A caller that gave up waiting (its connection closed)
                            // needs no answer; the write stands either way.
                            sender
                                .send(committed.map(|released| (value, released)))
                                .ok();
                        });
                        Ok(deliver)
                    }
                    Err(error) => {
                        sender.send(Err(error.clone())).ok();
                        Err(StoreError::Batch(error))
                    }
                }
            })
        });
        queue.jobs.send(job).map_err(|_| StoreError::Stopped)?;
        match receiver.await {
            Ok(result) => result.map_err(StoreError::Batch),
            Err(_) => Err(StoreError::Stopped),
        }
    }
}

/// Runs queued writes, as many as are waiting (up to [`MAX_BATCH`]) per transaction.
async fn run(store: Store, mut receiver: mpsc::UnboundedReceiver<Job>) {
    let mut waiting = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match receiver.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        run_batch(&store, &mut waiting).await;
    }
}

/// Runs the waiting writes in one transaction. A write that fails ends the batch:
/// it and those before it fail, those after it wait for the next batch.
async fn run_batch(store: &Store, waiting: &mut VecDeque<Job>) {
    let mut batch = match Batch::begin(store).await {
        Ok(batch) => batch,
        Err(error) => {
            warn!(error = %crate::error_chain(&error), "could not start a write batch");
            let error = Arc::new(error);
            for job in waiting.drain(..) {
                // Each job tells its own caller; what it returns is the same error.
                job(Err(error.clone())).await.err();
            }
            return;
        }
    };

    let mut delivers = Vec::new();
    let mut failure = None;
    while let Some(job) = waiting.pop_front() {
        batch.job = delivers.len();
        match job(Ok(&mut batch)).await {
            Ok(deliver) => delivers.push(deliver),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }

    let outcome = match failure {
        Some(StoreError::Batch(error)) => Err(error),
        Some(other) => Err(Arc::new(other)),
        None => batch.commit().await.map_err(Arc::new),
    };
    match outcome {
        Ok(released) => {
            let mut by_job: Vec<Vec<String>> = vec![Vec::new(); delivers.len()];
            for (job, nodes) in released {
                if let Some(slot) = by_job.get_mut(job) {
                    slot.extend(nodes);
                }
            }
            for (deliver, nodes) in delivers.into_iter().zip(by_job) {
                deliver(Ok(nodes));
            }
        }
        Err(error) => {
            warn!(error = %crate::error_chain(&*error), "a write batch failed");
            for deliver in delivers {
                deliver(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::testing;

    /// Queues a write that inserts a reply row named `id`, then fails when `fail`.
    fn write(store: &Store, id: &'static str, fail: bool) -> tokio::task::JoinHandle<bool> {
        let store = store.clone();
        tokio::spawn(async move {
            let written = store
                .in_batch(move |batch| {
                    Box::pin(async move {
                        sqlx::query(
                            "INSERT INTO replies (reply_id, message_id, received_ms) \
                             VALUES ($1, 'm', 0)",
                        )
                        .bind(id)
                        .execute(batch.conn())
                        .await?;
                        if fail {
                            return Err(StoreError::Stopped);
                        }
                        Ok(())
                    })
                })
                .await;
            written.is_ok()
        })
    }

    async fn stored(store: &Store, id: &str) -> bool {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT reply_id FROM replies WHERE reply_id = $1")
                .bind(id)
                .fetch_optional(&store.pool)
                .await
                .unwrap();
        row.is_some()
    }

    #[tokio::test]
    async fn a_failed_write_undoes_its_batch_and_spares_the_writes_behind_it() {
        let (store, _dir) = testing::store().await;
        // A first batch that holds on until the three writes below are queued.
        let (open, opened) = oneshot::channel::<()>();
        let blocker = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .in_batch(move |_| {
                        Box::pin(async move { opened.await.ok().ok_or(StoreError::Stopped) })
                    })
                    .await
                    .is_ok()
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = write(&store, "before", false);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let failing = write(&store, "failing", true);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let after = write(&store, "after", false);
        tokio::time::sleep(Duration::from_millis(20)).await;

        open.send(()).unwrap();

        assert!(blocker.await.unwrap());
        assert!(!before.await.unwrap(), "shared the failed transaction");
        assert!(!failing.await.unwrap());
        assert!(after.await.unwrap(), "ran in the next batch");
        assert!(!stored(&store, "before").await);
        assert!(!stored(&store, "failing").await);
        assert!(stored(&store, "after").await);
    }
}
