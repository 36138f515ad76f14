//! How to read the journal, side by side on the same 100,000 entries written by
//! `systemd-journal-remote`:
//! - `journalctl-json`: a `journalctl --output=json --follow` child, as the stock agent's
//!   receiver reads it;
//! - `journalctl-export`: the same child with `--output=export`, cwlite's reader
//!   (`cwlite::journal::export`, its command line);
//! - `sd-journal`: libsystemd's API in the process.
//!
//! Both paths end in the same message: every field of the entry in a sorted map, serialised
//! as the stock agent's `{"body":{…}}` (`cwlite::journal::entry`). Each reader runs in a
//! process of its own (this binary with `--reader`), so its CPU time (user + system, the
//! journalctl child's included) and peak resident set are its own. sd-journal is reached
//! through `dlopen` of `libsystemd.so.0`, so neither the build nor cwlite links it.
//!
//! `cargo bench --bench journal_read [-- --entries N --rounds R]`. Needs journalctl and
//! `/lib/systemd/systemd-journal-remote` (Debian's `systemd-journal-remote`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use cwlite::config::{JournalStart, JournaldConfig};
use cwlite::journal::entry::Entry;
use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--reader") {
        let (mode, dir, count) = (&args[at + 1], &args[at + 2], args[at + 3].parse().unwrap());
        let read = match mode.as_str() {
            "journalctl-json" => read_with_journalctl(Path::new(dir), count, false),
            "journalctl-export" => read_with_journalctl(Path::new(dir), count, true),
            "sd-journal" => read_with_sd_journal(Path::new(dir)),
            other => panic!("unknown reader {other}"),
        };
        assert_eq!(read.entries, count, "{mode} read every entry");
        let usage = |who| {
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: getrusage fills the struct it is given.
            unsafe { libc::getrusage(who, &mut usage) };
            let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
            (
                ms(usage.ru_utime) + ms(usage.ru_stime),
                usage.ru_maxrss as f64 / 1024.0,
            )
        };
        let (own_cpu, own_rss) = usage(libc::RUSAGE_SELF);
        let (child_cpu, child_rss) = usage(libc::RUSAGE_CHILDREN);
        println!(
            "{}",
            serde_json::json!({"bytes": read.bytes, "own_cpu_ms": own_cpu, "own_rss_mb": own_rss,
                               "child_cpu_ms": child_cpu, "child_rss_mb": child_rss})
        );
        return;
    }
    let option = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .map_or(default, |i| args[i + 1].parse().unwrap())
    };
    // `cargo test` runs bench targets without `--bench`: then a small run checks that every
    // reader reads every entry into the same messages.
    let smoke = !args.iter().any(|a| a == "--bench");
    let (entries, rounds) = if smoke {
        (2_000, 1)
    } else {
        (option("--entries", 100_000), option("--rounds", 3))
    };
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), entries);
    println!(
        "journal_read: {entries} entries, {rounds} rounds, medians (CPU includes journalctl's)"
    );
    let mut results: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for _ in 0..rounds {
        for mode in ["journalctl-json", "journalctl-export", "sd-journal"] {
            let output = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--reader",
                    mode,
                    &dir.path().display().to_string(),
                    &entries.to_string(),
                ])
                .output()
                .unwrap();
            assert!(output.status.success(), "{mode}: {output:?}");
            let line = String::from_utf8(output.stdout).unwrap();
            results
                .entry(mode)
                .or_default()
                .push(serde_json::from_str(line.trim()).unwrap());
        }
    }
    let median = |values: &[Value], key: &str| {
        let mut v: Vec<f64> = values.iter().map(|r| r[key].as_f64().unwrap()).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for values in results.values() {
        assert_eq!(
            values[0]["bytes"], results["sd-journal"][0]["bytes"],
            "every reader makes the same messages"
        );
    }
    let per_100k = 100_000.0 / entries as f64;
    let mut cpu = BTreeMap::new();
    for (mode, values) in &results {
        let (own, child) = (median(values, "own_cpu_ms"), median(values, "child_cpu_ms"));
        cpu.insert(*mode, (own + child) * per_100k);
        println!(
            "  {mode:<17} {:>6.0} ms CPU per 100,000 entries (reader {:.0}, journalctl {:.0}); peak RSS reader {:.1} MB{}; {:.1} MB of messages",
            (own + child) * per_100k,
            own * per_100k,
            child * per_100k,
            median(values, "own_rss_mb"),
            if mode.starts_with("journalctl") {
                format!(", journalctl {:.1} MB", median(values, "child_rss_mb"))
            } else {
                String::new()
            },
            median(values, "bytes") / 1e6,
        );
    }
    println!(
        "  CPU against sd-journal: journalctl-json {:.2}x, journalctl-export {:.2}x",
        cpu["journalctl-json"] / cpu["sd-journal"],
        cpu["journalctl-export"] / cpu["sd-journal"]
    );
}

