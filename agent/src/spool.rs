//! The agent's state on disk: commands in flight, replies not yet accepted, step outputs.
//!
//! Every state file is written whole: a temporary file beside it, fsync, rename, fsync of
//! the directory. A crash therefore leaves either the old or the new content, never a
//! mix. Layout under the state directory:
//!
//! ```text
//! commands/<CommandId>.json       a command in flight (CommandRecord)
//! done/<CommandId>                a finished command, so a redelivery never runs it again
//! replies/<seq>-<ReplyId>.json    SendReply requests waiting for the server, in order
//! output/<CommandId>/<n>-<step>/  _script.sh, stdout, stderr, exitcode of each step
//! ```
//!
//! A finished command's done marker and output are kept for 14 days.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tagrun_wire::messages::SendReplyRequest;
use tagrun_wire::reply::{PluginRuntimeStatus, ResultStatus};
use tokio::fs;
use tracing::warn;

/// Finished-command markers and outputs older than this are removed at start.
const DONE_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

/// Why the spool could not read or write its files.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file or directory operation failed.
    #[error("could not {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A state file holds something other than what the agent wrote.
    #[error("state file {path} is unreadable")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
}

/// A command the agent has accepted and not finished, as stored in `commands/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// `aws.ssm.<CommandId>.<InstanceId>`.
    pub message_id: String,
    /// The command id.
    pub command_id: String,
    /// The message's `CreatedDate`.
    pub created_date: String,
    /// The raw SendCommand payload text.
    pub payload: String,
    /// Set when a cancel message named this command.
    #[serde(default)]
    pub cancel_requested: bool,
    /// One entry per planned step, filled when the command starts.
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

/// What is known about one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The `runtimeStatus` key.
    pub name: String,
    /// `NotStarted`, `InProgress`, or a final status.
    pub status: ResultStatus,
    /// The result once final.
    #[serde(default)]
    pub result: Option<PluginRuntimeStatus>,
    /// When the step started, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    #[serde(default)]
    pub started_at: Option<String>,
    /// Runs of the step so far; a reboot request makes it run again in a new directory.
    #[serde(default)]
    pub attempt: u32,
    /// Set when the step exited 194 and the node is to reboot; the step runs again after.
    #[serde(default)]
    pub reboot_requested: bool,
}

impl StepRecord {
    /// A step that has not run.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            status: ResultStatus::NotStarted,
            result: None,
            started_at: None,
            attempt: 0,
            reboot_requested: false,
        }
    }
}

/// The agent's state directory.
#[derive(Debug)]
pub struct Spool {
    root: PathBuf,
    next_reply: AtomicU64,
}

