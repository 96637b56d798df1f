//! One keep-alive HTTP/1.1 connection that sends freshly signed AWS JSON 1.1 calls, as
//! an SDK or an agent would; it reconnects on the next call after losing the connection.

use std::net::SocketAddr;
use std::time::SystemTime;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tagrun_wire::sigv4::{Credentials, JSON_CONTENT_TYPE, JsonCall, sign_json_call};
use tokio::net::TcpStream;

/// Why a call got no successful answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The TCP connection or the HTTP handshake failed.
    #[error("connecting to {address} failed")]
    Connect {
        /// The server.
        address: SocketAddr,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request could not be built (a header value the HTTP crate refuses).
    #[error("building the request failed")]
    Build(#[source] hyper::http::Error),
    /// The request was sent but no complete answer came back.
    #[error("the request got no answer")]
    Send(#[source] hyper::Error),
    /// The server answered with another status than 200.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The answer's body, as text.
        body: String,
    },
}

/// Who signs and for which region and service.
#[derive(Debug, Clone)]
pub struct Signer {
    /// The keys.
    pub credentials: Credentials,
    /// The signing region.
    pub region: String,
    /// The signing name of the service (`ssm`, `ec2messages`).
    pub service: &'static str,
}

/// A connection to the server, opened on the first call.
#[derive(Debug)]
pub struct Client {
    address: SocketAddr,
    host: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    /// A client of the server at `address`; nothing is connected yet.
    pub fn new(address: SocketAddr) -> Client {
        Client {
            address,
            host: address.to_string(),
            sender: None,
        }
    }

    /// Opens the connection now unless it is open, so a later call pays no handshake.
    pub async fn connect(&mut self) -> Result<(), CallError> {
        if self.sender.is_none() {
            self.sender = Some(connect(self.address).await?);
        }
        Ok(())
    }

    /// Sends `body` to operation `target`, signed by `signer`, and returns the answer's
    /// body when the status is 200. After an error the connection is closed.
    pub async fn call(
        &mut self,
        signer: &Signer,
        target: &str,
        body: Bytes,
    ) -> Result<Bytes, CallError> {
        let mut sender = match self.sender.take() {
            Some(sender) => sender,
            None => connect(self.address).await?,
        };
        let request = signed_request(&self.host, signer, target, body).map_err(CallError::Build)?;

        sender.ready().await.map_err(CallError::Send)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(CallError::Send)?;
        let status = response.status();
        let body = response.into_body().collect().await;
        let body = body.map_err(CallError::Send)?.to_bytes();

        self.sender = Some(sender);
        if status == StatusCode::OK {
            return Ok(body);
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        Err(CallError::Status { status, body })
    }
}

/// Opens one HTTP/1.1 connection, served by a task of its own.
pub async fn connect(address: SocketAddr) -> Result<SendRequest<Full<Bytes>>, CallError> {
    let connect_error =
        |source: Box<dyn std::error::Error + Send + Sync>| CallError::Connect { address, source };
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| connect_error(e.into()))?;
    stream
        .set_nodelay(true)
        .map_err(|e| connect_error(e.into()))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| connect_error(e.into()))?;
    tokio::spawn(async move {
        // The caller sees the failure on its next request, so it needs no report here.
        connection.await.unwrap_or(());
    });
    Ok(sender)
}

/// `body` for `target`, signed now, as the AWS SDKs would send it.
pub fn signed_request(
    host: &str,
    signer: &Signer,
    target: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
    let amz_date = tagrun_wire::time::amz_date(SystemTime::now());
    let call = JsonCall {
        host,
        target,
        body: &body,
        region: &signer.region,
        service: signer.service,
        amz_date: &amz_date,
    };

    let mut builder = Request::post("/")
        .header("host", host)
        .header("content-type", JSON_CONTENT_TYPE)
        .header("x-amz-target", target);
    for (name, value) in sign_json_call(&signer.credentials, &call) {
        builder = builder.header(name, value);
    }
    builder.body(Full::new(body))
}
