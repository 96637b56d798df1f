//! Commands and their invocations: creation, replies, cancel, timeouts.
//!
//! Each change runs in one write transaction (a [`Batch`]) that also applies the
//! engine's decisions (release more invocations, stop after too many errors, derive
//! the command's status), so the database never shows a command whose counters
//! disagree with its invocations. Counters are kept incrementally: a reply costs a few
//! row updates whatever the size of the command.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tagrun_wire::reply::{PluginRuntimeStatus, ReplyPayload};

use super::batch::{Batch, Ending};
use super::{Store, StoreError, messages};
use crate::engine::{self, Counters, Detail, Limit};

/// A command as `SendCommand` accepted it.
#[derive(Debug, Clone)]
pub struct NewCommand {
    /// UUID.
    pub command_id: String,
    /// When it was sent.
    pub requested_ms: i64,
    /// Undelivered invocations time out here.
    pub delivery_deadline_ms: i64,
    /// Unfinished invocations time out here (`ExpiresAfter`).
    pub expires_ms: i64,
    /// ARN of the caller.
    pub requester: String,
    /// Document name as requested.
    pub document_name: String,
    /// Document version as requested (echoed).
    pub document_version: String,
    /// `Comment`.
    pub comment: String,
    /// `MaxConcurrency` as given.
    pub max_concurrency: String,
    /// `MaxErrors` as given.
    pub max_errors: String,
    /// The request fields the API echoes back, as JSON.
    pub request_json: String,
    /// The payload every node receives.
    pub payload: String,
    /// Step names, for plugins not yet reported.
    pub steps: Vec<String>,
    /// `Targets` matched no node.
    pub no_targets: bool,
    /// One per node, in release order.
    pub invocations: Vec<NewInvocation>,
    /// Set when more nodes may match `Targets` than `invocations` holds.
    pub unresolved: Option<Unresolved>,
}

/// Where the resolution of a command's `Targets` stands, while nodes remain to be
/// looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// The instance id after which nodes remain to be looked at.
    pub after: String,
    /// What authorizes the sender for them (see `Caller::facts`), as JSON.
    pub caller_json: String,
}

/// A command whose `SendCommand` stopped before every node matching its `Targets`
/// was looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptedResolution {
    /// The command.
    pub command_id: String,
    /// Where its resolution stood when it was read (see [`Unresolved::after`]).
    pub after: String,
    /// The request, as [`NewCommand::request_json`] kept it.
    pub request_json: String,
    /// The sender, as [`Unresolved::caller_json`] kept it.
    pub caller_json: String,
}

/// One node of a new command.
#[derive(Debug, Clone)]
pub struct NewInvocation {
    /// The node.
    pub instance_id: String,
    /// Its host name, for `InstanceName`.
    pub instance_name: String,
    /// `Pending`, or a terminal detail decided at send time (`AccessDenied`, ...).
    pub detail: Detail,
}

/// A stored command.
#[derive(Debug, Clone)]
pub struct CommandRecord {
    /// UUID.
    pub command_id: String,
    /// When it was sent.
    pub requested_ms: i64,
    /// `ExpiresAfter`.
    pub expires_ms: i64,
    /// Document name.
    pub document_name: String,
    /// Document version as requested.
    pub document_version: String,
    /// `Comment`.
    pub comment: String,
    /// `MaxConcurrency`.
    pub max_concurrency: String,
    /// `MaxErrors`.
    pub max_errors: String,
    /// Echoed request fields.
    pub request_json: String,
    /// Step names.
    pub steps: Vec<String>,
    /// Coarse status.
    pub status: String,
    /// `StatusDetails`.
    pub status_details: String,
    /// Counters.
    pub counters: Counters,
}

/// A stored invocation.
#[derive(Debug, Clone)]
pub struct InvocationRecord {
    /// Command.
    pub command_id: String,
    /// Node.
    pub instance_id: String,
    /// Node host name.
    pub instance_name: String,
    /// `StatusDetails`.
    pub detail: Detail,
    /// When the node started it.
    pub start_ms: Option<i64>,
    /// When it ended.
    pub end_ms: Option<i64>,
    /// Why it failed before any step ran, if so.
    pub trace_output: String,
    /// Step results reported so far, by step name.
    pub plugins: BTreeMap<String, PluginResult>,
}

/// What a node reported about one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginResult {
    /// The agent's step status (`Success`, `Skipped`, `TimedOut`, ...).
    pub status: String,
    /// Exit code.
    pub code: i64,
    /// The action, e.g. `aws:runShellScript`.
    pub action: String,
    /// Combined output (2,500 characters at most).
    pub output: String,
    /// Standard output as reported.
    pub standard_output: String,
    /// Standard error as reported.
    pub standard_error: String,
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub start: String,
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub end: String,
}

impl From<&PluginRuntimeStatus> for PluginResult {
    fn from(status: &PluginRuntimeStatus) -> Self {
        PluginResult {
            status: status.status.as_str().to_owned(),
            code: i64::from(status.code),
            action: status.name.clone(),
            output: status.output.clone(),
            standard_output: status.standard_output.clone(),
            standard_error: status.standard_error.clone(),
            start: status.start_date_time.clone(),
            end: status.end_date_time.clone(),
        }
    }
}

/// What applying a reply did.
#[derive(Debug, Default)]
pub struct ReplyOutcome {
    /// Nodes with new messages to wake.
    pub notify: Vec<String>,
    /// The invocation finished with this detail.
    pub finished: Option<Detail>,
    /// The reply id was seen before; nothing changed.
    pub duplicate: bool,
    /// No message with that id belongs to the node.
    pub unknown_message: bool,
}

const COMMAND_COLUMNS: &str = "command_id, requested_ms, expires_ms, document_name, \
    document_version, comment, max_concurrency, max_errors, request_json, steps_json, status, \
    status_details, target_count, completed_count, error_count, delivery_timed_out_count, \
    success_count, neutral_count, cancelled_count, in_flight, cancelling, started";

const INVOCATION_COLUMNS: &str = "command_id, instance_id, instance_name, detail, start_ms, \
    end_ms, trace_output, plugins_json";

