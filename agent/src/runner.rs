//! Runs a command: its plan's steps in order as processes, with a reply after each step
//! and a final reply, and the special exit codes AWS's agent honours.
//!
//! Step progress is saved in the command's record after every step but the last (whose
//! reply goes to disk with the final reply, just before the command is marked done), and
//! each script's exit code is kept on disk by its wrapper (see [`process`]), so a
//! restarted agent picks the command up where it stopped and never runs a script twice.
//!
//! Limitation: output goes to the state directory and the replies only; a command's
//! `OutputS3BucketName` and `CloudWatchOutputEnabled` are ignored.

pub mod process;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tagrun_document::{
    Document, OnFailure, OnSuccess, Plan, PlanStep, Platform, Script, Shell, StepAction,
};
use tagrun_wire::command::SendCommandPayload;
use tagrun_wire::reply::{
    PluginRuntimeStatus, ResultStatus, STANDARD_STREAM_LIMIT, combined_output, merge_status,
    truncate_stream,
};
use tokio::sync::watch;
use tracing::{info, instrument, warn};

use self::process::{Interpreter, ScriptEnd, ScriptSpec};
use crate::reply::{self, Outbox};
use crate::spool::{CommandRecord, Spool, SpoolError, StepRecord};

/// Exit code: the step succeeded and the remaining steps are skipped.
pub const EXIT_SUCCESS_AND_STOP: i32 = 168;

/// Exit code: the step failed and the remaining steps are skipped.
pub const EXIT_FAILURE_AND_STOP: i32 = 169;

/// Exit code: the step succeeded and the node must reboot; the step runs again after.
pub const EXIT_REBOOT: i32 = 194;

/// The code reported for a step the agent stopped (timeout or cancel), like a SIGKILL.
pub const EXIT_STOPPED: i32 = 137;

/// Why a command could not be carried on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Its record could not be stored when it arrived, so it does not run (its message
    /// comes again); nothing of it was spawned or queued.
    #[error("command {command_id} was not stored, so it does not run")]
    NotStored {
        /// The command.
        command_id: String,
    },
    /// Its state or a reply could not be stored.
    #[error("could not store the progress of command {command_id}")]
    Spool {
        /// The command.
        command_id: String,
        /// The failure.
        #[source]
        source: SpoolError,
    },
}

/// How a command's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every step reached a final status; the final reply is queued.
    Done,
    /// A step asked for a reboot; the command resumes after it.
    Rebooting,
}

/// Holds back a command's first process until its record is durable.
///
/// A new command's record and its receipt are written while its worker readies the first
/// step, so the two waits for the disk overlap; the step's process starts only once the
/// record is on disk. So a command without a record never ran anything, whatever the
/// crash, and what output it left may be cleared (see the poller).
#[derive(Debug, Clone, Default)]
pub struct Gate(Option<watch::Receiver<Option<bool>>>);

/// Opens or shuts a [`Gate`]: `Some(true)` once the record is durable, `Some(false)` if it
/// could not be stored. Dropping it unset shuts the gate.
pub type GateSwitch = watch::Sender<Option<bool>>;

impl Gate {
    /// An open gate, for a command whose record is on disk already.
    pub fn open() -> Self {
        Self(None)
    }

    /// A gate waiting for its switch.
    pub fn pending() -> (GateSwitch, Self) {
        let (switch, state) = watch::channel(None);
        (switch, Self(Some(state)))
    }

    /// Waits until the gate is decided; whether the command may go on.
    pub async fn pass(&self) -> bool {
        let Some(state) = &self.0 else {
            return true;
        };
        let mut state = state.clone();
        let decided = state.wait_for(Option::is_some).await;
        decided.is_ok_and(|value| *value == Some(true))
    }
}

