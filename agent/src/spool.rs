//! The agent's state on disk: commands in flight, replies not yet accepted, step outputs.
//!
//! Every state file is written whole through a temporary file beside it and a rename, so a
//! reader never sees a file half written by a running agent. Two ways make it durable:
//!
//! - [`write_atomic`] replaces a file that may hold state already (a command record as its
//!   steps end): temporary file, fsync, rename, directory fsync. A crash leaves the old or
//!   the new content, never a mix.
//! - [`write_new`] (and a [`Batch`] of files written together) creates files under names
//!   that hold nothing yet: every temporary file is renamed first, then all the files and
//!   their directories are synced at once, which costs one wait for the disk instead of
//!   two per file. A crash before the call returned may leave such a file empty or cut
//!   short under its name; every reader takes that as "never written", which is what it
//!   is, since nothing was done on the strength of it (see [`Spool::open`] for the rules).
//!
//! Small state files are read, listed and renamed on the calling thread: on a local disk
//! each call takes microseconds, less than a trip to tokio's blocking pool; only the syncs,
//! which wait for the disk, run on blocking threads.
//!
//! Files are removed without fsync: a removal lost in a power failure brings back a file
//! whose job was done, and each such leftover is harmless or cleared at start. Layout under
//! the state directory:
//!
//! ```text
//! commands/<CommandId>.json       a command in flight (CommandRecord)
//! done/<CommandId>                a finished command, so a redelivery never runs it again
//! replies/<seq>-<ReplyId>.json    SendReply requests waiting for the server, in order
//! output/<CommandId>/<n>-<step>/  _script.sh, stdout, stderr, exitcode of each step
//! ```
//!
//! A finished command's done marker and output are kept for 14 days.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tagrun_wire::messages::SendReplyRequest;
use tagrun_wire::reply::{PluginRuntimeStatus, ResultStatus};
use tokio::fs;
use tokio::task::JoinSet;
use tracing::{info, warn};

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
    /// Sequence numbers of replies whose files exist but are not yet durable; the outbox
    /// sends nothing from the first of them on, so a reply is on disk before it is sent.
    writing: Arc<Mutex<BTreeSet<u64>>>,
}

/// New files to make durable together with [`Spool::commit`]: a new command record, its
/// replies. Nothing is written until the commit.
#[derive(Debug, Default)]
pub struct Batch {
    files: Vec<(PathBuf, Vec<u8>)>,
    replies: Vec<u64>,
}

/// Takes reply sequence numbers out of [`Spool::writing`] when a commit ends, however it
/// ends.
struct Writing {
    set: Arc<Mutex<BTreeSet<u64>>>,
    sequences: Vec<u64>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut set = self
            .set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for sequence in &self.sequences {
            set.remove(sequence);
        }
    }
}

impl Spool {
    /// Opens (creating if needed) the state directory and its parts, and tidies what a
    /// crash may have left:
    ///
    /// - temporary files of writes that never finished are removed;
    /// - a command record that cannot be read is set aside as `.<name>.unreadable`: a
    ///   record is created whole before the command is acknowledged, so one cut short was
    ///   never acknowledged and the server delivers the command again, which must then
    ///   find its name free;
    /// - a command record beside its done marker is removed: the command finished and the
    ///   crash came before the record's removal reached the disk.
    pub async fn open(root: &Path) -> Result<Self, SpoolError> {
        for part in ["commands", "done", "replies", "output"] {
            let dir = root.join(part);
            fs::create_dir_all(&dir).await.map_err(io("create", &dir))?;
        }
        set_private(root).await?;
        sync_dirs(vec![root.to_owned()]).await?;
        let spool = Self {
            root: root.to_owned(),
            next_reply: AtomicU64::new(0),
            writing: Arc::new(Mutex::new(BTreeSet::new())),
        };
        for part in ["commands", "replies", "done"] {
            remove_temporary_files(&root.join(part)).await;
        }
        spool.recover_commands().await?;
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
        let bytes = record_bytes(&path, record)?;
        write_atomic(&path, &bytes).await
    }

