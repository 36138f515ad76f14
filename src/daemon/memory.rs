//! Tunes glibc's malloc for a streaming heap, and gives back the resident pages of code that
//! only start-up ran.
//!
//! Owns two steps. Before the runtime starts its threads, glibc's malloc is told to use one
//! arena and to keep the memory the pipeline frees and takes again (`tune_malloc`). And some
//! time after the pipelines start, the code and read-only data of the executable and its
//! libraries are dropped from this process (`MADV_DONTNEED`), and what the steady state runs
//! is faulted back in from the page cache as it runs. Reading the configuration, building the
//! SDK clients, loading credentials and CA certificates and the first TLS handshakes touch
//! most of a 6 MB `.text` once (each fault maps 64 KiB around it), and an idle daemon then kept
//! all of it resident. The pages stay in the page cache, where the kernel can reclaim them.
//!
//! It must not touch anything but read-only mappings of files that hold no page of their own
//! (`Anonymous: 0 kB`): their pages are the file's, so dropping them loses nothing. The code
//! is never written (no text relocations); the relocated read-only data (RELRO) holds pages of
//! its own and is skipped, as are data, the heap and the stacks.

use std::io;
use std::time::Duration;

/// How long after a start (or a reload) the start-up code is released: the first collection
/// cycle, the first requests and their TLS handshakes are done by then.
pub const RELEASE_AFTER: Duration = Duration::from_secs(60);

/// The malloc arenas the daemon's heap may use. glibc gives each thread that allocates an
/// arena of its own (up to eight per core; the daemon had four), and memory freed into one
/// arena serves only that arena: the tailer allocates read chunks and event vectors that a
/// runtime thread frees, and each arena kept its own high-water mark of them. Bulk, 1 GiB,
/// full runs in turn: peak RSS 39.4/41.3/39.5/43.7 MB with the default, 34.8/35.2/36.4/33.9
/// with one arena (two: 36.8/38.1), at the same throughput (0.73/0.76/0.72/0.74 of the
/// baseline against 0.67/0.72/0.70/0.69): the daemon's threads rarely allocate at the same
/// instant.
pub const MALLOC_ARENAS: i32 = 1;

/// Allocations from this size up get pages of their own (`mmap`), given back when freed; the
/// smaller ones come from the heap. Everything the log path allocates while streaming is
/// smaller: read chunks (256 KiB, `tail::line_reader`), request bodies (about 1.3 MB for a full
/// batch of log lines, twice its 1 MiB if every byte were a quote or a tab) and event vectors;
/// a larger block (a batch of control characters) is rare and is given back at once. glibc's
/// default threshold starts at 128 KiB and follows the largest block freed; with the trim
/// threshold it sets along (twice that), the heap gave back its top each time a body was
/// freed there and took fresh pages for the next, which the kernel must zero: 2,300 to 3,300
/// page faults a second at 10 MB/s, and about 140 with these two settings.
pub const MALLOC_MMAP_THRESHOLD: i32 = 4 << 20;

/// Free memory at the top of the heap beyond this is given back to the system; up to this
/// size it is kept for the next batches' chunks and bodies (see `MALLOC_MMAP_THRESHOLD`).
/// 8 MiB is what one destination may hold of the default log budget, which a busy stream
/// holds anyway.
pub const MALLOC_TRIM_THRESHOLD: i32 = 8 << 20;

// A read chunk and a full batch's body with every byte escaped in two stay below the mmap
// threshold, and the heap keeps more than one such block at its top.
const _: () = {
    use crate::ship::cloudwatch_logs::batch::MAX_BATCH_BYTES;
    use crate::tail::line_reader::DEFAULT_CHUNK_BYTES;
    assert!(MALLOC_MMAP_THRESHOLD as usize > 2 * MAX_BATCH_BYTES + 64 * 1024);
    assert!(MALLOC_MMAP_THRESHOLD as usize > 4 * DEFAULT_CHUNK_BYTES);
    assert!(MALLOC_TRIM_THRESHOLD >= 2 * MALLOC_MMAP_THRESHOLD);
};

/// What `tune_malloc` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MallocTuning {
    /// The number of arenas was set (`MALLOC_ARENAS`).
    pub arenas: bool,
    /// The mmap and trim thresholds were set.
    pub thresholds: bool,
}