impl Spool {
    /// Opens (creating if needed) the state directory and its parts.
    pub async fn open(root: &Path) -> Result<Self, SpoolError> {
        for part in ["commands", "done", "replies", "output"] {
            let dir = root.join(part);
            fs::create_dir_all(&dir).await.map_err(io("create", &dir))?;
        }
        set_private(root).await?;
        let spool = Self {
            root: root.to_owned(),
            next_reply: AtomicU64::new(0),
        };
        let last = spool
            .reply_files()
            .await?
            .last()
            .map(|p| reply_sequence(p))
            .unwrap_or(0);
        spool.next_reply.store(last + 1, Ordering::SeqCst);
        spool.prune_done().await;
        Ok(spool)
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores or replaces a command record.
    pub async fn save_command(&self, record: &CommandRecord) -> Result<(), SpoolError> {
        let path = self.command_path(&record.command_id);
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| SpoolError::Corrupt {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes).await
    }

    /// Every command in flight, oldest message first.
    pub async fn load_commands(&self) -> Result<Vec<CommandRecord>, SpoolError> {
        let dir = self.root.join("commands");
        let mut records = Vec::new();
        for path in list_files(&dir, ".json").await? {
            let bytes = fs::read(&path).await.map_err(io("read", &path))?;
            match serde_json::from_slice::<CommandRecord>(&bytes) {
                Ok(record) => records.push(record),
                Err(source) => {
                    let err = SpoolError::Corrupt {
                        path: path.clone(),
                        source,
                    };
                    warn!(error = %error_chain(&err), "skipping unreadable command record");
                }
            }
        }
        records.sort_by(|a, b| a.created_date.cmp(&b.created_date));
        Ok(records)
    }

    /// Whether a command is in flight.
    pub async fn has_command(&self, command_id: &str) -> bool {
        fs::try_exists(self.command_path(command_id))
            .await
            .unwrap_or(false)
    }

    /// Marks a command finished and forgets its record; the done marker is written first,
    /// so a crash between the two never lets the command run again.
    pub async fn finish_command(&self, command_id: &str) -> Result<(), SpoolError> {
        self.mark_done(command_id).await?;
        let path = self.command_path(command_id);
        match fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Records that a command id must never run (finished, or refused as unreadable).
    pub async fn mark_done(&self, command_id: &str) -> Result<(), SpoolError> {
        write_atomic(&self.done_path(command_id), b"").await
    }

    /// Whether a command already finished on this node.
    pub async fn is_done(&self, command_id: &str) -> bool {
        fs::try_exists(self.done_path(command_id))
            .await
            .unwrap_or(false)
    }

    /// Stores a reply to send; replies are sent in the order they were queued.
    pub async fn queue_reply(&self, reply: &SendReplyRequest) -> Result<PathBuf, SpoolError> {
        let sequence = self.next_reply.fetch_add(1, Ordering::SeqCst);
        let name = format!("{sequence:020}-{}.json", safe_name(&reply.reply_id));
        let path = self.root.join("replies").join(name);
        let bytes = serde_json::to_vec_pretty(reply).map_err(|source| SpoolError::Corrupt {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes).await?;
        Ok(path)
    }

    /// The oldest reply waiting, if any.
    pub async fn next_reply(&self) -> Result<Option<(PathBuf, SendReplyRequest)>, SpoolError> {
        for path in self.reply_files().await? {
            let bytes = fs::read(&path).await.map_err(io("read", &path))?;
            match serde_json::from_slice(&bytes) {
                Ok(reply) => return Ok(Some((path, reply))),
                Err(source) => {
                    let err = SpoolError::Corrupt {
                        path: path.clone(),
                        source,
                    };
                    warn!(error = %error_chain(&err), "dropping unreadable reply file");
                    self.remove_reply(&path).await?;
                }
            }
        }
        Ok(None)
    }

    /// Forgets a reply the server accepted.
    pub async fn remove_reply(&self, path: &Path) -> Result<(), SpoolError> {
        fs::remove_file(path).await.map_err(io("remove", path))
    }

    /// Number of replies waiting.
    pub async fn pending_replies(&self) -> Result<usize, SpoolError> {
        Ok(self.reply_files().await?.len())
    }

    /// The output directory of step `index` of a command, created with mode 0700.
    pub async fn step_dir(
        &self,
        command_id: &str,
        index: usize,
        name: &str,
    ) -> Result<PathBuf, SpoolError> {
        let dir = self
            .root
            .join("output")
            .join(safe_name(command_id))
            .join(format!("{index}-{}", safe_name(name)));
        fs::create_dir_all(&dir).await.map_err(io("create", &dir))?;
        set_private(&dir).await?;
        Ok(dir)
    }

    fn command_path(&self, command_id: &str) -> PathBuf {
        self.root
            .join("commands")
            .join(format!("{}.json", safe_name(command_id)))
    }

    fn done_path(&self, command_id: &str) -> PathBuf {
        self.root.join("done").join(safe_name(command_id))
    }

    async fn reply_files(&self) -> Result<Vec<PathBuf>, SpoolError> {
        list_files(&self.root.join("replies"), ".json").await
    }

    /// Removes done markers, and the outputs of finished commands, older than the
    /// retention time.
    async fn prune_done(&self) {
        let dir = self.root.join("done");
        let Ok(mut entries) = fs::read_dir(&dir).await else {
            return;
        };
        let cutoff = SystemTime::now() - DONE_RETENTION;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let modified = entry.metadata().await.and_then(|m| m.modified());
            if !modified.is_ok_and(|at| at < cutoff) {
                continue;
            }
            let output = self.root.join("output").join(entry.file_name());
            if let Err(error) = fs::remove_dir_all(&output).await
                && error.kind() != std::io::ErrorKind::NotFound
            {
                warn!(%error, path = %output.display(), "could not prune command output");
                continue;
            }
            if let Err(error) = fs::remove_file(entry.path()).await {
                warn!(%error, path = %entry.path().display(), "could not prune done marker");
            }
        }
    }
}

/// Writes `bytes` to `path` whole: temporary file, fsync, rename, directory fsync.
/// The file gets mode 0600.
pub async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let (path, bytes) = (path.to_owned(), bytes.to_vec());
    // One trip to the blocking pool for the whole sequence rather than one per call.
    let written = tokio::task::spawn_blocking(move || write_atomic_blocking(&path, &bytes)).await;
    written.unwrap_or_else(|join| {
        let source = std::io::Error::other(join.to_string());
        Err(SpoolError::Io {
            action: "write",
            path: PathBuf::new(),
            source,
        })
    })
}

fn write_atomic_blocking(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let temp = dir.join(format!(".{name}.tmp"));

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io("create", &temp))?;
    file.write_all(bytes).map_err(io("write", &temp))?;
    file.sync_all().map_err(io("sync", &temp))?;
    drop(file);

    std::fs::rename(&temp, path).map_err(io("rename into place", path))?;
    let dir_handle = std::fs::File::open(dir).map_err(io("open", dir))?;
    dir_handle.sync_all().map_err(io("sync", dir))
}

