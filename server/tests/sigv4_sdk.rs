//! Requests signed by AWS's own `aws-sigv4` crate against an in-process server: what the
//! SDKs send is accepted, and each kind of bad credential gets AWS's error code.

mod common;

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use common::{READER_KEY, READER_SECRET, REGION, Reply, TestServer};
use tagrun_wire::sigv4::JSON_CONTENT_TYPE;

const TARGET: &str = "AmazonSSM.DescribeInstanceInformation";

/// What the SDK signs with: a key pair, perhaps a session token, and a clock reading.
struct SdkSigner<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: Option<&'a str>,
    time: SystemTime,
}

impl<'a> SdkSigner<'a> {
    fn new(access_key_id: &'a str, secret_access_key: &'a str) -> SdkSigner<'a> {
        SdkSigner {
            access_key_id,
            secret_access_key,
            session_token: None,
            time: SystemTime::now(),
        }
    }

    /// The headers `aws-sigv4` adds to a JSON 1.1 `POST /` to `host` with `body`.
    fn headers(&self, host: &str, body: &[u8]) -> Vec<(String, String)> {
        let credentials = aws_credential_types::Credentials::new(
            self.access_key_id,
            self.secret_access_key,
            self.session_token.map(str::to_owned),
            None,
            "integration-test",
        );
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("ssm")
            .time(self.time)
            .settings(SigningSettings::default())
            .build()
            .expect("complete signing parameters")
            .into();

        let url = format!("http://{host}/");
        let headers = [
            ("content-type", JSON_CONTENT_TYPE),
            ("x-amz-target", TARGET),
        ];
        let request =
            SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
                .expect("a signable request");
        let (instructions, _signature) = sign(request, &params).expect("signed").into_parts();
        instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }
}

/// Sends `body` with `headers` to `server` and reads the reply.
async fn call(server: &TestServer, body: &[u8], headers: &[(String, String)]) -> Reply {
    let client = reqwest::Client::new();
    let url = format!("http://{}/", server.address);
    let response = common::request(&client, &url, TARGET, body, headers)
        .send()
        .await
        .expect("the server answers");
    Reply::read(response).await
}

async fn started() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(common::config(dir.path())).await;
    (server, dir)
}

#[tokio::test]
async fn request_signed_by_the_sdk_is_accepted() {
    let (server, _dir) = started().await;
    let headers = SdkSigner::new(READER_KEY, READER_SECRET).headers(&server.host(), b"{}");

    let reply = call(&server, b"{}", &headers).await;

    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(
        reply.body["InstanceInformationList"].is_array(),
        "{}",
        reply.body
    );
    reply.assert_request_id();
    server.stop().await;
}

#[tokio::test]
async fn sdk_and_our_signer_produce_the_same_authorization() {
    let now = SystemTime::now();
    let mut sdk = SdkSigner::new(READER_KEY, READER_SECRET);
    sdk.time = now;
    let host = "127.0.0.1:7733";
    let amz_date = tagrun_wire::time::amz_date(now);
    let call = tagrun_wire::sigv4::JsonCall {
        host,
        target: TARGET,
        body: b"{}",
        region: REGION,
        service: "ssm",
        amz_date: &amz_date,
    };

    let ours = tagrun_wire::sigv4::sign_json_call(&common::reader(), &call);
    let theirs = sdk.headers(host, b"{}");

    let authorization = |headers: &[(String, String)]| {
        let found = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"));
        found.map(|(_, v)| v.clone())
    };
    assert!(authorization(&ours).is_some());
    assert_eq!(authorization(&ours), authorization(&theirs));
}

#[tokio::test]
async fn signature_by_a_wrong_secret_is_invalid() {
    let (server, _dir) = started().await;
    let headers = SdkSigner::new(READER_KEY, "not-the-secret").headers(&server.host(), b"{}");

    let reply = call(&server, b"{}", &headers).await;

    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_type(), Some("InvalidSignatureException"));
    let message = reply.message().expect("a message");
    assert!(
        message.starts_with("The request signature we calculated"),
        "{message}"
    );
    reply.assert_request_id();
    server.stop().await;
}

#[tokio::test]
async fn body_changed_after_signing_is_invalid() {
    let (server, _dir) = started().await;
    let signed_body = br#"{"MaxResults":5}"#;
    let headers = SdkSigner::new(READER_KEY, READER_SECRET).headers(&server.host(), signed_body);

    let reply = call(&server, br#"{"MaxResults":6}"#, &headers).await;

    assert_eq!(reply.error_type(), Some("InvalidSignatureException"));
    server.stop().await;
}

#[tokio::test]
async fn unknown_access_key_is_unrecognized() {
    let (server, _dir) = started().await;
    let signer = SdkSigner::new("AKIAEXAMPLEUNKNOWN01", READER_SECRET);
    let headers = signer.headers(&server.host(), b"{}");

    let reply = call(&server, b"{}", &headers).await;

    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_type(), Some("UnrecognizedClientException"));
    assert_eq!(
        reply.message(),
        Some("The security token included in the request is invalid.")
    );
    reply.assert_request_id();
    server.stop().await;
}

#[tokio::test]
async fn session_token_on_a_key_without_one_is_rejected() {
    let (server, _dir) = started().await;
    let mut signer = SdkSigner::new(READER_KEY, READER_SECRET);
    signer.session_token = Some("a-token-this-user-was-never-given");
    let headers = signer.headers(&server.host(), b"{}");
    let has_token = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("x-amz-security-token"));
    assert!(has_token, "the SDK sends the token: {headers:?}");

    let reply = call(&server, b"{}", &headers).await;

    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.error_type(), Some("UnrecognizedClientException"));
    reply.assert_request_id();
    server.stop().await;
}

#[tokio::test]
async fn signature_older_than_fifteen_minutes_has_expired() {
    let (server, _dir) = started().await;
    let mut signer = SdkSigner::new(READER_KEY, READER_SECRET);
    signer.time = SystemTime::now() - Duration::from_secs(20 * 60);
    let headers = signer.headers(&server.host(), b"{}");

    let reply = call(&server, b"{}", &headers).await;

    assert_eq!(reply.error_type(), Some("InvalidSignatureException"));
    let message = reply.message().expect("a message");
    assert!(message.starts_with("Signature expired"), "{message}");
    server.stop().await;
}

#[tokio::test]
async fn unsigned_request_is_missing_its_token() {
    let (server, _dir) = started().await;

    let reply = call(&server, b"{}", &[]).await;

    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error_type(),
        Some("MissingAuthenticationTokenException")
    );
    reply.assert_request_id();
    server.stop().await;
}
