//! The project's own fake CloudWatch Logs endpoint (loopback only, test support).
//!
//! It speaks the AWS JSON 1.1 protocol the SDK uses (`X-Amz-Target: Logs_20140328.<Operation>`)
//! and enforces every documented PutLogEvents rule the emulator does not: at most 10,000 events,
//! at most 1,048,576 bytes counting each message's UTF-8 length plus 26, no empty message, each
//! event at most 1 MB, chronological order, a 24-hour span; events more than 14 days old or 2
//! hours ahead are rejected individually through `rejectedLogEventsInfo`. It records every
//! accepted event so tests can assert no loss and no duplicates, and injects faults on demand:
//! throttling, 5xx, slow answers, refused connections, connections reset mid-request, a black
//! hole (requests read and never answered), seeded random 5xx, a server clock whose time window
//! is narrower than the client's (partial `rejectedLogEventsInfo`), and garbled PutMetricData
//! answers. PutMetricData requests (CBOR, gzip or not) are decoded and their datums recorded.

#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the fake keeps what it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Every event, in order (tests that compare messages).
    Messages,
    /// Per group only a count, the bytes and an order-independent sum of message hashes, so a
    /// gigabyte can be checked for loss and duplicates in constant memory (the benches).
    Digest,
}

/// What a group received, in [`Record::Digest`] mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    /// Events accepted.
    pub events: u64,
    /// Their message bytes.
    pub bytes: u64,
    /// The wrapping sum of [`message_hash`] over them.
    pub sum: u64,
}

impl Digest {
    /// Adds one message.
    pub fn add(&mut self, message: &str) {
        self.events += 1;
        self.bytes += message.len() as u64;
        self.sum = self.sum.wrapping_add(message_hash(message));
    }
}

/// The hash a [`Digest`] sums: the same in the fake and in whoever checks it.
pub fn message_hash(message: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    message.hash(&mut hasher);
    hasher.finish()
}

/// A PutLogEvents body, borrowed from the request where no escapes forced a copy.
#[derive(serde::Deserialize)]
struct PutRequest<'a> {
    #[serde(rename = "logGroupName", borrow, default)]
    group: Cow<'a, str>,
    #[serde(rename = "logStreamName", borrow, default)]
    stream: Cow<'a, str>,
    #[serde(rename = "logEvents", borrow, default)]
    events: Vec<PutEvent<'a>>,
}

#[derive(serde::Deserialize)]
struct PutEvent<'a> {
    #[serde(default)]
    timestamp: i64,
    #[serde(borrow, default)]
    message: Cow<'a, str>,
}

/// One fault, applied to the next matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 400 ThrottlingException.
    Throttle,
    /// HTTP 503 ServiceUnavailableException.
    Unavailable,
    /// Answer normally, but only after this long.
    Slow(Duration),
    /// Read the request, then close the connection without answering.
    Reset,
    /// Answer HTTP 200 with a body that is not JSON (a proxy's error page), recording nothing.
    Garbage,
    /// Answer HTTP 500 with a 4 MiB body, recording nothing.
    HugeError,
    /// Answer HTTP 400 with an error type CloudWatch does not have, recording nothing.
    UnknownError,
    /// Read the request and never answer, keeping the connection open.
    BlackHole,
    /// HTTP 400 InvalidParameterException with this text, about the request as a whole (a
    /// name, a parameter), recording nothing.
    RefuseRequest(String),
}

/// One fault for the next PutMetricData call.
#[derive(Debug, Clone)]
pub enum MetricFault {
    /// HTTP 200 with a body that is not CBOR, recording nothing.
    Garbage,
    /// HTTP 500 whose body is not CBOR, recording nothing.
    UnparseableError,
}

/// A datum the fake accepted from PutMetricData.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub namespace: String,
    pub name: String,
    /// Seconds since the epoch, as sent.
    pub timestamp: f64,
}

/// An accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub timestamp: i64,
    pub message: String,
    /// Which accepted PutLogEvents request carried it, counted from 0 over all groups.
    pub request: u64,
    /// Its request carried `x-amzn-logs-format: json/emf`.
    pub emf: bool,
}

