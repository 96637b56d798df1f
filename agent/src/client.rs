//! Signed AWS JSON 1.1 calls to the one endpoint that serves every service.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use reqwest::Url;
use rsa::RsaPrivateKey;
use rsa::pss::BlindedSigningKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use tagrun_wire::AwsError;
use tagrun_wire::messages::{
    self, AcknowledgeMessageRequest, Empty, FailMessageRequest, FailureType, GetMessagesRequest,
    GetMessagesResponse, Operation, SendReplyRequest, SendReplyResponse,
};
use tagrun_wire::sigv4::{self, Credentials, JsonCall, Scope};
use tagrun_wire::ssm::{self, AgentOperation, UpdateInstanceInformationRequest};
use tracing::trace;

use crate::identity::Identity;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request never got an answer: connection refused or reset, TLS, timeout.
    #[error("{target} request failed")]
    Transport {
        /// The `X-Amz-Target` of the call.
        target: String,
        /// The HTTP client's report.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with an error.
    #[error("{target} was refused")]
    Service {
        /// The `X-Amz-Target` of the call.
        target: String,
        /// The service's error.
        #[source]
        source: AwsError,
    },
    /// The answer was not the expected JSON.
    #[error("{target} answered with an unreadable body")]
    Decode {
        /// The `X-Amz-Target` of the call.
        target: String,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// The request body could not be built.
    #[error("could not encode the {target} request")]
    Encode {
        /// The `X-Amz-Target` of the call.
        target: String,
        /// The failure.
        #[source]
        source: serde_json::Error,
    },
    /// The CA bundle could not be read.
    #[error("could not read CA bundle {path}")]
    CaBundleRead {
        /// The bundle file.
        path: std::path::PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle holds no usable PEM certificate.
    #[error("CA bundle {path} holds no usable PEM certificate")]
    CaBundleParse {
        /// The bundle file.
        path: std::path::PathBuf,
        /// The parse failure, if the parser gave one.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("could not set up the HTTP client")]
    Build(#[source] reqwest::Error),
    /// Credentials could not be obtained.
    #[error("no credentials for {target}")]
    Credentials {
        /// The `X-Amz-Target` of the call.
        target: String,
        /// Why.
        #[source]
        source: Box<crate::identity::IdentityError>,
    },
}

impl ClientError {
    /// Whether the same call may succeed later: transport failures, throttling and
    /// server-side errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Service { source, .. } => source.is_retryable(),
            ClientError::Credentials { source, .. } => source.is_retryable(),
            ClientError::Decode { .. } | ClientError::Encode { .. } => false,
            ClientError::CaBundleRead { .. }
            | ClientError::CaBundleParse { .. }
            | ClientError::Build(_) => false,
        }
    }

    /// Whether the client gave up waiting for an answer.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Transport { source, .. } if source.is_timeout())
    }

    /// The service's error code, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Service { source, .. } => Some(source.code()),
            _ => None,
        }
    }
}

/// How a request is signed.
pub enum Signer<'a> {
    /// Not signed (`RegisterManagedInstance` with an activation).
    Anonymous,
    /// SigV4 with access keys.
    Keys(&'a Credentials),
    /// SigV4's canonical request and string to sign, signed with the node's RSA key
    /// (RSA-PSS, SHA-256, 32-byte salt, base64); the access key id is the instance id.
    Rsa {
        /// The managed instance id.
        instance_id: &'a str,
        /// The node's private key.
        key: &'a RsaPrivateKey,
    },
}

/// The HTTP client and the endpoint; one per process.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    endpoint: Url,
    host: String,
    region: String,
}