    /// An empty batch of new files.
    pub fn batch(&self) -> Batch {
        Batch::default()
    }

    /// Adds the record of a command not stored yet to `batch`.
    pub fn stage_new_command(
        &self,
        batch: &mut Batch,
        record: &CommandRecord,
    ) -> Result<(), SpoolError> {
        let path = self.command_path(&record.command_id);
        let bytes = record_bytes(&path, record)?;
        batch.files.push((path, bytes));
        Ok(())
    }

    /// Adds a reply to `batch`; replies are sent in the order they were staged.
    pub fn stage_reply(
        &self,
        batch: &mut Batch,
        reply: &SendReplyRequest,
    ) -> Result<(), SpoolError> {
        let sequence = self.next_reply.fetch_add(1, Ordering::SeqCst);
        let name = format!("{sequence:020}-{}.json", safe_name(&reply.reply_id));
        let path = self.root.join("replies").join(name);
        let bytes = serde_json::to_vec_pretty(reply).map_err(|source| SpoolError::Corrupt {
            path: path.clone(),
            source,
        })?;
        batch.files.push((path, bytes));
        batch.replies.push(sequence);
        Ok(())
    }

    /// Writes the batch's files and returns once all of them are durable.
    ///
    /// The files are renamed and their syncs started at once; the wait for the syncs runs
    /// as a task of its own, so a caller that is cancelled (the agent abandons its workers
    /// when it stops) does not release the replies to the outbox before they are durable.
    pub async fn commit(&self, batch: Batch) -> Result<(), SpoolError> {
        self.lock_writing().extend(batch.replies.iter().copied());
        let done = Writing {
            set: Arc::clone(&self.writing),
            sequences: batch.replies,
        };
        let syncs = publish_all(batch.files, Vec::new())?;
        let wait = tokio::spawn(async move {
            let synced = wait_for_syncs(syncs).await;
            drop(done);
            synced
        });
        wait.await.unwrap_or_else(|join| Err(join_error(&join)))
    }