#[derive(Default)]
struct State {
    groups: HashSet<String>,
    streams: HashMap<(String, String), Vec<Accepted>>,
    faults: VecDeque<Fault>,
    put_calls: u64,
    refused_calls: Vec<String>,
    retention: HashMap<String, i64>,
    record: Option<Record>,
    digests: HashMap<String, Digest>,
    /// Per group, for some events (1 in [`LATENCY_SAMPLE_EVERY`]): arrival time minus the
    /// event's timestamp, in milliseconds ([`Record::Digest`] mode).
    latencies: HashMap<String, Vec<i64>>,
    metric_calls: u64,
    metric_faults: VecDeque<MetricFault>,
    datums: Vec<Datum>,
    /// Every request (of any operation) is read and never answered.
    black_hole: bool,
    /// Requests swallowed by the black hole.
    black_holed: u64,
    /// PutLogEvents calls answered 503 at random: (generator, percent).
    random_failures: Option<(fastrand::Rng, u32)>,
    random_failed: u64,
    /// The server's time window, as (ms back, ms ahead) of its now; CloudWatch's by default.
    window: Option<(i64, i64)>,
    rejected_too_old: u64,
    rejected_too_new: u64,
    /// Groups refused for good: every call naming them is answered with this (code, text),
    /// as CloudWatch answers a policy that does not cover them.
    refused_groups: HashMap<String, (String, String)>,
    /// Calls answered for refused groups, by operation.
    refused_group_calls: HashMap<String, u64>,
    /// The account's PutLogEvents quota as AWS enforces quotas, a token bucket: (requests a
    /// second, tokens left, when they were counted). It holds a second's worth at most.
    put_cap: Option<(f64, f64, std::time::Instant)>,
    /// PutLogEvents answered ThrottlingException for the quota.
    throttled_by_cap: u64,
    /// PutLogEvents accepted (200).
    puts_accepted: u64,
    /// CreateLogStream calls.
    create_stream_calls: u64,
    /// The next this many PutRetentionPolicy calls are throttled.
    retention_throttles: u32,
    /// PutMetricData calls refused for a datum outside the time window.
    metric_refused: u64,
}

/// One event in this many gives a latency sample; at most [`LATENCY_SAMPLES`] are kept.
pub const LATENCY_SAMPLE_EVERY: u64 = 16;
/// Most latency samples kept per group.
pub const LATENCY_SAMPLES: usize = 200_000;

/// A running fake.
pub struct FakeLogs {
    pub port: u16,
    state: Arc<Mutex<State>>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The connections served so far, to cut them in an outage.
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

const MAX_EVENTS: usize = 10_000;
const MAX_BYTES: usize = 1_048_576;
const OVERHEAD: usize = 26;
const DAY_MS: i64 = 24 * 3600 * 1000;

impl FakeLogs {
    /// Starts on a free loopback port.
    pub async fn start() -> Arc<Self> {
        Self::start_with(None, Record::Messages).await
    }

    /// Starts over TLS with `server` (a certificate for `localhost`), recording as `record` says.
    pub async fn start_with(
        server: Option<tokio_rustls::rustls::ServerConfig>,
        record: Record,
    ) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let state = State {
            record: Some(record),
            ..State::default()
        };
        let fake = Arc::new(Self {
            port: listener.local_addr().unwrap().port(),
            state: Arc::new(Mutex::new(state)),
            accept: Mutex::new(None),
            connections: Arc::default(),
            tls: server.map(|s| tokio_rustls::TlsAcceptor::from(Arc::new(s))),
        });
        fake.serve(listener);
        fake
    }

