//! The load driver: K keep-alive HTTP/1.1 connections, each sending one freshly signed
//! request after another until a deadline, with every latency recorded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::client::{self, Signer};

/// One kind of AWS JSON 1.1 call, repeated for the whole run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The `X-Amz-Target` value, e.g. `AmazonSSM.DescribeInstanceInformation`.
    pub target: &'static str,
    /// The request body, sent unchanged every time.
    pub body: Bytes,
    /// Who signs, for which region and service.
    pub signer: Signer,
}

/// How hard and how long to drive the server.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Connections, each with one request in flight at a time.
    pub connections: usize,
    /// Time spent sending before measuring starts (connections, caches).
    pub warmup: Duration,
    /// The measured time.
    pub duration: Duration,
}

/// What a run measured: requests that started inside the measured window.
#[derive(Debug, Default)]
pub struct Measurement {
    /// Latency of each request answered with HTTP 200, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Requests answered with another status, or lost to a connection error.
    pub errors: u64,
    /// From the start of the measured window to the last answer.
    pub elapsed: Duration,
    /// The first failure seen, warm-up included, to explain `errors`.
    pub first_error: Option<String>,
}

impl Measurement {
    fn merge(&mut self, other: Measurement) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

impl LoadOptions {
    /// The measured window of a run that starts sending at `start`.
    pub fn window(&self, start: Instant) -> Window {
        let from = start + self.warmup;
        Window {
            from,
            until: from + self.duration,
        }
    }
}

/// Sends `workload` to `address` over `connections` connections until the window ends.
pub async fn drive(
    address: SocketAddr,
    workload: Workload,
    connections: usize,
    window: Window,
) -> Measurement {
    let workload = Arc::new(workload);
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(connection_loop(address, workload.clone(), window));
    }

    let mut total = Measurement::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(measured) => total.merge(measured),
            Err(error) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("client task failed: {error}"));
            }
        }
    }
    total.elapsed = window.from.elapsed();
    total
}

/// When requests count: started at or after `from`; none start at or after `until`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Start of the measured time; requests before it are warm-up.
    pub from: Instant,
    /// No request starts at or after this instant.
    pub until: Instant,
}

/// One connection's loop; reconnects after a connection error.
async fn connection_loop(
    address: SocketAddr,
    workload: Arc<Workload>,
    window: Window,
) -> Measurement {
    let host = address.to_string();
    let mut measured = Measurement::default();
    let mut sender = None;

    while Instant::now() < window.until {
        let started = Instant::now();
        let outcome = send_one(&mut sender, address, &host, &workload).await;
        let counts = started >= window.from;

        match outcome {
            Ok(()) if counts => measured.latencies_us.push(micros(started.elapsed())),
            Ok(()) => {}
            Err(error) => {
                measured.errors += u64::from(counts);
                measured.first_error.get_or_insert(error);
            }
        }
    }
    measured
}

/// Sends one signed request on the connection in `slot`, opening one if it is empty.
///
/// A connection that failed is left out of `slot`, so the next call reconnects.
async fn send_one(
    slot: &mut Option<SendRequest<Full<Bytes>>>,
    address: SocketAddr,
    host: &str,
    workload: &Workload,
) -> Result<(), String> {
    let mut sender = match slot.take() {
        Some(sender) => sender,
        None => client::connect(address)
            .await
            .map_err(|e| tagrun_server::error_chain(&e))?,
    };
    let body = workload.body.clone();
    let request = client::signed_request(host, &workload.signer, workload.target, body)
        .map_err(|e| format!("building the request failed: {e}"))?;

    sender
        .ready()
        .await
        .map_err(|e| format!("connection lost: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?;

    *slot = Some(sender);
    if status == StatusCode::OK {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    Err(format!("HTTP {status}: {text}"))
}

/// `duration` in whole microseconds, saturating.
pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The JSON line a scenario prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The scenario's subcommand name.
    pub scenario: &'static str,
    /// Requests answered with HTTP 200 in the measured window.
    pub requests: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// `requests / seconds`.
    pub requests_per_second: f64,
    /// Median latency of the successful requests.
    pub p50_ms: f64,
    /// 99th percentile latency of the successful requests.
    pub p99_ms: f64,
    /// Requests that failed in the measured window.
    pub errors: u64,
    /// Connections used.
    pub connections: usize,
    /// CPU time the server's threads used in the measured window, when known.
    pub server_cpu_seconds: Option<f64>,
    /// `server_cpu_seconds` per successful request: the cost that decides how many
    /// requests one otherwise idle core can serve.
    pub server_cpu_ms_per_request: Option<f64>,
}

impl Summary {
    /// Sums up `measured` for `scenario`, with the server's CPU time when known.
    pub fn new(
        scenario: &'static str,
        connections: usize,
        mut measured: Measurement,
        server_cpu: Option<Duration>,
    ) -> Summary {
        measured.latencies_us.sort_unstable();
        let latencies = &measured.latencies_us;
        let requests = latencies.len() as u64;
        let seconds = measured.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        };

        Summary {
            scenario,
            requests,
            seconds: round3(seconds),
            requests_per_second: round3(rate),
            p50_ms: percentile_ms(latencies, 50),
            p99_ms: percentile_ms(latencies, 99),
            errors: measured.errors,
            connections,
            server_cpu_seconds: server_cpu.map(|cpu| round3(cpu.as_secs_f64())),
            server_cpu_ms_per_request: server_cpu
                .filter(|_| requests > 0)
                .map(|cpu| round3(cpu.as_secs_f64() * 1000.0 / requests as f64)),
        }
    }
}

/// The nearest-rank `percent` percentile of `sorted_us`, in milliseconds; 0 when empty.
pub fn percentile_ms(sorted_us: &[u64], percent: usize) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (sorted_us.len() * percent).div_ceil(100).max(1);
    round3(sorted_us[rank - 1] as f64 / 1000.0)
}

/// `value` rounded to three decimals, as every figure of a summary is printed.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();

        assert_eq!(percentile_ms(&sorted, 50), 50.0);
        assert_eq!(percentile_ms(&sorted, 99), 99.0);
        assert_eq!(percentile_ms(&[1500], 99), 1.5);
        assert_eq!(percentile_ms(&[], 50), 0.0);
    }

    #[test]
    fn summary_counts_only_successes_as_requests() {
        let measured = Measurement {
            latencies_us: vec![3000, 1000, 2000, 4000],
            errors: 2,
            elapsed: Duration::from_secs(2),
            first_error: Some("HTTP 400".into()),
        };

        let summary = Summary::new("example", 4, measured, Some(Duration::from_millis(10)));

        assert_eq!(summary.requests, 4);
        assert_eq!(summary.errors, 2);
        assert_eq!(summary.requests_per_second, 2.0);
        assert_eq!(summary.p50_ms, 2.0);
        assert_eq!(summary.p99_ms, 4.0);
        assert_eq!(summary.server_cpu_ms_per_request, Some(2.5));
    }
}
