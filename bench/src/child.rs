//! The real `tagrun-server` binary as a child process: started on a generated
//! configuration, found through the first line it prints, watched through `/proc`, and
//! stopped with SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::cpu;

/// How long the server may take to print its address (10,000 static nodes take a while).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a stopping server may drain before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    /// The address it listens on.
    pub address: SocketAddr,
    /// From spawning the process to reading its address: opening the database and
    /// storing the static nodes included.
    pub start_time: Duration,
    /// Where its log (stderr) goes.
    pub log: PathBuf,
    child: Child,
    pid: u32,
    // Held open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most it has been resident, in KiB.
    pub peak_kib: u64,
}

impl Memory {
    /// `kib` in MiB, rounded to three decimals.
    pub fn mib(kib: u64) -> f64 {
        crate::load::round3(kib as f64 / 1024.0)
    }
}

impl ServerProcess {
    /// Starts `binary serve --config config --listen 127.0.0.1:0` with its log in
    /// `log`, filtered by `filter` (`RUST_LOG`), and waits for its address.
    pub async fn start(
        binary: &Path,
        config: &Path,
        log: &Path,
        filter: &str,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("creating the server log {}", log.display()))?;
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;

        let pid = child.id().context("the server exited at once")?;
        let stdout = child
            .stdout
            .take()
            .context("the server's stdout is missing")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut line)).await;
        read.context("the server did not print its address in time")?
            .context("reading the server's first line")?;
        let address = parse_listening(&line)
            .map_err(|message| anyhow!("{message}; the server log is {}", log.display()))?;

        Ok(ServerProcess {
            address,
            start_time: started.elapsed(),
            log: log.to_owned(),
            child,
            pid,
            _stdout: stdout,
        })
    }

    /// The process id, for `perf` and `/proc`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its resident memory now and at its peak.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_memory(&status).with_context(|| format!("no VmRSS or VmHWM in {path}"))
    }

    /// CPU time its threads have used since it started.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu::process_cpu_time(self.pid).context("reading the server's CPU time")
    }

    /// Sends SIGTERM and waits for the exit, killing the process after a grace period.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = i32::try_from(self.pid).context("process id out of range")?;
        kill(Pid::from_raw(pid), Signal::SIGTERM).context("signalling the server")?;
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for the server")?;
                if !status.success() {
                    bail!(
                        "the server exited with {status}; see {}",
                        self.log.display()
                    );
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await.context("killing the server")?;
                bail!("the server did not stop within {STOP_TIMEOUT:?} and was killed")
            }
        }
    }
}

/// Raises this process's open-file limit to the hard limit, so thousands of connections
/// fit; children (the server) inherit it. Returns the new soft limit.
pub fn raise_open_files_limit() -> nix::Result<u64> {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// The server binary: `given`, else `tagrun-server` next to this program (both are
/// built into the same target directory).
pub fn server_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    let me = std::env::current_exe().context("locating this program")?;
    let mut dir = me.parent().context("this program has no directory")?;
    // Test binaries live one level further down, in `deps/`.
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    let candidate = dir.join("tagrun-server");
    if candidate.is_file() {
        return Ok(candidate);
    }
    bail!(
        "{} does not exist; build it with `cargo build --release -p tagrun-server` or pass \
         --server-binary",
        candidate.display()
    )
}

/// The address in `listening on http://ADDR`.
fn parse_listening(line: &str) -> Result<SocketAddr, String> {
    let line = line.trim_end();
    let address = line
        .strip_prefix("listening on http://")
        .ok_or_else(|| format!("unexpected first line from the server: {line:?}"))?;
    address
        .parse()
        .map_err(|_| format!("not an address in the server's first line: {line:?}"))
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text.
fn parse_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let value = line[name.len()..].trim().trim_end_matches("kB").trim();
        value.parse::<u64>().ok()
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_from_the_first_line() {
        let address = parse_listening("listening on http://127.0.0.1:40123\n").unwrap();

        assert_eq!(address, SocketAddr::from(([127, 0, 0, 1], 40123)));
        assert!(parse_listening("listening on https://127.0.0.1:1\n").is_err());
        assert!(parse_listening("listening on http://nowhere\n").is_err());
    }

    #[test]
    fn reads_resident_and_peak_memory() {
        let status = "Name:\ttagrun-server\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";

        let memory = parse_memory(status).unwrap();

        assert_eq!(memory.rss_kib, 10240);
        assert_eq!(memory.peak_kib, 20480);
        assert_eq!(Memory::mib(memory.peak_kib), 20.0);
        assert_eq!(parse_memory("Name:\tx\nVmRSS:\t1 kB\n"), None);
    }

    #[test]
    fn this_process_has_resident_memory() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();

        let memory = parse_memory(&status).unwrap();

        assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib);
    }
}