/// What the runner needs to know about the node.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// The node's instance id (`AWS_SSM_INSTANCE_ID`).
    pub instance_id: String,
    /// The region (`AWS_SSM_REGION_NAME`).
    pub region: String,
    /// Time between SIGTERM and SIGKILL when a step is stopped.
    pub kill_grace: Duration,
    /// Program and arguments that reboot the node.
    pub reboot_command: Vec<String>,
}

/// Runs commands; shared by the worker tasks.
#[derive(Debug)]
pub struct Runner {
    spool: Arc<Spool>,
    outbox: Arc<Outbox>,
    settings: RunnerSettings,
}

/// Reads a SendCommand payload and plans its document for this node.
///
/// The error text is what the failed reply carries in `documentTraceOutput`.
pub fn plan_command(payload_text: &str) -> Result<(SendCommandPayload, Plan), String> {
    let payload = SendCommandPayload::parse(payload_text)
        .map_err(|e| format!("the command payload is not valid: {e}"))?;
    let document = Document::from_json_value(&payload.document_content)
        .map_err(|e| format!("document {} is not valid: {e}", payload.document_name))?;
    let supplied = payload.parameters.clone().map(Value::Object);
    let parameters = document
        .resolve_payload_parameters(supplied.as_ref())
        .map_err(|e| {
            format!(
                "parameters of document {} are not valid: {e}",
                payload.document_name
            )
        })?;
    let plan = document
        .plan(&parameters, Platform::Linux)
        .map_err(|e| format!("document {} cannot run: {e}", payload.document_name))?;
    Ok((payload, plan))
}

/// What one step produced, before it becomes a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StepOutcome {
    status: ResultStatus,
    code: i32,
    stdout: String,
    stderr: String,
    /// Replaces the combined output when set (steps that did not run).
    note: Option<String>,
    stop: Stop,
}

/// What a step's end means for the steps after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Carry on.
    No,
    /// Skip the remaining steps (exit codes 168 and 169, onFailure, onSuccess).
    Remaining,
    /// Reboot, then run this step again.
    Reboot,
}

impl Runner {
    /// A runner writing state to `spool` and replies to `outbox`.
    pub fn new(spool: Arc<Spool>, outbox: Arc<Outbox>, settings: RunnerSettings) -> Self {
        Self {
            spool,
            outbox,
            settings,
        }
    }

    /// Runs (or resumes) a command to its end, queuing its replies. Nothing is spawned,
    /// queued or saved before `gate` opens; a shut gate ends the run with
    /// [`RunError::NotStored`].
    #[instrument(skip_all, fields(command_id = %record.command_id))]
    pub async fn execute(
        &self,
        mut record: CommandRecord,
        mut cancel: watch::Receiver<bool>,
        gate: Gate,
    ) -> Result<Finish, RunError> {
        let plan = match plan_command(&record.payload) {
            Ok((_, plan)) => plan,
            Err(trace) => {
                self.pass(&gate, &record).await?;
                self.reply(&record, &reply::rejected(&trace, SystemTime::now()))
                    .await?;
                return Ok(Finish::Done);
            }
        };
        // A fresh step list needs no save (the plan gives it again); a reset after a
        // reboot does, so that the new attempt is not counted twice.
        if prepare_steps(&mut record, &plan) {
            self.pass(&gate, &record).await?;
            self.save(&record).await?;
        }

        let mut stopped = false;
        for (index, step) in plan.steps.iter().enumerate() {
            if record.steps[index].status.is_terminal() {
                stopped |= stops_after(step, record.steps[index].status);
                continue;
            }
            let is_finally = step.finally_step && index + 1 == plan.steps.len();
            let outcome = if stopped && !is_finally {
                not_run(
                    ResultStatus::Skipped,
                    "Step skipped due to prior step with an exit condition",
                )
            } else if *cancel.borrow() || record.cancel_requested {
                not_run(ResultStatus::Cancelled, "Step cancelled before it started")
            } else {
                let run = self.run_step(&mut record, index, step, &mut cancel, &gate);
                run.await?
            };
            self.pass(&gate, &record).await?;
            stopped |= outcome.stop == Stop::Remaining || stops_after(step, outcome.status);
            let reboot = outcome.stop == Stop::Reboot;
            if index + 1 == plan.steps.len() && !reboot {
                return self
                    .finish_last_step(&mut record, index, step, &outcome)
                    .await;
            }
            self.record_step(&mut record, index, step, &outcome).await?;
            if reboot {
                return self.reboot(&record).await;
            }
        }

        let results = final_results(&record);
        self.reply(
            &record,
            &reply::command_finished(&results, SystemTime::now()),
        )
        .await?;
        log_finished(&results);
        Ok(Finish::Done)
    }

