//! One script as a process that outlives the agent if it must.
//!
//! Each script runs in a directory of its own under a tiny `sh` wrapper in a new process
//! group. The wrapper records its pid, runs the script with stdout and stderr going to
//! files, then writes the exit code to `exitcode`. So when the agent restarts, whether by
//! upgrade, crash or SIGKILL, it finds the script again: the exit code on disk, or the
//! wrapper still running under the recorded pid.
//!
//! Files in a script directory: `_script.sh` or `_script.ps1` (mode 0700), `started`
//! (durable before the spawn; one found unreadable was cut short by a crash before the
//! spawn, so the script never ran), `pid`, `stdout`, `stderr`, `exitcode`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{debug, info, warn};

/// The wrapper for PowerShell: `$1` is the exit-code file, the rest is the program and
/// its arguments.
///
/// Both files are written with one short `write`, so a reader sees them empty or whole;
/// an empty file reads as "not yet", and only shell built-ins run.
///
/// The wrapper also puts its OOM score back to the normal 0: the unit lowers the
/// agent's so that the kernel kills a runaway step before the agent, and children
/// inherit it. Raising one's own score needs no privilege; where `/proc` refuses, the
/// step runs with the inherited score.
const WRAPPER: &str = r#"f=$1; shift
{ echo 0 > /proc/self/oom_score_adj; } 2>/dev/null
echo $$ > "${f%exitcode}pid"
"$@"; c=$?
echo "$c" > "$f"
exit "$c""#;

/// The wrapper for `sh` scripts, which saves starting a second shell: `$0` is the script
/// and `$1` the exit-code file, and the script runs in a subshell (a fork, no new program)
/// with no positional parameters and no variables of the wrapper's, so it sees what
/// `sh <script>` would show it: its `exit` ends only the subshell, its traps and `exec`
/// stay inside it, and the wrapper records the code as [`WRAPPER`] does.
///
/// Limitation: as in any subshell, `$$` is the wrapper's pid, so a script that signals
/// `$$` stops the wrapper instead of itself and its step is reported lost.
const SH_WRAPPER: &str = r#"{ echo 0 > /proc/self/oom_score_adj; } 2>/dev/null
echo $$ > "${1%exitcode}pid"
(set --; . "$0"); c=$?
echo "$c" > "$1"
exit "$c""#;

/// The shell, by absolute path so that no `PATH` search runs per step.
const SH: &str = "/bin/sh";

/// How often a re-attached script (not our child) is checked.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The program that runs a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpreter {
    /// `sh <script>`.
    Sh,
    /// `pwsh -NoProfile -NonInteractive -File <script>`.
    PowerShell,
}

/// What to run and how long it may take.
#[derive(Debug, Clone)]
pub struct ScriptSpec {
    /// The script's own directory.
    pub dir: PathBuf,
    /// Its interpreter.
    pub interpreter: Interpreter,
    /// The script text.
    pub text: String,
    /// Where it runs; `None` for the agent's working directory.
    pub working_directory: Option<PathBuf>,
    /// Its time limit.
    pub timeout: Duration,
    /// Variables added to the agent's environment.
    pub environment: BTreeMap<String, String>,
    /// Time between SIGTERM and SIGKILL when the script is stopped.
    pub kill_grace: Duration,
    /// The process starts only once this opens (its `started` marker is written before).
    pub gate: super::Gate,
}

/// How a script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptEnd {
    /// It exited with this code.
    Exited(i32),
    /// Its time limit passed and the agent stopped it.
    TimedOut,
    /// A cancel request stopped it.
    Cancelled,
    /// It cannot be followed to its end; the reason says why.
    Lost(String),
    /// It could not be started; the reason says why.
    NotStarted(String),
}

/// Recorded in `started` before the spawn.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Started {
    boot_id: String,
    started_at_ms: u64,
}

/// Runs the script, or follows it if an earlier agent already started it. Never starts a
/// script twice: once a readable `started` exists the script is only ever waited for.
pub async fn run_or_resume(spec: &ScriptSpec, cancel: &mut watch::Receiver<bool>) -> ScriptEnd {
    if let Some(code) = read_exit_code(&spec.dir).await {
        return ScriptEnd::Exited(code);
    }
    if let Some(started) = read_started(&spec.dir).await {
        return resume(spec, &started, cancel).await;
    }
    if *cancel.borrow() {
        return ScriptEnd::Cancelled;
    }
    match start(spec).await {
        Ok(child) => wait_child(spec, child, Instant::now() + spec.timeout, cancel).await,
        Err(reason) => ScriptEnd::NotStarted(reason),
    }
}

