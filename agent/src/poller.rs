//! The long-poll loop and what happens to each message, in AWS's agent's order: store the
//! command with its `InProgress` reply, hand it to a worker, send that reply, acknowledge.
//! The worker's steps report only after the `InProgress` reply.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tagrun_wire::command::CancelCommandPayload;
use tagrun_wire::messages::{FailureType, Message, MessageKind, command_id_from_message_id};
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};
use tracing::{debug, error, info, instrument, warn};

use crate::backoff::Backoff;
use crate::client::{Client, ClientError};
use crate::reply::{self, Outbox};
use crate::runner::{Finish, Gate, RunError, Runner, plan_command};
use crate::spool::{CommandRecord, Spool, SpoolError, error_chain};

/// A long poll answered with an error after at least this long was the client timing out
/// on an idle poll, not a failure.
const QUICK_RESPONSE: Duration = Duration::from_secs(10);

/// Why a message could not be handled; the message will come again.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// State could not be stored.
    #[error("could not store message {message_id}")]
    Spool {
        /// The message.
        message_id: String,
        /// The failure.
        #[source]
        source: SpoolError,
    },
    /// A call about the message failed.
    #[error("could not answer message {message_id}")]
    Client {
        /// The message.
        message_id: String,
        /// The failure.
        #[source]
        source: ClientError,
    },
}

/// Accepts messages and runs commands on up to `command_workers` workers.
#[derive(Debug)]
pub struct Dispatcher {
    client: Client,
    spool: Arc<Spool>,
    outbox: Arc<Outbox>,
    runner: Arc<Runner>,
    workers: Arc<Semaphore>,
    /// Cancel switches of accepted commands, by message id.
    running: Arc<Mutex<HashMap<String, watch::Sender<bool>>>>,
    /// The tasks running commands.
    tasks: Mutex<JoinSet<()>>,
}