    /// Queues the last step's reply and the final reply in one durable write. The record
    /// is not saved again: the caller marks the command done next.
    ///
    /// A crash between this write and the done marker resumes the command at the next
    /// start: the step is not run again (its exit code is on disk) and both replies are
    /// sent once more. Limitation: a last step that was stopped (timeout, cancel) left no
    /// exit code, so in that narrow window the repeat reports it as lost, not as stopped.
    async fn finish_last_step(
        &self,
        record: &mut CommandRecord,
        index: usize,
        step: &PlanStep,
        outcome: &StepOutcome,
    ) -> Result<Finish, RunError> {
        let step_reply = conclude_step(record, index, step, outcome);
        let results = final_results(record);
        let last_reply = reply::command_finished(&results, SystemTime::now());

        let mut batch = self.spool.batch();
        for payload in [&step_reply, &last_reply] {
            self.outbox
                .stage(&mut batch, &record.message_id, payload)
                .map_err(|source| self.spool_error(record, source))?;
        }
        self.outbox
            .commit(batch)
            .await
            .map_err(|source| self.spool_error(record, source))?;
        log_finished(&results);
        Ok(Finish::Done)
    }

    /// Waits for the gate; an error when it shut.
    async fn pass(&self, gate: &Gate, record: &CommandRecord) -> Result<(), RunError> {
        if gate.pass().await {
            return Ok(());
        }
        Err(RunError::NotStored {
            command_id: record.command_id.clone(),
        })
    }

    async fn run_step(
        &self,
        record: &mut CommandRecord,
        index: usize,
        step: &PlanStep,
        cancel: &mut watch::Receiver<bool>,
        gate: &Gate,
    ) -> Result<StepOutcome, RunError> {
        let scripts = match &step.action {
            _ if !step.precondition_met => {
                return Ok(not_run(
                    ResultStatus::Skipped,
                    "Step execution skipped due to unsatisfied preconditions",
                ));
            }
            StepAction::Skip { reason } => return Ok(not_run(ResultStatus::Skipped, reason)),
            StepAction::Fail { reason } => return Ok(not_run(ResultStatus::Failed, reason)),
            StepAction::Run { scripts } => scripts,
        };

        // Not saved here: the script's `started` marker is what a restart relies on.
        let now = tagrun_wire::time::iso8601_millis(SystemTime::now());
        record.steps[index].status = ResultStatus::InProgress;
        record.steps[index].started_at.get_or_insert(now);
        info!(step = %step.name, "step started");

        let attempt = record.steps[index].attempt;
        let mut merged: Option<StepOutcome> = None;
        for (number, script) in scripts.iter().enumerate() {
            let dir_name = format!("{}.{attempt}.{number}", step.name);
            let dir = self
                .spool
                .step_dir(&record.command_id, index, &dir_name)
                .await
                .map_err(|source| self.spool_error(record, source))?;
            let mut spec = self.script_spec(record, script, dir.clone());
            spec.gate = gate.clone();
            let end = process::run_or_resume(&spec, cancel).await;
            let outcome = outcome_of(&end, script.timeout_seconds, &dir).await;
            let stop = outcome.stop;
            merged = Some(match merged {
                None => outcome,
                Some(previous) => merge_outcomes(previous, outcome),
            });
            if stop != Stop::No {
                break;
            }
        }
        Ok(merged.unwrap_or_else(|| not_run(ResultStatus::Success, "")))
    }