async fn start(spec: &ScriptSpec) -> Result<Child, String> {
    let (program, args, file) = interpreter_command(spec)?;
    let script_path = spec.dir.join(file);
    write_script(&script_path, spec.interpreter, &spec.text).await?;
    if let Some(dir) = &spec.working_directory
        && !dir.is_dir()
    {
        return Err(format!(
            "working directory {} does not exist",
            dir.display()
        ));
    }

    let started = Started {
        boot_id: boot_id().await,
        started_at_ms: now_ms(),
    };
    let marker = serde_json::to_vec(&started).map_err(|e| e.to_string())?;
    // The script's directory, and the two above it, may have been created just now: their
    // entries become durable together with the marker.
    let parents: Vec<PathBuf> = spec.dir.ancestors().take(3).map(Path::to_owned).collect();
    let marker_path = spec.dir.join("started");
    crate::spool::write_new(vec![(marker_path.clone(), marker)], parents)
        .await
        .map_err(|e| crate::spool::error_chain(&e))?;
    if !spec.gate.pass().await {
        // Not synced: a marker that comes back is cleared when the command comes again.
        if let Err(error) = std::fs::remove_file(&marker_path) {
            debug!(%error, "could not remove the started marker of a step not started");
        }
        return Err("the command was not stored, so its step does not start".to_owned());
    }

    let stdout = open_output(&spec.dir.join("stdout"))?;
    let stderr = open_output(&spec.dir.join("stderr"))?;
    let mut command = Command::new(SH);
    command.arg("-c");
    if spec.interpreter == Interpreter::Sh {
        command
            .arg(SH_WRAPPER)
            .arg(&script_path)
            .arg(spec.dir.join("exitcode"));
    } else {
        command
            .arg(WRAPPER)
            .arg("tagrun-step")
            .arg(spec.dir.join("exitcode"))
            .arg(program)
            .args(args)
            .arg(&script_path);
    }
    command
        .envs(&spec.environment)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    if let Some(dir) = &spec.working_directory {
        command.current_dir(dir);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("could not start sh: {e}"))?;
    debug!(pid = child.id(), dir = %spec.dir.display(), "script started");
    Ok(child)
}

fn interpreter_command(spec: &ScriptSpec) -> Result<(PathBuf, Vec<&'static str>, &str), String> {
    match spec.interpreter {
        Interpreter::Sh => Ok((PathBuf::from(SH), Vec::new(), "_script.sh")),
        Interpreter::PowerShell => {
            let pwsh = find_powershell().ok_or_else(|| {
                "PowerShell is not installed on this node: aws:runPowerShellScript needs pwsh \
                 (or powershell) on the PATH"
                    .to_owned()
            })?;
            Ok((
                pwsh,
                vec!["-NoProfile", "-NonInteractive", "-File"],
                "_script.ps1",
            ))
        }
    }
}

/// Finds `pwsh` or `powershell` on the `PATH`.
pub fn find_powershell() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join("pwsh"), dir.join("powershell")])
        .find(|candidate| candidate.is_file())
}

async fn write_script(path: &Path, interpreter: Interpreter, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;

    let mut bytes = Vec::with_capacity(text.len() + 3);
    if interpreter == Interpreter::PowerShell {
        // PowerShell reads a file without byte order mark in the system code page.
        bytes.extend_from_slice(&[0xEF, 0xBB, 0xBF]);
    }
    bytes.extend_from_slice(text.as_bytes());
    // Written before the `started` marker, which is what makes a run durable; a script
    // lost in a crash before the marker simply was never started.
    std::fs::write(path, &bytes).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    let permissions = std::fs::Permissions::from_mode(0o700);
    std::fs::set_permissions(path, permissions)
        .map_err(|e| format!("could not make {} executable: {e}", path.display()))
}

fn open_output(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;

    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("could not open {}: {e}", path.display()))
}

async fn wait_child(
    spec: &ScriptSpec,
    mut child: Child,
    deadline: Instant,
    cancel: &mut watch::Receiver<bool>,
) -> ScriptEnd {
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    tokio::select! {
        status = child.wait() => match status {
            Ok(status) => match read_exit_code(&spec.dir).await {
                Some(code) => ScriptEnd::Exited(code),
                None => status.code().map_or_else(
                    || ScriptEnd::Lost("the step was killed by a signal".to_owned()),
                    ScriptEnd::Exited,
                ),
            },
            Err(e) => ScriptEnd::Lost(format!("lost track of the step process: {e}")),
        },
        () = sleep_until(deadline) => {
            stop_child(pgid, &mut child, spec.kill_grace).await;
            ScriptEnd::TimedOut
        }
        () = cancelled(cancel) => {
            stop_child(pgid, &mut child, spec.kill_grace).await;
            ScriptEnd::Cancelled
        }
    }
}

