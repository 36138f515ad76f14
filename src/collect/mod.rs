//! Host collectors: sample `/proc`, `/sys` and `statfs` into plugin fields, as the stock agent's
//! telegraf inputs do.
//!
//! Owns the per-plugin readers and their state between samples (previous counters for deltas).
//! A collector produces [`Sample`]s (field, value, tags) into a caller's vector; it knows nothing
//! of metric names, units, dimensions or CloudWatch, which `metrics` adds. All file access goes
//! through [`Host`], whose root and `statfs` can be replaced by fixtures in tests.
//!
//! Which source each plugin uses, and why `sysinfo` is not used for these values, is in
//! ARCHITECTURE.md: its cpu and memory figures follow other definitions than the stock agent's.

pub mod cpu;
pub mod disk;
pub mod diskio;
pub mod mem;
pub mod net;
pub mod netstat;
pub mod processes;
pub mod procstat;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{PluginConfig, PluginKind, PluginOptions};

/// Tags of one series (`cpu=cpu-total`, `device=sda1`, …), shared between samples so that a
/// steady-state cycle allocates no tag strings.
pub type Tags = Arc<[(&'static str, Arc<str>)]>;

/// One field of one series at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The plugin field (`usage_idle`).
    pub field: &'static str,
    /// The value.
    pub value: f64,
    /// The series' tags.
    pub tags: Tags,
}

/// Why a cycle produced nothing (or less than usual). Collection goes on at the next tick.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A source file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Filesystem statistics of one mount point (the fields of `statfs(2)` the stock agent uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    /// `f_bsize`.
    pub block_size: u64,
    /// `f_blocks`.
    pub blocks: u64,
    /// `f_bfree`.
    pub blocks_free: u64,
    /// `f_bavail`.
    pub blocks_available: u64,
    /// `f_files`.
    pub files: u64,
    /// `f_ffree`.
    pub files_free: u64,
}

/// A `statfs(2)` implementation: the real one, or a fixture's.
type StatFsFn = Box<dyn Fn(&Path) -> std::io::Result<FsStats> + Send + Sync>;

/// Where collectors read from: a root directory holding `proc/` and `sys/`, and `statfs`.
pub struct Host {
    root: PathBuf,
    statfs: StatFsFn,
    /// The last process list, shared by the `procstat` entries.
    processes: procstat::table::SharedList,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// The machine itself.
    pub fn real() -> Self {
        Self {
            root: PathBuf::from("/"),
            statfs: Box::new(real_statfs),
            processes: Default::default(),
        }
    }

    /// A fixture tree and a fake `statfs`, for tests.
    pub fn fixture(
        root: &Path,
        statfs: impl Fn(&Path) -> std::io::Result<FsStats> + Send + Sync + 'static,
    ) -> Self {
        Self {
            root: root.to_owned(),
            statfs: Box::new(statfs),
            processes: Default::default(),
        }
    }

    /// The path of `relative` (such as `proc/stat`) under the root.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// An absolute path from the configuration (a pid file) under the root.
    pub fn path_of(&self, absolute: &Path) -> PathBuf {
        self.root
            .join(absolute.strip_prefix("/").unwrap_or(absolute))
    }

    /// The process list, at most [`procstat::table::FRESH_FOR`] old, with what `wanted` asks.
    ///
    /// # Errors
    /// `/proc` cannot be listed.
    pub fn process_list(
        &self,
        wanted: procstat::table::Wanted,
    ) -> Result<Arc<procstat::table::ProcessList>, CollectError> {
        let proc = self.path("proc");
        self.processes
            .get(&proc, wanted)
            .map_err(|source| CollectError::Read { path: proc, source })
    }

    /// Makes the next [`Host::process_list`] walk `/proc` again, as a new cycle would.
    pub fn expire_process_list(&self) {
        self.processes.expire();
    }

    /// Reads `relative` into `buf`, reusing its allocation.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn read_into(&self, relative: &str, buf: &mut String) -> Result<(), CollectError> {
        let path = self.path(relative);
        read_path_into(&path, buf).map_err(|source| CollectError::Read { path, source })
    }

    /// `statfs` of a mount point.
    ///
    /// # Errors
    /// The mount point cannot be queried.
    pub fn statfs(&self, mount_point: &Path) -> std::io::Result<FsStats> {
        (self.statfs)(mount_point)
    }
}

