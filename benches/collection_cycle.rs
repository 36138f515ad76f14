//! One full collection cycle of the default metric set (cpu, mem, disk, as `config/cwlite.json`
//! collects them) on this machine's real `/proc`, including turning samples into datums.
//!
//! The cycle runs synchronously on one thread, so its wall time is its CPU time; the target is
//! under 1 ms. The baseline, measured in the same run, is `sysinfo` refreshing the same three
//! sources (cpu usage, memory, disks), which is what a collector built on `sysinfo` would pay.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use cwlite::collect::{Collector, Host};
use cwlite::config::{self, Environment, RegionPolicy};
use cwlite::metrics::DatumBuilder;

fn bench(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cwlite.json");
    let loaded = config::load(
        &[path],
        None,
        &Environment::from_process(),
        RegionPolicy::Optional,
    )
    .expect("the seed config loads");
    let metrics = loaded
        .config
        .metrics
        .expect("the seed config collects metrics");
    let host = Host::real();
    let mut plugins: Vec<(Collector, DatumBuilder)> = metrics
        .plugins
        .iter()
        .map(|p| {
            (
                Collector::for_plugin(p),
                DatumBuilder::new(p, &loaded.config.agent, &metrics.aggregation_dimensions),
            )
        })
        .collect();
    let mut samples = Vec::new();
    let mut datums = Vec::new();
    let mut group = c.benchmark_group("default_metric_set_cycle");
    group.bench_function("cwlite_collect_and_build", |b| {
        b.iter(|| {
            datums.clear();
            for (collector, builder) in &mut plugins {
                samples.clear();
                let _ = collector.collect(&host, &mut samples);
                builder.build(&samples, 0, &mut datums);
            }
            black_box(datums.len())
        })
    });
    let mut system = sysinfo::System::new().expect("sysinfo supports this system");
    let mut disks = sysinfo::Disks::new_with_refreshed_list().expect("sysinfo lists disks");
    group.bench_function("baseline_sysinfo_refresh", |b| {
        b.iter(|| {
            system.refresh_cpu_usage();
            system.refresh_memory();
            disks.refresh(true);
            black_box((system.global_cpu_usage(), system.used_memory(), disks.len()))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
