//! The message queue that nodes poll with `GetMessages`.
//!
//! A message is handed out, then hidden for its visibility timeout; if the node does
//! not acknowledge it (or send a final reply) within that time it is handed out again.
//! Send messages carry no payload of their own: every node of a command receives the
//! command's payload, stored once.

use sqlx::AnyConnection;

use super::batch::Batch;
use super::{Store, StoreError};

/// A message claimed for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// `aws.ssm.<CommandId>.<InstanceId>` (a fresh UUID in place of the command id for
    /// cancel messages).
    pub message_id: String,
    /// `aws.ssm.sendCommand.…` or `aws.ssm.cancelCommand.…`.
    pub topic: String,
    /// JSON text.
    pub payload: String,
    /// When it was queued.
    pub created_ms: i64,
}

/// The facts about a message that replies need.
#[derive(Debug, Clone)]
pub(crate) struct OwnedMessage {
    pub(crate) command_id: String,
    pub(crate) is_cancel: bool,
}

/// Topic prefix of cancel messages.
const CANCEL_PREFIX: &str = "aws.ssm.cancelCommand";

impl Store {
    /// Claims up to `limit` messages for `instance_id` that are due, hiding each for
    /// `visibility_ms`. Invocations handed out for the first time become `InProgress`.
    ///
    /// A poll that was `woken` because a message was queued for its node goes straight
    /// to the write; any other first looks for a due message without writing, the
    /// common case of an idle node.
    pub async fn claim_messages(
        &self,
        instance_id: &str,
        now_ms: i64,
        visibility_ms: i64,
        limit: i64,
        woken: bool,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        if !woken && !self.has_due_message(instance_id, now_ms).await? {
            return Ok(Vec::new());
        }
        let instance_id = instance_id.to_owned();
        let (claimed, _) = self
            .in_batch(move |batch| {
                Box::pin(
                    async move { claim(batch, &instance_id, now_ms, visibility_ms, limit).await },
                )
            })
            .await?;
        Ok(claimed)
    }

    /// Whether a message of `instance_id` is due, read without writing.
    async fn has_due_message(&self, instance_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let due: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM messages WHERE instance_id = $1 AND done = 0 AND acknowledged = 0 \
             AND visible_ms <= $2 LIMIT 1",
        )
        .bind(instance_id)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(due.is_some())
    }

    /// When the next hidden message of `instance_id` becomes visible again, if any.
    pub async fn next_visible_ms(&self, instance_id: &str) -> Result<Option<i64>, StoreError> {
        let next: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT MIN(visible_ms) FROM messages WHERE instance_id = $1 AND done = 0 \
             AND acknowledged = 0",
        )
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(next.and_then(|(ms,)| ms))
    }

    /// Acknowledges a message of `instance_id`; `false` when it has no such message.
    pub async fn acknowledge_message(
        &self,
        instance_id: &str,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        let (instance_id, message_id) = (instance_id.to_owned(), message_id.to_owned());
        let (known, _) = self
            .in_batch(move |batch| {
                Box::pin(async move { acknowledge(batch, &instance_id, &message_id).await })
            })
            .await?;
        Ok(known)
    }

    /// Removes a message from the queue (`DeleteMessage`); `false` when unknown.
    pub async fn delete_message(
        &self,
        instance_id: &str,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        let _write = self.lock_writes().await;
        let updated =
            sqlx::query("UPDATE messages SET done = 1 WHERE message_id = $1 AND instance_id = $2")
                .bind(message_id)
                .bind(instance_id)
                .execute(&self.pool)
                .await?;
        Ok(updated.rows_affected() > 0)
    }
}

/// The message `message_id` if it belongs to `instance_id`.
pub(crate) async fn owned(
    conn: &mut AnyConnection,
    instance_id: &str,
    message_id: &str,
) -> Result<Option<OwnedMessage>, StoreError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT command_id, topic FROM messages WHERE message_id = $1 AND instance_id = $2",
    )
    .bind(message_id)
    .bind(instance_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(command_id, topic)| OwnedMessage {
        is_cancel: is_cancel_topic(&topic),
        command_id,
    }))
}

/// Whether a message topic is a cancel message's.
pub(crate) fn is_cancel_topic(topic: &str) -> bool {
    topic.starts_with(CANCEL_PREFIX)
}

/// Whether a message was ever handed to its node.
pub(crate) async fn was_delivered(
    conn: &mut AnyConnection,
    message_id: &str,
) -> Result<bool, StoreError> {
    let deliveries: Option<(i64,)> =
        sqlx::query_as("SELECT deliveries FROM messages WHERE message_id = $1")
            .bind(message_id)
            .fetch_optional(conn)
            .await?;
    Ok(deliveries.is_some_and(|(n,)| n > 0))
}