    fn script_spec(&self, record: &CommandRecord, script: &Script, dir: PathBuf) -> ScriptSpec {
        let mut environment = script.environment.clone();
        environment.insert(
            "AWS_SSM_INSTANCE_ID".to_owned(),
            self.settings.instance_id.clone(),
        );
        environment.insert(
            "AWS_SSM_REGION_NAME".to_owned(),
            self.settings.region.clone(),
        );
        environment.insert("SSM_COMMAND_ID".to_owned(), record.command_id.clone());
        ScriptSpec {
            gate: Gate::open(),
            dir,
            interpreter: match script.shell {
                Shell::Sh => Interpreter::Sh,
                Shell::PowerShell => Interpreter::PowerShell,
            },
            text: script.text(),
            working_directory: self.working_directory(record, &script.working_directory),
            timeout: Duration::from_secs(script.timeout_seconds),
            environment,
            kill_grace: self.settings.kill_grace,
        }
    }

    /// An absolute directory as given; a relative one under the command's `downloads`
    /// directory when that exists; otherwise the agent's own working directory.
    fn working_directory(&self, record: &CommandRecord, input: &str) -> Option<PathBuf> {
        let input = input.trim();
        if input.is_empty() {
            return None;
        }
        let path = PathBuf::from(input);
        if path.is_absolute() {
            return Some(path);
        }
        let downloads = self
            .spool
            .root()
            .join("output")
            .join(crate::spool::safe_name(&record.command_id))
            .join("downloads")
            .join(path);
        downloads.is_dir().then_some(downloads)
    }

    /// Queues a step's reply, then saves its result: the reply is on disk before the
    /// record says the step is over, so a crash never loses it.
    async fn record_step(
        &self,
        record: &mut CommandRecord,
        index: usize,
        step: &PlanStep,
        outcome: &StepOutcome,
    ) -> Result<(), RunError> {
        let payload = conclude_step(record, index, step, outcome);
        self.reply(record, &payload).await?;
        self.save(record).await
    }

    async fn reboot(&self, record: &CommandRecord) -> Result<Finish, RunError> {
        let results = final_results(record);
        self.reply(
            record,
            &reply::command_finished(&results, SystemTime::now()),
        )
        .await?;
        let Some((program, args)) = self.settings.reboot_command.split_first() else {
            return Ok(Finish::Rebooting);
        };
        info!(program, "step asked for a reboot");
        match tokio::process::Command::new(program)
            .args(args)
            .status()
            .await
        {
            Ok(status) if status.success() => {}
            Ok(status) => warn!(program, code = status.code(), "reboot command failed"),
            Err(error) => warn!(program, %error, "could not run the reboot command"),
        }
        Ok(Finish::Rebooting)
    }

    async fn reply(
        &self,
        record: &CommandRecord,
        payload: &tagrun_wire::reply::ReplyPayload,
    ) -> Result<(), RunError> {
        self.outbox
            .send(&record.message_id, payload)
            .await
            .map_err(|source| self.spool_error(record, source))
    }

    async fn save(&self, record: &CommandRecord) -> Result<(), RunError> {
        self.spool
            .save_command(record)
            .await
            .map_err(|source| self.spool_error(record, source))
    }

    fn spool_error(&self, record: &CommandRecord, source: SpoolError) -> RunError {
        RunError::Spool {
            command_id: record.command_id.clone(),
            source,
        }
    }
}