impl Store {
    /// Stores a new command and releases its first invocations. Returns the nodes
    /// that now have a message.
    ///
    /// Only the first [`FIRST_ROWS`] invocations become rows here; the others are kept
    /// in the command's row as one JSON value, so that the first nodes can be woken
    /// after a small transaction rather than after thousands of row inserts. The
    /// command is complete and durable once this returns: call
    /// [`Store::store_remaining_invocations`] next, and should that not happen (the
    /// process died in between), the timeout sweep does it.
    pub async fn create_command(
        &self,
        command: &NewCommand,
        topic: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut counters = Counters {
            target_count: command.invocations.len() as u64,
            ..Counters::default()
        };
        for invocation in command
            .invocations
            .iter()
            .filter(|i| i.detail.is_terminal())
        {
            counters.finish(invocation.detail, false);
        }

        // Later resolved invocations are numbered after these, so all must be rows.
        debug_assert!(command.unresolved.is_none() || command.invocations.len() <= FIRST_ROWS);
        let split = command.invocations.len().min(FIRST_ROWS);
        let (first, rest) = command.invocations.split_at(split);
        // The first invocations that concurrency allows are released as they are
        // inserted, so their nodes can be woken as soon as this commits.
        let max_concurrency = Limit::parse(&command.max_concurrency).unwrap_or(Limit::Count(50));
        let max_errors = Limit::parse(&command.max_errors).unwrap_or(Limit::Count(0));
        let room = engine::releasable(&counters, max_concurrency, max_errors);
        let rows: Vec<(&NewInvocation, bool)> = first
            .iter()
            .scan(0_u64, |taken, invocation| {
                let release = invocation.detail == Detail::Pending && *taken < room;
                *taken += u64::from(release);
                Some((invocation, release))
            })
            .collect();
        counters.in_flight = rows.iter().filter(|(_, released)| *released).count() as u64;
        let unstored = (!rest.is_empty()).then(|| unstored_json(rest));

        let mut batch = Batch::begin(self).await?;
        insert_command(batch.conn(), command, &counters, unstored.as_deref()).await?;
        insert_invocations(
            batch.conn(),
            &command.command_id,
            command.requested_ms,
            0,
            &rows,
        )
        .await?;
        let now_ms = command.requested_ms;
        messages::enqueue_created(batch.conn(), &command.command_id, topic, now_ms).await?;
        batch.advance(&command.command_id, topic, now_ms).await?;
        batch.commit_alone().await?;

        let released = rows.into_iter().filter(|(_, released)| *released);
        Ok(released
            .map(|(invocation, _)| invocation.instance_id.clone())
            .collect())
    }

    /// Turns the invocations that [`Store::create_command`] kept as JSON into rows,
    /// [`LATER_ROWS`] per transaction, and releases those that concurrency allows,
    /// handing each transaction's released nodes to `released` once it commits.
    /// Between transactions the write lock is free, so nodes already woken claim
    /// their messages without waiting for the whole command. Stores nothing twice,
    /// so it may run again, or on two replicas at once.
    pub async fn store_remaining_invocations(
        &self,
        command_id: &str,
        topic: &str,
        now_ms: i64,
        mut released: impl FnMut(Vec<String>),
    ) -> Result<(), StoreError> {
        let mut rest: Option<Vec<NewInvocation>> = None;
        loop {
            let mut batch = Batch::begin(self).await?;
            let row: Option<(Option<String>, i64, i64, i64)> = sqlx::query_as(
                "SELECT unstored_json, unstored_next, cancel_requested, requested_ms \
                 FROM commands WHERE command_id = $1",
            )
            .bind(command_id)
            .fetch_optional(batch.conn())
            .await?;
            let Some((Some(json), next, cancel_requested, requested_ms)) = row else {
                return Ok(());
            };
            let rest = match &mut rest {
                Some(rest) => rest,
                None => rest.insert(parse_unstored(&json)?),
            };
            let next = usize::try_from(next).unwrap_or(usize::MAX).min(rest.len());
            let end = (next + LATER_ROWS).min(rest.len());

            // Claims the rows: another replica may be at the same command, and the
            // second to get here sees `unstored_next` moved and starts again.
            let done = end == rest.len();
            let claimed = sqlx::query(
                "UPDATE commands SET unstored_next = $1, \
                 unstored_json = CASE WHEN $2 = 1 THEN NULL ELSE unstored_json END \
                 WHERE command_id = $3 AND unstored_next = $4 AND unstored_json IS NOT NULL",
            )
            .bind(i64::try_from(end).unwrap_or(i64::MAX))
            .bind(i64::from(done))
            .bind(command_id)
            .bind(i64::try_from(next).unwrap_or(i64::MAX))
            .execute(batch.conn())
            .await?;
            if claimed.rows_affected() == 0 {
                continue;
            }

            let chunk = &mut rest[next..end];
            if cancel_requested == 1 {
                // A cancel came first; what it could not see ends as it would have.
                for invocation in chunk.iter_mut().filter(|i| i.detail == Detail::Pending) {
                    invocation.detail = Detail::Cancelled;
                    let counters = batch.counters(command_id).await?;
                    counters.finish(Detail::Cancelled, false);
                }
            }
            let first_seq = FIRST_ROWS + next;
            insert_unreleased(batch.conn(), command_id, requested_ms, first_seq, chunk).await?;
            batch.advance(command_id, topic, now_ms).await?;
            released(batch.commit_alone().await?);
            if done {
                return Ok(());
            }
        }
    }

    /// Finishes storing the invocations of commands whose `SendCommand` stopped
    /// before it could (see [`Store::create_command`]). Returns the nodes to wake.
    async fn store_interrupted_commands(
        &self,
        topic: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let interrupted: Vec<String> = sqlx::query_scalar(
            "SELECT command_id FROM commands WHERE unstored_json IS NOT NULL \
             AND requested_ms <= $1",
        )
        .bind(now_ms - UNSTORED_GRACE_MS)
        .fetch_all(&self.pool)
        .await?;
        let mut notify = Vec::new();
        for command_id in interrupted {
            tracing::info!(%command_id, "storing the invocations of an interrupted command");
            self.store_remaining_invocations(&command_id, topic, now_ms, |nodes| {
                notify.extend(nodes);
            })
            .await?;
        }
        Ok(notify)
    }

    /// Stores the invocations of the nodes that matched a command's `Targets` among
    /// those after `after`, up to and including `next` (up to the last node when
    /// `None`, which ends the resolution), and releases what concurrency allows.
    /// Returns the released nodes once committed, or `None` if the command's
    /// resolution no longer stands at `after` (another replica, or an earlier try,
    /// got there first): nothing is stored twice.
    pub async fn add_resolved_invocations(
        &self,
        command_id: &str,
        after: &str,
        next: Option<&str>,
        invocations: &[NewInvocation],
        topic: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut batch = Batch::begin(self).await?;
        let claimed = sqlx::query(
            "UPDATE commands SET resolve_after = $1, \
             caller_json = CASE WHEN $2 = 1 THEN NULL ELSE caller_json END \
             WHERE command_id = $3 AND resolve_after = $4",
        )
        .bind(next)
        .bind(i64::from(next.is_none()))
        .bind(command_id)
        .bind(after)
        .execute(batch.conn())
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }

