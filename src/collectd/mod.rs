//! `collectd`: the stock agent's collectd listener. collectd's binary network packets in
//! (`packet`, with signing and encryption, `auth`), one datum per data source out, named
//! `<name_prefix><plugin>_<source>` from `types.db` (`types_db`), with the dimensions the stock
//! agent gives them (collectd's `host`, `instance`, `type`, `type_instance`, and
//! `append_dimensions`), aggregated over `metrics_aggregation_interval` like statsd.
//!
//! One thread receives, parses and aggregates; windows are sent at wall-clock multiples of the
//! interval, and once more when stopping. A packet that is malformed or badly signed is
//! dropped whole, and a value list below the security level, of a type `types.db` does not
//! know, or with a name CloudWatch refuses is dropped alone; each is counted (`cwlite
//! status`) and logged at most once a minute. Nothing here knows how
//! datums are published.

pub mod auth;
pub mod packet;
pub mod types_db;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

use self::auth::AuthFile;
use self::packet::{SecurityLevel, ValueList};
use self::types_db::{TypesDb, TypesDbError};
use crate::config::{AgentConfig, CollectdConfig, CollectdSecurity};
use crate::listen::{self, ListenError, Throttle, next_multiple, now_ms};
use crate::metrics::aggregate::Aggregator;
use crate::metrics::{
    MetricDatum, dimension_sets_of, host_dimension, is_sendable, is_valid_dimension,
    is_valid_metric_name, rollup_sets,
};
use crate::telemetry::Telemetry;

