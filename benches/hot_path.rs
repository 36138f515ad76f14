//! The logs hot path without the network: framing, decoding, multi-line grouping (default
//! `^[\S]` rule), batching within the PutLogEvents limits, and encoding each batch's JSON body,
//! on syslog-like lines with some multi-line stack traces.
//!
//! Target: at least 400 MB/s per core. The baseline in the same run is framing alone, so the
//! ratio shows what grouping, batching and encoding add.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cwlite::config::go_regex::GoRegex;
use cwlite::config::{FileConfig, LogGroupName, MultiLineStart, Timezone};
use cwlite::event::{EventSource, LogEvent};
use cwlite::ship::cloudwatch_logs::batch::{LogBatch, LogBatcher, MAX_EVENT_MESSAGE_BYTES};
use cwlite::tail::events::{EventPipeline, Output};
use cwlite::tail::line_reader::{DEFAULT_CHUNK_BYTES, LineReader};

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
    FileConfig {
        file_path: "/var/log/app.log".into(),
        log_group_name: LogGroupName::Named("app".into()),
        log_stream_name: "web-01".into(),
        log_group_class: None,
        retention_in_days: None,
        timestamp_format: None,
        timezone: Timezone::Utc,
        trim_timestamp: false,
        multi_line_start: MultiLineStart::Pattern(GoRegex::new(r"^[\S]").unwrap()),
        encoding: encoding_rs::UTF_8,
        filters: vec![],
        auto_removal: false,
        publish_multi_logs: false,
        blacklist: None,
    }
}

/// The JSON body of a PutLogEvents call, as the wire protocol has it.
fn encode(batch: &LogBatch, body: &mut Vec<u8>) {
    body.clear();
    body.extend_from_slice(br#"{"logGroupName":"app","logStreamName":"web-01","logEvents":["#);
    for (i, event) in batch.events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(br#"{"timestamp":"#);
        body.extend_from_slice(event.timestamp_ms.to_string().as_bytes());
        body.extend_from_slice(br#","message":"#);
        let joined = event.message.joined();
        serde_json::to_writer(&mut *body, std::str::from_utf8(&joined).unwrap_or("")).unwrap();
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
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
            let mut outputs = Vec::new();
            let mut body = Vec::with_capacity(1 << 20);
            let mut encoded = 0usize;
            let now = Instant::now();
            let mut source: &[u8] = &data;
            let handle = |outputs: &mut Vec<Output>,
                          batcher: &mut LogBatcher,
                          body: &mut Vec<u8>,
                          encoded: &mut usize| {
                for output in outputs.drain(..) {
                    if let Output::Event(event) = output {
                        let source = EventSource {
                            file: 1,
                            start_offset: event.message.start_offset,
                            end_offset: event.message.end_offset,
                        };
                        if let Some(batch) = batcher.push(LogEvent {
                            timestamp_ms: event.timestamp_ms,
                            message: event.message,
                            source,
                        }) {
                            encode(&batch, body);
                            *encoded += body.len();
                        }
                    }
                }
            };
            while reader.fill(&mut source).unwrap() > 0 {
                while let Some(line) = reader.next_line() {
                    pipeline.push(line, now, 1_764_000_000_000, &mut outputs);
                }
                handle(&mut outputs, &mut batcher, &mut body, &mut encoded);
            }
            pipeline.flush(1_764_000_000_000, &mut outputs);
            handle(&mut outputs, &mut batcher, &mut body, &mut encoded);
            if let Some(batch) = batcher.take() {
                encode(&batch, &mut body);
                encoded += body.len();
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
