//! The one HTTP listener: connections, TLS, routing on `X-Amz-Target`, and the one
//! place where results and errors become AWS JSON 1.1 responses.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::api::{self, Operation};
use crate::auth::{self, Caller, RequestFacts};
use crate::error::ApiError;
use crate::state::AppState;

/// Largest request body accepted; SSM's largest inputs (64 KB documents) fit easily.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request that runs longer than this is answered with `ServiceUnavailableException`.
/// Long polls hold for less (see the messages API).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long shutdown waits for requests in flight before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
struct Connection {
    peer: SocketAddr,
    secure: bool,
}

/// Builds the router: `POST /` for every JSON 1.1 operation, and the `ssmmessages`
/// control channel path, which is refused so that agents fall back to polling.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/v1/control-channel/{instance_id}", any(control_channel))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then drains connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    accept(stream, peer, &router, tls.clone(), &graceful);
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    info!("shutting down, draining connections");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open after the grace period, dropping them");
    }
}

/// Spawns the task that serves one connection.
fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    router: &Router,
    tls: Option<TlsAcceptor>,
    graceful: &GracefulShutdown,
) {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "could not set TCP_NODELAY");
    }
    let secure = tls.is_some();
    let service = router.clone().map_request(move |mut request: Request<_>| {
        request.extensions_mut().insert(Connection { peer, secure });
        request
    });
    let service = TowerToHyperService::new(service);
    let watcher = graceful.watcher();

    tokio::spawn(async move {
        let builder = hyper::server::conn::http1::Builder::new();
        let result = match tls {
            None => {
                watcher
                    .watch(builder.serve_connection(TokioIo::new(stream), service))
                    .await
            }
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(tls_stream) => {
                    let io = TokioIo::new(tls_stream);
                    watcher.watch(builder.serve_connection(io, service)).await
                }
                Err(error) => {
                    debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
            },
        };
        if let Err(error) = result {
            debug!(%peer, error = %error, "connection ended with an error");
        }
    });
}

/// Handles every JSON 1.1 request: route, authenticate, run, shape the answer.
async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let connection = request.extensions().get::<Connection>().copied();
    let (parts, body) = request.into_parts();

    let outcome = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => {
            let call = call(&state, &parts.headers, connection, body);
            match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
                Ok(outcome) => outcome,
                Err(_) => Err(timed_out()),
            }
        }
        Err(_) => Err(too_large()),
    };

    let target = header_text(&parts.headers, "x-amz-target").unwrap_or_default();
    let elapsed_ms = started.elapsed().as_millis();
    match outcome {
        Ok(value) => {
            debug!(target, elapsed_ms, "request served");
            respond(StatusCode::OK, &value, &request_id)
        }
        Err(error) => {
            debug!(target, elapsed_ms, code = error.code, "request failed");
            respond(error.status, &error.body(), &request_id)
        }
    }
}

/// Routes, authenticates and runs one operation.
async fn call(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    connection: Option<Connection>,
    body: Bytes,
) -> Result<serde_json::Value, ApiError> {
    let target = header_text(headers, "x-amz-target").unwrap_or_default();
    let operation = Operation::from_target(target).ok_or_else(|| unknown_operation(target))?;

    let facts = RequestFacts {
        service: operation.signing_name(),
        rule: operation.signing_rule(),
        now: SystemTime::now(),
    };
    let principal = auth::authenticate(
        &state.config,
        &state.identities,
        &state.store,
        headers,
        &body,
        facts,
    )
    .await?;

    let connection = connection.unwrap_or(Connection {
        peer: SocketAddr::from(([127, 0, 0, 1], 0)),
        secure: false,
    });
    let caller = Caller {
        principal,
        source_ip: canonical_ip(connection.peer.ip()),
        secure: connection.secure,
        user_agent: header_text(headers, "user-agent")
            .unwrap_or_default()
            .to_owned(),
        account_id: state.config.account_id.clone(),
        region: state.config.region.clone(),
    };
    api::dispatch(state, &caller, operation, &body).await
}

/// The `ssmmessages` control channel: always refused, in the form that makes AWS's
/// agent fall back to polling the messages API.
async fn control_channel() -> Response {
    let body = "<AccessDeniedException><Message>tagrun serves Run Command through the \
                messages API; the control channel is not available</Message>\
                </AccessDeniedException>";
    (StatusCode::FORBIDDEN, body).into_response()
}

fn respond(status: StatusCode, value: &serde_json::Value, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An IPv4 peer seen through a dual-stack socket, as plain IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn unknown_operation(target: &str) -> ApiError {
    let message = if target.is_empty() {
        "Missing X-Amz-Target header".to_owned()
    } else {
        format!("Unknown operation {target}")
    };
    ApiError::new("UnknownOperationException", message)
}

fn too_large() -> ApiError {
    ApiError {
        code: "SerializationException",
        message: format!("Request body is larger than {MAX_BODY_BYTES} bytes"),
        status: StatusCode::PAYLOAD_TOO_LARGE,
    }
}

fn timed_out() -> ApiError {
    ApiError {
        code: "ServiceUnavailableException",
        message: "The request took too long to process. Try again.".into(),
        status: StatusCode::SERVICE_UNAVAILABLE,
    }
}
