//! Reply payloads in AWS's shape, and the outbox that delivers them in order.
//!
//! Every reply is written to the spool before it is sent and removed only once the server
//! accepted it, so replies survive restarts and server outages of any length.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use tagrun_wire::messages::SendReplyRequest;
use tagrun_wire::reply::{
    AdditionalInfo, AgentInfo, PluginRuntimeStatus, ReplyPayload, ResultStatus, document_status,
    status_counts,
};
use tokio::sync::{Mutex, Notify, watch};
use tokio::time::sleep;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::client::Client;
use crate::identity::new_uuid;
use crate::spool::{Batch, Spool, SpoolError, error_chain};

/// The agent name in replies and health reports.
pub const AGENT_NAME: &str = "tagrun-agent";

/// The agent version in replies and health reports.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `additionalInfo.agent` of every reply.
pub fn agent_info() -> AgentInfo {
    AgentInfo {
        lang: "en-US".to_owned(),
        name: AGENT_NAME.to_owned(),
        os: std::env::consts::OS.to_owned(),
        osver: "1".to_owned(),
        ver: AGENT_VERSION.to_owned(),
    }
}

fn additional_info(at: SystemTime, counts: Option<BTreeMap<String, u32>>) -> AdditionalInfo {
    AdditionalInfo {
        agent: agent_info(),
        date_time: tagrun_wire::time::iso8601_millis(at),
        run_id: String::new(),
        runtime_status_counts: counts,
        able_to_open_mgs_connection: None,
    }
}

/// The reply sent when a command is received: `InProgress` without results.
pub fn receipt(at: SystemTime) -> ReplyPayload {
    ReplyPayload {
        additional_info: additional_info(at, None),
        document_status: ResultStatus::InProgress,
        document_trace_output: String::new(),
        runtime_status: None,
    }
}

/// The reply for a command whose payload or document cannot be used.
pub fn rejected(trace: &str, at: SystemTime) -> ReplyPayload {
    ReplyPayload {
        additional_info: additional_info(at, None),
        document_status: ResultStatus::Failed,
        document_trace_output: trace.to_owned(),
        runtime_status: None,
    }
}

/// The interim reply after a step: the document stays `InProgress`, `runtimeStatus` holds
/// only this step, and the counts cover the steps finished so far.
pub fn step_finished(
    key: &str,
    result: &PluginRuntimeStatus,
    finished: &[ResultStatus],
    at: SystemTime,
) -> ReplyPayload {
    ReplyPayload {
        additional_info: additional_info(at, Some(status_counts(finished))),
        document_status: ResultStatus::InProgress,
        document_trace_output: String::new(),
        runtime_status: Some(BTreeMap::from([(key.to_owned(), result.clone())])),
    }
}

/// The last reply of a command: the aggregated status, counts over every step, and the
/// step results only when the document has at most one step (the server merges the
/// interim replies otherwise).
pub fn command_finished(steps: &[(String, PluginRuntimeStatus)], at: SystemTime) -> ReplyPayload {
    let statuses: Vec<ResultStatus> = steps.iter().map(|(_, r)| r.status).collect();
    let runtime_status = if steps.len() <= 1 {
        steps.iter().map(|(k, r)| (k.clone(), r.clone())).collect()
    } else {
        BTreeMap::new()
    };
    ReplyPayload {
        additional_info: additional_info(at, Some(status_counts(&statuses))),
        document_status: document_status(&statuses),
        document_trace_output: String::new(),
        runtime_status: Some(runtime_status),
    }
}

/// Replies waiting for the server, stored in the spool; one sender delivers them in order.
#[derive(Debug)]
pub struct Outbox {
    spool: Arc<Spool>,
    queued: Notify,
    /// Held while sending, so two flushes never send the same reply at once.
    sending: Mutex<()>,
}

impl Outbox {
    /// An outbox over the spool's `replies/` directory.
    pub fn new(spool: Arc<Spool>) -> Self {
        Self {
            spool,
            queued: Notify::new(),
            sending: Mutex::new(()),
        }
    }

    /// Stores a reply for `message_id` and wakes the sender.
    pub async fn send(&self, message_id: &str, payload: &ReplyPayload) -> Result<(), SpoolError> {
        let mut batch = self.spool.batch();
        self.stage(&mut batch, message_id, payload)?;
        self.commit(batch).await
    }

