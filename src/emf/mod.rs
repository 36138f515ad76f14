//! The Embedded Metric Format listener (`logs.metrics_collected.emf`): JSON documents over TCP
//! (one a line) and UDP (one a datagram), each sent to CloudWatch Logs as EMF into the group
//! and stream it names.
//!
//! Owns the sockets, the framing, the reading of each document's destination (`_aws.
//! LogGroupName`/`LogStreamName`, else top-level `log_group_name`/`log_stream_name`, else the
//! configured defaults) and the hand-on: every document takes its bytes from its destination's
//! share of the budget before it is kept. TCP waits for room, so a client is slowed rather
//! than dropped once a line is read; UDP cannot wait, so a datagram without room is dropped
//! and counted. Invalid JSON is counted and dropped, with a warning at most once a minute.
//! It knows nothing of AWS: the shipper adds the header. Documents have no position to
//! resume from: what is in memory at a crash is lost, as with the stock agent.

pub mod document;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::EmfConfig;
use crate::event::{Destination, LISTENER_KEY, LogEvent, MAX_EVENTS_PER_HANDOFF, TailMessage};
use crate::listen::{ListenError, MAX_DATAGRAM, Throttle};
use crate::queue::{ByteBudget, Share};
use crate::tail::multiline::RawEvent;
use crate::telemetry::Telemetry;
use document::Named;

/// Most TCP connections at once; more are closed at once, with a warning. Each may hold one
/// line outside the budget while it reads it (up to `max_line_bytes`, about 1 MiB), so this
/// bounds that memory at 32 MiB. A client library keeps one connection per process.
pub const MAX_CONNECTIONS: usize = 32;

/// A connection's read buffer.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Pause after a failed accept (out of descriptors): the listener stays ready, and trying
/// again at once would spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Most destinations a connection or socket remembers; beyond, it starts over.
const MAX_REMEMBERED: usize = 1024;

/// How long the stop waits for room for a document already read.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// What the listener tasks are connected to.
#[derive(Debug, Clone)]
pub struct EmfLinks {
    /// To the shipper.
    pub events: mpsc::Sender<TailMessage>,
    /// Bytes between reading and acknowledgement.
    pub budget: Arc<ByteBudget>,
    /// Becomes true at the stop.
    pub stop: watch::Receiver<bool>,
    /// Counters.
    pub telemetry: Arc<Telemetry>,
    /// Longest TCP line, the longest event CloudWatch takes (the stock `tcp_input`'s
    /// `max_log_size` is 1 MiB, 26 bytes more). Longer lines are dropped whole and counted: a
    /// cut document is not JSON.
    pub max_line_bytes: usize,
}

/// The bound sockets, before their tasks run.
#[derive(Debug)]
pub struct Sockets {
    tcp: Option<(String, std::net::TcpListener)>,
    udp: Option<(String, std::net::UdpSocket)>,
}

/// Binds what `config` asks for. Bound before anything starts, so a port in use stops the
/// start (or the reload) with its address.
///
/// # Errors
/// An address does not resolve or cannot be bound.
pub fn bind(config: &EmfConfig) -> Result<Sockets, ListenError> {
    let tcp = match &config.tcp {
        Some(address) => Some((address.clone(), crate::listen::bind_tcp("emf", address)?)),
        None => None,
    };
    let udp = match &config.udp {
        Some(address) => {
            let socket = crate::listen::bind("emf", address)?;
            socket
                .set_nonblocking(true)
                .map_err(|source| ListenError::Bind {
                    input: "emf",
                    address: address.clone(),
                    source,
                })?;
            Some((address.clone(), socket))
        }
        None => None,
    };
    Ok(Sockets { tcp, udp })
}

/// Starts the listener tasks on `sockets`.
///
/// # Errors
/// A socket cannot be registered with the runtime.
pub fn spawn(
    sockets: Sockets,
    config: &EmfConfig,
    links: EmfLinks,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let defaults = Arc::new((config.default_group.clone(), config.default_stream.clone()));
    let mut tasks = Vec::new();
    if let Some((address, listener)) = sockets.tcp {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        info!(%address, "emf: listening on tcp");
        tasks.push(tokio::spawn(accept(
            listener,
            defaults.clone(),
            links.clone(),
        )));
    }
    if let Some((address, socket)) = sockets.udp {
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        info!(%address, "emf: listening on udp");
        tasks.push(tokio::spawn(receive(socket, defaults, links)));
    }
    Ok(tasks)
}

/// Accepts TCP connections until the stop; each is read by a task of its own, which the stop
/// also ends.
async fn accept(
    listener: tokio::net::TcpListener,
    defaults: Arc<(String, String)>,
    links: EmfLinks,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut refused = Throttle::default();
    let mut stop = links.stop.clone();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                };
                if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    if let Some(count) = refused.note() {
                        warn!(count, "emf: more than {MAX_CONNECTIONS} tcp connections; new ones are closed");
                    }
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (open, defaults, links) = (open.clone(), defaults.clone(), links.clone());
                connections.spawn(async move {
                    read_stream(stream, &defaults, &links).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = crate::event::stop_requested(&mut stop) => break,
        }
    }
    // Each connection hands on what it read, then ends.
    while connections.join_next().await.is_some() {}
}

