//! What the listeners (statsd, collectd, EMF) share: reading a `service_address` as the stock
//! agent's Go listeners read it, binding UDP with a large receive buffer and a read timeout
//! that lets the reading thread see a stop, and binding TCP. Nothing here parses a payload.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::warn;

use crate::metrics::MetricDatum;
use crate::telemetry::Telemetry;

/// The socket's receive buffer asked for: datagrams that arrive while the reader is not
/// scheduled wait there (the kernel's default, about 200 KiB, is a few milliseconds at
/// 50,000 datagrams a second). Root gets it whole; others get up to `net.core.rmem_max`.
pub const RECEIVE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// How often a reader blocked on an idle socket looks at its stop flag.
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// The largest UDP payload.
pub const MAX_DATAGRAM: usize = 65_536;

/// A listener's problems are logged at most this often, with a count.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// One kind of problem, counted between warnings: [`Throttle::note`] says when to log (the
/// first time, then at most once a [`WARN_EVERY`]) and how many happened since, so the
/// message is only built when it is logged.
#[derive(Debug, Default)]
pub struct Throttle {
    since: u64,
    warned: Option<Instant>,
}

impl Throttle {
    /// Adds `n` to `counter` (the total `cwlite status` shows) and counts one problem here:
    /// [`Throttle::note`] for a drop that is also counted in the telemetry.
    pub fn count(&mut self, counter: &std::sync::atomic::AtomicU64, n: u64) -> Option<u64> {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.note()
    }

    /// Counts one; `Some(count since the last warning)` when a warning is due.
    pub fn note(&mut self) -> Option<u64> {
        self.since += 1;
        if self.warned.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return None;
        }
        self.warned = Some(Instant::now());
        Some(std::mem::take(&mut self.since))
    }
}

/// Hands a listener's datums to the publisher; when its queue is full they are dropped and
/// counted, as a collector's tick is.
pub fn send_datums(
    sender: &mpsc::Sender<Vec<MetricDatum>>,
    telemetry: &Telemetry,
    datums: Vec<MetricDatum>,
    input: &str,
) {
    if datums.is_empty() {
        return;
    }
    if let Err(mpsc::error::TrySendError::Full(_)) = sender.try_send(datums) {
        Telemetry::bump(&telemetry.collectors.cycles_dropped, 1);
        warn!("metric queue full: {input} datums are dropped");
    }
}

/// Why a listener's socket is not there.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address does not resolve.
    #[error("{input}: cannot resolve service_address \"{address}\": {source}")]
    Resolve {
        /// Which input (`statsd`).
        input: &'static str,
        /// As configured.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The socket cannot be bound (in use, or not allowed).
    #[error("{input}: cannot listen on udp {address}: {source}")]
    Bind {
        /// Which input.
        input: &'static str,
        /// As configured.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The TCP socket cannot be bound.
    #[error("{input}: cannot listen on tcp {address}: {source}")]
    BindTcp {
        /// Which input.
        input: &'static str,
        /// As configured.
        address: String,
        /// Why.
        source: io::Error,
    },
}

/// Binds a TCP listener on the first address of `address` that can be bound, non-blocking
/// (for tokio).
///
/// # Errors
/// Nothing resolves or binds.
pub fn bind_tcp(input: &'static str, address: &str) -> Result<std::net::TcpListener, ListenError> {
    let candidates = resolve(address).map_err(|source| ListenError::Resolve {
        input,
        address: address.to_owned(),
        source,
    })?;
    let mut last_error = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address");
    for candidate in candidates {
        match std::net::TcpListener::bind(candidate) {
            Ok(listener) => {
                listener
                    .set_nonblocking(true)
                    .map_err(|source| ListenError::BindTcp {
                        input,
                        address: address.to_owned(),
                        source,
                    })?;
                return Ok(listener);
            }
            Err(err) => last_error = err,
        }
    }
    Err(ListenError::BindTcp {
        input,
        address: address.to_owned(),
        source: last_error,
    })
}

/// The socket addresses `host:port` means: `:port` (or an empty host) is every interface,
/// IPv6 and IPv4, as Go listens; `udp://` in front is allowed (collectd's form).
///
/// # Errors
/// The host does not resolve or the port is not a number.
pub fn resolve(address: &str) -> io::Result<Vec<SocketAddr>> {
    let address = address.strip_prefix("udp://").unwrap_or(address);
    match address.strip_prefix(':') {
        Some(port) => {
            let port: u16 = port
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid port"))?;
            Ok(vec![
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
                SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
            ])
        }
        None => Ok(address.to_socket_addrs()?.collect()),
    }
}

/// Binds the first address of `address` that can be bound, with [`RECEIVE_BUFFER_BYTES`] and
/// [`READ_TIMEOUT`].
///
/// # Errors
/// Nothing resolves or binds.
pub fn bind(input: &'static str, address: &str) -> Result<UdpSocket, ListenError> {
    let candidates = resolve(address).map_err(|source| ListenError::Resolve {
        input,
        address: address.to_owned(),
        source,
    })?;
    let bind_error = |source| ListenError::Bind {
        input,
        address: address.to_owned(),
        source,
    };
    let mut last_error = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address");
    let socket = candidates
        .into_iter()
        .find_map(|candidate| match bind_one(candidate) {
            Ok(socket) => Some(socket),
            Err(err) => {
                last_error = err;
                None
            }
        })
        .ok_or_else(|| bind_error(last_error))?;
    socket
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(bind_error)?;
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, RECEIVE_BUFFER_BYTES)
        .is_err()
    {
        // Without CAP_NET_ADMIN: as much as `net.core.rmem_max` allows.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, RECEIVE_BUFFER_BYTES);
    }
    Ok(socket)
}