async fn stop_child(pgid: Option<i32>, child: &mut Child, grace: Duration) {
    let Some(pgid) = pgid else {
        return;
    };
    signal_group(pgid, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        info!(pgid, "step ignored SIGTERM, killing its process group");
    }
    // Helpers of the script may remain in the group even when the wrapper exited.
    signal_group(pgid, Signal::SIGKILL);
    if let Err(error) = child.wait().await {
        debug!(%error, "could not reap the step process");
    }
}

async fn resume(
    spec: &ScriptSpec,
    started: &Started,
    cancel: &mut watch::Receiver<bool>,
) -> ScriptEnd {
    let elapsed = Duration::from_millis(now_ms().saturating_sub(started.started_at_ms));
    let deadline = Instant::now() + spec.timeout.saturating_sub(elapsed);
    let Some(pid) = find_wrapper(&spec.dir).await else {
        return lost_end(spec, started).await;
    };
    info!(pid, dir = %spec.dir.display(), "following a step started before the restart");

    loop {
        if let Some(code) = read_exit_code(&spec.dir).await {
            return ScriptEnd::Exited(code);
        }
        if !is_wrapper_alive(pid, &spec.dir).await {
            return lost_end(spec, started).await;
        }
        tokio::select! {
            () = sleep(POLL_INTERVAL) => {}
            () = sleep_until(deadline) => {
                stop_orphan(pid, spec).await;
                return ScriptEnd::TimedOut;
            }
            () = cancelled(cancel) => {
                stop_orphan(pid, spec).await;
                return ScriptEnd::Cancelled;
            }
        }
    }
}

async fn stop_orphan(pid: i32, spec: &ScriptSpec) {
    signal_group(pid, Signal::SIGTERM);
    let until = Instant::now() + spec.kill_grace;
    while Instant::now() < until && is_wrapper_alive(pid, &spec.dir).await {
        sleep(POLL_INTERVAL).await;
    }
    signal_group(pid, Signal::SIGKILL);
}

async fn lost_end(spec: &ScriptSpec, started: &Started) -> ScriptEnd {
    // The exit code may have landed between the last check and the process check.
    if let Some(code) = read_exit_code(&spec.dir).await {
        return ScriptEnd::Exited(code);
    }
    let reason = if boot_id().await != started.boot_id {
        "the node restarted while the step was running; its result is unknown"
    } else {
        "the step's process ended without recording an exit code (killed together with the \
         agent?)"
    };
    warn!(dir = %spec.dir.display(), reason, "step lost");
    ScriptEnd::Lost(reason.to_owned())
}

/// The wrapper's pid, waiting briefly for a wrapper that is just starting.
async fn find_wrapper(dir: &Path) -> Option<i32> {
    for _ in 0..10 {
        let text = tokio::fs::read_to_string(dir.join("pid"))
            .await
            .unwrap_or_default();
        if let Ok(pid) = text.trim().parse::<i32>() {
            return Some(pid);
        }
        sleep(POLL_INTERVAL).await;
    }
    None
}

/// Whether `pid` is still our wrapper: alive, not a zombie, and running with this
/// directory's exit-code file as its argument (so a reused pid never matches).
async fn is_wrapper_alive(pid: i32, dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(cmdline) = tokio::fs::read(proc_dir.join("cmdline")).await else {
        return false;
    };
    let exit_file = dir.join("exitcode");
    let wanted = exit_file.as_os_str().as_encoded_bytes();
    let matches = cmdline.split(|b| *b == 0).any(|arg| arg == wanted);
    let stat = tokio::fs::read_to_string(proc_dir.join("stat"))
        .await
        .unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    matches && !matches!(state, Some('Z' | 'X') | None)
}

fn signal_group(pgid: i32, signal: Signal) {
    if let Err(errno) = killpg(Pid::from_raw(pgid), signal) {
        debug!(pgid, %errno, ?signal, "process group already gone");
    }
}

async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|requested| *requested).await.is_err() {
        // The sender is gone, so a cancel can no longer come.
        std::future::pending::<()>().await;
    }
}

async fn read_exit_code(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("exitcode")).ok()?;
    text.trim().parse().ok()
}

async fn read_started(dir: &Path) -> Option<Started> {
    let bytes = std::fs::read(dir.join("started")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// This boot's id, or an empty string where the kernel does not provide one.
pub async fn boot_id() -> String {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
    text.map(|t| t.trim().to_owned()).unwrap_or_default()
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