/// Reads a whole file into `buf` (cleared first).
///
/// # Errors
/// The file cannot be opened or read, or it is not UTF-8.
pub fn read_path_into(path: &Path, buf: &mut String) -> std::io::Result<()> {
    let mut bytes = std::mem::take(buf).into_bytes();
    let read = read_bytes_into(path, &mut bytes);
    *buf = String::from_utf8(bytes)
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err.utf8_error()))?;
    read
}

/// Reads a whole file into `buf` (cleared first) with `open`, `read`s and `close` alone:
/// `std::fs::read` and `read_to_end` also ask the file's size (`statx`) and position
/// (`lseek`), which `/proc` files do not have, a third more system calls per process for
/// `procstat`'s walk.
///
/// # Errors
/// The file cannot be opened or read.
pub fn read_bytes_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    read_file_into(&mut std::fs::File::open(path)?, buf)
}

/// Reads the rest of `file` into `buf` (cleared first) with `read`s alone.
///
/// # Errors
/// A read fails.
pub fn read_file_into(file: &mut std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(4096);
        }
        let start = buf.len();
        buf.resize(buf.capacity(), 0);
        match file.read(&mut buf[start..]) {
            Ok(0) => {
                buf.truncate(start);
                return Ok(());
            }
            Ok(n) => buf.truncate(start + n),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => buf.truncate(start),
            Err(err) => {
                buf.truncate(start);
                return Err(err);
            }
        }
    }
}

fn real_statfs(path: &Path) -> std::io::Result<FsStats> {
    let stats = rustix::fs::statfs(path)?;
    Ok(FsStats {
        block_size: stats.f_bsize as u64,
        blocks: stats.f_blocks,
        blocks_free: stats.f_bfree,
        blocks_available: stats.f_bavail,
        files: stats.f_files,
        files_free: stats.f_ffree,
    })
}

/// A cache of tag sets keyed by a series name, so steady-state cycles reuse them. Series not
/// seen in a cycle (a removed interface, an unmounted filesystem) are forgotten at its end, so
/// hosts with churning devices (containers' veths and overlays) do not grow it for ever.
#[derive(Debug, Default)]
pub struct TagCache {
    by_key: HashMap<String, (Tags, u64)>,
    cycle: u64,
}

impl TagCache {
    /// The tags for `key`, built by `make` the first time.
    pub fn get(&mut self, key: &str, make: impl FnOnce() -> Vec<(&'static str, Arc<str>)>) -> Tags {
        if let Some((tags, seen)) = self.by_key.get_mut(key) {
            *seen = self.cycle;
            return tags.clone();
        }
        let tags: Tags = make().into();
        self.by_key
            .insert(key.to_owned(), (tags.clone(), self.cycle));
        tags
    }

    /// Ends a cycle: forgets the series not asked for since the previous call.
    pub fn end_cycle(&mut self) {
        let cycle = self.cycle;
        self.by_key.retain(|_, (_, seen)| *seen == cycle);
        self.cycle += 1;
    }

    /// Whether `key` was asked for in the current cycle.
    pub fn contains(&self, key: &str) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|(_, seen)| *seen == self.cycle)
    }

    /// Series currently cached.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The first `N` whitespace-separated numbers of `fields`; `None` when there are fewer (a line
/// from an older kernel format). An unparsable number counts as 0, as gopsutil reads it.
pub fn parse_counters<'a, const N: usize>(
    fields: impl Iterator<Item = &'a str>,
) -> Option<[u64; N]> {
    let mut counters = [0u64; N];
    let mut present = 0;
    for (slot, field) in counters.iter_mut().zip(fields) {
        *slot = field.parse().unwrap_or(0);
        present += 1;
    }
    (present == N).then_some(counters)
}

/// Per-device counters (diskio, net): one series per name, tagged `tag_key=name`, sent as
/// per-interval deltas, and forgotten when a name disappears.
#[derive(Debug)]
pub struct CounterSeries {
    tag_key: &'static str,
    names: HashMap<String, Arc<str>>,
    tags: TagCache,
    deltas: DeltaTracker,
}