/// Reads one connection's lines until it closes or the stop.
async fn read_stream(
    stream: impl AsyncRead + Unpin,
    defaults: &(String, String),
    links: &EmfLinks,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, stream);
    let mut documents = Documents::new(defaults, links);
    let mut stop = links.stop.clone();
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let read = tokio::select! {
            read = read_line(&mut reader, &mut line, &mut too_long, links.max_line_bytes) => read,
            _ = crate::event::stop_requested(&mut stop) => break,
        };
        match read {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
        if std::mem::take(&mut too_long) {
            documents.too_long();
        } else if !line.is_empty() {
            let text = Bytes::from(std::mem::take(&mut line));
            // Waits for room: the client's next line waits in the socket, not here.
            if !documents.take_waiting(text).await {
                break;
            }
        }
        // Handed on unless a whole next line is already here: a client that stops in the
        // middle of a line does not hold back what it sent before.
        if memchr::memchr(b'\n', reader.buffer()).is_none() || documents.is_full() {
            documents.hand_on().await;
        }
    }
    documents.hand_on().await;
}

/// Reads up to the next newline into `line` (without it), at most `max` bytes: a longer line
/// is read to its end and dropped, with `too_long` set. `Ok(false)` at the end of the stream
/// (a last line without newline counts).
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
    too_long: &mut bool,
    max: usize,
) -> std::io::Result<bool> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(!line.is_empty() || *too_long);
        }
        let (taken, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, Some(i)),
            None => (available.len(), None),
        };
        let piece = &available[..done.unwrap_or(taken)];
        if !*too_long {
            if line.len() + piece.len() > max {
                *too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(piece);
            }
        }
        reader.consume(taken);
        if done.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(true);
        }
    }
}

/// Receives datagrams until the stop: one document each.
async fn receive(socket: tokio::net::UdpSocket, defaults: Arc<(String, String)>, links: EmfLinks) {
    let mut documents = Documents::new(&defaults, &links);
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let mut stop = links.stop.clone();
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            _ = crate::event::stop_requested(&mut stop) => break,
        };
        let Ok((n, _)) = received else {
            continue;
        };
        documents.take_datagram(&buffer[..n]);
        // Whatever else is waiting joins the same hand-on.
        while !documents.is_full() {
            match socket.try_recv_from(&mut buffer) {
                Ok((n, _)) => documents.take_datagram(&buffer[..n]),
                Err(_) => break,
            }
        }
        documents.hand_on().await;
    }
    documents.hand_on().await;
}

/// A destination and its share of the budget, looked up once per name pair.
type Target = (Arc<Destination>, Arc<Share>);

/// Documents of one destination read and their bytes taken, until they are handed on.
struct Pending {
    destination: Arc<Destination>,
    share: Arc<Share>,
    events: Vec<LogEvent>,
    bytes: usize,
}

/// Documents read and their bytes taken, by destination, until they are handed on.
struct Documents<'a> {
    defaults: &'a (String, String),
    links: &'a EmfLinks,
    known: HashMap<(Box<str>, Box<str>), Target>,
    pending: Vec<Pending>,
    count: usize,
    malformed: Throttle,
    too_long: Throttle,
    full: Throttle,
}

impl<'a> Documents<'a> {
    fn new(defaults: &'a (String, String), links: &'a EmfLinks) -> Self {
        Self {
            defaults,
            links,
            known: HashMap::new(),
            pending: Vec::new(),
            count: 0,
            malformed: Throttle::default(),
            too_long: Throttle::default(),
            full: Throttle::default(),
        }
    }

    fn is_full(&self) -> bool {
        self.count >= MAX_EVENTS_PER_HANDOFF
    }

    /// A TCP line longer than an event may be was dropped.
    fn too_long(&mut self) {
        if let Some(count) = self
            .too_long
            .count(&self.links.telemetry.emf.values_rejected, 1)
        {
            warn!(
                count,
                "emf: tcp lines longer than {} bytes are dropped", self.links.max_line_bytes
            );
        }
    }