    /// The endpoint URL for `logs.endpoint_override`.
    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let tls = self.tls.clone();
        let connections = self.connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let task = match tls.clone() {
                    Some(acceptor) => tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            connection(stream, state).await;
                        }
                    }),
                    None => tokio::spawn(connection(stream, state)),
                };
                let mut connections = connections.lock().unwrap();
                connections.retain(|c| !c.is_finished());
                connections.push(task.abort_handle());
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    /// Latency samples of a group (arrival minus event timestamp, ms), in arrival order.
    pub fn latencies(&self, group: &str) -> Vec<i64> {
        self.state
            .lock()
            .unwrap()
            .latencies
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// PutMetricData calls answered (the fake accepts and drops them, so a metrics pipeline
    /// pointed here has somewhere to go).
    pub fn metric_calls(&self) -> u64 {
        self.state.lock().unwrap().metric_calls
    }

    /// What a group received ([`Record::Digest`] mode).
    pub fn digest(&self, group: &str) -> Digest {
        self.state
            .lock()
            .unwrap()
            .digests
            .get(group)
            .copied()
            .unwrap_or_default()
    }

    /// Queues faults for the next PutMetricData calls.
    pub fn inject_metrics(&self, faults: impl IntoIterator<Item = MetricFault>) {
        self.state.lock().unwrap().metric_faults.extend(faults);
    }

    /// Every datum accepted from PutMetricData, in arrival order.
    pub fn datums(&self) -> Vec<Datum> {
        self.state.lock().unwrap().datums.clone()
    }

    /// While on, every request (any operation) is read and never answered; its connection stays
    /// open. Requests already swallowed stay swallowed when it is turned off.
    pub fn black_hole(&self, on: bool) {
        self.state.lock().unwrap().black_hole = on;
    }

    /// Requests swallowed by the black hole so far.
    pub fn black_holed(&self) -> u64 {
        self.state.lock().unwrap().black_holed
    }

    /// Answers `percent` % of the PutLogEvents calls (drawn from a generator seeded with `seed`)
    /// with 503, recording nothing; `percent` 0 turns it off.
    pub fn fail_randomly(&self, seed: u64, percent: u32) {
        self.state.lock().unwrap().random_failures =
            (percent > 0).then(|| (fastrand::Rng::with_seed(seed), percent));
    }

    /// PutLogEvents calls failed at random so far.
    pub fn random_failed(&self) -> u64 {
        self.state.lock().unwrap().random_failed
    }

    /// Narrows the server's time window to `back` before and `ahead` after its now (CloudWatch's
    /// is 14 days and 2 hours), as a server whose clock disagrees with the host's: events the
    /// client thinks in the window come back in `rejectedLogEventsInfo`.
    pub fn narrow_window(&self, back: Duration, ahead: Duration) {
        self.state.lock().unwrap().window =
            Some((back.as_millis() as i64, ahead.as_millis() as i64));
    }

    /// Events rejected through `rejectedLogEventsInfo` so far: (too old, too new).
    pub fn rejected(&self) -> (u64, u64) {
        let state = self.state.lock().unwrap();
        (state.rejected_too_old, state.rejected_too_new)
    }

    /// Queues faults for the next PutLogEvents calls.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().faults.extend(faults);
    }

    /// Closes the listening socket: connections are refused.
    pub async fn refuse(&self) {
        let task = self.accept.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// An outage: closes the listening socket and cuts every open connection (kept-alive ones
    /// included, and those swallowed by the black hole), so every request fails until
    /// [`FakeLogs::restore`].
    pub async fn go_down(&self) {
        self.refuse().await;
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    /// Every accepted event of a stream, in acceptance order.
    pub fn events(&self, group: &str, stream: &str) -> Vec<Accepted> {
        self.state
            .lock()
            .unwrap()
            .streams
            .get(&(group.to_owned(), stream.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Drops the faults not applied yet.
    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Every accepted event of every stream of a group, each with its stream.
    pub fn group_events(&self, group: &str) -> Vec<(String, Accepted)> {
        let state = self.state.lock().unwrap();
        let mut all: Vec<(String, Accepted)> = state
            .streams
            .iter()
            .filter(|((g, _), _)| g == group)
            .flat_map(|((_, stream), events)| events.iter().map(|e| (stream.clone(), e.clone())))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// PutLogEvents calls answered (accepted or refused).
    pub fn put_calls(&self) -> u64 {
        self.state.lock().unwrap().put_calls
    }

    /// Why calls were refused as invalid (the fake's rule violations).
    pub fn refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().refused_calls.clone()
    }

    /// Refuses every call naming `group` with AccessDeniedException, as CloudWatch answers an
    /// IAM policy that does not cover it, until [`FakeLogs::allow_group`].
    pub fn refuse_group(&self, group: &str) {
        self.refuse_group_with(
            group,
            "AccessDeniedException",
            &format!("User: arn:aws:iam::123456789012:user/cwagent is not authorized to perform this action on resource: arn:aws:logs:us-east-1:123456789012:log-group:{group}"),
        );
    }

    /// Refuses every call naming `group` with `code` and `text`.
    pub fn refuse_group_with(&self, group: &str, code: &str, text: &str) {
        self.state
            .lock()
            .unwrap()
            .refused_groups
            .insert(group.to_owned(), (code.to_owned(), text.to_owned()));
    }

    /// Lifts [`FakeLogs::refuse_group`].
    pub fn allow_group(&self, group: &str) {
        self.state.lock().unwrap().refused_groups.remove(group);
    }

    /// Calls refused for a refused group, by operation.
    pub fn refused_group_calls(&self, operation: &str) -> u64 {
        let s = self.state.lock().unwrap();
        s.refused_group_calls.get(operation).copied().unwrap_or(0)
    }

    /// Accepts at most `per_second` PutLogEvents a second over all callers (a token bucket
    /// holding one second's worth, as AWS enforces request quotas) and answers the rest
    /// ThrottlingException.
    pub fn cap_puts(&self, per_second: u32) {
        let rate = f64::from(per_second);
        self.state.lock().unwrap().put_cap = Some((rate, rate, std::time::Instant::now()));
    }

    /// (PutLogEvents accepted, PutLogEvents throttled by the quota).
    pub fn put_outcomes(&self) -> (u64, u64) {
        let s = self.state.lock().unwrap();
        (s.puts_accepted, s.throttled_by_cap)
    }

    /// Throttles the next `count` PutRetentionPolicy calls (its quota is 5 a second per account).
    pub fn throttle_retention(&self, count: u32) {
        self.state.lock().unwrap().retention_throttles = count;
    }

    /// Creates `group` and its `stream`, as an existing fleet finds them.
    pub fn create_stream(&self, group: &str, stream: &str) {
        let mut s = self.state.lock().unwrap();
        s.groups.insert(group.to_owned());
        s.streams
            .entry((group.to_owned(), stream.to_owned()))
            .or_default();
    }

    /// PutMetricData calls refused for a datum outside CloudWatch's time window.
    pub fn metric_refused(&self) -> u64 {
        self.state.lock().unwrap().metric_refused
    }

    /// CreateLogStream calls answered.
    pub fn create_stream_calls(&self) -> u64 {
        self.state.lock().unwrap().create_stream_calls
    }

    /// The retention set on a group.
    pub fn retention(&self, group: &str) -> Option<i64> {
        self.state.lock().unwrap().retention.get(group).copied()
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: Arc<Mutex<State>>) {
    loop {
        let Some((head, body)) = super::read_http_message(&mut stream).await else {
            return;
        };
        let target = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        let emf = head.lines().any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.eq_ignore_ascii_case("x-amzn-logs-format") && v.trim() == "json/emf"
            })
        });
        let black_hole = state.lock().unwrap().black_hole;
        if black_hole || is_black_hole(&target, &state) {
            state.lock().unwrap().black_holed += 1;
            // Holds the connection open and never answers.
            std::future::pending::<()>().await;
        }
        if target.is_empty() && head.contains("/operation/PutMetricData") {
            // CloudWatch's RPC v2 CBOR protocol: an empty CBOR map is a successful answer.
            state.lock().unwrap().metric_calls += 1;
            let fault = state.lock().unwrap().metric_faults.pop_front();
            if let Some(fault) = fault {
                let (status, body): (u16, &[u8]) = match fault {
                    MetricFault::Garbage => (200, b"\xff\x00 this is not cbor \x1f\xbf"),
                    MetricFault::UnparseableError => (500, b"\x9f\x9f\x9f{ not cbor either"),
                };
                let mut bytes = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\nContent-Length: {}\r\nx-amzn-RequestId: fake\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                bytes.extend_from_slice(body);
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
                continue;
            }
            let gzip = head.lines().any(|l| {
                l.split_once(':').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("content-encoding") && v.trim() == "gzip"
                })
            });
            let datums = decode_metric_data(&body, gzip);
            // CloudWatch's window: two weeks back, two hours ahead. It refuses the whole
            // request and names only the first datum outside it.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let outside = datums
                .iter()
                .position(|d| d.timestamp < now - 14.0 * 86_400.0 || d.timestamp > now + 7_200.0);
            if let Some(i) = outside {
                state.lock().unwrap().metric_refused += 1;
                let mut error = Vec::new();
                ciborium::into_writer(
                    &ciborium::Value::Map(vec![
                        (
                            ciborium::Value::Text("__type".into()),
                            ciborium::Value::Text("com.amazonaws.cloudwatch#InvalidParameterValueException".into()),
                        ),
                        (
                            ciborium::Value::Text("message".into()),
                            ciborium::Value::Text(format!(
                                "The parameter MetricData.member.{}.Timestamp must specify a time no more than two weeks in the past.",
                                i + 1
                            )),
                        ),
                    ]),
                    &mut error,
                )
                .unwrap();
                let mut bytes = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\nContent-Length: {}\r\nx-amzn-RequestId: fake\r\n\r\n",
                    error.len()
                )
                .into_bytes();
                bytes.extend_from_slice(&error);
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
                continue;
            }
            state.lock().unwrap().datums.extend(datums);
            let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\nContent-Length: 1\r\nx-amzn-RequestId: fake\r\n\r\n".to_vec();
            bytes.push(0xa0);
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
            continue;
        }
        let operation = target.rsplit('.').next().unwrap_or("").to_owned();
        let request: Value = if operation == "PutLogEvents" {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        let fault = if operation == "PutLogEvents" {
            let mut s = state.lock().unwrap();
            let over_quota = match &mut s.put_cap {
                Some((rate, tokens, at)) => {
                    let now = std::time::Instant::now();
                    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * *rate).min(*rate);
                    *at = now;
                    if *tokens >= 1.0 {
                        *tokens -= 1.0;
                        false
                    } else {
                        true
                    }
                }
                None => false,
            };
            if over_quota {
                s.throttled_by_cap += 1;
            }
            let fault = if over_quota {
                Some(Fault::Throttle)
            } else {
                s.faults.pop_front()
            };
            let random = match (&fault, &mut s.random_failures) {
                (None, Some((rng, percent))) => rng.u32(0..100) < *percent,
                _ => false,
            };
            if random {
                s.random_failed += 1;
                Some(Fault::Unavailable)
            } else {
                fault
            }
        } else {
            None
        };
        let (status, answer) = match fault {
            Some(Fault::Reset) => return,
            Some(Fault::BlackHole) => unreachable!("taken before"),
            Some(Fault::Garbage) => {
                let body = "<html><body>502 proxy error</body></html>";
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Fault::HugeError) => (
                500,
                json!({"__type": "InternalFailure", "message": "x".repeat(4 << 20)}),
            ),
            Some(Fault::UnknownError) => (
                400,
                json!({"__type": "SomethingNewException", "message": "a failure cwlite has never seen"}),
            ),
            Some(Fault::Throttle) => (
                400,
                json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
            ),
            Some(Fault::RefuseRequest(text)) => (
                400,
                json!({"__type": "InvalidParameterException", "message": text}),
            ),
            Some(Fault::Unavailable) => (
                503,
                json!({"__type": "ServiceUnavailableException", "message": "try again"}),
            ),
            Some(Fault::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                handle(&operation, &request, &body, emf, &state)
            }
            None => handle(&operation, &request, &body, emf, &state),
        };
        let body = answer.to_string();
        let response = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nx-amzn-RequestId: fake\r\n\r\n{body}",
            if status == 200 { "OK" } else { "Error" },
            body.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Whether the next PutLogEvents fault is a black hole (then taken from the queue).
