//! The real `tagrun-server` binary: it announces its address, serves, stops cleanly on
//! SIGTERM, refuses a bad configuration in one line, caps request bodies and keeps its
//! SQLite database in WAL mode.

mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use common::{READER_KEY, READER_SECRET, Reply};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the binary may take to print its address, or to exit.
const DEADLINE: Duration = Duration::from_secs(25);

/// A configuration file with one read-only user, in the format operators write.
fn config_text() -> String {
    format!(
        "region = \"us-east-1\"\n\
         account_id = \"123456789012\"\n\
         \n\
         [[users]]\n\
         name = \"reader\"\n\
         access_key_id = \"{READER_KEY}\"\n\
         secret_access_key = \"{READER_SECRET}\"\n\
         managed_policies = [\"AmazonSSMReadOnlyAccess\"]\n"
    )
}

/// `tagrun-server serve` on a free loopback port with the config file `config`.
fn command(config: &Path, data_dir: &Path, stderr: Stdio) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagrun-server"));
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    command
}

/// A running server process and the directory holding its files.
struct ServerProcess {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the binary and waits (bounded) for its `listening on http://ADDR` line.
    async fn start() -> ServerProcess {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("server.toml");
        std::fs::write(&config, config_text()).expect("config written");
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log created");
        let mut child = command(&config, &dir.path().join("data"), log.into())
            .spawn()
            .expect("the server binary starts");

        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the address is printed before the deadline")
            .expect("stdout is readable")
            .expect("stdout has a first line");
        let address = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        ServerProcess {
            child,
            address,
            dir,
        }
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join("data").join("tagrun.db")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    async fn terminate(&mut self) -> ExitStatus {
        let id = self.child.id().expect("the server is still running");
        let pid = Pid::from_raw(i32::try_from(id).expect("a pid fits in i32"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM is delivered");
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("the server exits before the deadline")
            .expect("the exit status is readable")
    }

    /// A signed `DescribeInstanceInformation` call with `body`.
    async fn describe(&self, body: Vec<u8>) -> Reply {
        let target = "AmazonSSM.DescribeInstanceInformation";
        let headers = common::signed_headers(&common::reader(), &self.address, target, &body);
        let url = format!("http://{}/", self.address);
        let client = reqwest::Client::new();
        let response = common::request(&client, &url, target, &body, &headers)
            .send()
            .await
            .expect("the server answers");
        Reply::read(response).await
    }
}

/// Runs the binary on a config file holding `text` and waits (bounded) for it to exit.
async fn run_with_config(text: &str) -> (ExitStatus, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, text).expect("config written");

    let child = command(&config, &dir.path().join("data"), Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("the server exits before the deadline")
        .expect("the output is readable");
    let stderr = String::from_utf8(output.stderr).expect("stderr is text");
    (output.status, stderr, config, dir)
}

#[tokio::test]
async fn serves_a_signed_call_then_exits_cleanly_on_sigterm() {
    let mut server = ServerProcess::start().await;

    let reply = server.describe(b"{}".to_vec()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.body["InstanceInformationList"].is_array());

    let status = server.terminate().await;
    assert!(status.success(), "{status}; stderr:\n{}", server.stderr());
}

#[tokio::test]
async fn body_over_one_mebibyte_is_refused_with_413() {
    let mut server = ServerProcess::start().await;
    let mut body = b"{\"NextToken\":\"".to_vec();
    body.resize(1024 * 1024 + 1, b'a');
    body.extend_from_slice(b"\"}");

    let reply = server.describe(body).await;

    assert_eq!(reply.status, 413, "{:?}", reply.body);
    assert_eq!(reply.error_type(), Some("SerializationException"));
    reply.assert_request_id();
    assert!(server.terminate().await.success());
}

#[tokio::test]
async fn sqlite_database_is_in_wal_mode() {
    let mut server = ServerProcess::start().await;
    assert_eq!(server.describe(b"{}".to_vec()).await.status, 200);
    assert!(server.terminate().await.success());

    // Opened without naming a journal mode, so the connection reports the file's own.
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(server.database());
    let mut connection = sqlx::ConnectOptions::connect(&options)
        .await
        .expect("the database opens");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut connection)
        .await
        .expect("the pragma answers");

    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn unknown_config_key_stops_it_with_one_line_naming_file_and_key() {
    let (status, stderr, config, _dir) =
        run_with_config("listen = \"127.0.0.1:0\"\nlisten_adress = \"x\"\n").await;

    assert!(!status.success(), "{status}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    assert!(stderr.contains("listen_adress"), "{stderr}");
}

#[tokio::test]
async fn invalid_config_value_stops_it_with_one_line_naming_file_and_key() {
    let (status, stderr, config, _dir) = run_with_config("account_id = \"12345\"\n").await;

    assert!(!status.success(), "{status}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    assert!(stderr.contains("account_id"), "{stderr}");
}