impl Transport {
    /// Builds the client: rustls, proxy from `HTTPS_PROXY`/`NO_PROXY`, an optional extra
    /// CA bundle, and `timeout` for every call.
    pub fn new(
        endpoint: Url,
        region: &str,
        ca_bundle: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("tagrun-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_bundle {
            for certificate in read_ca_bundle(path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        // The system's trust store is a few hundred kilobytes parsed into memory; a plain
        // HTTP endpoint never uses it.
        if endpoint.scheme() != "https" {
            builder = builder.tls_built_in_root_certs(false);
        }
        let http = builder.build().map_err(ClientError::Build)?;
        Ok(Self {
            http,
            host: host_header(&endpoint),
            endpoint,
            region: region.to_owned(),
        })
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Sends one JSON 1.1 call and reads its JSON answer.
    pub async fn call<Req, Resp>(
        &self,
        service: &str,
        target: &str,
        request: &Req,
        signer: &Signer<'_>,
        timeout: Option<Duration>,
    ) -> Result<Resp, ClientError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let body = serde_json::to_vec(request).map_err(|source| ClientError::Encode {
            target: target.to_owned(),
            source,
        })?;
        let headers = self.sign(service, target, &body, signer);

        let mut builder = self
            .http
            .post(self.endpoint.clone())
            .header("Content-Type", sigv4::JSON_CONTENT_TYPE)
            .header("X-Amz-Target", target);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }

        let transport = |source| ClientError::Transport {
            target: target.to_owned(),
            source,
        };
        let response = builder.body(body).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        trace!(target, status, bytes = bytes.len(), "response");
        if !(200..300).contains(&status) {
            let source = AwsError::from_response(status, &bytes);
            return Err(ClientError::Service {
                target: target.to_owned(),
                source,
            });
        }
        let bytes = if bytes.is_empty() {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).map_err(|source| ClientError::Decode {
            target: target.to_owned(),
            source,
        })
    }

    fn sign(
        &self,
        service: &str,
        target: &str,
        body: &[u8],
        signer: &Signer<'_>,
    ) -> Vec<(String, String)> {
        let amz_date = tagrun_wire::time::amz_date(SystemTime::now());
        let call = JsonCall {
            host: &self.host,
            target,
            body,
            region: &self.region,
            service,
            amz_date: &amz_date,
        };
        match signer {
            Signer::Anonymous => Vec::new(),
            Signer::Keys(credentials) => sigv4::sign_json_call(credentials, &call),
            Signer::Rsa { instance_id, key } => rsa_sign(&call, instance_id, key),
        }
    }
}

/// Error codes after which cached credentials are dropped and fetched again.
const STALE_CREDENTIAL_CODES: &[&str] = &[
    "ExpiredTokenException",
    "ExpiredToken",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
];

/// Signed calls on behalf of the node: the transport plus the node's identity.
#[derive(Debug, Clone)]
pub struct Client {
    transport: Transport,
    identity: Arc<Identity>,
}

impl Client {
    /// A client signing with `identity`'s credentials.
    pub fn new(transport: Transport, identity: Arc<Identity>) -> Self {
        Self {
            transport,
            identity,
        }
    }

    /// The node's instance id.
    pub fn instance_id(&self) -> &str {
        self.identity.instance_id()
    }

    /// Sends one call signed with the node's current credentials.
    pub async fn call<Req, Resp>(
        &self,
        service: &str,
        target: &str,
        request: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, ClientError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let credentials = self
            .identity
            .credentials(&self.transport)
            .await
            .map_err(|source| ClientError::Credentials {
                target: target.to_owned(),
                source: Box::new(source),
            })?;
        let result = self
            .transport
            .call(
                service,
                target,
                request,
                &Signer::Keys(&credentials),
                timeout,
            )
            .await;
        if let Err(error) = &result
            && error
                .code()
                .is_some_and(|code| STALE_CREDENTIAL_CODES.contains(&code))
        {
            self.identity.invalidate().await;
        }
        result
    }

    /// `GetMessages` for this node, waiting at most `timeout` for the long poll.
    pub async fn get_messages(
        &self,
        timeout: Duration,
    ) -> Result<GetMessagesResponse, ClientError> {
        let request = GetMessagesRequest {
            destination: self.instance_id().to_owned(),
            messages_request_id: crate::identity::new_uuid(),
            visibility_timeout_in_seconds: Some(messages::VISIBILITY_TIMEOUT_SECS),
            next_token: None,
        };
        let target = Operation::GetMessages.target();
        self.call(messages::SIGNING_NAME, &target, &request, Some(timeout))
            .await
    }