    fn lock_writing(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets unreadable records aside and drops those of finished commands; see [`open`].
    ///
    /// [`open`]: Spool::open
    async fn recover_commands(&self) -> Result<(), SpoolError> {
        let dir = self.root.join("commands");
        for path in list_files(&dir, ".json").await? {
            let bytes = fs::read(&path).await.map_err(io("read", &path))?;
            let Ok(record) = serde_json::from_slice::<CommandRecord>(&bytes) else {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let aside = dir.join(format!(".{name}.unreadable"));
                warn!(path = %path.display(), "setting aside an unreadable command record");
                fs::rename(&path, &aside)
                    .await
                    .map_err(io("set aside", &path))?;
                continue;
            };
            if self.is_done(&record.command_id).await {
                info!(command_id = %record.command_id, "dropping the record of a finished command");
                remove_if_present(&path).await?;
            }
        }
        Ok(())
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
        self.command_path(command_id).try_exists().unwrap_or(false)
    }

    /// Marks a command finished and forgets its record; the done marker is durable first,
    /// so a crash between the two never lets the command run again. The removal is not
    /// synced: a record that comes back after a power failure sits beside its done marker
    /// and [`Spool::open`] drops it.
    pub async fn finish_command(&self, command_id: &str) -> Result<(), SpoolError> {
        self.mark_done(command_id).await?;
        remove_if_present(&self.command_path(command_id)).await
    }

    /// Records that a command id must never run (finished, or refused as unreadable).
    pub async fn mark_done(&self, command_id: &str) -> Result<(), SpoolError> {
        write_new(vec![(self.done_path(command_id), Vec::new())], Vec::new()).await
    }

    /// Whether a command already finished on this node.
    pub async fn is_done(&self, command_id: &str) -> bool {
        self.done_path(command_id).try_exists().unwrap_or(false)
    }

    /// Stores a reply to send; replies are sent in the order they were queued.
    pub async fn queue_reply(&self, reply: &SendReplyRequest) -> Result<(), SpoolError> {
        let mut batch = self.batch();
        self.stage_reply(&mut batch, reply)?;
        self.commit(batch).await
    }

    /// The oldest reply waiting, if any. A reply still being made durable holds back
    /// itself and every later one, so order is kept; its commit wakes the outbox again.
    pub async fn next_reply(&self) -> Result<Option<(PathBuf, SendReplyRequest)>, SpoolError> {
        for path in self.reply_files().await? {
            if self.lock_writing().contains(&reply_sequence(&path)) {
                return Ok(None);
            }
            let bytes = std::fs::read(&path).map_err(io("read", &path))?;
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

    /// Forgets a reply the server accepted. Not synced: a reply that comes back after a
    /// power failure is sent once more, which the server takes as a repeat.
    pub async fn remove_reply(&self, path: &Path) -> Result<(), SpoolError> {
        std::fs::remove_file(path).map_err(io("remove", path))
    }

    /// Number of replies waiting.
    pub async fn pending_replies(&self) -> Result<usize, SpoolError> {
        Ok(self.reply_files().await?.len())
    }

    /// Removes whatever output a command has. Not synced: output that comes back after a
    /// power failure is cleared again when the command next arrives.
    pub fn clear_output(&self, command_id: &str) -> Result<(), SpoolError> {
        let dir = self.root.join("output").join(safe_name(command_id));
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("clear", &dir)(e)),
            _ => Ok(()),
        }
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
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
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
    written.unwrap_or_else(|join| Err(join_error(&join)))
}

fn write_atomic_blocking(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let dir = parent_of(path);
    let temp = temporary_path(path);

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io("create", &temp))?;
    file.write_all(bytes).map_err(io("write", &temp))?;
    // Data and size are what a reader needs; times and the like may be lost.
    file.sync_data().map_err(io("sync", &temp))?;
    drop(file);

    std::fs::rename(&temp, path).map_err(io("rename into place", path))?;
    sync_dir_blocking(dir)
}

/// Creates files under names that hold nothing yet and returns once they, and the extra
/// directories `dirs` (whose entries may be new too), are durable.
///
/// Each file is written to a temporary name and renamed, so a running reader sees it
/// whole or not at all; then every file and directory is synced at the same time, each
/// on a blocking thread, so the call waits for the disk about once. A crash before it
/// returned may leave a file empty or cut short under its name (its rename reached the
/// disk before its data): readers must take such a file as never written.
pub async fn write_new(
    files: Vec<(PathBuf, Vec<u8>)>,
    dirs: Vec<PathBuf>,
) -> Result<(), SpoolError> {
    let syncs = publish_all(files, dirs)?;
    wait_for_syncs(syncs).await
}

/// Syncs running on blocking threads.
type Syncs = JoinSet<Result<(), SpoolError>>;

/// Renames every file into place, then starts syncing the files and the directories (their
/// own and `dirs`). If a file cannot be written, those already renamed are removed again.
fn publish_all(files: Vec<(PathBuf, Vec<u8>)>, dirs: Vec<PathBuf>) -> Result<Syncs, SpoolError> {
    let mut dirs: BTreeSet<PathBuf> = dirs.into_iter().collect();
    dirs.extend(files.iter().map(|(path, _)| parent_of(path).to_owned()));
    let mut written = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        match publish(&path, &bytes) {
            Ok(file) => written.push((path, file)),
            Err(error) => {
                unpublish(&written);
                return Err(error);
            }
        }
    }

    let mut syncs = JoinSet::new();
    for (path, file) in written {
        syncs.spawn_blocking(move || file.sync_data().map_err(io("sync", &path)));
    }
    for dir in dirs {
        syncs.spawn_blocking(move || sync_dir_blocking(&dir));
    }
    Ok(syncs)
}

fn unpublish(written: &[(PathBuf, std::fs::File)]) {
    for (path, _) in written {
        if let Err(error) = std::fs::remove_file(path) {
            warn!(%error, path = %path.display(), "could not remove a file of a failed write");
        }
    }
}