fn is_black_hole(target: &str, state: &Arc<Mutex<State>>) -> bool {
    let mut s = state.lock().unwrap();
    if target.ends_with(".PutLogEvents") && matches!(s.faults.front(), Some(Fault::BlackHole)) {
        s.faults.pop_front();
        return true;
    }
    false
}

/// The datums of a PutMetricData body (RPC v2 CBOR, gzip-compressed when `gzip`).
fn decode_metric_data(body: &[u8], gzip: bool) -> Vec<Datum> {
    use ciborium::Value as Cbor;
    let bytes = if gzip {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)
            .expect("a gzip body");
        out
    } else {
        body.to_vec()
    };
    let value: Cbor = ciborium::from_reader(bytes.as_slice()).expect("a CBOR body");
    let field = |map: &Cbor, name: &str| -> Option<Cbor> {
        map.as_map()?
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v.clone())
    };
    let namespace = field(&value, "Namespace")
        .and_then(|n| n.as_text().map(str::to_owned))
        .unwrap_or_default();
    let Some(Cbor::Array(data)) = field(&value, "MetricData") else {
        return Vec::new();
    };
    data.iter()
        .map(|datum| {
            let timestamp = match field(datum, "Timestamp") {
                Some(Cbor::Tag(_, inner)) => match *inner {
                    Cbor::Float(f) => f,
                    Cbor::Integer(i) => i128::from(i) as f64,
                    _ => 0.0,
                },
                _ => 0.0,
            };
            Datum {
                namespace: namespace.clone(),
                name: field(datum, "MetricName")
                    .and_then(|n| n.as_text().map(str::to_owned))
                    .unwrap_or_default(),
                timestamp,
            }
        })
        .collect()
}