    /// `AcknowledgeMessage`.
    pub async fn acknowledge(&self, message_id: &str) -> Result<(), ClientError> {
        let request = AcknowledgeMessageRequest {
            message_id: message_id.to_owned(),
        };
        let target = Operation::AcknowledgeMessage.target();
        let _: Empty = self
            .call(messages::SIGNING_NAME, &target, &request, None)
            .await?;
        Ok(())
    }

    /// `SendReply`; the response is ignored, as AWS's agent does.
    pub async fn send_reply(&self, request: &SendReplyRequest) -> Result<(), ClientError> {
        let target = Operation::SendReply.target();
        let _: SendReplyResponse = self
            .call(messages::SIGNING_NAME, &target, request, None)
            .await?;
        Ok(())
    }

    /// `FailMessage`.
    pub async fn fail_message(
        &self,
        message_id: &str,
        failure_type: FailureType,
    ) -> Result<(), ClientError> {
        let request = FailMessageRequest {
            message_id: message_id.to_owned(),
            failure_type,
        };
        let target = Operation::FailMessage.target();
        let _: Empty = self
            .call(messages::SIGNING_NAME, &target, &request, None)
            .await?;
        Ok(())
    }

    /// `UpdateInstanceInformation`.
    pub async fn update_instance_information(
        &self,
        request: &UpdateInstanceInformationRequest,
    ) -> Result<(), ClientError> {
        let target = AgentOperation::UpdateInstanceInformation.target();
        let _: Empty = self.call(ssm::SIGNING_NAME, &target, request, None).await?;
        Ok(())
    }
}

/// Signs like SigV4 but with RSA-PSS over the string to sign, as AWS's agent does for
/// `RequestManagedInstanceRoleToken` and `UpdateManagedInstancePublicKey`.
fn rsa_sign(call: &JsonCall<'_>, instance_id: &str, key: &RsaPrivateKey) -> Vec<(String, String)> {
    let scope = Scope::new(call.amz_date, call.region, call.service);
    let signed = [
        ("content-type", sigv4::JSON_CONTENT_TYPE),
        ("host", call.host),
        ("x-amz-date", call.amz_date),
        ("x-amz-target", call.target),
    ];
    let payload = sigv4::payload_hash(call.body);
    let request = sigv4::Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &signed,
        payload_sha256: &payload,
    };
    let to_sign = sigv4::string_to_sign(call.amz_date, &scope, &sigv4::canonical_request(&request));

    let signing_key = BlindedSigningKey::<Sha256>::new(key.clone());
    let signature = signing_key.sign_with_rng(&mut rand::rngs::OsRng, to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(signature.to_bytes());
    let names = sigv4::signed_header_names(&signed);
    vec![
        ("X-Amz-Date".to_owned(), call.amz_date.to_owned()),
        ("X-Amz-Content-Sha256".to_owned(), payload),
        (
            "Authorization".to_owned(),
            sigv4::authorization_header(instance_id, &scope, &names, &signature),
        ),
    ]
}

/// `host[:port]` as HTTP clients put it in the `Host` header: the port only when it is not
/// the scheme's default.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn read_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem = std::fs::read(path).map_err(|source| ClientError::CaBundleRead {
        path: path.to_owned(),
        source,
    })?;
    let parse = |source| ClientError::CaBundleParse {
        path: path.to_owned(),
        source,
    };
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| parse(Some(e)))?;
    if certificates.is_empty() {
        return Err(parse(None));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_keeps_only_explicit_ports() {
        let with_port = Url::parse("http://127.0.0.1:7733/").expect("url");
        let default_port = Url::parse("https://tagrun.example.net:443/").expect("url");

        assert_eq!(host_header(&with_port), "127.0.0.1:7733");
        assert_eq!(host_header(&default_port), "tagrun.example.net");
    }

    #[test]
    fn a_missing_ca_bundle_is_a_clear_error() {
        let endpoint = Url::parse("https://127.0.0.1:1/").expect("url");

        let err = Transport::new(
            endpoint,
            "us-east-1",
            Some(Path::new("/nonexistent/ca.pem")),
            Duration::from_secs(5),
        )
        .expect_err("bundle missing");

        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }
}