/// Takes a message out of the queue for good.
pub(crate) async fn mark_done(
    conn: &mut AnyConnection,
    message_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE messages SET done = 1 WHERE message_id = $1")
        .bind(message_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Queues the send messages of a command's unreleased pending invocations up to
/// sequence number `last_seq`. `topic` is the suffix after the topic prefix
/// (`us.east.1.1`); agents match on the prefix only.
pub(crate) async fn enqueue_sends(
    conn: &mut AnyConnection,
    command_id: &str,
    last_seq: i64,
    topic: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let sql = format!(
        "{INSERT_SENDS} AND released = 0 AND detail = 'Pending' AND seq <= $4 \
         ON CONFLICT (message_id) DO NOTHING"
    );
    sqlx::query(&sql)
        .bind(send_topic(topic))
        .bind(now_ms)
        .bind(command_id)
        .bind(last_seq)
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts a send message for each invocation of command `$3` that the caller's
/// condition selects: topic `$1`, queued at `$2`.
const INSERT_SENDS: &str = "INSERT INTO messages (message_id, instance_id, command_id, topic, \
    payload, created_ms, visible_ms, acknowledged, done, deliveries) \
    SELECT 'aws.ssm.' || command_id || '.' || instance_id, instance_id, command_id, $1, NULL, \
    $2, $2, 0, 0, 0 FROM invocations WHERE command_id = $3";

/// The full topic of send messages, from its suffix.
fn send_topic(suffix: &str) -> String {
    format!("{}.{suffix}", tagrun_wire::messages::SEND_COMMAND_TOPIC)
}

/// Queues the send messages of a new command's released invocations.
pub(crate) async fn enqueue_created(
    conn: &mut AnyConnection,
    command_id: &str,
    topic: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(&format!("{INSERT_SENDS} AND released = 1"))
        .bind(send_topic(topic))
        .bind(now_ms)
        .bind(command_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Queues a cancel message for the invocation whose send message is `target`.
/// Cancel messages get their own UUID, since AWS's agent stores each message under
/// the command id it reads from the message id.
pub(crate) async fn enqueue_cancel(
    conn: &mut AnyConnection,
    instance_id: &str,
    command_id: &str,
    target: &str,
    topic: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let message_id = tagrun_wire::messages::message_id(&id, instance_id);
    let topic = format!("{CANCEL_PREFIX}.{topic}");
    let payload = serde_json::json!({ "CancelMessageId": target }).to_string();
    insert(
        conn,
        &message_id,
        instance_id,
        command_id,
        &topic,
        Some(&payload),
        now_ms,
    )
    .await
}

async fn insert(
    conn: &mut AnyConnection,
    message_id: &str,
    instance_id: &str,
    command_id: &str,
    topic: &str,
    payload: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO messages (message_id, instance_id, command_id, topic, payload, created_ms, \
         visible_ms, acknowledged, done, deliveries) VALUES ($1, $2, $3, $4, $5, $6, $6, 0, 0, 0) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(message_id)
    .bind(instance_id)
    .bind(command_id)
    .bind(topic)
    .bind(payload)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims the due messages of `instance_id` (see [`Store::claim_messages`]).
async fn claim(
    batch: &mut Batch,
    instance_id: &str,
    now_ms: i64,
    visibility_ms: i64,
    limit: i64,
) -> Result<Vec<QueuedMessage>, StoreError> {
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "SELECT m.message_id, m.topic, m.payload, m.created_ms, m.command_id, c.payload, \
         i.detail FROM messages m JOIN commands c ON c.command_id = m.command_id \
         LEFT JOIN invocations i ON i.command_id = m.command_id AND i.instance_id = m.instance_id \
         WHERE m.instance_id = $1 AND m.done = 0 AND m.acknowledged = 0 \
         AND m.visible_ms <= $2 ORDER BY m.created_ms, m.message_id LIMIT $3",
    )
    .bind(instance_id)
    .bind(now_ms)
    .bind(limit)
    .fetch_all(batch.conn())
    .await?;

    let mut claimed = Vec::with_capacity(rows.len());
    for (message_id, topic, own_payload, created_ms, command_id, command_payload, detail) in rows {
        sqlx::query(
            "UPDATE messages SET visible_ms = $1, deliveries = deliveries + 1 \
             WHERE message_id = $2",
        )
        .bind(now_ms + visibility_ms)
        .bind(&message_id)
        .execute(batch.conn())
        .await?;
        if own_payload.is_none() {
            let detail = detail.as_deref().unwrap_or_default();
            take_up(batch, &command_id, instance_id, detail, now_ms).await?;
        }
        claimed.push(QueuedMessage {
            message_id,
            topic,
            payload: own_payload.unwrap_or(command_payload),
            created_ms,
        });
    }
    Ok(claimed)
}

/// A due message, its command's payload and its invocation's detail.
type ClaimRow = (
    String,
    String,
    Option<String>,
    i64,
    String,
    String,
    Option<String>,
);

/// An invocation handed out for the first time, or again after it was `Delayed`,
/// becomes `InProgress`; the first time also counts it as started.
async fn take_up(
    batch: &mut Batch,
    command_id: &str,
    instance_id: &str,
    detail: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    if detail != "Pending" && detail != "Delayed" {
        return Ok(());
    }
    sqlx::query(
        "UPDATE invocations SET detail = 'InProgress', updated_ms = $1 \
         WHERE command_id = $2 AND instance_id = $3",
    )
    .bind(now_ms)
    .bind(command_id)
    .bind(instance_id)
    .execute(batch.conn())
    .await?;
    if detail == "Pending" {
        batch.counters(command_id).await?.started += 1;
    }
    Ok(())
}

/// Acknowledges a message of `instance_id`; `false` when it has no such message.
async fn acknowledge(
    batch: &mut Batch,
    instance_id: &str,
    message_id: &str,
) -> Result<bool, StoreError> {
    let message: Option<(String, String)> = sqlx::query_as(
        "UPDATE messages SET acknowledged = 1 WHERE message_id = $1 AND instance_id = $2 \
         RETURNING command_id, topic",
    )
    .bind(message_id)
    .bind(instance_id)
    .fetch_optional(batch.conn())
    .await?;
    let Some((command_id, topic)) = message else {
        return Ok(false);
    };
    if !is_cancel_topic(&topic) {
        sqlx::query(
            "UPDATE invocations SET delivered = 1, \
             detail = CASE WHEN detail = 'Delayed' THEN 'InProgress' ELSE detail END \
             WHERE command_id = $1 AND instance_id = $2",
        )
        .bind(&command_id)
        .bind(instance_id)
        .execute(batch.conn())
        .await?;
    }
    Ok(true)
}