fn invalid(state: &Arc<Mutex<State>>, why: String) -> (u16, Value) {
    state.lock().unwrap().refused_calls.push(why.clone());
    (
        400,
        json!({"__type": "InvalidParameterException", "message": why}),
    )
}

fn handle(
    operation: &str,
    request: &Value,
    body: &[u8],
    emf: bool,
    state: &Arc<Mutex<State>>,
) -> (u16, Value) {
    let group = request["logGroupName"].as_str().unwrap_or("").to_owned();
    let stream = request["logStreamName"].as_str().unwrap_or("").to_owned();
    if operation != "PutLogEvents"
        && let Some(answer) = refused_group(state, operation, &group)
    {
        return answer;
    }
    if ["CreateLogGroup", "CreateLogStream", "PutRetentionPolicy"].contains(&operation)
        && let Some(why) = bad_names(&group, (operation == "CreateLogStream").then_some(&*stream))
    {
        return invalid(state, why);
    }
    match operation {
        "CreateLogGroup" => {
            let mut s = state.lock().unwrap();
            if !s.groups.insert(group) {
                return (
                    400,
                    json!({"__type": "ResourceAlreadyExistsException", "message": "exists"}),
                );
            }
            (200, json!({}))
        }
        "CreateLogStream" => {
            let mut s = state.lock().unwrap();
            s.create_stream_calls += 1;
            if !s.groups.contains(&group) {
                return (
                    400,
                    json!({"__type": "ResourceNotFoundException", "message": "The specified log group does not exist."}),
                );
            }
            if s.streams.contains_key(&(group.clone(), stream.clone())) {
                return (
                    400,
                    json!({"__type": "ResourceAlreadyExistsException", "message": "exists"}),
                );
            }
            s.streams.insert((group, stream), Vec::new());
            (200, json!({}))
        }
        "PutRetentionPolicy" => {
            {
                let mut s = state.lock().unwrap();
                if s.retention_throttles > 0 {
                    s.retention_throttles -= 1;
                    return (
                        400,
                        json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
                    );
                }
            }
            state
                .lock()
                .unwrap()
                .retention
                .insert(group, request["retentionInDays"].as_i64().unwrap_or(0));
            (200, json!({}))
        }
        "PutLogEvents" => match serde_json::from_slice::<PutRequest<'_>>(body) {
            Ok(request) => put_log_events(request, emf, state),
            Err(err) => invalid(state, format!("malformed PutLogEvents body: {err}")),
        },
        other => (
            400,
            json!({"__type": "UnknownOperationException", "message": other}),
        ),
    }
}