/// Binds one address. Every IPv6 interface (`[::]`) is bound dual-stack, taking IPv4 too,
/// as Go does, even where `net.ipv6.bindv6only` is set.
fn bind_one(address: SocketAddr) -> io::Result<UdpSocket> {
    if let SocketAddr::V6(v6) = address
        && v6.ip().is_unspecified()
    {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let socket = rustix::net::socket_with(
            AddressFamily::INET6,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::sockopt::set_ipv6_v6only(&socket, false)?;
        rustix::net::bind(&socket, &v6)?;
        return Ok(UdpSocket::from(socket));
    }
    UdpSocket::bind(address)
}

/// Whether a receive error is only the read timeout (or a signal).
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The first multiple of `every_ms` after `now_ms`: windows close on the wall clock.
pub fn next_multiple(now_ms: i64, every_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(every_ms) + every_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receive_buffer_asked_for_is_four_mebibytes() {
        assert_eq!(RECEIVE_BUFFER_BYTES, 4 << 20);
        assert_eq!(MAX_DATAGRAM, 65_536);
    }

    #[test]
    fn port_only_means_every_interface_and_udp_scheme_is_allowed() {
        let all = resolve(":8125").unwrap();
        assert!(
            all.iter()
                .all(|a| a.ip().is_unspecified() && a.port() == 8125)
        );
        assert_eq!(resolve("127.0.0.1:9").unwrap()[0].port(), 9);
        assert_eq!(resolve("udp://127.0.0.1:25826").unwrap()[0].port(), 25826);
        assert!(resolve(":x").is_err());
    }

    #[test]
    fn a_throttle_warns_at_first_and_then_counts_until_a_minute_passed() {
        assert_eq!(WARN_EVERY, Duration::from_secs(60));
        let mut throttle = Throttle::default();
        assert_eq!(throttle.note(), Some(1));
        assert_eq!(throttle.note(), None);
        assert_eq!(throttle.note(), None);
        throttle.warned = Some(Instant::now() - WARN_EVERY);
        assert_eq!(throttle.note(), Some(3));
    }

    #[test]
    fn a_counted_problem_adds_to_its_total_every_time_and_warns_as_a_note_does() {
        let total = std::sync::atomic::AtomicU64::new(0);
        let mut throttle = Throttle::default();
        assert_eq!(throttle.count(&total, 5), Some(1));
        assert_eq!(throttle.count(&total, 1), None);
        assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 6);
    }

    #[test]
    fn windows_close_on_wall_clock_multiples() {
        assert_eq!(next_multiple(25_000, 10_000), 30_000);
        assert_eq!(next_multiple(30_000, 10_000), 40_000);
    }

    #[test]
    fn every_interface_takes_ipv4_senders_too() {
        let socket = bind("statsd", ":0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"x:1|c", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(socket.recv(&mut buf).unwrap(), 5);
    }

    #[test]
    fn a_port_in_use_is_an_error_naming_the_input_and_address() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let err = bind("statsd", &address).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("statsd: cannot listen on udp {address}")),
            "{err}"
        );
    }
}
