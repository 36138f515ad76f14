//! What the service's sandbox does to the file inputs, looked at once per start: a directory
//! the unit hides (`PrivateTmp=`, `ProtectHome=`) and an `auto_removal` that cannot delete
//! (`ProtectSystem=strict`, or a directory cwlite's user may not write).
//!
//! Owns reading the process's view of the mounts (`/proc/self/mountinfo`) and a write-access
//! check of each `auto_removal` entry's directory, made as the user cwlite runs as (after
//! `run_as_user`). It reads no log file and changes nothing: `pipelines` logs what it finds
//! once, shows it in the status, and turns `auto_removal` off for an entry that cannot delete,
//! rather than fail at every file. Without it, the same configuration that tails `/tmp/app.log`
//! by hand tailed nothing under the unit, and `auto_removal` warned once per file it kept.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::FileConfig;
use crate::tail::discovery::Pattern;

/// Where the kernel lists this process's mounts.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Where the `.deb` installs the drop-in that lets `auto_removal` delete under the unit
/// (`systemd/cwlite.service.d/auto-removal.conf` in the source tree).
pub const AUTO_REMOVAL_EXAMPLE: &str = "/usr/share/doc/cwlite/examples/auto-removal.conf";

/// One line of `/proc/self/mountinfo`, the fields this module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory of the mounted file system that is mounted here (`/` unless a bind mount).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its file-system type.
    pub fstype: String,
}