async fn wait_for_syncs(mut syncs: Syncs) -> Result<(), SpoolError> {
    let mut result = Ok(());
    while let Some(joined) = syncs.join_next().await {
        let synced = joined.unwrap_or_else(|join| Err(join_error(&join)));
        result = result.and(synced);
    }
    result
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place, unsynced.
fn publish(path: &Path, bytes: &[u8]) -> Result<std::fs::File, SpoolError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let temp = temporary_path(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io("create", &temp))?;
    file.write_all(bytes).map_err(io("write", &temp))?;
    std::fs::rename(&temp, path).map_err(io("rename into place", path))?;
    Ok(file)
}

/// Makes the entries of directories durable, all at once.
async fn sync_dirs(dirs: Vec<PathBuf>) -> Result<(), SpoolError> {
    write_new(Vec::new(), dirs).await
}

fn sync_dir_blocking(dir: &Path) -> Result<(), SpoolError> {
    let handle = std::fs::File::open(dir).map_err(io("open", dir))?;
    handle.sync_all().map_err(io("sync", dir))
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    parent_of(path).join(format!(".{name}.tmp"))
}

fn join_error(join: &tokio::task::JoinError) -> SpoolError {
    SpoolError::Io {
        action: "write",
        path: PathBuf::new(),
        source: std::io::Error::other(join.to_string()),
    }
}

fn record_bytes(path: &Path, record: &CommandRecord) -> Result<Vec<u8>, SpoolError> {
    serde_json::to_vec_pretty(record).map_err(|source| SpoolError::Corrupt {
        path: path.to_owned(),
        source,
    })
}

async fn remove_if_present(path: &Path) -> Result<(), SpoolError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes the temporary files of writes a crash interrupted; their names are unique to
/// the file they were for, so some would otherwise stay for good.
async fn remove_temporary_files(dir: &Path) {
    let Ok(mut entries) = fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.')
            && name.ends_with(".tmp")
            && let Err(error) = fs::remove_file(entry.path()).await
        {
            warn!(%error, path = %entry.path().display(), "could not remove a temporary file");
        }
    }
}

/// Restricts a directory to its owner.
async fn set_private(dir: &Path) -> Result<(), SpoolError> {
    use std::os::unix::fs::PermissionsExt;

    let permissions = std::fs::Permissions::from_mode(0o700);
    std::fs::set_permissions(dir, permissions).map_err(io("restrict", dir))
}