        let (cancel_requested, requested_ms): (i64, i64) = sqlx::query_as(
            "SELECT cancel_requested, requested_ms FROM commands WHERE command_id = $1",
        )
        .bind(command_id)
        .fetch_one(batch.conn())
        .await?;
        let mut invocations = invocations.to_vec();
        let counters = batch.counters(command_id).await?;
        let first_seq = usize::try_from(counters.target_count).unwrap_or(usize::MAX);
        counters.target_count += invocations.len() as u64;
        for invocation in &mut invocations {
            if cancel_requested == 1 && invocation.detail == Detail::Pending {
                // A cancel came first; what it could not see ends as it would have.
                invocation.detail = Detail::Cancelled;
            }
            if invocation.detail.is_terminal() {
                counters.finish(invocation.detail, false);
            }
        }
        insert_unreleased(
            batch.conn(),
            command_id,
            requested_ms,
            first_seq,
            &invocations,
        )
        .await?;
        batch.advance(command_id, topic, now_ms).await?;
        Ok(Some(batch.commit_alone().await?))
    }

    /// Where the resolution of a command's `Targets` stands: the instance id after
    /// which nodes remain to be looked at, or `None` once every node was.
    pub async fn resolve_after(&self, command_id: &str) -> Result<Option<String>, StoreError> {
        let after: Option<Option<String>> =
            sqlx::query_scalar("SELECT resolve_after FROM commands WHERE command_id = $1")
                .bind(command_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(after.flatten())
    }

    /// Commands whose `SendCommand` stopped before it looked at every node its
    /// `Targets` may match, old enough that no call is still at work on them.
    pub async fn interrupted_resolutions(
        &self,
        now_ms: i64,
    ) -> Result<Vec<InterruptedResolution>, StoreError> {
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT command_id, resolve_after, request_json, caller_json FROM commands \
             WHERE resolve_after IS NOT NULL AND requested_ms <= $1",
        )
        .bind(now_ms - UNSTORED_GRACE_MS)
        .fetch_all(&self.pool)
        .await?;
        let interrupted =
            rows.into_iter().map(
                |(command_id, after, request, caller)| InterruptedResolution {
                    command_id,
                    after,
                    request_json: request,
                    caller_json: caller.unwrap_or_default(),
                },
            );
        Ok(interrupted.collect())
    }

    /// One command.
    pub async fn command(&self, command_id: &str) -> Result<Option<CommandRecord>, StoreError> {
        let sql = format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id = $1");
        let row = sqlx::query(&sql)
            .bind(command_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| command_from_row(&r)).transpose()
    }

    /// Commands, newest first; only those that ran on `instance_id` when given.
    pub async fn commands(
        &self,
        instance_id: Option<&str>,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        let rows = match instance_id {
            None => {
                let sql = format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands ORDER BY requested_ms DESC, command_id"
                );
                sqlx::query(&sql).fetch_all(&self.pool).await?
            }
            Some(instance_id) => {
                let sql = format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id IN \
                     (SELECT command_id FROM invocations WHERE instance_id = $1) \
                     ORDER BY requested_ms DESC, command_id"
                );
                sqlx::query(&sql)
                    .bind(instance_id)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(command_from_row).collect()
    }

    /// Invocations of one command in release order, or of every command on one node.
    pub async fn invocations(
        &self,
        command_id: Option<&str>,
        instance_id: Option<&str>,
    ) -> Result<Vec<InvocationRecord>, StoreError> {
        let sql = format!(
            "SELECT {INVOCATION_COLUMNS} FROM invocations \
             WHERE ($1 = '' OR command_id = $1) AND ($2 = '' OR instance_id = $2) \
             ORDER BY command_id, seq"
        );
        let query = sqlx::query(&sql)
            .bind(command_id.unwrap_or_default())
            .bind(instance_id.unwrap_or_default());
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(invocation_from_row).collect()
    }

    /// Applies a node's reply to the invocation its message belongs to.
    pub async fn apply_reply(
        &self,
        instance_id: &str,
        message_id: &str,
        reply_id: &str,
        reply: ReplyPayload,
        topic: &str,
        now_ms: i64,
    ) -> Result<ReplyOutcome, StoreError> {
        let reply = Reply {
            instance_id: instance_id.to_owned(),
            message_id: message_id.to_owned(),
            reply_id: reply_id.to_owned(),
            payload: reply,
            topic: topic.to_owned(),
            now_ms,
        };
        let (mut outcome, notify) = self
            .in_batch(move |batch| Box::pin(async move { reply.apply(batch).await }))
            .await?;
        outcome.notify = notify;
        Ok(outcome)
    }

    /// Ends an invocation whose message the node refused (`FailMessage`).
    pub async fn fail_message(
        &self,
        instance_id: &str,
        message_id: &str,
        topic: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let (instance_id, message_id) = (instance_id.to_owned(), message_id.to_owned());
        let topic = topic.to_owned();
        let (known, notify) = self
            .in_batch(move |batch| {
                Box::pin(async move {
                    let Some(message) =
                        messages::owned(batch.conn(), &instance_id, &message_id).await?
                    else {
                        return Ok(false);
                    };
                    messages::mark_done(batch.conn(), &message_id).await?;
                    if !message.is_cancel {
                        let trace = "The agent could not process the command message.";
                        let ending = Ending {
                            command_id: &message.command_id,
                            instance_id: &instance_id,
                            topic: &topic,
                            now_ms,
                        };
                        batch.finish(ending, Detail::Failed, trace).await?;
                    }
                    Ok(true)
                })
            })
            .await?;
        Ok(known.then_some(notify))
    }

    /// Cancels a command on `instance_ids` (every node when empty). Invocations not yet
    /// handed to their node end at once; the others get a cancel message. Returns the
    /// nodes to wake, or `None` when the command does not exist.
    pub async fn cancel_command(
        &self,
        command_id: &str,
        instance_ids: &[String],
        topic: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut batch = Batch::begin(self).await?;
        let updated = sqlx::query("UPDATE commands SET cancel_requested = 1 WHERE command_id = $1")
            .bind(command_id)
            .execute(batch.conn())
            .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }

        let open: Vec<(String, i64)> = sqlx::query_as(
            "SELECT instance_id, released FROM invocations \
             WHERE command_id = $1 AND detail IN ('Pending', 'InProgress', 'Delayed') \
             ORDER BY seq",
        )
        .bind(command_id)
        .fetch_all(batch.conn())
        .await?;
        let mut notify = Vec::new();
        for (instance_id, released) in open {
            if !instance_ids.is_empty() && !instance_ids.contains(&instance_id) {
                continue;
            }
            let message_id = tagrun_wire::messages::message_id(command_id, &instance_id);
            let handed_out =
                released == 1 && messages::was_delivered(batch.conn(), &message_id).await?;
            if handed_out {
                mark_cancelling(&mut batch, command_id, &instance_id).await?;
                let target = &message_id;
                messages::enqueue_cancel(
                    batch.conn(),
                    &instance_id,
                    command_id,
                    target,
                    topic,
                    now_ms,
                )
                .await?;
                notify.push(instance_id);
            } else {
                messages::mark_done(batch.conn(), &message_id).await?;
                let ending = Ending {
                    command_id,
                    instance_id: &instance_id,
                    topic,
                    now_ms,
                };
                batch.finish(ending, Detail::Cancelled, "").await?;
            }
        }
        batch.advance(command_id, topic, now_ms).await?;
        batch.commit_alone().await?;
        Ok(Some(notify))
    }

    /// Times out invocations past their deadlines, and marks `Delayed` those whose
    /// node let the visibility timeout pass without acknowledging. Also stores the
    /// remaining invocations of commands whose `SendCommand` was interrupted. Returns
    /// the nodes to wake.
    pub async fn sweep_timeouts(
        &self,
        topic: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut notify = self.store_interrupted_commands(topic, now_ms).await?;
        self.mark_delayed(now_ms).await?;
        let due: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT i.command_id, i.instance_id, i.detail FROM invocations i \
             JOIN commands c ON c.command_id = i.command_id \
             WHERE i.detail IN ('Pending', 'InProgress', 'Delayed', 'Cancelling') \
             AND ((i.delivered = 0 AND c.delivery_deadline_ms <= $1) OR c.expires_ms <= $1) \
             LIMIT 500",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;

        if due.is_empty() {
            return Ok(notify);
        }
        let mut batch = Batch::begin(self).await?;
        for (command_id, instance_id, detail) in due {
            let outcome = if detail == "Cancelling" {
                Detail::Cancelled
            } else {
                Detail::DeliveryTimedOut
            };
            let message_id = tagrun_wire::messages::message_id(&command_id, &instance_id);
            messages::mark_done(batch.conn(), &message_id).await?;
            let ending = Ending {
                command_id: &command_id,
                instance_id: &instance_id,
                topic,
                now_ms,
            };
            batch.finish(ending, outcome, "").await?;
        }
        notify.extend(batch.commit_alone().await?);
        Ok(notify)
    }
}