/// Restricts a directory to its owner.
async fn set_private(dir: &Path) -> Result<(), SpoolError> {
    use std::os::unix::fs::PermissionsExt;

    let permissions = std::fs::Permissions::from_mode(0o700);
    fs::set_permissions(dir, permissions)
        .await
        .map_err(io("restrict", dir))
}

async fn list_files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, SpoolError> {
    let mut entries = fs::read_dir(dir).await.map_err(io("list", dir))?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(io("list", dir))? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(suffix) && !name.starts_with('.') {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn reply_sequence(path: &Path) -> u64 {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A file-name-safe form of an id: anything but `[A-Za-z0-9._-]` becomes `_`, and a
/// leading dot is replaced, so an id from the server can never leave its directory.
pub fn safe_name(id: &str) -> String {
    let mut name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    name
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError {
    let path = path.to_owned();
    move |source| SpoolError::Io {
        action,
        path,
        source,
    }
}

/// An error and its sources on one line, for logs.
pub use tagrun_wire::error_chain;

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn record(id: &str, created: &str) -> CommandRecord {
        CommandRecord {
            message_id: format!("aws.ssm.{id}.mi-1"),
            command_id: id.to_owned(),
            created_date: created.to_owned(),
            payload: "{}".to_owned(),
            cancel_requested: false,
            steps: Vec::new(),
        }
    }

    fn reply(id: &str) -> SendReplyRequest {
        SendReplyRequest {
            message_id: "aws.ssm.c.mi-1".to_owned(),
            reply_id: id.to_owned(),
            payload: "{}".to_owned(),
            delivery_options: None,
        }
    }

    #[tokio::test]
    async fn atomic_write_replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");

        write_atomic(&path, b"first version, longer")
            .await
            .expect("write");
        write_atomic(&path, b"second").await.expect("rewrite");

        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(names.len(), 1);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn a_stale_temporary_file_from_a_crash_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).await.expect("open");
        spool
            .save_command(&record("c1", "2026-01-01T00:00:00.000Z"))
            .await
            .expect("save");
        std::fs::write(dir.path().join("commands/.c2.json.tmp"), b"{half").expect("write");

        let loaded = spool.load_commands().await.expect("load");

        assert_eq!(loaded, [record("c1", "2026-01-01T00:00:00.000Z")]);
    }

    #[tokio::test]
    async fn commands_load_oldest_first_and_finish_leaves_a_done_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).await.expect("open");
        spool
            .save_command(&record("b", "2026-01-02T00:00:00.000Z"))
            .await
            .expect("save");
        spool
            .save_command(&record("a", "2026-01-01T00:00:00.000Z"))
            .await
            .expect("save");

        let ids: Vec<String> = spool
            .load_commands()
            .await
            .expect("load")
            .into_iter()
            .map(|r| r.command_id)
            .collect();
        spool.finish_command("a").await.expect("finish");

        assert_eq!(ids, ["a", "b"]);
        assert!(spool.is_done("a").await);
        assert!(!spool.has_command("a").await);
        assert!(spool.has_command("b").await);
    }

    #[tokio::test]
    async fn replies_come_back_in_queue_order_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).await.expect("open");
        spool.queue_reply(&reply("zzz")).await.expect("queue");
        spool.queue_reply(&reply("aaa")).await.expect("queue");
        drop(spool);

        let spool = Spool::open(dir.path()).await.expect("reopen");
        spool.queue_reply(&reply("mmm")).await.expect("queue");
        let mut order = Vec::new();
        while let Some((path, reply)) = spool.next_reply().await.expect("next") {
            order.push(reply.reply_id);
            spool.remove_reply(&path).await.expect("remove");
        }

        assert_eq!(order, ["zzz", "aaa", "mmm"]);
    }

    #[tokio::test]
    async fn old_done_markers_and_their_outputs_are_pruned_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).await.expect("open");
        spool.mark_done("old").await.expect("mark");
        spool.mark_done("new").await.expect("mark");
        spool.step_dir("old", 0, "step").await.expect("dir");
        spool.step_dir("new", 0, "step").await.expect("dir");
        let long_ago = SystemTime::now() - DONE_RETENTION - Duration::from_secs(60);
        let marker = std::fs::File::options()
            .write(true)
            .open(dir.path().join("done/old"));
        marker
            .expect("marker")
            .set_modified(long_ago)
            .expect("backdate");

        drop(spool);
        let spool = Spool::open(dir.path()).await.expect("reopen");

        assert!(!spool.is_done("old").await);
        assert!(!dir.path().join("output/old").exists());
        assert!(spool.is_done("new").await);
        assert!(dir.path().join("output/new").exists());
    }

    #[test]
    fn ids_cannot_escape_the_state_directory() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._.._etc_passwd");
        assert_eq!(safe_name(".hidden"), "_.hidden");
        assert_eq!(safe_name(""), "_");
    }
}