impl Dispatcher {
    /// A dispatcher running at most `workers` commands at once; more wait in order.
    pub fn new(
        client: Client,
        spool: Arc<Spool>,
        outbox: Arc<Outbox>,
        runner: Arc<Runner>,
        workers: usize,
    ) -> Self {
        Self {
            client,
            spool,
            outbox,
            runner,
            workers: Arc::new(Semaphore::new(workers)),
            running: Arc::new(Mutex::new(HashMap::new())),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Starts again every command in flight when the agent stopped, oldest first.
    pub async fn resume_all(&self) -> Result<usize, SpoolError> {
        let records = self.spool.load_commands().await?;
        let count = records.len();
        for record in records {
            info!(command_id = %record.command_id, "resuming command");
            self.start(record, Gate::open()).await;
        }
        Ok(count)
    }

    /// Handles one message of a poll.
    #[instrument(skip_all, fields(message_id = %message.message_id))]
    pub async fn handle(&self, message: &Message) -> Result<(), PollError> {
        if !message.is_complete() {
            debug!("dropping a message without topic, destination, id or date");
            return Ok(());
        }
        match message.kind() {
            MessageKind::SendCommand => self.accept_command(message).await,
            MessageKind::CancelCommand => self.accept_cancel(message).await,
            MessageKind::Unknown => {
                warn!(topic = %message.topic, "no handler for message topic");
                self.client
                    .fail_message(&message.message_id, FailureType::InternalHandlerException)
                    .await
                    .map_err(|source| client_error(message, source))
            }
        }
    }

    async fn accept_command(&self, message: &Message) -> Result<(), PollError> {
        let command_id = command_id_from_message_id(&message.message_id).to_owned();
        if self.spool.is_done(&command_id).await {
            debug!(%command_id, "command already finished, acknowledging again");
            return self.acknowledge(message).await;
        }
        if self.spool.has_command(&command_id).await {
            debug!(%command_id, "command already accepted");
            self.receipt_and_ack(message).await?;
            return self.start_if_stranded(message, &command_id).await;
        }

        if let Err(trace) = plan_command(&message.payload) {
            warn!(%command_id, reason = %trace, "refusing a command that cannot run");
            self.outbox
                .send(
                    &message.message_id,
                    &reply::rejected(&trace, SystemTime::now()),
                )
                .await
                .map_err(|source| spool_error(message, source))?;
            self.spool
                .mark_done(&command_id)
                .await
                .map_err(|source| spool_error(message, source))?;
            return Ok(());
        }

        let record = CommandRecord {
            message_id: message.message_id.clone(),
            command_id: command_id.clone(),
            created_date: message.created_date.clone(),
            payload: message.payload.clone(),
            cancel_requested: false,
            steps: Vec::new(),
        };
        // A command with neither record nor done marker never ran anything (its steps
        // wait for its record, see `Gate`): output left by an earlier delivery that a
        // crash cut short before its record reached the disk is cleared, so its started
        // markers cannot stop it.
        self.spool
            .clear_output(&command_id)
            .map_err(|source| spool_error(message, source))?;

        // The worker readies the first step (its directory, its durable started marker)
        // while the record and the receipt are stored together, and starts the process
        // once they are: an acknowledged command is never lost, and the receipt, queued
        // first, reaches the server before any reply of a step.
        let (switch, gate) = Gate::pending();
        self.start(record.clone(), gate).await;
        let stored = self.store_with_receipt(&record).await;
        switch.send_replace(Some(stored.is_ok()));
        stored.map_err(|source| spool_error(message, source))?;
        info!(%command_id, "command received");
        self.flush_then_ack(message).await
    }

    async fn store_with_receipt(&self, record: &CommandRecord) -> Result<(), SpoolError> {
        let mut batch = self.spool.batch();
        self.spool.stage_new_command(&mut batch, record)?;
        let receipt = reply::receipt(SystemTime::now());
        self.outbox
            .stage(&mut batch, &record.message_id, &receipt)?;
        self.outbox.commit(batch).await
    }

    /// Starts a command that was saved but never started: its first acknowledgement
    /// failed, so the server delivered it again. A command already running (or
    /// resumed from the spool at start) is left alone.
    async fn start_if_stranded(
        &self,
        message: &Message,
        command_id: &str,
    ) -> Result<(), PollError> {
        if self.running.lock().await.contains_key(&message.message_id) {
            return Ok(());
        }
        let records = self
            .spool
            .load_commands()
            .await
            .map_err(|source| spool_error(message, source))?;
        if let Some(record) = records.into_iter().find(|r| r.command_id == command_id) {
            info!(%command_id, "starting a command whose acknowledgement had failed");
            self.start(record, Gate::open()).await;
        }
        Ok(())
    }

    async fn accept_cancel(&self, message: &Message) -> Result<(), PollError> {
        let target = match CancelCommandPayload::parse(&message.payload) {
            Ok(payload) => payload.cancel_message_id,
            Err(error) => {
                warn!(%error, "unreadable cancel payload");
                return self
                    .client
                    .fail_message(&message.message_id, FailureType::InternalHandlerException)
                    .await
                    .map_err(|source| client_error(message, source));
            }
        };

        let target_command = command_id_from_message_id(&target).to_owned();
        info!(command_id = %target_command, "cancel requested");
        if let Some(switch) = self.running.lock().await.get(&target) {
            switch.send_replace(true);
        }
        self.persist_cancel(&target_command)
            .await
            .map_err(|s| spool_error(message, s))?;
        self.receipt_and_ack(message).await
    }

    async fn persist_cancel(&self, command_id: &str) -> Result<(), SpoolError> {
        let records = self.spool.load_commands().await?;
        if let Some(mut record) = records.into_iter().find(|r| r.command_id == command_id) {
            record.cancel_requested = true;
            self.spool.save_command(&record).await?;
        }
        Ok(())
    }

    /// The `InProgress` reply, then the acknowledgement, as AWS's agent orders them.
    async fn receipt_and_ack(&self, message: &Message) -> Result<(), PollError> {
        self.outbox
            .send(&message.message_id, &reply::receipt(SystemTime::now()))
            .await
            .map_err(|source| spool_error(message, source))?;
        self.flush_then_ack(message).await
    }

    /// Sends the queued replies (the receipt among them), then acknowledges.
    async fn flush_then_ack(&self, message: &Message) -> Result<(), PollError> {
        if let Err(error) = self.outbox.flush(&self.client).await {
            debug!(error = %error_chain(&error), "receipt stays queued");
        }
        self.acknowledge(message).await
    }

    async fn acknowledge(&self, message: &Message) -> Result<(), PollError> {
        self.client
            .acknowledge(&message.message_id)
            .await
            .map_err(|source| client_error(message, source))
    }

    async fn start(&self, record: CommandRecord, gate: Gate) {
        let (switch, cancel) = watch::channel(record.cancel_requested);
        self.running
            .lock()
            .await
            .insert(record.message_id.clone(), switch);

        let workers = Arc::clone(&self.workers);
        let runner = Arc::clone(&self.runner);
        let spool = Arc::clone(&self.spool);
        let running = Arc::clone(&self.running);
        let mut tasks = self.tasks.lock().await;
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let message_id = record.message_id.clone();
            let command_id = record.command_id.clone();
            // Fair semaphore: commands start in the order they were accepted.
            let Ok(_permit) = workers.acquire_owned().await else {
                return;
            };
            match runner.execute(record, cancel, gate).await {
                Ok(Finish::Done) => {
                    if let Err(error) = spool.finish_command(&command_id).await {
                        error!(%command_id, error = %error_chain(&error), "could not finish");
                    }
                }
                Ok(Finish::Rebooting) => info!(%command_id, "command resumes after the reboot"),
                Err(RunError::NotStored { .. }) => {
                    debug!(%command_id, "command not stored, it runs when it comes again");
                }
                Err(error) => error!(%command_id, error = %error_chain(&error), "command stalled"),
            }
            running.lock().await.remove(&message_id);
        });
    }
}