impl Store {
    /// An invocation handed to its node but neither acknowledged nor answered within
    /// the visibility timeout is `Delayed` until the node takes it up again.
    async fn mark_delayed(&self, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE invocations SET detail = 'Delayed', updated_ms = $1 \
             WHERE detail = 'InProgress' AND delivered = 0 AND EXISTS \
             (SELECT 1 FROM messages m WHERE m.command_id = invocations.command_id \
             AND m.instance_id = invocations.instance_id AND m.payload IS NULL \
             AND m.done = 0 AND m.acknowledged = 0 AND m.deliveries > 0 \
             AND m.visible_ms <= $1)",
        )
        .bind(now_ms)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_command(
    conn: &mut AnyConnection,
    command: &NewCommand,
    counters: &Counters,
    unstored_json: Option<&str>,
) -> Result<(), sqlx::Error> {
    let steps = serde_json::to_string(&command.steps).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO commands (command_id, requested_ms, delivery_deadline_ms, expires_ms, \
         requester, document_name, document_version, comment, max_concurrency, max_errors, \
         request_json, payload, steps_json, status, status_details, cancel_requested, \
         no_targets, target_count, completed_count, error_count, delivery_timed_out_count, \
         success_count, neutral_count, cancelled_count, in_flight, cancelling, started, \
         unstored_json, resolve_after, caller_json) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'Pending', 'Pending', 0, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22, 0, 0, $23, $24, $25)",
    )
    .bind(&command.command_id)
    .bind(command.requested_ms)
    .bind(command.delivery_deadline_ms)
    .bind(command.expires_ms)
    .bind(&command.requester)
    .bind(&command.document_name)
    .bind(&command.document_version)
    .bind(&command.comment)
    .bind(&command.max_concurrency)
    .bind(&command.max_errors)
    .bind(&command.request_json)
    .bind(&command.payload)
    .bind(steps)
    .bind(i64::from(command.no_targets))
    .bind(count(counters.target_count))
    .bind(count(counters.completed_count))
    .bind(count(counters.error_count))
    .bind(count(counters.delivery_timed_out_count))
    .bind(count(counters.success_count))
    .bind(count(counters.neutral_count))
    .bind(count(counters.cancelled_count))
    .bind(count(counters.in_flight))
    .bind(unstored_json)
    .bind(command.unresolved.as_ref().map(|u| &u.after))
    .bind(command.unresolved.as_ref().map(|u| &u.caller_json))
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows per multi-row `INSERT`: well under SQLite's limit on bound parameters.
const INSERT_BATCH: usize = 100;

/// Invocations a new command stores as rows before its first nodes are woken (as
/// many as `MaxConcurrency` releases by default); the others follow in later
/// transactions.
const FIRST_ROWS: usize = 50;

/// Invocations per later transaction of a large command.
const LATER_ROWS: usize = INSERT_BATCH;

/// How old a command must be before the sweep stores invocations its `SendCommand`
/// left unstored, so that the sweep does not race a call still at work.
const UNSTORED_GRACE_MS: i64 = 2_000;

/// Inserts a batch of invocations, each with whether it is released, whose first has
/// sequence number `first_seq`.
async fn insert_invocations(
    conn: &mut AnyConnection,
    command_id: &str,
    requested_ms: i64,
    first_seq: usize,
    invocations: &[(&NewInvocation, bool)],
) -> Result<(), sqlx::Error> {
    if invocations.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..invocations.len())
        .map(|i| {
            let p = i * 7;
            format!(
                "($1, ${}, ${}, ${}, ${}, ${}, 0, NULL, ${}, '', '{{}}', '', ${})",
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 8
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO invocations (command_id, instance_id, seq, instance_name, detail, \
         released, delivered, start_ms, end_ms, trace_output, plugins_json, last_reply_at, \
         updated_ms) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(command_id);
    for (offset, &(invocation, released)) in invocations.iter().enumerate() {
        let end_ms = invocation.detail.is_terminal().then_some(requested_ms);
        query = query
            .bind(&invocation.instance_id)
            .bind(i64::try_from(first_seq + offset).unwrap_or(i64::MAX))
            .bind(&invocation.instance_name)
            .bind(invocation.detail.as_str())
            .bind(i64::from(released))
            .bind(end_ms)
            .bind(requested_ms);
    }
    query.execute(conn).await?;
    Ok(())
}

/// Inserts invocations none of which is released yet, [`INSERT_BATCH`] rows per
/// statement, numbered from `first_seq`.
async fn insert_unreleased(
    conn: &mut AnyConnection,
    command_id: &str,
    requested_ms: i64,
    first_seq: usize,
    invocations: &[NewInvocation],
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&NewInvocation, bool)> = invocations.iter().map(|i| (i, false)).collect();
    for (part, rows) in rows.chunks(INSERT_BATCH).enumerate() {
        let seq = first_seq + part * INSERT_BATCH;
        insert_invocations(conn, command_id, requested_ms, seq, rows).await?;
    }
    Ok(())
}

/// Invocations not yet stored as rows, as the command row keeps them:
/// `[[instance id, instance name, detail], ...]`.
fn unstored_json(invocations: &[NewInvocation]) -> String {
    let rows: Vec<[&str; 3]> = invocations
        .iter()
        .map(|i| [&*i.instance_id, &*i.instance_name, i.detail.as_str()])
        .collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into())
}