/// CloudWatch's rules for names: a group of 1 to 512 characters of `[.-_/#A-Za-z0-9]`, a
/// stream of 1 to 512 characters without `:` or `*`.
fn bad_names(group: &str, stream: Option<&str>) -> Option<String> {
    let constraint = |value: &str, field: &str, rule: &str| {
        Some(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {rule}"
        ))
    };
    let count = group.chars().count();
    if !(1..=512).contains(&count) {
        return constraint(
            group,
            "logGroupName",
            "Member must have length less than or equal to 512",
        );
    }
    if !group
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-_/#".contains(c))
    {
        return constraint(
            group,
            "logGroupName",
            "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
        );
    }
    let stream = stream?;
    let count = stream.chars().count();
    if !(1..=512).contains(&count) {
        return constraint(
            stream,
            "logStreamName",
            "Member must have length less than or equal to 512",
        );
    }
    if stream.contains([':', '*']) {
        return constraint(
            stream,
            "logStreamName",
            "Member must satisfy regular expression pattern: [^:*]*",
        );
    }
    None
}

/// The answer to a call naming a refused group, if it is one.
fn refused_group(state: &Arc<Mutex<State>>, operation: &str, group: &str) -> Option<(u16, Value)> {
    let mut s = state.lock().unwrap();
    let (code, text) = s.refused_groups.get(group)?.clone();
    *s.refused_group_calls
        .entry(operation.to_owned())
        .or_default() += 1;
    Some((400, json!({"__type": code, "message": text})))
}

