use super::*;

fn spec(dir: &Path, text: &str, timeout: Duration) -> ScriptSpec {
    ScriptSpec {
        dir: dir.to_owned(),
        interpreter: Interpreter::Sh,
        text: text.to_owned(),
        working_directory: None,
        timeout,
        environment: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
        kill_grace: Duration::from_secs(2),
        gate: crate::runner::Gate::open(),
    }
}

fn no_cancel() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

#[tokio::test]
async fn runs_a_script_and_records_its_exit_code_and_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "echo \"$GREETING\"\necho err >&2\nexit 3\n";
    let (_tx, mut rx) = no_cancel();

    let end = run_or_resume(&spec(dir.path(), text, Duration::from_secs(30)), &mut rx).await;

    assert_eq!(end, ScriptEnd::Exited(3));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stdout")).expect("stdout"),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stderr")).expect("stderr"),
        "err\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("exitcode")).expect("code"),
        "3\n"
    );
}

#[tokio::test]
async fn a_script_left_running_by_a_dead_agent_is_followed_not_rerun() {
    let dir = tempfile::tempdir().expect("tempdir");
    let count = dir.path().join("count");
    let text = format!("echo run >> {}\nsleep 1\nexit 7\n", count.display());
    let script = spec(dir.path(), &text, Duration::from_secs(30));
    let (_tx, mut rx) = no_cancel();

    // The first agent starts the script and dies before it ends.
    let first = tokio::time::timeout(Duration::from_millis(300), run_or_resume(&script, &mut rx));
    assert!(first.await.is_err(), "script should still run");
    let end = run_or_resume(&script, &mut rx).await;

    assert_eq!(end, ScriptEnd::Exited(7));
    assert_eq!(std::fs::read_to_string(&count).expect("count"), "run\n");
}

#[tokio::test]
async fn a_finished_script_reports_its_recorded_code_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = spec(dir.path(), "exit 4\n", Duration::from_secs(30));
    let (_tx, mut rx) = no_cancel();

    let first = run_or_resume(&script, &mut rx).await;
    let second = run_or_resume(&script, &mut rx).await;

    assert_eq!(
        (first, second),
        (ScriptEnd::Exited(4), ScriptEnd::Exited(4))
    );
}

#[tokio::test(start_paused = true)]
async fn stops_a_script_at_its_time_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_tx, mut rx) = no_cancel();

    let script = spec(dir.path(), "sleep 600\n", Duration::from_secs(60));
    let end = run_or_resume(&script, &mut rx).await;

    assert_eq!(end, ScriptEnd::TimedOut);
    assert_eq!(read_exit_code(dir.path()).await, None);
}

#[tokio::test]
async fn cancel_stops_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("child-survived");
    let text = format!("(sleep 2; touch {}) &\nsleep 600\n", marker.display());
    let script = spec(dir.path(), &text, Duration::from_secs(600));
    let (tx, mut rx) = no_cancel();

    let run = tokio::spawn(async move { run_or_resume(&script, &mut rx).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(true).expect("runner listens");
    let end = run.await.expect("task");
    tokio::time::sleep(Duration::from_millis(2500)).await;

    assert_eq!(end, ScriptEnd::Cancelled);
    assert!(!marker.exists(), "a helper process outlived the cancel");
}

#[tokio::test]
async fn a_started_script_without_process_is_reported_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Started {
        boot_id: boot_id().await,
        started_at_ms: now_ms(),
    };
    std::fs::write(
        dir.path().join("started"),
        serde_json::to_vec(&started).expect("json"),
    )
    .expect("write");
    let (_tx, mut rx) = no_cancel();

    let end = run_or_resume(
        &spec(dir.path(), "exit 0\n", Duration::from_secs(30)),
        &mut rx,
    )
    .await;

    assert!(matches!(end, ScriptEnd::Lost(reason) if reason.contains("without recording")));
}