fn parse_unstored(json: &str) -> Result<Vec<NewInvocation>, StoreError> {
    let corrupt = |what: String| StoreError::Query(sqlx::Error::Decode(what.into()));
    let rows: Vec<[String; 3]> =
        serde_json::from_str(json).map_err(|e| corrupt(format!("unstored invocations: {e}")))?;
    rows.into_iter()
        .map(|[instance_id, instance_name, detail]| {
            let detail = Detail::parse(&detail)
                .ok_or_else(|| corrupt(format!("unstored invocation detail {detail:?}")))?;
            Ok(NewInvocation {
                instance_id,
                instance_name,
                detail,
            })
        })
        .collect()
}

/// A node's reply, owned so that it can wait in the write queue.
struct Reply {
    instance_id: String,
    message_id: String,
    reply_id: String,
    payload: ReplyPayload,
    topic: String,
    now_ms: i64,
}

/// What a reply finds: its message and, for a send message, the invocation.
type ReplyTarget = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

impl Reply {
    /// Applies the reply: records its step results and, with a final status, ends
    /// the invocation. A reply id seen before changes nothing.
    async fn apply(self, batch: &mut Batch) -> Result<ReplyOutcome, StoreError> {
        let target: Option<ReplyTarget> = sqlx::query_as(
            "SELECT m.command_id, m.topic, i.detail, i.plugins_json, i.last_reply_at, \
             i.released FROM messages m LEFT JOIN invocations i \
             ON i.command_id = m.command_id AND i.instance_id = m.instance_id \
             WHERE m.message_id = $1 AND m.instance_id = $2",
        )
        .bind(&self.message_id)
        .bind(&self.instance_id)
        .fetch_optional(batch.conn())
        .await?;
        let Some((command_id, topic, detail, plugins, last_reply_at, released)) = target else {
            return Ok(ReplyOutcome {
                unknown_message: true,
                ..ReplyOutcome::default()
            });
        };
        if !self.is_fresh(batch).await? {
            return Ok(ReplyOutcome {
                duplicate: true,
                ..ReplyOutcome::default()
            });
        }
        if messages::is_cancel_topic(&topic) {
            messages::mark_done(batch.conn(), &self.message_id).await?;
            return Ok(ReplyOutcome::default());
        }
        let (Some(detail), Some(plugins), Some(last_reply_at), Some(released)) =
            (detail, plugins, last_reply_at, released)
        else {
            return Ok(ReplyOutcome::default());
        };

        let current = Detail::parse(&detail).unwrap_or(Detail::InProgress);
        if current.is_terminal() {
            // A late or resent reply after the final one: the final one stands.
            return Ok(ReplyOutcome::default());
        }
        let invocation = Invocation {
            command_id: &command_id,
            current,
            plugins: &plugins,
            last_reply_at: &last_reply_at,
            released: released == 1,
        };
        let finished = self.record(batch, &invocation).await?;
        Ok(ReplyOutcome {
            finished,
            ..ReplyOutcome::default()
        })
    }

    /// Remembers the reply id; `false` when it was seen before.
    async fn is_fresh(&self, batch: &mut Batch) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO replies (reply_id, message_id, received_ms) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&self.reply_id)
        .bind(&self.message_id)
        .bind(self.now_ms)
        .execute(batch.conn())
        .await?;
        Ok(inserted.rows_affected() > 0)
    }

    /// Writes the reply into the open invocation, ending it when the reply is final;
    /// returns the detail it ended with.
    async fn record(
        &self,
        batch: &mut Batch,
        invocation: &Invocation<'_>,
    ) -> Result<Option<Detail>, StoreError> {
        let reply = &self.payload;
        let mut plugins: BTreeMap<String, PluginResult> =
            serde_json::from_str(invocation.plugins).unwrap_or_default();
        for (step, status) in reply.runtime_status.iter().flatten() {
            let newer = plugins
                .get(step)
                .is_none_or(|known| !is_final(&known.status));
            if newer {
                plugins.insert(step.clone(), PluginResult::from(status));
            }
        }
        let plugins_json = serde_json::to_string(&plugins).unwrap_or_else(|_| "{}".into());
        let reply_at = reply.additional_info.date_time.as_str();
        let last_reply_at = reply_at.max(invocation.last_reply_at);
        let finished = engine::detail_from_document_status(reply.document_status.as_str());

        let Some(finished) = finished else {
            sqlx::query(
                "UPDATE invocations SET plugins_json = $1, delivered = 1, \
                 start_ms = COALESCE(start_ms, $2), last_reply_at = $3, updated_ms = $2, \
                 detail = CASE WHEN detail IN ('Pending', 'Delayed') THEN 'InProgress' \
                 ELSE detail END WHERE command_id = $4 AND instance_id = $5",
            )
            .bind(plugins_json)
            .bind(self.now_ms)
            .bind(last_reply_at)
            .bind(invocation.command_id)
            .bind(&self.instance_id)
            .execute(batch.conn())
            .await?;
            return Ok(None);
        };

        sqlx::query(
            "UPDATE invocations SET plugins_json = $1, delivered = 1, \
             start_ms = COALESCE(start_ms, $2), last_reply_at = $3, updated_ms = $2, \
             detail = $4, end_ms = $2, \
             trace_output = CASE WHEN $5 = '' THEN trace_output ELSE $5 END \
             WHERE command_id = $6 AND instance_id = $7",
        )
        .bind(plugins_json)
        .bind(self.now_ms)
        .bind(last_reply_at)
        .bind(finished.as_str())
        .bind(&reply.document_trace_output)
        .bind(invocation.command_id)
        .bind(&self.instance_id)
        .execute(batch.conn())
        .await?;
        messages::mark_done(batch.conn(), &self.message_id).await?;
        let ending = Ending {
            command_id: invocation.command_id,
            instance_id: &self.instance_id,
            topic: &self.topic,
            now_ms: self.now_ms,
        };
        batch
            .count_finished(ending, invocation.current, invocation.released, finished)
            .await?;
        Ok(Some(finished))
    }
}