fn put_log_events(request: PutRequest<'_>, emf: bool, state: &Arc<Mutex<State>>) -> (u16, Value) {
    let group = request.group.into_owned();
    let stream = request.stream.into_owned();
    let events = request.events;
    state.lock().unwrap().put_calls += 1;
    if let Some(answer) = refused_group(state, "PutLogEvents", &group) {
        return answer;
    }
    if let Some(why) = bad_names(&group, Some(&stream)) {
        return invalid(state, why);
    }
    if !state
        .lock()
        .unwrap()
        .streams
        .contains_key(&(group.clone(), stream.clone()))
    {
        return (
            400,
            json!({"__type": "ResourceNotFoundException", "message": "The specified log stream does not exist."}),
        );
    }
    if events.is_empty() || events.len() > MAX_EVENTS {
        return invalid(state, format!("{} events in one call", events.len()));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (back, ahead) = state
        .lock()
        .unwrap()
        .window
        .unwrap_or((14 * DAY_MS, 2 * 3600 * 1000));
    let in_window = |ts: i64| ts >= now - back && ts <= now + ahead;
    let mut total = 0;
    let mut previous = i64::MIN;
    let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
    for (i, event) in events.iter().enumerate() {
        let message = &event.message;
        let timestamp = event.timestamp;
        if message.is_empty() {
            return invalid(state, format!("logEvents.{} has an empty message", i + 1));
        }
        if message.len() + OVERHEAD > MAX_BYTES {
            return invalid(state, format!("logEvents.{} is larger than 1 MB", i + 1));
        }
        if timestamp < previous {
            return invalid(
                state,
                "log events in a single PutLogEvents request must be in chronological order".into(),
            );
        }
        previous = timestamp;
        // The 24-hour span is measured over the events CloudWatch would keep.
        if in_window(timestamp) {
            oldest = oldest.min(timestamp);
            newest = newest.max(timestamp);
        }
        total += message.len() + OVERHEAD;
    }
    if total > MAX_BYTES {
        return invalid(state, format!("batch of {total} bytes exceeds 1,048,576"));
    }
    if oldest <= newest && newest - oldest > DAY_MS {
        return invalid(
            state,
            "a batch of log events cannot span more than 24 hours".into(),
        );
    }
    let too_old_end = events
        .iter()
        .take_while(|e| e.timestamp < now - back)
        .count();
    let too_new_start = events.iter().position(|e| e.timestamp > now + ahead);
    let kept = &events[too_old_end..too_new_start.unwrap_or(events.len())];
    let mut s = state.lock().unwrap();
    s.rejected_too_old += too_old_end as u64;
    s.rejected_too_new += too_new_start.map_or(0, |start| events.len() - start) as u64;
    if s.record == Some(Record::Digest) {
        let digest = s.digests.entry(group.clone()).or_default();
        let mut samples = Vec::new();
        for event in kept {
            digest.add(&event.message);
            if digest.events.is_multiple_of(LATENCY_SAMPLE_EVERY) {
                samples.push(now - event.timestamp);
            }
        }
        let latencies = s.latencies.entry(group).or_default();
        let room = LATENCY_SAMPLES.saturating_sub(latencies.len());
        latencies.extend(samples.into_iter().take(room));
    } else {
        let request = s.puts_accepted;
        let accepted = s.streams.get_mut(&(group, stream)).expect("checked above");
        for event in kept {
            accepted.push(Accepted {
                timestamp: event.timestamp,
                message: event.message.clone().into_owned(),
                request,
                emf,
            });
        }
    }
    s.puts_accepted += 1;
    let mut answer = json!({"nextSequenceToken": "unused"});
    if too_old_end > 0 || too_new_start.is_some() {
        let mut info = serde_json::Map::new();
        if too_old_end > 0 {
            info.insert("tooOldLogEventEndIndex".into(), json!(too_old_end));
        }
        if let Some(start) = too_new_start {
            info.insert("tooNewLogEventStartIndex".into(), json!(start));
        }
        answer["rejectedLogEventsInfo"] = Value::Object(info);
    }
    (200, answer)
}
