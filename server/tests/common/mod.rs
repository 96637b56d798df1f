//! What the integration suites share: an in-process server on a free loopback port, a
//! configuration with one read-only user, and AWS JSON 1.1 replies taken apart.

// Each suite is its own crate and uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use tagrun_server::Server;
use tagrun_server::auth::managed;
use tagrun_server::config::{Config, User};
use tagrun_wire::sigv4::{Credentials, JsonCall, sign_json_call};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The region every test configuration and signature uses.
pub const REGION: &str = "us-east-1";

/// Access key of the read-only user the test configuration defines.
pub const READER_KEY: &str = "AKIAEXAMPLEREADER001";

/// Secret of the read-only user.
pub const READER_SECRET: &str = "reader-secret-key";

/// How long a test waits for a server to stop before calling it hung.
pub const STOP_DEADLINE: Duration = Duration::from_secs(25);

/// A configuration on `data_dir` listening on a free loopback port, with one user
/// holding `AmazonSSMReadOnlyAccess`.
pub fn config(data_dir: &Path) -> Config {
    let mut config = Config::with_defaults(data_dir.to_owned());
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let policy = managed::policy("AmazonSSMReadOnlyAccess").expect("a built-in policy");
    config.users.push(User {
        name: "reader".into(),
        access_key_id: READER_KEY.into(),
        secret_access_key: READER_SECRET.into(),
        policies: vec![policy.clone()],
        tags: BTreeMap::new(),
    });
    config
}

/// The read-only user's long-term credentials.
pub fn reader() -> Credentials {
    Credentials {
        access_key_id: READER_KEY.into(),
        secret_access_key: READER_SECRET.into(),
        session_token: None,
    }
}

/// A server serving on the current runtime until [`TestServer::stop`] or drop.
pub struct TestServer {
    /// The bound address.
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Binds `config` and starts serving it.
    pub async fn start(config: Config) -> TestServer {
        let server = Server::bind(config).await.expect("the server binds");
        let address = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        // A dropped sender stops the server as well, so a failing test leaves nothing.
        let shutdown = async move { stopped.await.unwrap_or(()) };
        let task = tokio::spawn(server.serve(shutdown));
        TestServer {
            address,
            stop: Some(stop),
            task,
        }
    }

    /// `host:port`, as the `Host` header carries it.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    /// Asks the server to shut down and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).expect("the server is still running");
        }
        let task = &mut self.task;
        tokio::time::timeout(STOP_DEADLINE, task)
            .await
            .expect("the server stops within the deadline")
            .expect("the server task ends without panicking");
    }
}

/// Headers for a JSON 1.1 call to `target` signed now by our own signer.
pub fn signed_headers(
    credentials: &Credentials,
    host: &str,
    target: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    let amz_date = tagrun_wire::time::amz_date(SystemTime::now());
    let call = JsonCall {
        host,
        target,
        body,
        region: REGION,
        service: "ssm",
        amz_date: &amz_date,
    };
    sign_json_call(credentials, &call)
}

/// A JSON 1.1 POST to `url` with `target`, `body` and extra `headers`.
pub fn request(
    client: &reqwest::Client,
    url: &str,
    target: &str,
    body: &[u8],
    headers: &[(String, String)],
) -> reqwest::RequestBuilder {
    let mut builder = client
        .post(url)
        .header("content-type", tagrun_wire::sigv4::JSON_CONTENT_TYPE)
        .header("x-amz-target", target)
        .body(body.to_vec());
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
}

/// A reply taken apart: status, request id and JSON body.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The `x-amzn-requestid` header, when present.
    pub request_id: Option<String>,
    /// The body as JSON.
    pub body: serde_json::Value,
}

impl Reply {
    /// Reads the whole reply; the body must be JSON.
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-amzn-requestid")
            .map(|v| v.to_str().expect("a text request id").to_owned());
        let text = response.text().await.expect("a readable body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {text}"));
        Reply {
            status,
            request_id,
            body,
        }
    }

    /// The error code (`__type`), if the body is an error.
    pub fn error_type(&self) -> Option<&str> {
        self.body["__type"].as_str()
    }

    /// The error message (`Message`), if the body is an error.
    pub fn message(&self) -> Option<&str> {
        self.body["Message"].as_str()
    }

    /// Fails the test unless the request id looks like a UUID.
    pub fn assert_request_id(&self) {
        let id = self
            .request_id
            .as_deref()
            .expect("an x-amzn-requestid header");
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "request id {id}");
    }
}
