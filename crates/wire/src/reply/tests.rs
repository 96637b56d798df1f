use super::*;
use ResultStatus::*;

#[test]
fn reboot_wins_over_failure_and_failure_over_timeout() {
    assert_eq!(
        document_status(&[Failed, SuccessAndReboot]),
        SuccessAndReboot
    );
    assert_eq!(document_status(&[TimedOut, Failed, Cancelled]), Failed);
    assert_eq!(document_status(&[Cancelled, TimedOut]), TimedOut);
    assert_eq!(document_status(&[Success, Cancelled]), Cancelled);
}

#[test]
fn skipped_steps_count_as_success() {
    assert_eq!(document_status(&[Success, Skipped]), Success);
    assert_eq!(document_status(&[]), Success);
}

#[test]
fn unfinished_steps_keep_the_document_in_progress() {
    assert_eq!(document_status(&[Success, NotStarted]), InProgress);
    assert_eq!(document_status(&[InProgress]), InProgress);
}

#[test]
fn merging_prefers_the_graver_status() {
    assert_eq!(merge_status(Success, Skipped), Success);
    assert_eq!(merge_status(Failed, TimedOut), TimedOut);
    assert_eq!(merge_status(InProgress, SuccessAndReboot), InProgress);
}

#[test]
fn counts_statuses_by_wire_name() {
    let counts = status_counts(&[Success, Failed, Success]);

    assert_eq!(counts.get("Success"), Some(&2));
    assert_eq!(counts.get("Failed"), Some(&1));
}

#[test]
fn short_output_is_joined_with_the_error_separator() {
    assert_eq!(combined_output("hi\n", ""), "hi\n");
    assert_eq!(
        combined_output("hi\n", "err\n"),
        "hi\n\n----------ERROR-------\nerr\n"
    );
}

#[test]
fn long_stdout_alone_is_cut_with_its_marker() {
    let stdout = "a".repeat(3000);

    let output = combined_output(&stdout, "");

    assert_eq!(output.len(), OUTPUT_LIMIT);
    assert!(output.ends_with(OUTPUT_TRUNCATED));
}

#[test]
fn both_streams_over_half_get_half_the_space_each() {
    let output = combined_output(&"o".repeat(2000), &"e".repeat(2000));

    assert_eq!(output.len(), OUTPUT_LIMIT);
    let (out, err) = output
        .split_once(ERROR_SEPARATOR)
        .expect("separator present");
    assert!(out.ends_with(OUTPUT_TRUNCATED) && err.ends_with(ERROR_TRUNCATED));
    assert_eq!(out.len(), (OUTPUT_LIMIT - ERROR_SEPARATOR.len()) / 2);
}

#[test]
fn only_the_longer_stream_is_cut_when_the_other_is_short() {
    let output = combined_output("short", &"e".repeat(4000));

    assert_eq!(output.len(), OUTPUT_LIMIT);
    assert!(output.starts_with("short\n----------ERROR-------\n"));
    assert!(output.ends_with(ERROR_TRUNCATED));
}

#[test]
fn cuts_never_split_a_character() {
    let output = combined_output(&"é".repeat(2000), "");

    assert!(output.len() <= OUTPUT_LIMIT);
    assert!(output.ends_with(OUTPUT_TRUNCATED));
}

#[test]
fn standard_streams_are_cut_at_the_limit_with_suffix() {
    let under = "x".repeat(STANDARD_STREAM_LIMIT - 1);
    let over = "x".repeat(STANDARD_STREAM_LIMIT * 2);

    assert_eq!(truncate_stream(&under), under);
    let cut = truncate_stream(&over);
    assert_eq!(cut.len(), STANDARD_STREAM_LIMIT);
    assert!(cut.ends_with(STREAM_TRUNCATED));
}

#[test]
fn receipt_reply_serializes_like_the_captured_agent() {
    let payload = ReplyPayload {
        additional_info: AdditionalInfo {
            agent: AgentInfo {
                lang: "en-US".to_owned(),
                name: "amazon-ssm-agent".to_owned(),
                os: String::new(),
                osver: "1".to_owned(),
                ver: "3.3.0.0".to_owned(),
            },
            date_time: "2026-12-03T12:50:55.333Z".to_owned(),
            run_id: String::new(),
            runtime_status_counts: None,
            able_to_open_mgs_connection: Some(false),
        },
        document_status: InProgress,
        document_trace_output: String::new(),
        runtime_status: None,
    };

    let json = serde_json::to_string(&payload).expect("serializes");

    assert_eq!(
        json,
        concat!(
            r#"{"additionalInfo":{"agent":{"lang":"en-US","name":"amazon-ssm-agent","os":"","#,
            r#""osver":"1","ver":"3.3.0.0"},"dateTime":"2026-12-03T12:50:55.333Z","runId":"","#,
            r#""runtimeStatusCounts":null,"ableToOpenMGSConnection":false},"#,
            r#""documentStatus":"InProgress","documentTraceOutput":"","runtimeStatus":null}"#
        )
    );
}

#[test]
fn step_result_reads_the_captured_shape() {
    let text = r#"{"status":"Success","code":0,"name":"aws:runShellScript","output":"hello\n",
        "startDateTime":"2026-12-03T12:50:55.386Z","endDateTime":"2026-12-03T12:50:55.468Z",
        "outputS3BucketName":"","outputS3KeyPrefix":"","stepName":"",
        "standardOutput":"hello\n","standardError":""}"#;

    let step: PluginRuntimeStatus = serde_json::from_str(text).expect("parses");
    let back = serde_json::to_value(&step).expect("serializes");

    assert_eq!(step.status, Success);
    assert_eq!(back["outputS3BucketName"], "");
    assert_eq!(back["standardOutput"], "hello\n");
}