/// The mounts of a `mountinfo` text, in its order (a later mount hides an earlier one at the
/// same point). Lines that do not parse are skipped: a missing mount only hides a finding.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let root = fields.nth(3)?;
            let mount_point = fields.next()?;
            // Optional fields end with a lone "-", then the type.
            let fstype = fields.skip_while(|f| *f != "-").nth(1)?;
            Some(Mount {
                root: PathBuf::from(unescape(root)),
                mount_point: PathBuf::from(unescape(mount_point)),
                fstype: fstype.to_owned(),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\012` for a newline).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount `dir` lies on: the deepest mount point above it, the last listed of equals.
fn covering<'a>(mounts: &'a [Mount], dir: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| dir.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
        .map(|(_, m)| m)
}

/// What the sandbox does to one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Its directory is on a `/tmp` private to the service (`PrivateTmp=`, which
    /// `DynamicUser=` implies): the files other programs write there are not seen.
    PrivateTmp,
    /// Its directory is under a home directory the unit made empty (`ProtectHome=yes` or
    /// `tmpfs`).
    ProtectHome,
    /// `auto_removal` cannot delete there: the directory is on a read-only mount
    /// (`ProtectSystem=strict` makes `/var` read-only) or cwlite's user may not write it.
    CannotDelete {
        /// The mount is read-only (else the directory's permissions refuse).
        read_only: bool,
    },
}

/// A problem of one `collect_list` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Index of the entry in `collect_list`.
    pub entry: usize,
    /// Its `file_path`.
    pub file_path: String,
    /// The directory the problem is about (the pattern's literal root).
    pub dir: PathBuf,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = crate::telemetry::shown(&self.dir);
        write!(
            f,
            "logs.logs_collected.files.collect_list[{}] ({}): ",
            self.entry,
            crate::telemetry::shown(Path::new(&self.file_path))
        )?;
        match self.problem {
            Problem::PrivateTmp => write!(
                f,
                "{dir} is on a /tmp private to the service (PrivateTmp=, implied by DynamicUser=), so no file another program writes there is seen; log to a directory under /var/log instead"
            ),
            Problem::ProtectHome => write!(
                f,
                "{dir} is hidden by the unit's ProtectHome=; set ProtectHome=read-only (the shipped unit's setting) in a drop-in"
            ),
            Problem::CannotDelete { read_only: true } => write!(
                f,
                "auto_removal is off: {dir} is read-only to cwlite (the unit's ProtectSystem=strict); allow it with ReadWritePaths={dir} in a drop-in (`systemctl edit cwlite`; an example is {AUTO_REMOVAL_EXAMPLE})"
            ),
            Problem::CannotDelete { read_only: false } => write!(
                f,
                "auto_removal is off: cwlite's user may not delete in {dir}; give its group write access to the directory (the unit runs in group adm)"
            ),
        }
    }
}

/// Looks at every entry against the mounts in `mountinfo` and, for `auto_removal`, at the
/// write access `writable` reports for its directory.
pub fn check(
    entries: &[FileConfig],
    mountinfo: &str,
    writable: impl Fn(&Path) -> Result<(), rustix::io::Errno>,
) -> Vec<Finding> {
    let mounts = parse_mountinfo(mountinfo);
    let mut findings = Vec::new();
    for (entry, config) in entries.iter().enumerate() {
        let pattern = Pattern {
            file_path: config.file_path.clone(),
            publish_multi_logs: config.publish_multi_logs,
            blacklist: None,
        };
        let (dir, _) = pattern.watch_root();
        let finding = |problem| Finding {
            entry,
            file_path: config.file_path.clone(),
            dir: dir.clone(),
            problem,
        };
        if let Some(problem) = covering(&mounts, &dir).and_then(hidden_by) {
            findings.push(finding(problem));
            continue;
        }
        if config.auto_removal {
            match writable(&dir) {
                Ok(()) => {}
                Err(rustix::io::Errno::ROFS) => {
                    findings.push(finding(Problem::CannotDelete { read_only: true }))
                }
                Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
                    findings.push(finding(Problem::CannotDelete { read_only: false }))
                }
                // A directory not there yet is found later; nothing to say now.
                Err(_) => {}
            }
        }
    }
    findings
}

/// Which unit setting made `mount` (if one did) hide what is below it.
fn hidden_by(mount: &Mount) -> Option<Problem> {
    let root = mount.root.to_string_lossy();
    let at = |points: &[&str]| points.iter().any(|p| mount.mount_point == Path::new(p));
    if at(&["/tmp", "/var/tmp"]) && root.contains("/systemd-private-") {
        return Some(Problem::PrivateTmp);
    }
    // ProtectHome=yes mounts systemd's inaccessible directory there; =tmpfs an empty tmpfs.
    if at(&["/home", "/root", "/run/user"])
        && (root.contains("/inaccessible") || (mount.fstype == "tmpfs" && !at(&["/run/user"])))
    {
        return Some(Problem::ProtectHome);
    }
    None
}

/// [`check`] on this process's mounts, with write access as its effective user.
pub fn check_now(entries: &[FileConfig]) -> Vec<Finding> {
    if entries.is_empty() {
        return Vec::new();
    }
    let mountinfo = std::fs::read_to_string(MOUNTINFO).unwrap_or_default();
    check(entries, &mountinfo, |dir| {
        rustix::fs::accessat(
            rustix::fs::CWD,
            dir,
            rustix::fs::Access::WRITE_OK,
            rustix::fs::AtFlags::EACCESS,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mountinfo as systemd leaves it for a unit with `PrivateTmp=yes`, `ProtectHome=yes`
    /// and `ProtectSystem=strict` (trimmed from a real one).
    const UNIT: &str = "\
22 1 259:2 / / ro,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
30 22 259:2 /tmp/systemd-private-4f1c-cwlite.service-Xa1b/tmp /tmp rw,relatime shared:20 - ext4 /dev/nvme0n1p2 rw
31 22 259:2 /var/tmp/systemd-private-4f1c-cwlite.service-Q2e4/tmp /var/tmp rw,relatime shared:21 - ext4 /dev/nvme0n1p2 rw
32 22 0:25 /systemd/inaccessible/dir /home ro,nosuid,nodev,noexec shared:22 - tmpfs tmpfs rw,mode=755
33 22 0:25 /systemd/inaccessible/dir /root ro,nosuid,nodev,noexec shared:23 - tmpfs tmpfs rw,mode=755
34 22 259:3 / /srv/my\\040logs rw,relatime shared:24 - ext4 /dev/nvme0n1p3 rw
";

    fn entry(file_path: &str, auto_removal: bool) -> FileConfig {
        let mut entry = FileConfig::plain(file_path, "g", "s");
        entry.auto_removal = auto_removal;
        entry
    }

    #[test]
    fn mountinfo_fields_are_read_with_their_escapes_undone() {
        let mounts = parse_mountinfo(UNIT);
        assert_eq!(mounts.len(), 7);
        assert_eq!(mounts[6].mount_point, Path::new("/srv/my logs"));
        assert_eq!(mounts[4].fstype, "tmpfs");
        assert_eq!(
            covering(&mounts, Path::new("/srv/my logs/app")).map(|m| &m.root),
            Some(&PathBuf::from("/"))
        );
        assert_eq!(
            covering(&mounts, Path::new("/var/log")).map(|m| &m.mount_point),
            Some(&PathBuf::from("/"))
        );
    }

    #[test]
    fn entries_under_a_private_tmp_or_a_protected_home_are_found() {
        let entries = [
            entry("/tmp/app/*.log", false),
            entry("/var/tmp/x.log", false),
            entry("/home/app/logs/**/*.log", false),
            entry("/root/app.log", false),
            entry("/var/log/syslog", false),
            entry("/tmpfoo/a.log", false),
        ];
        let found: Vec<(usize, Problem)> = check(&entries, UNIT, |_| Ok(()))
            .into_iter()
            .map(|f| (f.entry, f.problem))
            .collect();
        assert_eq!(
            found,
            [
                (0, Problem::PrivateTmp),
                (1, Problem::PrivateTmp),
                (2, Problem::ProtectHome),
                (3, Problem::ProtectHome),
            ]
        );
    }

    #[test]
    fn outside_a_unit_nothing_is_hidden() {
        let host = "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n\
                    40 22 0:40 / /tmp rw,nosuid,nodev shared:30 - tmpfs tmpfs rw\n";
        let entries = [entry("/tmp/a.log", false), entry("/home/u/a.log", false)];
        assert_eq!(check(&entries, host, |_| Ok(())), []);
    }

    #[test]
    fn auto_removal_that_cannot_delete_says_why_and_how_to_allow_it() {
        let entries = [
            entry("/var/log/app/*.log", true),
            entry("/var/log/other/*.log", true),
            entry("/var/log/fine/*.log", true),
            entry("/var/log/keep/*.log", false),
        ];
        let found = check(&entries, UNIT, |dir| match dir.to_str() {
            Some("/var/log/app") => Err(rustix::io::Errno::ROFS),
            Some("/var/log/other") => Err(rustix::io::Errno::ACCESS),
            _ => Ok(()),
        });
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].problem, Problem::CannotDelete { read_only: true });
        assert_eq!(found[1].problem, Problem::CannotDelete { read_only: false });
        let text = found[0].to_string();
        assert!(
            text.starts_with("logs.logs_collected.files.collect_list[0] (/var/log/app/*.log): auto_removal is off")
                && text.contains("ReadWritePaths=/var/log/app"),
            "{text}"
        );
        assert!(
            found[1].to_string().contains("group write access"),
            "{}",
            found[1]
        );
    }
}