/// Holds glibc's malloc to `MALLOC_ARENAS` arenas and sets its mmap and trim thresholds
/// (`MALLOC_MMAP_THRESHOLD`, `MALLOC_TRIM_THRESHOLD`), each unless the operator chose it: the
/// number of arenas through `MALLOC_ARENA_MAX` or `arena_max` in `GLIBC_TUNABLES`, the
/// thresholds through either one's variable (`MALLOC_MMAP_THRESHOLD_`,
/// `MALLOC_TRIM_THRESHOLD_`) or tunable (setting one turns off glibc's adjustment of both, so
/// an operator's one setting leaves the other alone as well). Call it before any thread is
/// started: a thread's arena is picked at its first allocation.
pub fn tune_malloc() -> MallocTuning {
    let tunables = std::env::var("GLIBC_TUNABLES").ok();
    let set = |name: &str| std::env::var_os(name).is_some();
    let arenas_chosen =
        operator_chose(set("MALLOC_ARENA_MAX"), tunables.as_deref(), &["arena_max"]);
    let thresholds_chosen = operator_chose(
        set("MALLOC_MMAP_THRESHOLD_") || set("MALLOC_TRIM_THRESHOLD_"),
        tunables.as_deref(),
        &["mmap_threshold", "trim_threshold"],
    );
    MallocTuning {
        arenas: !arenas_chosen && mallopt(Parameter::ArenaMax, MALLOC_ARENAS),
        thresholds: !thresholds_chosen
            && mallopt(Parameter::MmapThreshold, MALLOC_MMAP_THRESHOLD)
            && mallopt(Parameter::TrimThreshold, MALLOC_TRIM_THRESHOLD),
    }
}

/// Whether the environment already sets a parameter: its variable is set (`variable_set`), or
/// the `GLIBC_TUNABLES` list (`name=value` pairs joined by `:`) has `glibc.malloc.` and one of
/// `tunables`.
fn operator_chose(variable_set: bool, tunables: Option<&str>, names: &[&str]) -> bool {
    variable_set
        || tunables.is_some_and(|t| {
            t.split(':').any(|pair| {
                pair.split_once('=')
                    .and_then(|(name, _)| name.strip_prefix("glibc.malloc."))
                    .is_some_and(|name| names.contains(&name))
            })
        })
}

/// The `mallopt` parameters this module sets.
#[derive(Debug, Clone, Copy)]
enum Parameter {
    ArenaMax,
    MmapThreshold,
    TrimThreshold,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn mallopt(parameter: Parameter, value: i32) -> bool {
    let parameter = match parameter {
        Parameter::ArenaMax => libc::M_ARENA_MAX,
        Parameter::MmapThreshold => libc::M_MMAP_THRESHOLD,
        Parameter::TrimThreshold => libc::M_TRIM_THRESHOLD,
    };
    // SAFETY: mallopt takes two integers and only sets a parameter of glibc's allocator, which
    // it reads under its own lock; the three parameters are ones glibc documents for this call.
    unsafe { libc::mallopt(parameter, value) == 1 }
}

/// Other C libraries (musl) have one heap and no such parameters.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn mallopt(_parameter: Parameter, _value: i32) -> bool {
    false
}

/// One read-only mapping of a file, identical to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CodeMapping {
    start: usize,
    end: usize,
}

/// Drops this process's resident pages of read-only file mappings (code and read-only data of
/// the executable and its libraries). Returns the bytes of the mappings advised.
///
/// # Errors
/// `/proc/self` cannot be read, or `madvise` failed.
pub fn release_startup_code() -> io::Result<usize> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = 0;
    for mapping in clean_read_only_mappings(&smaps) {
        let len = mapping.end - mapping.start;
        // SAFETY: the range is a whole private read-only mapping of a file with no page
        // of its own (nothing was ever written to it, and being read-only nothing can be):
        // MADV_DONTNEED only unmaps its pages, and the next access maps the same bytes again
        // from the file.
        unsafe {
            rustix::mm::madvise(
                mapping.start as *mut std::ffi::c_void,
                len,
                rustix::mm::Advice::LinuxDontNeed,
            )?;
        }
        released += len;
    }
    Ok(released)
}