    /// The destination a document names, or `None` (counted and warned) when it is not one.
    fn destination(&mut self, text: &[u8]) -> Option<Target> {
        Telemetry::bump(&self.links.telemetry.emf.datagrams, 1);
        let named = match Named::read(text) {
            Ok(named) => named,
            Err(err) => {
                if let Some(count) = self.malformed.count(&self.links.telemetry.emf.malformed, 1) {
                    warn!(count, "emf: a document is dropped: {err}");
                }
                return None;
            }
        };
        let (group, stream) = named.or(self.defaults);
        if let Some(found) = self.known.get(&(group.into(), stream.into())) {
            return Some(found.clone());
        }
        if self.known.len() >= MAX_REMEMBERED {
            self.known.clear();
        }
        let destination = Arc::new(Destination {
            group: group.to_owned(),
            stream: stream.to_owned(),
            class: None,
            retention_days: None,
        });
        let share = self.links.budget.share(&destination);
        self.known.insert(
            (group.into(), stream.into()),
            (destination.clone(), share.clone()),
        );
        Some((destination, share))
    }

    fn push(&mut self, destination: Arc<Destination>, share: Arc<Share>, text: Bytes) {
        let len = text.len();
        let event = LogEvent {
            timestamp_ms: crate::listen::now_ms(),
            message: RawEvent {
                parts: smallvec::smallvec![text],
                len,
                start_offset: 0,
                end_offset: 0,
            },
            file: LISTENER_KEY,
        };
        let bytes = event.budget_bytes();
        self.count += 1;
        match self
            .pending
            .iter_mut()
            .find(|p| Arc::ptr_eq(&p.destination, &destination))
        {
            Some(pending) => {
                pending.events.push(event);
                pending.bytes += bytes;
            }
            None => self.pending.push(Pending {
                destination,
                share,
                events: vec![event],
                bytes,
            }),
        }
    }

    /// A TCP line: waits for room in its destination's share (at the stop, a few seconds at
    /// most). `false` when the stop came and no room did.
    async fn take_waiting(&mut self, text: Bytes) -> bool {
        let Some((destination, share)) = self.destination(&text) else {
            return true;
        };
        let bytes = text.len() + std::mem::size_of::<LogEvent>();
        if self.links.budget.try_acquire(&share, bytes) {
            self.push(destination, share, text);
            return true;
        }
        // What this connection holds goes on first: only its delivery can make the room.
        self.hand_on().await;
        let mut stop = self.links.stop.clone();
        let taken = tokio::select! {
            () = self.links.budget.acquire(&share, bytes) => true,
            _ = crate::event::stop_requested(&mut stop) => false,
        };
        if !taken {
            let waited =
                tokio::time::timeout(STOP_WAIT, self.links.budget.acquire(&share, bytes)).await;
            if waited.is_err() {
                Telemetry::bump(&self.links.telemetry.emf.dropped_queue_full, 1);
                warn!(group = %destination.group, "emf: a document read as cwlite stopped found no room within {} s and is dropped", STOP_WAIT.as_secs());
                return false;
            }
        }
        self.push(destination, share, text);
        true
    }

    /// A datagram: kept if its destination's share has room now, else dropped and counted.
    fn take_datagram(&mut self, datagram: &[u8]) {
        let mut text = datagram;
        while let Some(rest) = text.strip_suffix(b"\n") {
            text = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        if text.is_empty() {
            return;
        }
        let Some((destination, share)) = self.destination(text) else {
            return;
        };
        let bytes = text.len() + std::mem::size_of::<LogEvent>();
        if !self.links.budget.try_acquire(&share, bytes) {
            if let Some(count) = self
                .full
                .count(&self.links.telemetry.emf.dropped_queue_full, 1)
            {
                warn!(
                    count,
                    group = %destination.group,
                    "emf: udp documents are dropped while their destination's share of the log buffer is full"
                );
            }
            return;
        }
        self.push(destination, share, Bytes::copy_from_slice(text));
    }

    /// Hands every pending document on (their bytes are already taken).
    async fn hand_on(&mut self) {
        for Pending {
            destination,
            share,
            events,
            bytes,
        } in self.pending.drain(..)
        {
            let count = events.len() as u64;
            Telemetry::bump(&self.links.telemetry.queued_events, count);
            let message = TailMessage::Events {
                destination,
                events,
                emf: crate::event::Emf::Always,
            };
            if self.links.events.send(message).await.is_err() {
                self.links.budget.release(&share, bytes);
            }
        }
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_lines_are_split_at_newlines_and_an_over_long_one_is_dropped_whole() {
        const MAX: usize = 4096;
        let long = "x".repeat(MAX + 1);
        let input = format!("{{\"a\":1}}\r\n{long}\n{{\"b\":2}}\nlast");
        let mut reader = BufReader::with_capacity(1024, input.as_bytes());
        let (mut line, mut too_long) = (Vec::new(), false);
        let mut got = Vec::new();
        while read_line(&mut reader, &mut line, &mut too_long, MAX)
            .await
            .unwrap()
        {
            got.push(if std::mem::take(&mut too_long) {
                "<too long>".to_owned()
            } else {
                String::from_utf8(std::mem::take(&mut line)).unwrap()
            });
        }
        assert_eq!(got, ["{\"a\":1}", "<too long>", "{\"b\":2}", "last"]);
    }
}
