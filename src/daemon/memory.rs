//! Keeps the heap in one malloc arena, and gives back the resident pages of code that only
//! start-up ran.
//!
//! Owns two steps. Before the runtime starts its threads, glibc's malloc is told to use one
//! arena (`one_malloc_arena`). And some time after the pipelines start, the code and read-only
//! data of the executable and its libraries are dropped from this process (`MADV_DONTNEED`),
//! and what the steady state runs is faulted back in from the page cache as it runs. Reading
//! the configuration, building the SDK clients, loading credentials and CA certificates and
//! the first TLS handshakes touch most of a 6 MB `.text` once (each fault maps 64 KiB around
//! it), and an idle daemon then kept all of it resident. The pages stay in the page cache,
//! where the kernel can reclaim them.
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
/// arena serves only that arena: the tailer allocates read chunks and event vectors that a runtime thread
/// frees, and each arena kept its own high-water mark of them. Bulk, 1 GiB, full runs in turn:
/// peak RSS 39.4/41.3/39.5/43.7 MB with the default, 34.8/35.2/36.4/33.9 with one arena (two:
/// 36.8/38.1), at the same throughput (0.73/0.76/0.72/0.74 of the baseline against
/// 0.67/0.72/0.70/0.69): the daemon's threads rarely allocate at the same instant.
pub const MALLOC_ARENAS: i32 = 1;

/// Limits glibc's malloc to `MALLOC_ARENAS` arenas, unless the operator chose a number
/// (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`). Call it before any thread is
/// started: a thread's arena is picked at its first allocation. Returns whether it set it.
pub fn one_malloc_arena() -> bool {
    let chosen = operator_chose_arenas(
        std::env::var_os("MALLOC_ARENA_MAX").is_some(),
        std::env::var("GLIBC_TUNABLES").ok().as_deref(),
    );
    !chosen && set_malloc_arenas(MALLOC_ARENAS)
}

/// Whether the environment already sets the number of arenas: `MALLOC_ARENA_MAX` is set, or
/// the `GLIBC_TUNABLES` list (`name=value` pairs joined by `:`) has `glibc.malloc.arena_max`.
fn operator_chose_arenas(malloc_arena_max_set: bool, tunables: Option<&str>) -> bool {
    malloc_arena_max_set
        || tunables.is_some_and(|t| {
            t.split(':').any(|pair| {
                pair.split_once('=').map(|(name, _)| name) == Some("glibc.malloc.arena_max")
            })
        })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_malloc_arenas(arenas: i32) -> bool {
    // SAFETY: mallopt takes two integers and only sets a parameter of glibc's allocator, which
    // it reads under its own lock; M_ARENA_MAX is a parameter glibc documents for this call.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

/// Other C libraries (musl) have one heap and no such parameter.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_malloc_arenas(_arenas: i32) -> bool {
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
    fn an_operators_arena_setting_is_left_alone() {
        assert!(!operator_chose_arenas(false, None));
        assert!(operator_chose_arenas(true, None));
        assert!(operator_chose_arenas(
            false,
            Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4")
        ));
        assert!(!operator_chose_arenas(
            false,
            Some("glibc.malloc.mmap_threshold=131072")
        ));
        assert!(!operator_chose_arenas(false, Some("")));
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