/// Why the listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectdError {
    /// The socket is not there.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// `types.db` cannot be read.
    #[error("collectd: {0}")]
    TypesDb(#[from] TypesDbError),
    /// The thread could not be started.
    #[error("collectd: cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// A running listener.
#[derive(Debug)]
pub struct Listener {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Receiver {
    socket: UdpSocket,
    config: CollectdConfig,
    types: TypesDb,
    auth: AuthFile,
    host: Option<Arc<str>>,
    append: Vec<(Arc<str>, Arc<str>)>,
    rollups: Vec<Vec<Arc<str>>>,
    sender: mpsc::Sender<Vec<MetricDatum>>,
    telemetry: Arc<Telemetry>,
    stop: Arc<AtomicBool>,
    problems: Throttle,
}

impl Listener {
    /// Reads `types.db`, binds `config.service_address` and starts receiving.
    ///
    /// # Errors
    /// `types.db` cannot be read, the address cannot be bound, or the thread cannot start.
    pub fn start(
        config: &CollectdConfig,
        agent: &AgentConfig,
        aggregation_dimensions: &[Vec<String>],
        sender: mpsc::Sender<Vec<MetricDatum>>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, CollectdError> {
        let types = TypesDb::load(&config.typesdb)?;
        let socket = listen::bind("collectd", &config.service_address)?;
        let local_addr = socket.local_addr().map_err(|source| ListenError::Bind {
            input: "collectd",
            address: config.service_address.clone(),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = Receiver {
            socket,
            types,
            auth: AuthFile::new(&config.auth_file),
            host: host_dimension(agent),
            append: config
                .append_dimensions
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
                .collect(),
            rollups: rollup_sets(aggregation_dimensions),
            config: config.clone(),
            sender,
            telemetry,
            stop: stop.clone(),
            problems: Throttle::default(),
        };
        let thread = std::thread::Builder::new()
            .name("cwlite-collectd".into())
            .spawn(move || receiver.run())
            .map_err(CollectdError::Thread)?;
        Ok(Self {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the thread ended (it only ends when told to, or on a bug).
    pub fn has_ended(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops receiving and sends what is aggregated. Blocks until the thread ended (at most
    /// the read timeout).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Listener {
    /// Joins the thread, so the port is free again when the listener is gone.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Receiver {
    fn run(mut self) {
        let required = match self.config.security_level {
            CollectdSecurity::None => SecurityLevel::None,
            CollectdSecurity::Sign => SecurityLevel::Sign,
            CollectdSecurity::Encrypt => SecurityLevel::Encrypt,
        };
        let mut aggregator = self
            .config
            .aggregation_interval_secs
            .map(|secs| Aggregator::new(Duration::from_secs(secs)));
        let every_ms = self
            .config
            .aggregation_interval_secs
            .map(|secs| (secs.max(1) * 1000) as i64);
        let mut next_flush = every_ms.map(|every| next_multiple(now_ms(), every));
        let mut buf = vec![0u8; listen::MAX_DATAGRAM];
        let mut lists = Vec::new();
        let mut datums = Vec::new();
        let unit: Arc<str> = Arc::from("None");
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            if !stopping {
                match self.socket.recv(&mut buf) {
                    Ok(n) => {
                        self.telemetry
                            .collectd
                            .datagrams
                            .fetch_add(1, Ordering::Relaxed);
                        lists.clear();
                        match packet::parse(&buf[..n], required, &mut self.auth, &mut lists) {
                            Ok(below) => {
                                if below > 0
                                    && let Some(count) = self
                                        .problems
                                        .count(&self.telemetry.collectd.malformed, below as u64)
                                {
                                    warn!(
                                        count,
                                        "collectd: value lists below collectd_security_level \"{}\" dropped (set SecurityLevel, Username and Password in collectd's network plugin, or lower the level)",
                                        self.config.security_level.name()
                                    );
                                }
                                for list in &lists {
                                    self.add(list, aggregator.as_mut(), &unit, &mut datums);
                                }
                            }
                            Err(err) => {
                                if let Some(count) =
                                    self.problems.count(&self.telemetry.collectd.malformed, 1)
                                {
                                    warn!(count, "collectd: packet dropped: {err}");
                                }
                            }
                        }
                    }
                    Err(err) if listen::is_timeout(&err) => {}
                    Err(err) => {
                        warn!("collectd: receiving failed: {err}");
                        std::thread::sleep(listen::READ_TIMEOUT);
                    }
                }
            }
            let now = now_ms();
            if let (Some(aggregator), Some(flush_at)) = (aggregator.as_mut(), next_flush)
                && (now >= flush_at || stopping)
            {
                aggregator.flush(&mut datums);
                next_flush = every_ms.map(|every| next_multiple(now, every));
            }
            if !datums.is_empty() {
                self.send(std::mem::take(&mut datums));
            }
            if stopping {
                break;
            }
        }
    }

    /// One datum per data source of `list`, into the aggregation (or `datums` without one).
    fn add(
        &mut self,
        list: &ValueList,
        aggregator: Option<&mut Aggregator>,
        unit: &Arc<str>,
        datums: &mut Vec<MetricDatum>,
    ) {
        let malformed = &self.telemetry.collectd.malformed;
        let Some(sources) = self.types.sources(&list.type_name) else {
            if let Some(count) = self.problems.count(malformed, 1) {
                warn!(
                    count,
                    "collectd: type \"{}\" of plugin \"{}\" is not in collectd_typesdb: its values are dropped",
                    list.type_name,
                    list.plugin
                );
            }
            return;
        };
        if sources.len() != list.values.len() {
            if let Some(count) = self.problems.count(malformed, 1) {
                warn!(
                    count,
                    "collectd: type \"{}\" has {} data sources in collectd_typesdb but {} values came: dropped",
                    list.type_name,
                    sources.len(),
                    list.values.len()
                );
            }
            return;
        }
        let names_ok = sources.iter().all(|source| {
            is_valid_metric_name(&format!(
                "{}{}_{}",
                self.config.name_prefix, list.plugin, source
            ))
        });
        let dimensions_ok = [
            &list.host,
            &list.plugin_instance,
            &list.type_name,
            &list.type_instance,
        ]
        .iter()
        .all(|value| is_valid_dimension("host", value));
        if !names_ok || !dimensions_ok {
            if let Some(count) = self.problems.count(malformed, 1) {
                warn!(
                    count,
                    "collectd: plugin \"{}\" type \"{}\": a name CloudWatch refuses (1 to 255 ASCII characters) or a value over 1,024 characters; dropped",
                    list.plugin,
                    list.type_name
                );
            }
            return;
        }
        // collectd's host wins over the agent's, as telegraf adds global tags only if absent.
        let mut tags: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        for (key, value) in [
            ("host", &list.host),
            ("instance", &list.plugin_instance),
            ("type", &list.type_name),
            ("type_instance", &list.type_instance),
        ] {
            if !value.is_empty() {
                tags.push((Arc::from(key), Arc::from(value.as_str())));
            }
        }
        let sets = dimension_sets_of(tags, self.host.as_ref(), &self.append, &self.rollups);
        let mut aggregator = aggregator;
        let mut rejected = 0u64;
        for (source, value) in sources.iter().zip(&list.values) {
            let name: Arc<str> = Arc::from(format!(
                "{}{}_{}",
                self.config.name_prefix, list.plugin, source
            ));
            for dimensions in &sets {
                match &mut aggregator {
                    Some(aggregator) => {
                        if aggregator
                            .add_value(&name, dimensions, unit, list.time_ms, value.as_f64())
                            .is_err()
                        {
                            rejected += 1;
                        }
                    }
                    None if !is_sendable(value.as_f64()) => rejected += 1,
                    None => datums.push(MetricDatum {
                        metric_name: name.clone(),
                        dimensions: dimensions.clone(),
                        value: value.as_f64(),
                        unit: unit.clone(),
                        timestamp_ms: list.time_ms,
                        storage_resolution: 1,
                        distribution: None,
                    }),
                }
            }
        }
        if rejected > 0 {
            self.telemetry
                .collectd
                .values_rejected
                .fetch_add(rejected, Ordering::Relaxed);
        }
    }

    fn send(&self, datums: Vec<MetricDatum>) {
        listen::send_datums(&self.sender, &self.telemetry, datums, "collectd");
    }
}
