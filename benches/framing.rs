//! Line framing throughput on realistic syslog lines (lengths spread from 40 to 400 bytes, a
//! few long ones), the first stage of the logs hot path.
//!
//! Target: at least 1 GB/s per core. Baselines in the same run: a bare `memchr` count of the
//! newlines (the floor: no line handed on), and `std::io::BufRead::lines`, which copies every
//! line into a new `String` (what a straightforward reader does).

use std::hint::black_box;
use std::io::BufRead;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cwlite::tail::line_reader::{DEFAULT_CHUNK_BYTES, LineReader};

/// About 64 MiB of syslog-like text.
fn corpus() -> Vec<u8> {
    let mut out = Vec::with_capacity(64 << 20);
    let mut rng = fastrand::Rng::with_seed(7);
    let words = [
        "sshd[1023]: Accepted publickey for deploy from 10.0.4.17 port 53210",
        "kernel: [12345.678] eth0: link up",
        "systemd[1]: Started Session 42 of user deploy.",
        "app[9876]: GET /api/v1/orders?id=123456 200 12ms",
        "CRON[2211]: (root) CMD (/usr/local/bin/backup.sh)",
    ];
    while out.len() < 64 << 20 {
        let word = words[rng.usize(..words.len())];
        out.extend_from_slice(format!("Nov 25 18:44:{:02} web-01 {word}", rng.u8(..60)).as_bytes());
        let extra = if rng.u8(..100) == 0 {
            rng.usize(1000..4000)
        } else {
            rng.usize(0..300)
        };
        out.extend(std::iter::repeat_n(b'x', extra));
        out.push(b'\n');
    }
    out
}

fn bench(c: &mut Criterion) {
    let data = corpus();
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);
    group.bench_function("cwlite_line_reader", |b| {
        b.iter(|| {
            let mut reader = LineReader::new(0, DEFAULT_CHUNK_BYTES, 1024 * 1024);
            let mut source: &[u8] = &data;
            let mut bytes = 0usize;
            while reader.fill(&mut source).unwrap() > 0 {
                while let Some(line) = reader.next_line() {
                    bytes += line.bytes.len();
                }
            }
            black_box(bytes)
        })
    });
    group.bench_function("baseline_memchr_count", |b| {
        b.iter(|| black_box(memchr::memchr_iter(b'\n', black_box(&data)).count()))
    });
    group.bench_function("baseline_std_bufread_lines", |b| {
        b.iter(|| {
            let reader = std::io::BufReader::with_capacity(DEFAULT_CHUNK_BYTES, &data[..]);
            black_box(
                reader
                    .lines()
                    .map(|l| l.map_or(0, |l| l.len()))
                    .sum::<usize>(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