/// An open invocation as a reply finds it.
struct Invocation<'a> {
    command_id: &'a str,
    current: Detail,
    plugins: &'a str,
    last_reply_at: &'a str,
    released: bool,
}

/// Whether a step status is its last word. A step that asked for a reboot runs again
/// after the boot, so its result is not final.
fn is_final(status: &str) -> bool {
    !matches!(
        status,
        "InProgress" | "NotStarted" | "SuccessAndReboot" | "PassedAndReboot"
    )
}

/// Marks a handed-out invocation as waiting for its cancel to be confirmed.
async fn mark_cancelling(
    batch: &mut Batch,
    command_id: &str,
    instance_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE invocations SET detail = 'Cancelling' WHERE command_id = $1 AND instance_id = $2",
    )
    .bind(command_id)
    .bind(instance_id)
    .execute(batch.conn())
    .await?;
    batch.counters(command_id).await?.cancelling += 1;
    Ok(())
}

/// The counter columns of `commands`, as [`counters_from_row`] reads them.
pub(super) const COUNTER_COLUMNS: &str = "target_count, completed_count, error_count, \
    delivery_timed_out_count, success_count, neutral_count, cancelled_count, in_flight, \
    cancelling, started";

/// Writes a command's counters and its derived status and details.
pub(super) async fn save_counters(
    conn: &mut AnyConnection,
    command_id: &str,
    counters: &Counters,
    (status, details): (&str, &str),
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE commands SET completed_count = $1, error_count = $2, \
         delivery_timed_out_count = $3, success_count = $4, neutral_count = $5, \
         cancelled_count = $6, in_flight = $7, cancelling = $8, started = $9, status = $10, \
         status_details = $11, target_count = $12 WHERE command_id = $13",
    )
    .bind(count(counters.completed_count))
    .bind(count(counters.error_count))
    .bind(count(counters.delivery_timed_out_count))
    .bind(count(counters.success_count))
    .bind(count(counters.neutral_count))
    .bind(count(counters.cancelled_count))
    .bind(count(counters.in_flight))
    .bind(count(counters.cancelling))
    .bind(count(counters.started))
    .bind(status)
    .bind(details)
    .bind(count(counters.target_count))
    .bind(command_id)
    .execute(conn)
    .await?;
    Ok(())
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn counter(row: &AnyRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    Ok(u64::try_from(value).unwrap_or_default())
}

pub(super) fn counters_from_row(row: &AnyRow) -> Result<Counters, StoreError> {
    Ok(Counters {
        target_count: counter(row, "target_count")?,
        completed_count: counter(row, "completed_count")?,
        error_count: counter(row, "error_count")?,
        delivery_timed_out_count: counter(row, "delivery_timed_out_count")?,
        success_count: counter(row, "success_count")?,
        neutral_count: counter(row, "neutral_count")?,
        cancelled_count: counter(row, "cancelled_count")?,
        in_flight: counter(row, "in_flight")?,
        cancelling: counter(row, "cancelling")?,
        started: counter(row, "started")?,
    })
}