    /// Adds a reply for `message_id` to `batch`, to be stored by [`Outbox::commit`].
    pub fn stage(
        &self,
        batch: &mut Batch,
        message_id: &str,
        payload: &ReplyPayload,
    ) -> Result<(), SpoolError> {
        let payload = serde_json::to_string(payload).map_err(|source| SpoolError::Corrupt {
            path: self.spool.root().join("replies"),
            source,
        })?;
        let request = SendReplyRequest {
            message_id: message_id.to_owned(),
            reply_id: new_uuid(),
            payload,
            delivery_options: None,
        };
        self.spool.stage_reply(batch, &request)
    }

    /// Stores every file of `batch` in one go and wakes the sender for its replies.
    pub async fn commit(&self, batch: Batch) -> Result<(), SpoolError> {
        let committed = self.spool.commit(batch).await;
        // Also after a failure: replies behind the failed ones may wait.
        self.queued.notify_one();
        committed
    }

    /// Sends stored replies until none is left or a send fails; returns whether the outbox
    /// is empty. A reply the server refuses for good is dropped with a warning, so one bad
    /// reply never blocks the ones after it.
    pub async fn flush(&self, client: &Client) -> Result<bool, SpoolError> {
        let _sending = self.sending.lock().await;
        while let Some((path, request)) = self.spool.next_reply().await? {
            match client.send_reply(&request).await {
                Ok(()) => {
                    debug!(reply_id = %request.reply_id, "reply delivered");
                    self.spool.remove_reply(&path).await?;
                }
                Err(error) if !error.is_retryable() => {
                    let error = error_chain(&error);
                    warn!(%error, message_id = %request.message_id, "reply refused, dropping it");
                    self.spool.remove_reply(&path).await?;
                }
                Err(error) => {
                    debug!(error = %error_chain(&error), "reply not delivered yet");
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Delivers replies until `shutdown` turns true, backing off while the server is away.
    pub async fn run(&self, client: &Client, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::for_network();
        loop {
            let notified = self.queued.notified();
            match self.flush(client).await {
                Ok(true) => {
                    if backoff.attempts() > 0 {
                        info!("replies delivered again");
                    }
                    backoff.reset();
                    tokio::select! {
                        () = notified => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
                Ok(false) | Err(_) => {
                    if backoff.attempts() == 0 {
                        warn!("replies cannot be delivered, keeping them on disk");
                    }
                    tokio::select! {
                        () = sleep(backoff.next_delay()) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(status: ResultStatus, code: i32) -> PluginRuntimeStatus {
        PluginRuntimeStatus {
            status,
            code,
            name: "aws:runShellScript".to_owned(),
            output: String::new(),
            start_date_time: String::new(),
            end_date_time: String::new(),
            output_s3_bucket_name: String::new(),
            output_s3_key_prefix: String::new(),
            step_name: String::new(),
            standard_output: String::new(),
            standard_error: String::new(),
        }
    }

    #[test]
    fn receipt_carries_no_results() {
        let payload = receipt(SystemTime::UNIX_EPOCH);

        assert_eq!(payload.document_status, ResultStatus::InProgress);
        assert_eq!(payload.runtime_status, None);
        assert_eq!(payload.additional_info.runtime_status_counts, None);
        assert_eq!(
            payload.additional_info.date_time,
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn interim_reply_stays_in_progress_even_for_a_failed_step() {
        let result = step(ResultStatus::Failed, 2);

        let payload = step_finished("first", &result, &[ResultStatus::Failed], SystemTime::now());

        assert_eq!(payload.document_status, ResultStatus::InProgress);
        assert_eq!(payload.runtime_status.expect("results").len(), 1);
    }

    #[test]
    fn final_reply_of_one_step_lists_it() {
        let steps = vec![(
            "aws:runShellScript".to_owned(),
            step(ResultStatus::Success, 0),
        )];

        let payload = command_finished(&steps, SystemTime::now());

        assert_eq!(payload.document_status, ResultStatus::Success);
        assert_eq!(payload.runtime_status.expect("results").len(), 1);
    }

    #[test]
    fn final_reply_of_several_steps_has_empty_results_and_aggregate_status() {
        let steps = vec![
            ("a".to_owned(), step(ResultStatus::Success, 0)),
            ("b".to_owned(), step(ResultStatus::TimedOut, 137)),
            ("c".to_owned(), step(ResultStatus::Failed, 1)),
        ];

        let payload = command_finished(&steps, SystemTime::now());

        assert_eq!(payload.document_status, ResultStatus::Failed);
        assert_eq!(payload.runtime_status, Some(BTreeMap::new()));
        let counts = payload
            .additional_info
            .runtime_status_counts
            .expect("counts");
        assert_eq!(counts.values().sum::<u32>(), 3);
    }
}