/// The private read-only file mappings (`r-xp`, `r--p`) that hold no anonymous page, from the
/// text of `/proc/self/smaps`.
fn clean_read_only_mappings(smaps: &str) -> Vec<CodeMapping> {
    let mut found = Vec::new();
    let mut candidate: Option<CodeMapping> = None;
    for line in smaps.lines() {
        let mut fields = line.splitn(6, ' ');
        let first = fields.next().unwrap_or("");
        if first.contains('-') && first.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()) {
            // A mapping: address perms offset dev inode pathname
            candidate = (|| {
                let perms = fields.next()?;
                let _offset = fields.next()?;
                let _dev = fields.next()?;
                let inode: u64 = fields.next()?.parse().ok()?;
                let path = fields.next()?.trim_start();
                // Inode 0 is no file ([vdso] and the like).
                if !matches!(perms, "r-xp" | "r--p") || inode == 0 || !path.starts_with('/') {
                    return None;
                }
                let (start, end) = first.split_once('-')?;
                Some(CodeMapping {
                    start: usize::from_str_radix(start, 16).ok()?,
                    end: usize::from_str_radix(end, 16).ok()?,
                })
            })();
        } else if let Some(anonymous) = line.strip_prefix("Anonymous:")
            && let Some(mapping) = candidate.take()
            && anonymous.trim() == "0 kB"
        {
            found.push(mapping);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident kB of this process's executable code mappings.
    fn resident_code_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_code = false;
        let mut total = 0;
        for line in smaps.lines() {
            if line.starts_with(|c: char| c.is_ascii_hexdigit()) && line.contains(" r") {
                in_code = line.contains(" r-xp ") && line.ends_with(&*exe.to_string_lossy());
            } else if in_code && let Some(rss) = line.strip_prefix("Rss:") {
                total += rss.trim().trim_end_matches(" kB").parse::<u64>().unwrap();
            }
        }
        total
    }

    #[test]
    fn an_operators_malloc_settings_are_left_alone() {
        let arenas = |variable, tunables| operator_chose(variable, tunables, &["arena_max"]);
        assert!(!arenas(false, None));
        assert!(arenas(true, None));
        assert!(arenas(
            false,
            Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4")
        ));
        assert!(!arenas(false, Some("glibc.malloc.mmap_threshold=131072")));
        assert!(!arenas(false, Some("")));
        assert!(!arenas(false, Some("glibc.pthread.arena_max=4")));
        let thresholds =
            |tunables| operator_chose(false, tunables, &["mmap_threshold", "trim_threshold"]);
        assert!(thresholds(Some("glibc.malloc.mmap_threshold=131072")));
        assert!(thresholds(Some(
            "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=0"
        )));
        assert!(!thresholds(Some("glibc.malloc.arena_max=2")));
    }

    #[test]
    fn only_read_only_file_mappings_without_pages_of_their_own_are_picked() {
        let smaps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fd:01 42 /usr/bin/cwlite
Rss:                 800 kB
Anonymous:             0 kB
55d0c0100000-55d0c0700000 r-xp 00100000 fd:01 42 /usr/bin/cwlite
Anonymous:             0 kB
55d0c0700000-55d0c0800000 r--p 00700000 fd:01 42 /usr/bin/cwlite
Anonymous:           420 kB
55d0c0800000-55d0c0810000 rw-p 00800000 fd:01 42 /usr/bin/cwlite
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000100000-7f0000110000 r--p 00100000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:            16 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Anonymous:           132 kB
7ffd00030000-7ffd00032000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB";
        assert_eq!(
            clean_read_only_mappings(smaps),
            [
                CodeMapping {
                    start: 0x55d0c0000000,
                    end: 0x55d0c0100000
                },
                CodeMapping {
                    start: 0x55d0c0100000,
                    end: 0x55d0c0700000
                },
                CodeMapping {
                    start: 0x7f0000000000,
                    end: 0x7f0000100000
                }
            ]
        );
    }

    #[test]
    fn released_code_is_no_longer_resident_and_runs_again() {
        let before = resident_code_kib();
        let released = release_startup_code().unwrap();
        let after = resident_code_kib();
        assert!(released > 0);
        assert!(
            after < before,
            "resident code {before} kB before, {after} kB after"
        );
        // The code runs again, faulted back in.
        assert_eq!(
            clean_read_only_mappings("1-2 r-xp 0 0:0 1 /x\nAnonymous: 0 kB"),
            [CodeMapping { start: 1, end: 2 }]
        );
    }
}
