use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use tagrun_wire::sigv4::{Credentials, JsonCall, sign_json_call};

use super::*;

const BODY: &[u8] = br#"{"Name":"AWS-RunShellScript"}"#;

fn credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIAEXAMPLEALICE0001".into(),
        secret_access_key: "alice-secret".into(),
        session_token: None,
    }
}

/// Headers of a request signed at `at`, as a client would send them.
fn signed_headers(at: SystemTime, service: &str) -> HeaderMap {
    let amz_date = tagrun_wire::time::amz_date(at);
    let call = JsonCall {
        host: "127.0.0.1:7733",
        target: "AmazonSSM.GetDocument",
        body: BODY,
        region: "us-east-1",
        service,
        amz_date: &amz_date,
    };
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:7733"));
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(
        "x-amz-target",
        HeaderValue::from_static("AmazonSSM.GetDocument"),
    );
    for (name, value) in sign_json_call(&credentials(), &call) {
        let name = HeaderName::try_from(name.to_ascii_lowercase()).unwrap();
        headers.insert(name, HeaderValue::try_from(value).unwrap());
    }
    headers
}

#[test]
fn accepts_a_correctly_signed_request() {
    let now = SystemTime::now();
    let headers = signed_headers(now, "ssm");

    let signed = SignedRequest::parse(&headers, BODY, now).unwrap().unwrap();

    signed.check_scope("us-east-1", "ssm").unwrap();
    signed.verify_hmac("alice-secret").unwrap();
}

#[test]
fn rejects_a_wrong_secret_and_a_changed_body() {
    let now = SystemTime::now();
    let headers = signed_headers(now, "ssm");

    let signed = SignedRequest::parse(&headers, BODY, now).unwrap().unwrap();
    let error = signed.verify_hmac("other-secret").unwrap_err();
    let tampered = SignedRequest::parse(&headers, b"{}", now).unwrap().unwrap();

    assert_eq!(error.code, "InvalidSignatureException");
    assert!(tampered.verify_hmac("alice-secret").is_err());
}

#[test]
fn rejects_requests_outside_the_fifteen_minute_window() {
    let now = SystemTime::now();
    let old = signed_headers(now - Duration::from_secs(16 * 60), "ssm");
    let future = signed_headers(now + Duration::from_secs(16 * 60), "ssm");
    let edge = signed_headers(now - Duration::from_secs(14 * 60), "ssm");

    let old = SignedRequest::parse(&old, BODY, now).unwrap_err();
    let future = SignedRequest::parse(&future, BODY, now).unwrap_err();

    assert!(
        old.message.starts_with("Signature expired:"),
        "{}",
        old.message
    );
    assert!(
        future.message.starts_with("Signature not yet current:"),
        "{}",
        future.message
    );
    assert!(SignedRequest::parse(&edge, BODY, now).is_ok());
}

#[test]
fn scope_must_name_the_service_and_region() {
    let now = SystemTime::now();
    let headers = signed_headers(now, "ec2messages");
    let signed = SignedRequest::parse(&headers, BODY, now).unwrap().unwrap();

    let wrong_service = signed.check_scope("us-east-1", "ssm").unwrap_err();
    let wrong_region = signed.check_scope("eu-west-1", "ec2messages").unwrap_err();

    assert!(wrong_service.message.contains("correct service: 'ssm'"));
    assert!(wrong_region.message.contains("not 'us-east-1'"));
}

#[test]
fn malformed_and_missing_headers_have_their_own_codes() {
    let now = SystemTime::now();
    let mut headers = signed_headers(now, "ssm");
    headers.insert(
        "authorization",
        HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x"),
    );
    let malformed = SignedRequest::parse(&headers, BODY, now).unwrap_err();

    let empty = HeaderMap::new();
    let unsigned = SignedRequest::parse(&empty, BODY, now).unwrap();

    assert_eq!(malformed.code, "IncompleteSignatureException");
    assert!(unsigned.is_none());
}

#[test]
fn amz_dates_parse_to_the_second() {
    let at = parse_amz_date("20150830T123600Z").unwrap();

    assert_eq!(
        at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
        1_440_938_160
    );
    assert!(parse_amz_date("2015-08-30T12:36:00Z").is_none());
}