async fn list_files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, SpoolError> {
    let entries = std::fs::read_dir(dir).map_err(io("list", dir))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("list", dir))?;
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

    #[tokio::test]
    async fn a_record_cut_short_by_a_crash_is_set_aside_so_the_command_can_come_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).await.expect("open");
        spool
            .save_command(&record("whole", "2026-01-01T00:00:00.000Z"))
            .await
            .expect("save");
        std::fs::write(dir.path().join("commands/cut.json"), b"{\"message_id\":").expect("cut");
        drop(spool);

        let spool = Spool::open(dir.path()).await.expect("reopen");

        assert!(!spool.has_command("cut").await);
        assert!(spool.has_command("whole").await);
        assert!(dir.path().join("commands/.cut.json.unreadable").exists());
        let loaded = spool.load_commands().await.expect("load");
        assert_eq!(loaded, [record("whole", "2026-01-01T00:00:00.000Z")]);
    }

    #[tokio::test]
    async fn a_record_left_beside_its_done_marker_is_dropped_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).await.expect("open");
        let finished = record("finished", "2026-01-01T00:00:00.000Z");
        spool.save_command(&finished).await.expect("save");
        spool.finish_command("finished").await.expect("finish");
        // A power failure can undo the record's unsynced removal.
        spool.save_command(&finished).await.expect("comes back");
        drop(spool);

        let spool = Spool::open(dir.path()).await.expect("reopen");

        assert!(spool.load_commands().await.expect("load").is_empty());
        assert!(spool.is_done("finished").await);
    }

    #[tokio::test]
    async fn temporary_files_of_interrupted_writes_are_removed_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Spool::open(dir.path()).await.expect("open"));
        for name in [
            "commands/.c.json.tmp",
            "replies/.0001-r.json.tmp",
            "done/.c.tmp",
        ] {
            std::fs::write(dir.path().join(name), b"half").expect("write");
        }

        drop(Spool::open(dir.path()).await.expect("reopen"));

        for part in ["commands", "replies", "done"] {
            let left = std::fs::read_dir(dir.path().join(part))
                .expect("list")
                .count();
            assert_eq!(left, 0, "{part}");
        }
    }

    #[tokio::test]
    async fn a_batch_stores_a_new_record_and_its_replies_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).await.expect("open");
        let mut batch = spool.batch();
        spool
            .stage_new_command(&mut batch, &record("c", "2026-01-01T00:00:00.000Z"))
            .expect("stage record");
        spool.stage_reply(&mut batch, &reply("r1")).expect("stage");
        spool.stage_reply(&mut batch, &reply("r2")).expect("stage");

        assert!(
            !spool.has_command("c").await,
            "nothing written before the commit"
        );
        spool.commit(batch).await.expect("commit");

        assert!(spool.has_command("c").await);
        assert_eq!(spool.pending_replies().await.expect("count"), 2);
        assert!(spool.writing.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_commit_whose_caller_is_cancelled_still_finishes_then_releases_its_reply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Arc::new(Spool::open(dir.path()).await.expect("open"));
        let mut batch = spool.batch();
        // Large enough that syncing it to disk outlasts the checks below by far, so the
        // test sees the reply while it is being written on any machine.
        let mut large = reply("r");
        large.payload = "x".repeat(8 << 20);
        spool.stage_reply(&mut batch, &large).expect("stage");
        let caller = {
            let spool = Arc::clone(&spool);
            tokio::spawn(async move { spool.commit(batch).await })
        };

        tokio::task::yield_now().await;
        let held = !spool.writing.lock().expect("lock").is_empty();
        caller.abort();
        tokio::task::yield_now().await;
        let held_after_cancel = !spool.writing.lock().expect("lock").is_empty();
        for _ in 0..3000 {
            if spool.writing.lock().expect("lock").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        assert!(held, "the reply was not held while being written");
        assert!(
            held_after_cancel,
            "the cancel released a reply not yet durable"
        );
        assert!(spool.writing.lock().expect("lock").is_empty());
        assert_eq!(spool.pending_replies().await.expect("count"), 1);
    }

    #[tokio::test]
    async fn a_group_that_cannot_be_written_whole_leaves_none_of_its_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = dir.path().join("first.json");
        let unwritable = dir.path().join("missing-dir/second.json");

        let result = write_new(
            vec![
                (first.clone(), b"{}".to_vec()),
                (unwritable, b"{}".to_vec()),
            ],
            Vec::new(),
        )
        .await;

        assert!(result.is_err());
        assert!(!first.exists());
    }

    #[tokio::test]
    async fn a_reply_not_yet_durable_holds_back_itself_and_later_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).await.expect("open");
        spool.queue_reply(&reply("first")).await.expect("queue");
        spool.queue_reply(&reply("second")).await.expect("queue");
        let files = spool.reply_files().await.expect("list");
        let first = reply_sequence(&files[0]);

        spool.writing.lock().expect("lock").insert(first);
        let held = spool.next_reply().await.expect("next");
        spool.writing.lock().expect("lock").remove(&first);
        let released = spool.next_reply().await.expect("next");

        assert!(held.is_none());
        assert_eq!(released.expect("a reply").1.reply_id, "first");
    }

    #[tokio::test]
    async fn clearing_output_removes_a_commands_leftovers_and_tolerates_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).await.expect("open");
        let step = spool.step_dir("c", 0, "step").await.expect("dir");
        std::fs::write(step.join("started"), b"{}").expect("marker");

        spool.clear_output("c").expect("clear");
        spool.clear_output("never-seen").expect("nothing to clear");

        assert!(!dir.path().join("output/c").exists());
    }

    #[test]
    fn ids_cannot_escape_the_state_directory() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._.._etc_passwd");
        assert_eq!(safe_name(".hidden"), "_.hidden");
        assert_eq!(safe_name(""), "_");
    }
}