impl CounterSeries {
    /// Series tagged `tag_key`.
    pub fn new(tag_key: &'static str) -> Self {
        Self {
            tag_key,
            names: HashMap::new(),
            tags: TagCache::default(),
            deltas: DeltaTracker::default(),
        }
    }

    /// The tags of series `name`, reused between cycles.
    pub fn tags(&mut self, name: &str) -> Tags {
        let series = match self.names.get(name) {
            Some(series) => series.clone(),
            None => {
                let series: Arc<str> = Arc::from(name);
                self.names.insert(name.to_owned(), series.clone());
                series
            }
        };
        let key = self.tag_key;
        self.tags.get(name, || vec![(key, series)])
    }

    /// Appends the deltas of `counters` (field, cumulative value) for series `name`.
    pub fn push_deltas(
        &mut self,
        name: &str,
        counters: &[(&'static str, u64)],
        out: &mut Vec<Sample>,
    ) {
        let tags = self.tags(name);
        let Some(series) = self.names.get(name).cloned() else {
            return;
        };
        for &(field, value) in counters {
            if let Some(delta) = self.deltas.delta(&series, field, value) {
                out.push(Sample {
                    field,
                    value: delta as f64,
                    tags: tags.clone(),
                });
            }
        }
    }

    /// Ends a cycle: names not seen in it are forgotten with their counters.
    pub fn end_cycle(&mut self) {
        let tags = &self.tags;
        self.names.retain(|name, _| tags.contains(name));
        self.deltas.retain(|series| tags.contains(series));
        self.tags.end_cycle();
    }

    /// Names currently remembered.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is remembered.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// No tags: plugins such as mem and swap report one series.
pub fn no_tags() -> Tags {
    Arc::from(Vec::new())
}

/// A per-plugin collector.
#[derive(Debug)]
pub enum Collector {
    /// `cpu`.
    Cpu(cpu::CpuCollector),
    /// `mem` and `swap` (both from `/proc/meminfo`).
    Mem(mem::MemCollector),
    /// `disk`.
    Disk(disk::DiskCollector),
    /// `diskio`.
    Diskio(diskio::DiskioCollector),
    /// `net`.
    Net(net::NetCollector),
    /// `netstat`.
    Netstat(netstat::NetstatCollector),
    /// `processes`.
    Processes(processes::ProcessesCollector),
    /// One `procstat` entry.
    Procstat(procstat::ProcstatCollector),
}

impl Collector {
    /// The collector for a configured plugin.
    pub fn for_plugin(plugin: &PluginConfig) -> Self {
        match (&plugin.options, plugin.kind) {
            (PluginOptions::Cpu { per_cpu, total_cpu }, _) => {
                Collector::Cpu(cpu::CpuCollector::new(*per_cpu, *total_cpu))
            }
            (
                PluginOptions::Disk {
                    mount_points,
                    ignore_file_system_types,
                    drop_device,
                },
                _,
            ) => Collector::Disk(disk::DiskCollector::new(
                mount_points.clone(),
                ignore_file_system_types.clone(),
                *drop_device,
            )),
            (PluginOptions::Diskio { devices }, _) => {
                Collector::Diskio(diskio::DiskioCollector::new(devices))
            }
            (PluginOptions::Net { interfaces }, _) => {
                Collector::Net(net::NetCollector::new(interfaces))
            }
            (PluginOptions::Procstat { finder }, _) => {
                let fields: Vec<&str> = plugin.measurements.iter().map(|m| m.field).collect();
                Collector::Procstat(procstat::ProcstatCollector::new(finder.clone(), &fields))
            }
            (_, PluginKind::Swap) => Collector::Mem(mem::MemCollector::swap()),
            (_, PluginKind::Netstat) => Collector::Netstat(netstat::NetstatCollector::default()),
            (_, PluginKind::Processes) => {
                Collector::Processes(processes::ProcessesCollector::default())
            }
            _ => Collector::Mem(mem::MemCollector::mem()),
        }
    }

    /// Takes one sample of every series into `out` (appending).
    ///
    /// # Errors
    /// A source could not be read; whatever was read before is still in `out`.
    pub fn collect(&mut self, host: &Host, out: &mut Vec<Sample>) -> Result<(), CollectError> {
        match self {
            Collector::Cpu(c) => c.collect(host, out),
            Collector::Mem(c) => c.collect(host, out),
            Collector::Disk(c) => c.collect(host, out),
            Collector::Diskio(c) => c.collect(host, out),
            Collector::Net(c) => c.collect(host, out),
            Collector::Netstat(c) => c.collect(host, out),
            Collector::Processes(c) => c.collect(host, out),
            Collector::Procstat(c) => c.collect(host, out),
        }
    }
}

/// Keeps the previous value of cumulative counters and yields per-interval deltas, the way the
/// stock agent's `cumulativetodelta` processor does: the first value of a series yields nothing,
/// and so does a value lower than the previous (a counter reset).
#[derive(Debug, Default)]
pub struct DeltaTracker {
    previous: HashMap<(Arc<str>, &'static str), u64>,
}

impl DeltaTracker {
    /// The increase of `field` of `series` since the last call, if there is a meaningful one.
    pub fn delta(&mut self, series: &Arc<str>, field: &'static str, value: u64) -> Option<u64> {
        let key = (series.clone(), field);
        let previous = self.previous.insert(key, value);
        previous.and_then(|p| value.checked_sub(p))
    }

    /// Forgets series not in `alive` (devices or interfaces that disappeared).
    pub fn retain(&mut self, alive: impl Fn(&str) -> bool) {
        self.previous.retain(|(series, _), _| alive(series));
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A fixture `/proc` tree for collector tests.
    use super::*;

    pub struct Fixture {
        pub dir: tempfile::TempDir,
    }

    impl Fixture {
        pub fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        pub fn write(&self, relative: &str, text: &str) {
            let path = self.dir.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        pub fn host(&self) -> Host {
            Host::fixture(self.dir.path(), |_| {
                Err(std::io::Error::other("no statfs in this fixture"))
            })
        }
    }

    /// `field -> value` for samples whose tags include `tag`.
    pub fn values(samples: &[Sample], tag: Option<(&str, &str)>) -> Vec<(&'static str, f64)> {
        samples
            .iter()
            .filter(|s| {
                tag.is_none_or(|(k, v)| s.tags.iter().any(|(tk, tv)| *tk == k && &**tv == v))
            })
            .map(|s| (s.field, s.value))
            .collect()
    }

    pub fn value(samples: &[Sample], field: &str, tag: Option<(&str, &str)>) -> Option<f64> {
        values(samples, tag)
            .into_iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_drop_the_first_value_and_resets() {
        let mut tracker = DeltaTracker::default();
        let sda: Arc<str> = Arc::from("sda");
        assert_eq!(tracker.delta(&sda, "reads", 100), None);
        assert_eq!(tracker.delta(&sda, "reads", 150), Some(50));
        assert_eq!(tracker.delta(&sda, "reads", 150), Some(0));
        assert_eq!(
            tracker.delta(&sda, "reads", 10),
            None,
            "a counter reset yields nothing"
        );
        assert_eq!(tracker.delta(&sda, "reads", 15), Some(5));
        tracker.retain(|s| s != "sda");
        assert_eq!(
            tracker.delta(&sda, "reads", 20),
            None,
            "a forgotten series starts over"
        );
    }

    #[test]
    fn series_not_seen_in_a_cycle_are_forgotten() {
        let mut cache = TagCache::default();
        cache.get("veth1", || vec![("interface", Arc::from("veth1"))]);
        cache.get("eth0", || vec![("interface", Arc::from("eth0"))]);
        cache.end_cycle();
        cache.get("eth0", || unreachable!("kept"));
        cache.end_cycle();
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn whole_files_are_read_whatever_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &big).unwrap();
        let mut buf = b"left over".to_vec();
        read_bytes_into(&path, &mut buf).unwrap();
        assert_eq!(buf, big);
        std::fs::write(&path, b"\xff\xfe").unwrap();
        let mut text = String::from("left over");
        assert_eq!(
            read_path_into(&path, &mut text).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
        assert!(read_bytes_into(&dir.path().join("missing"), &mut buf).is_err());
    }

    #[test]
    fn tag_sets_are_shared_between_cycles() {
        let mut cache = TagCache::default();
        let a = cache.get("cpu0", || vec![("cpu", Arc::from("cpu0"))]);
        let b = cache.get("cpu0", || unreachable!("built once"));
        assert!(Arc::ptr_eq(&a, &b));
    }
}
