//! `disk`: space and inodes of each mounted filesystem, from `/proc/self/mounts` and `statfs`.
//!
//! Follows telegraf's disk input as the stock agent runs it: every mount (virtual ones included),
//! filtered by `resources` (exact mount points) and `ignore_file_system_types`; `autofs` and
//! filesystems of size zero are skipped. Tags are `path`, `device` (without `/dev/`, unless
//! `drop_device`) and `fstype`. `used_percent` is used / (used + available), as `df` shows it.

use std::path::Path;
use std::sync::Arc;

use super::{CollectError, Host, Sample, TagCache};
use crate::config::Resources;

/// The `disk` plugin.
#[derive(Debug)]
pub struct DiskCollector {
    mount_points: Resources,
    ignore_file_system_types: Vec<String>,
    drop_device: bool,
    tags: TagCache,
    buf: String,
    /// Byte ranges of (device, mount point, fstype) in `buf`, reused every cycle.
    mounts: Vec<[std::ops::Range<usize>; 3]>,
    key: String,
}

/// Undoes the octal escapes (`\040` for a space) the kernel writes in mount tables.
fn unescape(field: &str) -> std::borrow::Cow<'_, str> {
    if !field.contains('\\') {
        return field.into();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned().into()
}

impl DiskCollector {
    /// A collector with the plugin's filters.
    pub fn new(
        mount_points: Resources,
        ignore_file_system_types: Vec<String>,
        drop_device: bool,
    ) -> Self {
        Self {
            mount_points,
            ignore_file_system_types,
            drop_device,
            tags: TagCache::default(),
            buf: String::new(),
            mounts: Vec::new(),
            key: String::new(),
        }
    }

    /// Samples every mount that passes the filters.
    ///
    /// # Errors
    /// The mount table cannot be read. A mount whose `statfs` fails is skipped.
    pub fn collect(&mut self, host: &Host, out: &mut Vec<Sample>) -> Result<(), CollectError> {
        let mut buf = std::mem::take(&mut self.buf);
        let result = host.read_into("proc/self/mounts", &mut buf);
        if result.is_ok() {
            let mut mounts = std::mem::take(&mut self.mounts);
            mounts.clear();
            let base = buf.as_ptr() as usize;
            let range = |field: &str| {
                let start = field.as_ptr() as usize - base;
                start..start + field.len()
            };
            for line in buf.lines() {
                let mut fields = line.split_ascii_whitespace();
                if let (Some(device), Some(mount_point), Some(fstype)) =
                    (fields.next(), fields.next(), fields.next())
                {
                    mounts.push([range(device), range(mount_point), range(fstype)]);
                }
            }
            for (i, [device, mount_point, fstype]) in mounts.iter().enumerate() {
                // Later entries shadow earlier ones at the same mount point, as the kernel shows them.
                if mounts[i + 1..]
                    .iter()
                    .any(|later| buf[later[1].clone()] == buf[mount_point.clone()])
                {
                    continue;
                }
                let (device, mount_point, fstype) = (
                    &buf[device.clone()],
                    &buf[mount_point.clone()],
                    &buf[fstype.clone()],
                );
                self.sample(host, &unescape(device), &unescape(mount_point), fstype, out);
            }
            self.mounts = mounts;
            self.tags.end_cycle();
        }
        self.buf = buf;
        result
    }

    fn sample(
        &mut self,
        host: &Host,
        device: &str,
        mount_point: &str,
        fstype: &str,
        out: &mut Vec<Sample>,
    ) {
        if fstype == "autofs" || self.ignore_file_system_types.iter().any(|t| t == fstype) {
            return;
        }
        if let Resources::Only(wanted) = &self.mount_points
            && !wanted.iter().any(|w| w == mount_point)
        {
            return;
        }
        let Ok(stats) = host.statfs(Path::new(mount_point)) else {
            return;
        };
        let total = stats.blocks * stats.block_size;
        if total == 0 {
            return;
        }
        let free = stats.blocks_available * stats.block_size;
        let used = stats.blocks.saturating_sub(stats.blocks_free) * stats.block_size;
        let used_percent = if used + free > 0 {
            used as f64 / (used + free) as f64 * 100.0
        } else {
            0.0
        };
        let drop_device = self.drop_device;
        self.key.clear();
        for part in [device, "\0", mount_point, "\0", fstype] {
            self.key.push_str(part);
        }
        let tags = self.tags.get(&self.key, || {
            let mut tags = Vec::with_capacity(3);
            if !drop_device {
                tags.push(("device", Arc::from(device.replace("/dev/", ""))));
            }
            tags.push(("fstype", Arc::from(fstype)));
            tags.push(("path", Arc::from(mount_point)));
            tags
        });
        let mut push = |field: &'static str, value: f64| {
            out.push(Sample {
                field,
                value,
                tags: tags.clone(),
            })
        };
        push("total", total as f64);
        push("free", free as f64);
        push("used", used as f64);
        push("used_percent", used_percent);
        push("inodes_total", stats.files as f64);
        push("inodes_free", stats.files_free as f64);
        push(
            "inodes_used",
            stats.files.saturating_sub(stats.files_free) as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, value, values};
    use super::super::{FsStats, Host};
    use super::*;

