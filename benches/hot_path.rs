//! The logs hot path without the network: framing, decoding, multi-line grouping (default
//! `^[\S]` rule), batching within the PutLogEvents limits, and encoding each batch's JSON body,
//! on syslog-like lines with some multi-line stack traces.
//!
//! Target: at least 400 MB/s per core. The baseline in the same run is framing alone, so the
//! ratio shows what grouping, batching and encoding add.
//!
//! Also here: the request body alone against a `String` per event, and reading a
//! `timestamp_format` at the start of each line against the regex's captures.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cwlite::config::{FileConfig, Timezone};
use cwlite::ship::cloudwatch_logs::batch::{LogBatch, LogBatcher, MAX_EVENT_MESSAGE_BYTES};
use cwlite::ship::cloudwatch_logs::body::put_log_events_body;
use cwlite::tail::events::{EventPipeline, Outputs};
use cwlite::tail::line_reader::{DEFAULT_CHUNK_BYTES, LineReader};
use cwlite::tail::timestamp::{Memo, TimestampFormat};

fn corpus() -> Vec<u8> {
    let mut out = Vec::with_capacity(32 << 20);
    let mut rng = fastrand::Rng::with_seed(11);
    while out.len() < 32 << 20 {
        if rng.u8(..50) == 0 {
            out.extend_from_slice(
                b"Nov 25 18:44:12 web-01 app[42]: java.lang.IllegalStateException: boom\n",
            );
            for depth in 0..rng.usize(3..12) {
                out.extend_from_slice(
                    format!(
                        "    at com.example.Service.method{depth}(Service.java:{})\n",
                        rng.u16(..999)
                    )
                    .as_bytes(),
                );
            }
        } else {
            out.extend_from_slice(
                format!(
                    "Nov 25 18:44:{:02} web-01 app[{}]: GET /api/orders/{} 200 {}ms",
                    rng.u8(..60),
                    rng.u16(..),
                    rng.u32(..),
                    rng.u8(..)
                )
                .as_bytes(),
            );
            out.extend(std::iter::repeat_n(b'.', rng.usize(0..120)));
            out.push(b'\n');
        }
    }
    out
}

fn config() -> FileConfig {
    FileConfig::plain("/var/log/app.log", "app", "web-01")
}

/// What the body cost before `put_log_events_body`: a `String` per event (as the SDK's
/// `InputLogEvent` needs), then the SDK-style serialisation of those strings.
fn encode_via_strings(batch: &LogBatch) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Event {
        timestamp: i64,
        message: String,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        log_group_name: &'a str,
        log_stream_name: &'a str,
        log_events: Vec<Event>,
    }
    let log_events = batch
        .events
        .iter()
        .map(|e| Event {
            timestamp: e.timestamp_ms,
            message: String::from_utf8_lossy(&e.message.joined()).into_owned(),
        })
        .collect();
    serde_json::to_vec(&Body {
        log_group_name: "app",
        log_stream_name: "web-01",
        log_events,
    })
    .unwrap()
}

/// The corpus as closed batches, for the body benches.
fn batches(data: &[u8], config: &FileConfig) -> Vec<LogBatch> {
    let mut reader = LineReader::new(0, DEFAULT_CHUNK_BYTES, MAX_EVENT_MESSAGE_BYTES);
    let mut pipeline = EventPipeline::new(config, MAX_EVENT_MESSAGE_BYTES).unwrap();
    let mut batcher = LogBatcher::default();
    let mut outputs = Outputs::new(1);
    let mut closed = Vec::new();
    let mut source = data;
    let now = Instant::now();
    loop {
        let more = reader.fill(&mut source).unwrap() > 0;
        while let Some(line) = reader.next_line() {
            pipeline.push(line, now, 1_764_000_000_000, &mut outputs);
        }
        if !more {
            pipeline.flush(1_764_000_000_000, &mut outputs);
        }
        batcher.extend(std::mem::take(&mut outputs.events), &mut closed);
        if !more {
            break;
        }
    }
    closed.extend(batcher.take());
    closed
}