fn command_from_row(row: &AnyRow) -> Result<CommandRecord, StoreError> {
    let steps: String = row.try_get("steps_json")?;
    Ok(CommandRecord {
        command_id: row.try_get("command_id")?,
        requested_ms: row.try_get("requested_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        document_name: row.try_get("document_name")?,
        document_version: row.try_get("document_version")?,
        comment: row.try_get("comment")?,
        max_concurrency: row.try_get("max_concurrency")?,
        max_errors: row.try_get("max_errors")?,
        request_json: row.try_get("request_json")?,
        steps: serde_json::from_str(&steps).unwrap_or_default(),
        status: row.try_get("status")?,
        status_details: row.try_get("status_details")?,
        counters: counters_from_row(row)?,
    })
}

fn invocation_from_row(row: &AnyRow) -> Result<InvocationRecord, StoreError> {
    let detail: String = row.try_get("detail")?;
    let plugins: String = row.try_get("plugins_json")?;
    Ok(InvocationRecord {
        command_id: row.try_get("command_id")?,
        instance_id: row.try_get("instance_id")?,
        instance_name: row.try_get("instance_name")?,
        detail: Detail::parse(&detail).unwrap_or(Detail::InProgress),
        start_ms: row.try_get("start_ms")?,
        end_ms: row.try_get("end_ms")?,
        trace_output: row.try_get("trace_output")?,
        plugins: serde_json::from_str(&plugins).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn command(ids: &[&str]) -> NewCommand {
        NewCommand {
            command_id: "11111111-2222-3333-4444-555555555555".into(),
            requested_ms: 1_000,
            delivery_deadline_ms: 31_000,
            expires_ms: 3_631_000,
            requester: "arn:aws:iam::123456789012:user/alice".into(),
            document_name: "AWS-RunShellScript".into(),
            document_version: "$DEFAULT".into(),
            comment: String::new(),
            max_concurrency: "50".into(),
            max_errors: "0".into(),
            request_json: "{}".into(),
            payload: "{}".into(),
            steps: vec!["aws:runShellScript".into()],
            no_targets: false,
            unresolved: None,
            invocations: pending(ids),
        }
    }

    #[tokio::test]
    async fn undelivered_invocations_time_out_at_the_delivery_deadline() {
        let (store, _dir) = testing::store().await;
        let new = command(&["mi-00000000000000001", "mi-00000000000000002"]);
        store.create_command(&new, "us.east.1.1").await.unwrap();
        store
            .claim_messages("mi-00000000000000001", 2_000, 10_000, 10, false)
            .await
            .unwrap();
        store
            .acknowledge_message("mi-00000000000000001", &message(&new, 0))
            .await
            .unwrap();

        let early = store.sweep_timeouts("us.east.1.1", 30_999).await.unwrap();
        assert!(early.is_empty());
        store.sweep_timeouts("us.east.1.1", 31_000).await.unwrap();

        let invocations = store
            .invocations(Some(&new.command_id), None)
            .await
            .unwrap();
        let details: Vec<Detail> = invocations.iter().map(|i| i.detail).collect();
        assert_eq!(details, [Detail::InProgress, Detail::DeliveryTimedOut]);
        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(record.counters.delivery_timed_out_count, 1);
        assert_eq!(record.status, "InProgress");
    }

    #[tokio::test]
    async fn running_invocations_time_out_when_the_command_expires() {
        let (store, _dir) = testing::store().await;
        let new = command(&["mi-00000000000000001"]);
        store.create_command(&new, "us.east.1.1").await.unwrap();
        store
            .claim_messages("mi-00000000000000001", 2_000, 10_000, 10, false)
            .await
            .unwrap();
        store
            .acknowledge_message("mi-00000000000000001", &message(&new, 0))
            .await
            .unwrap();

        store
            .sweep_timeouts("us.east.1.1", 3_631_000)
            .await
            .unwrap();

        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(
            (record.status.as_str(), record.status_details.as_str()),
            ("TimedOut", "DeliveryTimedOut")
        );
        assert!(
            store
                .claim_messages("mi-00000000000000001", 9_999_999, 1, 10, false)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// A command on `count` nodes, the second of them denied.
    fn large_command(count: usize) -> NewCommand {
        let ids: Vec<String> = (1..=count).map(|n| format!("mi-{n:017}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut new = command(&ids);
        new.max_concurrency = "100%".into();
        new.invocations[1].detail = Detail::AccessDenied;
        new
    }

    /// Stores a command's remaining invocations; the nodes released on the way.
    async fn remaining(store: &Store, command_id: &str, now_ms: i64) -> Vec<String> {
        let mut released = Vec::new();
        store
            .store_remaining_invocations(command_id, "us.east.1.1", now_ms, |nodes| {
                released.extend(nodes);
            })
            .await
            .unwrap();
        released
    }

    fn details(invocations: &[InvocationRecord]) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for invocation in invocations {
            *counts.entry(invocation.detail.as_str()).or_default() += 1;
        }
        counts
    }

    #[tokio::test]
    async fn a_large_command_wakes_its_first_nodes_before_storing_the_rest() {
        let (store, _dir) = testing::store().await;
        let new = large_command(FIRST_ROWS + 150);

        let first = store.create_command(&new, "us.east.1.1").await.unwrap();

        assert_eq!(first.len(), FIRST_ROWS - 1);
        let stored = store.invocations(Some(&new.command_id), None).await;
        assert_eq!(stored.unwrap().len(), FIRST_ROWS);
        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(record.counters.target_count, FIRST_ROWS as u64 + 150);

        let rest = remaining(&store, &new.command_id, 2_000).await;
        assert_eq!(rest.len(), 150);
        assert_eq!(rest[0], new.invocations[FIRST_ROWS].instance_id);
        let again = remaining(&store, &new.command_id, 2_000).await;
        assert!(again.is_empty());

        let stored = store
            .invocations(Some(&new.command_id), None)
            .await
            .unwrap();
        let order: Vec<&str> = stored.iter().map(|i| i.instance_id.as_str()).collect();
        let planned: Vec<&str> = new.invocations.iter().map(|i| &*i.instance_id).collect();
        assert_eq!(order, planned);
        let expected = BTreeMap::from([("AccessDenied", 1), ("Pending", FIRST_ROWS + 149)]);
        assert_eq!(details(&stored), expected);
        let last = new.invocations.last().unwrap();
        let messages = store
            .claim_messages(&last.instance_id, 3_000, 10_000, 10, false)
            .await
            .unwrap();
        assert_eq!(messages.len(), 1);
    }

    #[tokio::test]
    async fn the_sweep_stores_what_an_interrupted_send_left_unstored() {
        let (store, _dir) = testing::store().await;
        let new = large_command(FIRST_ROWS + 20);
        store.create_command(&new, "us.east.1.1").await.unwrap();

        let early = store.sweep_timeouts("us.east.1.1", 1_500).await.unwrap();
        assert!(early.is_empty());
        let woken = store
            .sweep_timeouts("us.east.1.1", 1_000 + UNSTORED_GRACE_MS)
            .await
            .unwrap();

        assert_eq!(woken.len(), 20);
        let stored = store.invocations(Some(&new.command_id), None).await;
        assert_eq!(stored.unwrap().len(), FIRST_ROWS + 20);
    }

    #[tokio::test]
    async fn invocations_stored_after_a_cancel_end_cancelled() {
        let (store, _dir) = testing::store().await;
        let new = large_command(FIRST_ROWS + 5);
        store.create_command(&new, "us.east.1.1").await.unwrap();
        store
            .cancel_command(&new.command_id, &[], "us.east.1.1", 1_500)
            .await
            .unwrap();

        let woken = remaining(&store, &new.command_id, 1_600).await;

        assert!(woken.is_empty());
        let stored = store
            .invocations(Some(&new.command_id), None)
            .await
            .unwrap();
        let expected = BTreeMap::from([("AccessDenied", 1), ("Cancelled", FIRST_ROWS + 4)]);
        assert_eq!(details(&stored), expected);
        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(record.status, "Cancelled");
        assert_eq!(record.counters.completed_count, FIRST_ROWS as u64 + 5);
    }

    /// A command whose first two nodes were resolved, with more to look at after them.
    fn resolving_command(max_concurrency: &str) -> NewCommand {
        NewCommand {
            max_concurrency: max_concurrency.into(),
            unresolved: Some(Unresolved {
                after: "mi-00000000000000002".into(),
                caller_json: "{}".into(),
            }),
            ..command(&["mi-00000000000000001", "mi-00000000000000002"])
        }
    }

    fn pending(ids: &[&str]) -> Vec<NewInvocation> {
        ids.iter()
            .map(|id| NewInvocation {
                instance_id: (*id).into(),
                instance_name: String::new(),
                detail: Detail::Pending,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_command_resolving_its_targets_finishes_only_with_its_last_page() {
        let (store, _dir) = testing::store().await;
        let new = resolving_command("100%");
        let first = store.create_command(&new, "us.east.1.1").await.unwrap();
        assert_eq!(first.len(), 2);
        answer(store.clone(), new.clone(), 0, "r-1".into()).await;
        answer(store.clone(), new.clone(), 1, "r-2".into()).await;
        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(record.status, "InProgress");

        let later = pending(&["mi-00000000000000003", "mi-00000000000000004"]);
        let (second, last) = ("mi-00000000000000002", "mi-00000000000000004");
        let id = &new.command_id;
        let page = store.add_resolved_invocations(id, second, Some(last), &later, "t", 4_000);
        let released = page.await.unwrap();
        assert_eq!(
            released.unwrap(),
            [later[0].instance_id.clone(), last.into()]
        );
        // The same page again finds the resolution moved on, and stores nothing.
        let again = store.add_resolved_invocations(id, second, Some(last), &later, "t", 4_000);
        assert_eq!(again.await.unwrap(), None);
        let end = store.add_resolved_invocations(id, last, None, &[], "t", 4_000);
        assert_eq!(end.await.unwrap(), Some(Vec::new()));

        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(record.counters.target_count, 4);
        assert_eq!(record.status, "InProgress");
        assert_eq!(store.resolve_after(&new.command_id).await.unwrap(), None);
        let stored = store
            .invocations(Some(&new.command_id), None)
            .await
            .unwrap();
        assert_eq!(stored.len(), 4);
    }

    #[tokio::test]
    async fn a_percentage_of_concurrency_grows_with_the_nodes_resolved() {
        let (store, _dir) = testing::store().await;
        let new = resolving_command("50%");
        let first = store.create_command(&new, "us.east.1.1").await.unwrap();
        assert_eq!(first, ["mi-00000000000000001"]);

        let later = pending(&["mi-00000000000000003", "mi-00000000000000004"]);
        let released = store
            .add_resolved_invocations(
                &new.command_id,
                "mi-00000000000000002",
                None,
                &later,
                "t",
                4_000,
            )
            .await
            .unwrap();

        assert_eq!(released.unwrap(), ["mi-00000000000000002"]);
        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(record.counters.in_flight, 2);
    }

    #[tokio::test]
    async fn nodes_resolved_after_a_cancel_end_cancelled() {
        let (store, _dir) = testing::store().await;
        let new = resolving_command("50");
        store.create_command(&new, "us.east.1.1").await.unwrap();
        store
            .cancel_command(&new.command_id, &[], "us.east.1.1", 1_500)
            .await
            .unwrap();

        let later = pending(&["mi-00000000000000003"]);
        let released = store
            .add_resolved_invocations(
                &new.command_id,
                "mi-00000000000000002",
                None,
                &later,
                "t",
                1_600,
            )
            .await
            .unwrap();

        assert_eq!(released.unwrap(), [] as [String; 0]);
        let stored = store
            .invocations(Some(&new.command_id), None)
            .await
            .unwrap();
        assert_eq!(details(&stored), BTreeMap::from([("Cancelled", 3)]));
        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(record.status, "Cancelled");
    }

    #[tokio::test]
    async fn concurrency_holds_back_invocations_until_others_finish() {
        let (store, _dir) = testing::store().await;
        let mut new = command(&["mi-00000000000000001", "mi-00000000000000002"]);
        new.max_concurrency = "1".into();

        let released = store.create_command(&new, "us.east.1.1").await.unwrap();
        assert_eq!(released, ["mi-00000000000000001"]);
        let none = store
            .claim_messages("mi-00000000000000002", 2_000, 10_000, 10, false)
            .await
            .unwrap();
        assert!(none.is_empty());

        let failed = store
            .fail_message(
                "mi-00000000000000001",
                &message(&new, 0),
                "us.east.1.1",
                3_000,
            )
            .await
            .unwrap();

        // MaxErrors 0: the first failure stops the command, the second node never runs.
        assert_eq!(failed, Some(Vec::new()));
        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(
            (record.status.as_str(), record.counters.completed_count),
            ("Failed", 2)
        );
    }

    #[tokio::test]
    async fn an_unacknowledged_message_delays_its_invocation_until_taken_up() {
        let (store, _dir) = testing::store().await;
        let new = command(&["mi-00000000000000001"]);
        store.create_command(&new, "us.east.1.1").await.unwrap();
        store
            .claim_messages("mi-00000000000000001", 2_000, 10_000, 10, false)
            .await
            .unwrap();

        store.sweep_timeouts("us.east.1.1", 12_000).await.unwrap();
        let delayed = store
            .invocations(Some(&new.command_id), None)
            .await
            .unwrap();
        store
            .claim_messages("mi-00000000000000001", 12_500, 10_000, 10, false)
            .await
            .unwrap();
        let again = store
            .invocations(Some(&new.command_id), None)
            .await
            .unwrap();

        assert_eq!(delayed[0].detail, Detail::Delayed);
        assert_eq!(again[0].detail, Detail::InProgress);
        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(record.counters.started, 1);
    }

    /// A final reply with `status`, as the agent sends it.
    fn final_reply(status: &str) -> ReplyPayload {
        serde_json::from_value(serde_json::json!({
            "additionalInfo": {"agent": {}, "dateTime": "2026-12-03T10:00:00.000Z"},
            "documentStatus": status,
            "runtimeStatus": {"aws:runShellScript": {
                "status": status, "code": 0, "name": "aws:runShellScript", "output": "hi\n",
                "startDateTime": "2026-12-03T10:00:00.000Z",
                "endDateTime": "2026-12-03T10:00:00.000Z"
            }}
        }))
        .expect("reply")
    }

    /// Claims and answers the message of `node` with a final reply.
    async fn answer(store: Store, new: NewCommand, node: usize, reply_id: String) -> ReplyOutcome {
        let instance = new.invocations[node].instance_id.clone();
        let message = message(&new, node);
        store
            .claim_messages(&instance, 2_000, 10_000, 10, false)
            .await
            .unwrap();
        let reply = final_reply("Success");
        store
            .apply_reply(&instance, &message, &reply_id, reply, "us.east.1.1", 3_000)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replies_arriving_together_each_count_once() {
        let (store, _dir) = testing::store().await;
        let ids: Vec<String> = (1..=40).map(|n| format!("mi-{n:017}")).collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let new = command(&id_refs);
        store.create_command(&new, "us.east.1.1").await.unwrap();

        let answers: Vec<_> = (0..ids.len())
            .map(|node| {
                let reply_id = format!("reply-{node}");
                tokio::spawn(answer(store.clone(), new.clone(), node, reply_id))
            })
            .collect();
        for answer in answers {
            let outcome = answer.await.unwrap();
            assert_eq!(outcome.finished, Some(Detail::Success));
        }

        let record = store.command(&new.command_id).await.unwrap().unwrap();
        assert_eq!(record.status, "Success");
        let counters = record.counters;
        assert_eq!((counters.completed_count, counters.success_count), (40, 40));
        assert_eq!((counters.started, counters.in_flight), (40, 0));
    }

    #[tokio::test]
    async fn a_final_reply_hands_its_caller_the_nodes_it_made_room_for() {
        let (store, _dir) = testing::store().await;
        let mut new = command(&["mi-00000000000000001", "mi-00000000000000002"]);
        new.max_concurrency = "1".into();
        store.create_command(&new, "us.east.1.1").await.unwrap();

        let first = answer(store.clone(), new.clone(), 0, "r-1".into()).await;
        let resent = answer(store.clone(), new.clone(), 0, "r-1".into()).await;

        assert_eq!(first.notify, ["mi-00000000000000002"]);
        assert!(resent.duplicate && resent.notify.is_empty());
        let claimed = store
            .claim_messages("mi-00000000000000002", 4_000, 10_000, 10, false)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
    }

    fn message(command: &NewCommand, index: usize) -> String {
        let instance = &command.invocations[index].instance_id;
        tagrun_wire::messages::message_id(&command.command_id, instance)
    }
}