/// Writes a step's result into the record (in memory) and returns the step's reply.
fn conclude_step(
    record: &mut CommandRecord,
    index: usize,
    step: &PlanStep,
    outcome: &StepOutcome,
) -> tagrun_wire::reply::ReplyPayload {
    let now = tagrun_wire::time::iso8601_millis(SystemTime::now());
    let started = record.steps[index]
        .started_at
        .clone()
        .unwrap_or_else(|| now.clone());
    let result = step_result(step, outcome, started, now);
    info!(step = %step.name, status = ?result.status, code = result.code, "step finished");

    let finished: Vec<ResultStatus> = record
        .steps
        .iter()
        .enumerate()
        .filter(|(i, s)| *i == index || s.status.is_terminal())
        .map(|(i, s)| if i == index { result.status } else { s.status })
        .collect();
    let payload = reply::step_finished(&step.name, &result, &finished, SystemTime::now());

    let entry = &mut record.steps[index];
    entry.status = result.status;
    entry.reboot_requested = outcome.stop == Stop::Reboot;
    entry.result = Some(result);
    payload
}

fn log_finished(results: &[(String, PluginRuntimeStatus)]) {
    let statuses: Vec<ResultStatus> = results.iter().map(|(_, r)| r.status).collect();
    info!(status = ?tagrun_wire::reply::document_status(&statuses), "command finished");
}

/// Makes the record's step list match the plan; a step that asked for a reboot is reset
/// so that it runs again, as the reboot has happened.
///
/// Limitation: the agent does not check that the node really rebooted; if the agent
/// restarts before the reboot command takes effect, the step runs again at once.
///
/// Returns whether a step was reset after a reboot.
fn prepare_steps(record: &mut CommandRecord, plan: &Plan) -> bool {
    if record.steps.len() != plan.steps.len() {
        record.steps = plan
            .steps
            .iter()
            .map(|s| StepRecord::new(&s.name))
            .collect();
    }
    let mut reset = false;
    for step in record.steps.iter_mut().filter(|s| s.reboot_requested) {
        step.reboot_requested = false;
        step.status = ResultStatus::NotStarted;
        step.result = None;
        step.started_at = None;
        step.attempt += 1;
        reset = true;
    }
    reset
}

/// Whether a step's inputs stop the document after it ended with `status`.
fn stops_after(step: &PlanStep, status: ResultStatus) -> bool {
    let failed = matches!(
        status,
        ResultStatus::Failed | ResultStatus::TimedOut | ResultStatus::Cancelled
    );
    (failed && step.on_failure.is_some())
        || (status == ResultStatus::Success && step.on_success == Some(OnSuccess::Exit))
}

fn not_run(status: ResultStatus, reason: &str) -> StepOutcome {
    StepOutcome {
        status,
        code: i32::from(status == ResultStatus::Failed),
        stdout: String::new(),
        stderr: String::new(),
        note: Some(reason.to_owned()),
        stop: Stop::No,
    }
}

/// Maps how a script ended to the step status, code and effect on later steps.
///
/// Unlike AWS's agent, a script that exits 137 by itself (for example when the kernel's
/// OOM killer ends it) is reported `Failed`, not `TimedOut`: only a stop by the agent is
/// a time-out.
fn classify(end: &ScriptEnd) -> (ResultStatus, i32, Stop) {
    match end {
        ScriptEnd::Exited(0) => (ResultStatus::Success, 0, Stop::No),
        ScriptEnd::Exited(EXIT_SUCCESS_AND_STOP) => (
            ResultStatus::Success,
            EXIT_SUCCESS_AND_STOP,
            Stop::Remaining,
        ),
        ScriptEnd::Exited(EXIT_FAILURE_AND_STOP) => {
            (ResultStatus::Failed, EXIT_FAILURE_AND_STOP, Stop::Remaining)
        }
        ScriptEnd::Exited(EXIT_REBOOT) => {
            (ResultStatus::SuccessAndReboot, EXIT_REBOOT, Stop::Reboot)
        }
        ScriptEnd::Exited(code) => (ResultStatus::Failed, *code, Stop::No),
        ScriptEnd::TimedOut => (ResultStatus::TimedOut, EXIT_STOPPED, Stop::No),
        ScriptEnd::Cancelled => (ResultStatus::Cancelled, EXIT_STOPPED, Stop::No),
        ScriptEnd::Lost(_) | ScriptEnd::NotStarted(_) => (ResultStatus::Failed, 1, Stop::No),
    }
}

