//! The message queue that nodes poll with `GetMessages`.
//!
//! A message is handed out, then hidden for its visibility timeout; if the node does
//! not acknowledge it (or send a final reply) within that time it is handed out again.
//! Send messages carry no payload of their own: every node of a command receives the
//! command's payload, stored once.

use super::{Store, StoreError, WriteTx};

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
    pub async fn claim_messages(
        &self,
        instance_id: &str,
        now_ms: i64,
        visibility_ms: i64,
        limit: i64,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let due: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM messages WHERE instance_id = $1 AND done = 0 AND acknowledged = 0 \
             AND visible_ms <= $2 LIMIT 1",
        )
        .bind(instance_id)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        if due.is_none() {
            // The common case for an idle node: no write transaction at all.
            return Ok(Vec::new());
        }

        let mut tx = self.begin_write().await?;
        let rows: Vec<(String, String, Option<String>, i64, String, String)> = sqlx::query_as(
            "SELECT m.message_id, m.topic, m.payload, m.created_ms, m.command_id, c.payload \
             FROM messages m JOIN commands c ON c.command_id = m.command_id \
             WHERE m.instance_id = $1 AND m.done = 0 AND m.acknowledged = 0 \
             AND m.visible_ms <= $2 ORDER BY m.created_ms, m.message_id LIMIT $3",
        )
        .bind(instance_id)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *tx.tx)
        .await?;

        let mut claimed = Vec::with_capacity(rows.len());
        for (message_id, topic, own_payload, created_ms, command_id, command_payload) in rows {
            sqlx::query(
                "UPDATE messages SET visible_ms = $1, deliveries = deliveries + 1 \
                 WHERE message_id = $2",
            )
            .bind(now_ms + visibility_ms)
            .bind(&message_id)
            .execute(&mut *tx.tx)
            .await?;
            if own_payload.is_none() {
                start_invocation(&mut tx, &command_id, instance_id, now_ms).await?;
            }
            claimed.push(QueuedMessage {
                message_id,
                topic,
                payload: own_payload.unwrap_or(command_payload),
                created_ms,
            });
        }
        tx.commit().await?;
        Ok(claimed)
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
        let mut tx = self.begin_write().await?;
        let Some(message) = owned(&mut tx, instance_id, message_id).await? else {
            return Ok(false);
        };
        sqlx::query("UPDATE messages SET acknowledged = 1 WHERE message_id = $1")
            .bind(message_id)
            .execute(&mut *tx.tx)
            .await?;
        if !message.is_cancel {
            sqlx::query(
                "UPDATE invocations SET delivered = 1, \
                 detail = CASE WHEN detail = 'Delayed' THEN 'InProgress' ELSE detail END \
                 WHERE command_id = $1 AND instance_id = $2",
            )
            .bind(&message.command_id)
            .bind(instance_id)
            .execute(&mut *tx.tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
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
    tx: &mut WriteTx,
    instance_id: &str,
    message_id: &str,
) -> Result<Option<OwnedMessage>, StoreError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT command_id, topic FROM messages WHERE message_id = $1 AND instance_id = $2",
    )
    .bind(message_id)
    .bind(instance_id)
    .fetch_optional(&mut *tx.tx)
    .await?;
    Ok(row.map(|(command_id, topic)| OwnedMessage {
        command_id,
        is_cancel: topic.starts_with(CANCEL_PREFIX),
    }))
}

/// Whether a message was ever handed to its node.
pub(crate) async fn was_delivered(tx: &mut WriteTx, message_id: &str) -> Result<bool, StoreError> {
    let deliveries: Option<(i64,)> =
        sqlx::query_as("SELECT deliveries FROM messages WHERE message_id = $1")
            .bind(message_id)
            .fetch_optional(&mut *tx.tx)
            .await?;
    Ok(deliveries.is_some_and(|(n,)| n > 0))
}

/// Takes a message out of the queue for good.
pub(crate) async fn mark_done(tx: &mut WriteTx, message_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE messages SET done = 1 WHERE message_id = $1")
        .bind(message_id)
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

/// Queues the send messages of a command's unreleased pending invocations up to
/// sequence number `last_seq`. `topic` is the suffix after the topic prefix
/// (`us.east.1.1`); agents match on the prefix only.
pub(crate) async fn enqueue_sends(
    tx: &mut WriteTx,
    command_id: &str,
    last_seq: i64,
    topic: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let topic = format!("{}.{topic}", tagrun_wire::messages::SEND_COMMAND_TOPIC);
    sqlx::query(
        "INSERT INTO messages (message_id, instance_id, command_id, topic, payload, created_ms, \
         visible_ms, acknowledged, done, deliveries) \
         SELECT 'aws.ssm.' || command_id || '.' || instance_id, instance_id, command_id, $1, \
         NULL, $2, $2, 0, 0, 0 FROM invocations WHERE command_id = $3 AND released = 0 \
         AND detail = 'Pending' AND seq <= $4 ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(topic)
    .bind(now_ms)
    .bind(command_id)
    .bind(last_seq)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// Queues a cancel message for the invocation whose send message is `target`.
/// Cancel messages get their own UUID, since AWS's agent stores each message under
/// the command id it reads from the message id.
pub(crate) async fn enqueue_cancel(
    tx: &mut WriteTx,
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
        tx,
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
    tx: &mut WriteTx,
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
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// Marks an invocation handed out for the first time `InProgress`, and its command
/// with it.
async fn start_invocation(
    tx: &mut WriteTx,
    command_id: &str,
    instance_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let started = sqlx::query(
        "UPDATE invocations SET detail = 'InProgress', updated_ms = $1 \
         WHERE command_id = $2 AND instance_id = $3 AND detail = 'Pending'",
    )
    .bind(now_ms)
    .bind(command_id)
    .bind(instance_id)
    .execute(&mut *tx.tx)
    .await?;
    if started.rows_affected() > 0 {
        sqlx::query(
            "UPDATE commands SET started = started + 1, \
             status = CASE WHEN status = 'Pending' THEN 'InProgress' ELSE status END, \
             status_details = CASE WHEN status_details = 'Pending' THEN 'InProgress' \
             ELSE status_details END WHERE command_id = $1",
        )
        .bind(command_id)
        .execute(&mut *tx.tx)
        .await?;
    }
    // A redelivery takes a Delayed invocation up again.
    sqlx::query(
        "UPDATE invocations SET detail = 'InProgress', updated_ms = $1 \
         WHERE command_id = $2 AND instance_id = $3 AND detail = 'Delayed'",
    )
    .bind(now_ms)
    .bind(command_id)
    .bind(instance_id)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}