#[tokio::test]
async fn a_missing_working_directory_fails_before_starting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut script = spec(dir.path(), "exit 0\n", Duration::from_secs(30));
    script.working_directory = Some(dir.path().join("absent"));
    let (_tx, mut rx) = no_cancel();

    let end = run_or_resume(&script, &mut rx).await;

    assert!(matches!(end, ScriptEnd::NotStarted(reason) if reason.contains("absent")));
    assert!(!dir.path().join("started").exists());
}

#[tokio::test]
async fn powershell_without_pwsh_is_a_clear_failure() {
    if find_powershell().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut script = spec(dir.path(), "Write-Output hi\n", Duration::from_secs(30));
    script.interpreter = Interpreter::PowerShell;
    let (_tx, mut rx) = no_cancel();

    let end = run_or_resume(&script, &mut rx).await;

    assert!(matches!(end, ScriptEnd::NotStarted(reason) if reason.contains("pwsh")));
}

#[tokio::test]
async fn a_script_sees_what_sh_would_show_it_and_its_exit_ends_only_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "echo \"$# ${c-none} ${f-none}\"\ncase \"$0\" in */_script.sh) echo named;; esac\n\
        trap 'echo trapped' EXIT\nexit 4\n";
    let (_tx, mut rx) = no_cancel();

    let end = run_or_resume(&spec(dir.path(), text, Duration::from_secs(30)), &mut rx).await;

    assert_eq!(end, ScriptEnd::Exited(4));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stdout")).expect("stdout"),
        "0 none none\nnamed\ntrapped\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("exitcode")).expect("code"),
        "4\n"
    );
}

#[tokio::test]
async fn a_script_that_execs_still_gets_its_exit_code_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_tx, mut rx) = no_cancel();

    let end = run_or_resume(
        &spec(dir.path(), "exec sh -c 'exit 7'\n", Duration::from_secs(30)),
        &mut rx,
    )
    .await;

    assert_eq!(end, ScriptEnd::Exited(7));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("exitcode")).expect("code"),
        "7\n"
    );
}

#[tokio::test]
async fn a_started_marker_cut_short_by_a_crash_means_the_script_never_ran() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("started"), b"{\"boot_id\":\"ab").expect("write");
    let (_tx, mut rx) = no_cancel();

    let end = run_or_resume(
        &spec(dir.path(), "echo ran\n", Duration::from_secs(30)),
        &mut rx,
    )
    .await;

    assert_eq!(end, ScriptEnd::Exited(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stdout")).expect("stdout"),
        "ran\n"
    );
    assert!(
        read_started(dir.path()).await.is_some(),
        "marker rewritten whole"
    );
}

#[tokio::test]
async fn a_shut_gate_leaves_the_script_unstarted_and_without_marker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ran = dir.path().join("ran");
    let mut script = spec(
        dir.path(),
        &format!("touch {}\n", ran.display()),
        Duration::from_secs(30),
    );
    let (switch, gate) = crate::runner::Gate::pending();
    script.gate = gate;
    let (_tx, mut rx) = no_cancel();

    drop(switch);
    let end = run_or_resume(&script, &mut rx).await;

    assert!(matches!(end, ScriptEnd::NotStarted(reason) if reason.contains("not stored")));
    assert!(!dir.path().join("started").exists());
    assert!(!ran.exists());
}

#[tokio::test]
async fn a_script_waits_for_its_gate_then_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut script = spec(dir.path(), "echo go\n", Duration::from_secs(30));
    let (switch, gate) = crate::runner::Gate::pending();
    script.gate = gate;
    let (_tx, mut rx) = no_cancel();

    let run = tokio::spawn(async move { run_or_resume(&script, &mut rx).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = !dir.path().join("pid").exists();
    switch.send_replace(Some(true));
    let end = run.await.expect("task");

    assert!(waiting, "the script started before its gate opened");
    assert_eq!(end, ScriptEnd::Exited(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stdout")).expect("stdout"),
        "go\n"
    );
}
