//! How much the Go-to-Rust regex translation costs on the per-line hot path.
//!
//! Every line of every tailed file is tested against the multi-line start pattern, by default the
//! stock `^[\S]`. cwlite rewrites it to Go's ASCII meaning (`^[[^\t\n\x0C\r ]]`); the baselines are
//! the same check with Rust's Unicode `^\S` (what an untranslated pattern would do, and wrong for
//! Go semantics) and a hand-written first-byte test (the floor). Report the translated pattern as a
//! ratio of both baselines, measured in the same run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cwlite::config::go_regex::GoRegex;
use std::hint::black_box;

/// Syslog-like lines with a realistic spread: most start an event, some are continuations.
fn lines() -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..10_000 {
        out.push(match i % 10 {
            0 => format!("    at com.example.Service.handle(Service.java:{i})"),
            1 => "\tcaused by: java.io.IOException: broken pipe".to_owned(),
            _ => format!(
                "Nov 25 18:44:{:02} web-01 app[{i}]: request id={i} status=200 bytes={}",
                i % 60,
                i * 7
            ),
        });
    }
    out
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let translated = GoRegex::new(r"^[\S]").unwrap();
    let unicode = regex::Regex::new(r"^\S").unwrap();
    let mut group = c.benchmark_group("multi_line_start");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("translated_go_pattern", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| translated.is_match(black_box(l)))
                .count()
        })
    });
    group.bench_function("baseline_unicode_regex", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| unicode.is_match(black_box(l)))
                .count()
        })
    });
    group.bench_function("baseline_first_byte", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| {
                    black_box(l)
                        .as_bytes()
                        .first()
                        .is_some_and(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0C))
                })
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