async fn outcome_of(end: &ScriptEnd, timeout_secs: u64, dir: &std::path::Path) -> StepOutcome {
    let (status, code, stop) = classify(end);
    let mut stdout = read_head(&dir.join("stdout")).await;
    let mut stderr = read_head(&dir.join("stderr")).await;
    match end {
        ScriptEnd::Exited(EXIT_SUCCESS_AND_STOP) => {
            stdout.push_str("\nExit code 168: the remaining steps are skipped.\n");
        }
        ScriptEnd::Exited(EXIT_FAILURE_AND_STOP) => {
            let note = "\nExit code 169: the step failed and the remaining steps are skipped.\n";
            stdout.push_str(note);
            stderr.push_str(note);
        }
        ScriptEnd::TimedOut => {
            stderr.push_str(&format!(
                "\nThe step timed out after {timeout_secs} seconds.\n"
            ));
        }
        ScriptEnd::Cancelled => stderr.push_str("\nThe step was cancelled.\n"),
        ScriptEnd::Lost(reason) | ScriptEnd::NotStarted(reason) => {
            stderr.push_str(reason);
            stderr.push('\n');
        }
        ScriptEnd::Exited(_) => {}
    }
    StepOutcome {
        status,
        code,
        stdout,
        stderr,
        note: None,
        stop,
    }
}

/// Joins the outcomes of two scripts of one step: the graver status, the later code and
/// both outputs.
fn merge_outcomes(first: StepOutcome, second: StepOutcome) -> StepOutcome {
    StepOutcome {
        status: merge_status(first.status, second.status),
        code: if second.code != 0 {
            second.code
        } else {
            first.code
        },
        stdout: first.stdout + &second.stdout,
        stderr: first.stderr + &second.stderr,
        note: None,
        stop: second.stop,
    }
}

fn step_result(
    step: &PlanStep,
    outcome: &StepOutcome,
    started: String,
    ended: String,
) -> PluginRuntimeStatus {
    let mut status = outcome.status;
    if status == ResultStatus::Failed && step.on_failure == Some(OnFailure::SuccessAndExit) {
        status = ResultStatus::Success;
    }
    let code = if status == ResultStatus::Failed && outcome.code == 0 {
        1
    } else {
        outcome.code
    };
    let output = match &outcome.note {
        Some(note) => note.clone(),
        None if outcome.code == EXIT_SUCCESS_AND_STOP => combined_output(&outcome.stdout, ""),
        None => combined_output(&outcome.stdout, &outcome.stderr),
    };
    PluginRuntimeStatus {
        status,
        code,
        name: step.plugin.clone(),
        output,
        start_date_time: started,
        end_date_time: ended,
        output_s3_bucket_name: String::new(),
        output_s3_key_prefix: String::new(),
        step_name: String::new(),
        standard_output: truncate_stream(&outcome.stdout),
        standard_error: truncate_stream(&outcome.stderr),
    }
}

fn final_results(record: &CommandRecord) -> Vec<(String, PluginRuntimeStatus)> {
    record
        .steps
        .iter()
        .filter_map(|s| s.result.clone().map(|r| (s.name.clone(), r)))
        .collect()
}

/// Reads at most the first [`STANDARD_STREAM_LIMIT`] bytes (plus one, to detect a cut) of
/// an output file, so memory stays bounded whatever a script prints. A few kilobytes from
/// the local disk: read on the calling thread.
async fn read_head(path: &std::path::Path) -> String {
    use std::io::Read;

    let Ok(file) = std::fs::File::open(path) else {
        return String::new();
    };
    let limit = u64::try_from(STANDARD_STREAM_LIMIT + 1).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    if let Err(error) = file.take(limit).read_to_end(&mut bytes) {
        warn!(%error, path = %path.display(), "could not read step output");
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests;