    const MOUNTS: &str = "sysfs /sys sysfs rw,nosuid 0 0\n\
        proc /proc proc rw 0 0\n\
        /dev/sda1 / ext4 rw,relatime 0 0\n\
        systemd-1 /mnt/auto autofs rw 0 0\n\
        tmpfs /run tmpfs rw 0 0\n\
        /dev/mapper/vg-data /srv/my\\040data xfs rw 0 0\n";

    fn host(fixture: &Fixture) -> Host {
        Host::fixture(fixture.dir.path(), |path| match path.to_str().unwrap() {
            "/" => Ok(FsStats {
                block_size: 4096,
                blocks: 1000,
                blocks_free: 400,
                blocks_available: 300,
                files: 100,
                files_free: 60,
            }),
            "/run" => Ok(FsStats {
                block_size: 4096,
                blocks: 10,
                blocks_free: 10,
                blocks_available: 10,
                files: 5,
                files_free: 4,
            }),
            "/srv/my data" => Ok(FsStats {
                block_size: 1024,
                blocks: 2000,
                blocks_free: 1000,
                blocks_available: 1000,
                files: 10,
                files_free: 0,
            }),
            "/mnt/auto" => {
                panic!("autofs must not be touched: statfs would trigger the automounter")
            }
            _ => Ok(FsStats::default()),
        })
    }

    fn collect(collector: &mut DiskCollector) -> Vec<Sample> {
        let fixture = Fixture::new();
        fixture.write("proc/self/mounts", MOUNTS);
        let mut out = Vec::new();
        collector.collect(&host(&fixture), &mut out).unwrap();
        out
    }

    #[test]
    fn space_and_inodes_follow_statfs_like_df() {
        let out = collect(&mut DiskCollector::new(Resources::All, vec![], false));
        let root = Some(("path", "/"));
        assert_eq!(value(&out, "total", root), Some(4_096_000.0));
        assert_eq!(value(&out, "free", root), Some(300.0 * 4096.0));
        assert_eq!(value(&out, "used", root), Some(600.0 * 4096.0));
        assert_eq!(
            value(&out, "used_percent", root),
            Some(600.0 / 900.0 * 100.0)
        );
        assert_eq!(value(&out, "inodes_used", root), Some(40.0));
        let sample = out
            .iter()
            .find(|s| s.tags.iter().any(|(k, v)| *k == "path" && &**v == "/"))
            .unwrap();
        let tags: Vec<_> = sample
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(tags, ["device=sda1", "fstype=ext4", "path=/"]);
    }

    #[test]
    fn zero_size_and_autofs_are_skipped_and_names_unescaped() {
        let out = collect(&mut DiskCollector::new(Resources::All, vec![], false));
        let paths: std::collections::BTreeSet<_> = out
            .iter()
            .flat_map(|s| {
                s.tags
                    .iter()
                    .filter(|(k, _)| *k == "path")
                    .map(|(_, v)| v.to_string())
            })
            .collect();
        assert_eq!(
            paths.into_iter().collect::<Vec<_>>(),
            ["/", "/run", "/srv/my data"]
        );
        assert_eq!(
            value(&out, "total", Some(("device", "mapper/vg-data"))),
            Some(2_048_000.0)
        );
    }

    #[test]
    fn filters_by_mount_point_and_type_and_drops_the_device() {
        let out = collect(&mut DiskCollector::new(
            Resources::Only(vec!["/".into(), "/run".into()]),
            vec!["tmpfs".into()],
            true,
        ));
        assert_eq!(values(&out, Some(("path", "/run"))).len(), 0);
        assert_eq!(values(&out, Some(("path", "/"))).len(), 7);
        assert!(
            out.iter()
                .all(|s| s.tags.iter().all(|(k, _)| *k != "device"))
        );
    }
}