/// What a reader produced.
struct Read {
    entries: usize,
    bytes: usize,
}

/// An entry's fields as journald writes them for a service's line (a typical entry: 20
/// fields, a message of about 100 bytes).
fn write_journal(dir: &Path, entries: usize) {
    let remote = "/lib/systemd/systemd-journal-remote";
    let mut child = Command::new(remote)
        .arg(format!("--output={}", dir.join("system.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("{remote}: {err} (install systemd-journal-remote)"));
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
        - entries as u64 * 1000;
    let mut input = std::io::BufWriter::new(child.stdin.take().unwrap());
    for i in 0..entries {
        write!(
            input,
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n\
             _MACHINE_ID=3d1219c7c4c5404aaa1f6d2a48adfda4\n_HOSTNAME=web-01\nPRIORITY={}\nSYSLOG_FACILITY=3\n\
             SYSLOG_IDENTIFIER=app\n_PID={}\n_UID=998\n_GID=998\n_COMM=app\n_EXE=/usr/bin/app\n\
             _CMDLINE=/usr/bin/app --serve\n_CAP_EFFECTIVE=0\n_SELINUX_CONTEXT=unconfined\n\
             _SYSTEMD_CGROUP=/system.slice/app.service\n_SYSTEMD_UNIT=app.service\n_SYSTEMD_SLICE=system.slice\n\
             _SYSTEMD_INVOCATION_ID=5c5d0bb1c57b4b3f9a1e0a1c9f6d2b3e\n_TRANSPORT=stdout\n_STREAM_ID=aa\n\
             MESSAGE=request {i} served in {} ms for 10.0.{}.{} GET /api/v1/items?page={} status=200 bytes=5120\n\n",
            now_us + i as u64 * 1000,
            1_000_000 + i as u64 * 1000,
            if i % 10 == 0 { 4 } else { 6 },
            1000 + i % 50,
            i % 97,
            i % 255,
            i % 253,
            i % 20,
        )
        .unwrap();
    }
    drop(input);
    assert!(child.wait().unwrap().success());
}

fn config(dir: &Path) -> JournaldConfig {
    JournaldConfig {
        log_group_name: "g".into(),
        log_stream_name: "s".into(),
        log_group_class: None,
        retention_in_days: None,
        units: Vec::new(),
        priority: "info".into(),
        matches: Vec::new(),
        filters: Vec::new(),
        directory: Some(dir.to_owned()),
        start_at: JournalStart::Beginning,
    }
}

/// A journalctl child: cwlite's own command line and reader (`export`), or the stock
/// agent's output format (JSON lines) read into the same message.
fn read_with_journalctl(dir: &Path, count: usize, export: bool) -> Read {
    let args: Vec<std::ffi::OsString> = cwlite::journal::command::arguments(&config(dir), None)
        .into_iter()
        .map(|a| {
            if !export && a == "--output=export" {
                "--output=json".into()
            } else {
                a
            }
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let mut child = tokio::process::Command::new(cwlite::journal::JOURNALCTL)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    runtime.block_on(async {
        use tokio::io::AsyncBufReadExt;
        let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, stdout);
        let (mut entries, mut bytes) = (0, 0);
        let (mut line, mut fields) = (Vec::new(), BTreeMap::new());
        while entries < count {
            let entry = if export {
                if !cwlite::journal::export::read_entry(&mut reader, &mut line, &mut fields)
                    .await
                    .unwrap()
                {
                    break;
                }
                Entry::from_fields(std::mem::take(&mut fields)).unwrap()
            } else {
                line.clear();
                if reader.read_until(b'\n', &mut line).await.unwrap() == 0 {
                    break;
                }
                Entry::parse(line.strip_suffix(b"\n").unwrap_or(&line)).unwrap()
            };
            assert!(entry.kept_by(&[]));
            bytes += entry.message().len();
            entries += 1;
        }
        // It follows; everything is read.
        child.kill().await.unwrap();
        Read { entries, bytes }
    })
}

type Journal = *mut std::ffi::c_void;

/// sd-journal in the process: the same entries (priority info), the same fields (journalctl
/// adds `__CURSOR` and the two timestamps), the same message.
fn read_with_sd_journal(dir: &Path) -> Read {
    use std::ffi::{CString, c_char, c_int, c_void};
    // SAFETY: libsystemd.so.0's documented C API, called as sd-journal(3) describes: one
    // journal handle, used from this thread only, closed at the end; data pointers are read
    // only until the next call that moves the handle.
    unsafe {
        let lib = libloading::Library::new("libsystemd.so.0").expect("libsystemd.so.0");
        let open: libloading::Symbol<
            unsafe extern "C" fn(*mut Journal, *const c_char, c_int) -> c_int,
        > = lib.get(b"sd_journal_open_directory").unwrap();
        let add_match: libloading::Symbol<
            unsafe extern "C" fn(Journal, *const c_void, usize) -> c_int,
        > = lib.get(b"sd_journal_add_match").unwrap();
        let threshold: libloading::Symbol<unsafe extern "C" fn(Journal, usize) -> c_int> =
            lib.get(b"sd_journal_set_data_threshold").unwrap();
        let next: libloading::Symbol<unsafe extern "C" fn(Journal) -> c_int> =
            lib.get(b"sd_journal_next").unwrap();
        let restart: libloading::Symbol<unsafe extern "C" fn(Journal)> =
            lib.get(b"sd_journal_restart_data").unwrap();
        let enumerate: libloading::Symbol<
            unsafe extern "C" fn(Journal, *mut *const c_void, *mut usize) -> c_int,
        > = lib.get(b"sd_journal_enumerate_data").unwrap();
        let cursor: libloading::Symbol<unsafe extern "C" fn(Journal, *mut *mut c_char) -> c_int> =
            lib.get(b"sd_journal_get_cursor").unwrap();
        let realtime: libloading::Symbol<unsafe extern "C" fn(Journal, *mut u64) -> c_int> =
            lib.get(b"sd_journal_get_realtime_usec").unwrap();
        let monotonic: libloading::Symbol<
            unsafe extern "C" fn(Journal, *mut u64, *mut [u8; 16]) -> c_int,
        > = lib.get(b"sd_journal_get_monotonic_usec").unwrap();
        let close: libloading::Symbol<unsafe extern "C" fn(Journal)> =
            lib.get(b"sd_journal_close").unwrap();

        let mut journal: Journal = std::ptr::null_mut();
        let path = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        assert!(open(&mut journal, path.as_ptr(), 0) >= 0);
        // `--all`: no field is cut.
        threshold(journal, 0);
        // `--priority=info`: PRIORITY 0 to 6, ORed (matches on one field are).
        for level in 0..=6 {
            let m = format!("PRIORITY={level}");
            assert!(add_match(journal, m.as_ptr().cast(), m.len()) >= 0);
        }
        let (mut entries, mut bytes) = (0, 0);
        while next(journal) > 0 {
            let mut fields: BTreeMap<String, Value> = BTreeMap::new();
            restart(journal);
            let (mut data, mut length): (*const c_void, usize) = (std::ptr::null(), 0);
            while enumerate(journal, &mut data, &mut length) > 0 {
                let field = std::slice::from_raw_parts(data.cast::<u8>(), length);
                let Some(eq) = field.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let name = String::from_utf8_lossy(&field[..eq]).into_owned();
                let value = match std::str::from_utf8(&field[eq + 1..]) {
                    Ok(text) => Value::String(text.to_owned()),
                    Err(_) => {
                        Value::Array(field[eq + 1..].iter().map(|&b| Value::from(b)).collect())
                    }
                };
                fields.insert(name, value);
            }
            let mut raw: *mut c_char = std::ptr::null_mut();
            assert!(cursor(journal, &mut raw) >= 0);
            let text = std::ffi::CStr::from_ptr(raw).to_string_lossy().into_owned();
            libc::free(raw.cast());
            fields.insert("__CURSOR".into(), Value::String(text));
            let (mut usec, mut boot) = (0u64, [0u8; 16]);
            monotonic(journal, &mut usec, &mut boot);
            fields.insert(
                "__MONOTONIC_TIMESTAMP".into(),
                Value::String(usec.to_string()),
            );
            realtime(journal, &mut usec);
            fields.insert(
                "__REALTIME_TIMESTAMP".into(),
                Value::String(usec.to_string()),
            );
            // The same path to the message as journalctl's lines take once parsed.
            let entry = Entry::from_fields(fields).unwrap();
            assert!(entry.kept_by(&[]));
            bytes += entry.message().len();
            entries += 1;
        }
        close(journal);
        Read { entries, bytes }
    }
}