impl Dispatcher {
    /// Stops following running commands without touching their processes, as if the
    /// agent exited: steps keep running and the next start picks them up from the spool.
    pub async fn abandon(&self) {
        let mut tasks = self.tasks.lock().await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

fn spool_error(message: &Message, source: SpoolError) -> PollError {
    PollError::Spool {
        message_id: message.message_id.clone(),
        source,
    }
}

fn client_error(message: &Message, source: ClientError) -> PollError {
    PollError::Client {
        message_id: message.message_id.clone(),
        source,
    }
}

/// Polls until `shutdown` turns true. `on_first_poll` runs once the first poll answered.
pub async fn run(
    dispatcher: &Dispatcher,
    client: &Client,
    poll_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut on_first_poll: impl FnMut(),
) {
    let mut backoff = Backoff::for_network();
    let mut first = true;
    while !*shutdown.borrow() {
        let started = Instant::now();
        let result = tokio::select! {
            result = client.get_messages(poll_timeout) => result,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let elapsed = started.elapsed();

        let pause = match result {
            Ok(response) => {
                if backoff.attempts() > 0 {
                    info!("polling again");
                }
                backoff.reset();
                if std::mem::take(&mut first) {
                    on_first_poll();
                }
                handle_all(dispatcher, &response.messages).await;
                quick_poll_pause(elapsed, response.messages.is_empty())
            }
            Err(error) if error.is_timeout() && elapsed >= QUICK_RESPONSE => Duration::ZERO,
            Err(error) => failure_pause(&mut backoff, &error),
        };
        if !pause.is_zero() {
            tokio::select! {
                () = sleep(pause) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }
}

async fn handle_all(dispatcher: &Dispatcher, messages: &[Message]) {
    for message in messages {
        if let Err(error) = dispatcher.handle(message).await {
            warn!(error = %error_chain(&error), "message not handled, it will come again");
        }
    }
}

/// A poll that came back empty within a second is followed by a pause of 2 to 2.5 s, so a
/// server that does not hold polls open is not hammered.
fn quick_poll_pause(elapsed: Duration, empty: bool) -> Duration {
    if empty && elapsed < Duration::from_secs(1) {
        Duration::from_millis(rand::thread_rng().gen_range(2000..2500))
    } else {
        Duration::ZERO
    }
}

fn failure_pause(backoff: &mut Backoff, error: &ClientError) -> Duration {
    let delay = backoff.next_delay();
    let error = error_chain(error);
    if backoff.attempts() == 1 {
        warn!(%error, retry_ms = delay.as_millis(), "poll failed, backing off");
    } else {
        debug!(%error, attempt = backoff.attempts(), "poll failed again");
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_only_after_quick_empty_polls() {
        let quick = quick_poll_pause(Duration::from_millis(20), true);

        assert!((Duration::from_secs(2)..Duration::from_millis(2500)).contains(&quick));
        assert_eq!(
            quick_poll_pause(Duration::from_millis(20), false),
            Duration::ZERO
        );
        assert_eq!(
            quick_poll_pause(Duration::from_secs(12), true),
            Duration::ZERO
        );
    }
}