fn bench(c: &mut Criterion) {
    let data = corpus();
    let config = config();
    let mut group = c.benchmark_group("logs_hot_path");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("frame_group_batch_encode", |b| {
        b.iter(|| {
            let mut reader = LineReader::new(0, DEFAULT_CHUNK_BYTES, MAX_EVENT_MESSAGE_BYTES);
            let mut pipeline = EventPipeline::new(&config, MAX_EVENT_MESSAGE_BYTES).unwrap();
            let mut batcher = LogBatcher::default();
            let mut outputs = Outputs::new(1);
            let mut closed = Vec::new();
            let mut encoded = 0usize;
            let now = Instant::now();
            let mut source: &[u8] = &data;
            // As the tailer hands a pass's events on and the shipper batches them.
            let handle = |outputs: &mut Outputs,
                          batcher: &mut LogBatcher,
                          closed: &mut Vec<LogBatch>,
                          encoded: &mut usize| {
                batcher.extend(std::mem::take(&mut outputs.events), closed);
                for batch in closed.drain(..) {
                    *encoded += put_log_events_body("app", "web-01", &batch.events).len();
                }
            };
            while reader.fill(&mut source).unwrap() > 0 {
                while let Some(line) = reader.next_line() {
                    pipeline.push(line, now, 1_764_000_000_000, &mut outputs);
                }
                handle(&mut outputs, &mut batcher, &mut closed, &mut encoded);
            }
            pipeline.flush(1_764_000_000_000, &mut outputs);
            handle(&mut outputs, &mut batcher, &mut closed, &mut encoded);
            if let Some(batch) = batcher.take() {
                encoded += put_log_events_body("app", "web-01", &batch.events).len();
            }
            black_box(encoded)
        })
    });
    group.bench_function("baseline_framing_only", |b| {
        b.iter(|| {
            let mut reader = LineReader::new(0, DEFAULT_CHUNK_BYTES, MAX_EVENT_MESSAGE_BYTES);
            let mut source: &[u8] = &data;
            let mut n = 0usize;
            while reader.fill(&mut source).unwrap() > 0 {
                while let Some(line) = reader.next_line() {
                    n += line.bytes.len();
                }
            }
            black_box(n)
        })
    });
    group.finish();

    // The request body alone: written from the read buffers (one copy per message) against the
    // String-per-event path the SDK's own serialiser needs (two copies).
    let closed = batches(&data, &config);
    let mut group = c.benchmark_group("logs_request_body");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("from_read_buffers", |b| {
        b.iter(|| {
            closed
                .iter()
                .map(|batch| put_log_events_body("app", "web-01", &batch.events).len())
                .sum::<usize>()
        })
    });
    group.bench_function("baseline_string_per_event", |b| {
        b.iter(|| {
            closed
                .iter()
                .map(|batch| encode_via_strings(batch).len())
                .sum::<usize>()
        })
    });
    group.finish();

    // Reading each event's timestamp (`timestamp_format`), which the e2e scenarios configure:
    // the direct read at the start of a line, alone and going on from the line before as the
    // pipeline does (lines in time order, a few milliseconds apart), against the regex's
    // captures it falls back to.
    let format = TimestampFormat::new("%Y-%m-%dT%H:%M:%S.%f", Timezone::Utc).unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut at_ms = 1_764_093_600_000; // 2025-11-25T18:00:00Z
    let lines: Vec<Vec<u8>> = (0..10_000)
        .map(|i| {
            at_ms += rng.i64(0..20);
            let stamp = jiff::Timestamp::from_millisecond(at_ms)
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%S%.3f");
            format!(
                "{stamp} web-01 app[{}]: GET /api/orders/{i} 200",
                rng.u16(..)
            )
            .into_bytes()
        })
        .collect();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("timestamp_find");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("direct_read", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter_map(|line| format.find(line, 1_764_000_000_000))
                .map(|found| found.timestamp_ms)
                .sum::<i64>()
        })
    });
    group.bench_function("direct_read_going_on", |b| {
        b.iter(|| {
            let mut memo = Memo::default();
            lines
                .iter()
                .filter_map(|line| format.find_next(line, 1_764_000_000_000, &mut memo))
                .map(|found| found.timestamp_ms)
                .sum::<i64>()
        })
    });
    group.bench_function("baseline_regex_captures", |b| {
        b.iter(|| {
            lines
                .iter()
                .filter_map(|line| format.regex().captures(line))
                .map(|captures| captures.len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
