//! `tagrun up` as a user runs it: the real binary, a first command, a second run that
//! reuses the data, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Starts `tagrun up` and returns it with the lines it printed up to "Serving".
fn up(data_dir: &std::path::Path) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagrun"))
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tagrun starts");
    let stdout = child.stdout.take().expect("a stdout pipe");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("readable output");
        let done = line.starts_with("Serving until Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    (child, lines)
}

/// SIGTERM, then waits (bounded) for a clean exit.
fn stop(mut child: Child) {
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
    kill(pid, Signal::SIGTERM).expect("the process takes signals");
    let (exited, status) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait()));
    let status = status
        .recv_timeout(Duration::from_secs(30))
        .expect("tagrun up stops within 30 seconds")
        .expect("waitable");
    assert!(status.success(), "tagrun up exited with {status}");
}

fn field<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    let line = lines.iter().find(|l| l.starts_with(prefix));
    line.unwrap_or_else(|| panic!("no {prefix:?} in {lines:#?}"))[prefix.len()..].trim()
}

#[test]
fn up_runs_a_first_command_and_a_second_run_reuses_the_node() {
    let dir = tempfile::tempdir().expect("a temporary directory");

    let (first, lines) = up(dir.path());
    assert_eq!(field(&lines, "status:"), "Success", "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("Linux")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("export AWS_ACCESS_KEY_ID=AKIA"))
    );
    let node = field(&lines, "node:").to_owned();
    stop(first);

    let (second, again) = up(dir.path());
    assert_eq!(field(&again, "node:"), node);
    assert_eq!(field(&again, "status:"), "Success");
    stop(second);
}
