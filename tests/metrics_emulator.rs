//! Host metrics end to end: the real binary collects this machine's metrics and publishes them to
//! the emulator (moto behind the bridge, started by `scripts/test`) with the stock agent's names,
//! units and dimensions; and an endpoint outage with a restart in the middle loses nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Daemon, Relay};
use serde_json::{Value, json};

fn start(dir: &Path, state_dir: &Path, config: &Value) -> Daemon {
    common::start_daemon(dir, state_dir, config, "AKIDMETRICS")
}

fn dimensions(datum: &Value) -> Vec<String> {
    datum["Dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}={}",
                d["Name"].as_str().unwrap(),
                d["Value"].as_str().unwrap()
            )
        })
        .collect()
}

fn dimension_names(datum: &Value) -> Vec<String> {
    datum["Dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn host_metrics_arrive_with_stock_names_units_and_dimensions() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let namespace = common::unique("CWAgentTest");
    let config = json!({
        "agent": {"region": "us-east-1", "metrics_collection_interval": 1},
        "metrics": {
            "namespace": namespace,
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "metrics_collected": {
                "cpu": {"measurement": ["cpu_usage_idle"], "totalcpu": true},
                "mem": {"measurement": ["mem_used_percent"]},
                "disk": {"measurement": ["used_percent"], "resources": ["/"]},
                "swap": {"measurement": ["swap_used_percent"]},
                "diskio": {"measurement": ["reads", "write_bytes"]},
                "net": {"measurement": ["bytes_recv"], "resources": ["lo"]}
            }
        }
    });
    let daemon = start(dir.path(), &dir.path().join("state"), &config);
    let wanted = [
        "cpu_usage_idle",
        "mem_used_percent",
        "disk_used_percent",
        "swap_used_percent",
        "diskio_reads",
        "diskio_write_bytes",
        "net_bytes_recv",
    ];
    let first: BTreeMap<String, Value> = common::eventually("every metric in the emulator", || {
        let mut first = BTreeMap::new();
        for datum in common::metric_data(&namespace) {
            first
                .entry(datum["MetricName"].as_str().unwrap().to_owned())
                .or_insert(datum);
        }
        wanted
            .iter()
            .all(|w| first.contains_key(*w))
            .then_some(first)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");

    let host = dimensions(&first["mem_used_percent"])[0].clone();
    assert!(host.starts_with("host=") && host.len() > 5, "{host}");
    let cpu = &first["cpu_usage_idle"];
    assert_eq!(dimensions(cpu), [host.clone(), "cpu=cpu-total".to_owned()]);
    assert_eq!(
        (cpu["Unit"].as_str(), cpu["StorageResolution"].as_i64()),
        (Some("Percent"), Some(1))
    );
    assert!((0.0..=100.0).contains(&cpu["Value"].as_f64().unwrap()));
    let mem = &first["mem_used_percent"];
    assert_eq!(dimensions(mem), vec![host.clone()]);
    assert!(
        (0.0..100.0).contains(&mem["Value"].as_f64().unwrap())
            && mem["Value"].as_f64().unwrap() > 0.0
    );
    let disk = &first["disk_used_percent"];
    assert_eq!(dimension_names(disk), ["host", "device", "fstype", "path"]);
    assert!(dimensions(disk).contains(&"path=/".to_owned()));
    assert_eq!(disk["Unit"], "Percent");
    let swap = &first["swap_used_percent"];
    assert_eq!(
        (swap["Unit"].as_str(), dimensions(swap)),
        (Some("Percent"), vec![host.clone()])
    );
    assert!(
        (0.0..=100.0).contains(&swap["Value"].as_f64().unwrap()),
        "a host without swap reports 0"
    );
    let reads = &first["diskio_reads"];
    assert_eq!(
        (reads["Unit"].as_str(), dimension_names(reads)),
        (Some("Count"), vec!["host".to_owned(), "name".to_owned()])
    );
    assert_eq!(first["diskio_write_bytes"]["Unit"], "Bytes");
    let net = &first["net_bytes_recv"];
    assert_eq!(
        (net["Unit"].as_str(), dimensions(net)),
        (Some("Bytes"), vec![host, "interface=lo".to_owned()])
    );
    assert!(
        net["Value"].as_f64().unwrap() >= 0.0,
        "a per-interval delta"
    );

    // moto stored them: ListMetrics through the SDK sees them too.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let names = runtime.block_on(async {
        let sdk = aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::new()
                .http_client(common::sdk_http_client())
                .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
                .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
                    "AKIDTEST", "s", None, None, "test",
                ))
                .endpoint_url(&endpoint)
                .build(),
        );
        let listed = sdk
            .list_metrics()
            .namespace(&namespace)
            .send()
            .await
            .unwrap();
        listed
            .metrics()
            .iter()
            .filter_map(|m| m.metric_name().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
    });
    for name in wanted {
        assert!(names.contains(name), "{name} not listed: {names:?}");
    }
}

/// Spooled batch files: (file name, timestamps of `metric` in it).
fn spooled_timestamps(spool: &Path, metric: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(spool).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "batch") {
            let batch: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for datum in batch["datums"].as_array().unwrap() {
                if datum["metric_name"] == metric {
                    out.push(datum["timestamp_ms"].as_i64().unwrap());
                }
            }
        }
    }
    out.sort();
    out
}

fn timestamps_ms(data: &[Value], metric: &str) -> Vec<i64> {
    let mut out: Vec<i64> = data
        .iter()
        .filter(|d| d["MetricName"] == metric)
        .map(|d| (d["Timestamp"].as_f64().unwrap() * 1000.0).round() as i64)
        .collect();
    out.sort();
    out
}

/// The endpoint refuses connections for a while and cwlite is restarted in the middle of it:
/// once the endpoint is back, every datum collected meanwhile arrives, exactly once.
#[test]
fn an_outage_with_a_restart_loses_nothing_and_sends_nothing_twice() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = common::emulator_endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let relay = runtime.block_on(Relay::start(&upstream));
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let spool = state_dir.join("metrics-spool");
    let namespace = common::unique("CWAgentOutage");
    let config = json!({
        "agent": {"region": "us-east-1", "metrics_collection_interval": 1},
        "metrics": {
            "namespace": namespace,
            "endpoint_override": format!("http://127.0.0.1:{}", relay.port),
            "force_flush_interval": 1,
            "metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}
        }
    });

    let mut first = start(dir.path(), &state_dir, &config);
    common::eventually("two datums published before the outage", || {
        (common::metric_data(&namespace).len() >= 2).then_some(())
    });
    runtime.block_on(relay.refuse());
    first.wait_stderr("cannot reach the endpoint");
    common::eventually("three batches spooled during the outage", || {
        (spooled_timestamps(&spool, "mem_used_percent").len() >= 3).then_some(())
    });
    let (status, stderr) = first.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    let spooled_at_restart = spooled_timestamps(&spool, "mem_used_percent");
    assert!(spooled_at_restart.len() >= 3);
    let spooled_batches = std::fs::read_dir(&spool)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "batch")
        })
        .count();

    let mut second = start(dir.path(), &state_dir, &config);
    assert!(
        second
            .stderr_seen
            .iter()
            .any(|l| l.contains("from an earlier run will be published first")),
        "the spool is picked up at start: {:?}",
        second.stderr_seen
    );
    second.wait_stderr("cannot reach the endpoint");
    runtime.block_on(relay.restore());
    let newest_spooled = *spooled_at_restart.last().unwrap();
    let delivered = common::eventually("the spooled datums and newer ones delivered", || {
        let got = timestamps_ms(&common::metric_data(&namespace), "mem_used_percent");
        (spooled_at_restart.iter().all(|t| got.contains(t))
            && got.iter().filter(|t| **t > newest_spooled).count() >= 2)
            .then_some(got)
    });
    let (status, stderr) = second.stop("TERM");
    assert!(status.success(), "{stderr:?}");

    let all = common::metric_data(&namespace);
    let delivered_after_stop = timestamps_ms(&all, "mem_used_percent");
    // The backlog went out merged: fewer requests than spooled batches.
    let backlog_requests: std::collections::BTreeSet<i64> = all
        .iter()
        .filter(|d| {
            spooled_at_restart
                .contains(&((d["Timestamp"].as_f64().unwrap() * 1000.0).round() as i64))
        })
        .map(|d| d["_request"].as_i64().unwrap())
        .collect();
    assert!(
        backlog_requests.len() < spooled_batches,
        "{} requests for {spooled_batches} spooled batches",
        backlog_requests.len()
    );
    let mut unique = delivered_after_stop.clone();
    unique.dedup();
    assert_eq!(unique, delivered_after_stop, "a datum was sent twice");
    assert!(delivered.len() <= delivered_after_stop.len());
    // One sample a second in each run: a gap of two intervals means a lost datum. The one gap
    // allowed is the restart, right after the newest datum the first run spooled.
    let gaps: Vec<(i64, i64)> = delivered_after_stop
        .windows(2)
        .filter(|w| w[1] - w[0] > 1900)
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        gaps.len() <= 1 && gaps.iter().all(|(before, _)| *before == newest_spooled),
        "lost datums around {gaps:?}"
    );
}

/// Throttling is retried until the batch is accepted; a batch refused as invalid is dropped
/// alone, with the refused datum named, and publishing goes on.
#[test]
fn throttling_is_retried_and_an_invalid_batch_is_dropped_alone() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let namespace = common::unique("CWAgentFaults");
    common::http(
        "POST",
        &format!(
            "{endpoint}/_bridge/fail?namespace={namespace}&count=2&status=400&code=Throttling&message=Rate%20exceeded"
        ),
    );
    let config = json!({
        "agent": {"region": "us-east-1", "metrics_collection_interval": 1},
        "metrics": {"namespace": namespace, "endpoint_override": endpoint, "force_flush_interval": 1,
                    "metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}}
    });
    let mut daemon = start(dir.path(), &dir.path().join("state"), &config);
    daemon.wait_stderr("Throttling: Rate exceeded");
    common::eventually("the throttled batch delivered", || {
        (!common::metric_data(&namespace).is_empty()).then_some(())
    });
    common::http(
        "POST",
        &format!(
            "{endpoint}/_bridge/fail?namespace={namespace}&count=1&status=400&code=InvalidParameterValue&message=The%20value%20for%20parameter%20MetricData.member.1.Value%20is%20invalid."
        ),
    );
    let refused = daemon.wait_stderr("refused and dropped");
    assert!(
        refused.contains("(refused datum: mem_used_percent {host="),
        "{refused}"
    );
    let before = common::metric_data(&namespace).len();
    common::eventually("publishing goes on after the refusal", || {
        (common::metric_data(&namespace).len() >= before + 2).then_some(())
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");

    let delivered = timestamps_ms(&common::metric_data(&namespace), "mem_used_percent");
    let mut unique = delivered.clone();
    unique.dedup();
    assert_eq!(unique, delivered, "a datum was sent twice");
    // The throttled batches were all delivered: the only hole is the refused batch.
    let holes = delivered.windows(2).filter(|w| w[1] - w[0] > 1900).count();
    assert!(holes <= 1, "{delivered:?}");
    assert!(delivered.len() >= 3);
}

/// `procstat` end to end (issue 20): a process found by its pid file, one by its command line,
/// and an `exe` that matches nothing, whose `pid_count` of 0 is the alarm users rely on.
#[test]
fn procstat_reports_found_processes_and_zero_for_none() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let namespace = common::unique("CWAgentProcstat");
    // An argument no other process has, for the pattern.
    let marker = format!("{}.25", 4000 + std::process::id() % 1000);
    let mut child = std::process::Command::new("sleep")
        .arg(&marker)
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("sleep.pid");
    std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
    let pid_file = pid_file.to_str().unwrap().to_owned();
    let pattern = format!("^sleep {}$", marker.replace('.', "\\."));
    let config = json!({
        "agent": {"region": "us-east-1", "metrics_collection_interval": 1},
        "metrics": {
            "namespace": namespace,
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "metrics_collected": {
                "procstat": [
                    {"pid_file": pid_file, "measurement": ["memory_rss", "cpu_usage", "num_fds", "rlimit_num_fds_soft", "pid_count"]},
                    {"pattern": pattern, "measurement": ["pid"]},
                    {"exe": "^cwlite-no-such-process$", "measurement": ["pid_count"], "append_dimensions": {"alarm": "down"}},
                ]
            }
        }
    });
    let daemon = start(dir.path(), &dir.path().join("state"), &config);
    let wanted = [
        "procstat_memory_rss",
        "procstat_cpu_usage",
        "procstat_num_fds",
        "procstat_rlimit_num_fds_soft",
        "procstat_pid",
        "procstat_lookup_pid_count",
    ];
    let data: Vec<Value> = common::eventually("every procstat metric in the emulator", || {
        let data = common::metric_data(&namespace);
        let lookups = data
            .iter()
            .filter(|d| d["MetricName"] == "procstat_lookup_pid_count")
            .map(dimension_names)
            .collect::<std::collections::BTreeSet<_>>();
        (wanted
            .iter()
            .all(|w| data.iter().any(|d| d["MetricName"] == *w))
            && lookups.len() == 2)
            .then_some(data)
    });
    let (status, stderr) = daemon.stop("TERM");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(status.success(), "{stderr:?}");

    let first = |name: &str, dimension: &str| {
        data.iter()
            .find(|d| {
                d["MetricName"] == name && dimensions(d).iter().any(|x| x.starts_with(dimension))
            })
            .unwrap_or_else(|| panic!("no {name} with {dimension}"))
    };
    let rss = first("procstat_memory_rss", "pidfile=");
    assert_eq!(dimension_names(rss), ["host", "pidfile", "process_name"]);
    assert!(dimensions(rss).contains(&"process_name=sleep".to_owned()));
    assert_eq!(rss["Unit"], "Bytes");
    assert!(rss["Value"].as_f64().unwrap() > 0.0);
    assert_eq!(first("procstat_cpu_usage", "pidfile=")["Unit"], "Percent");
    assert!(
        first("procstat_num_fds", "pidfile=")["Value"]
            .as_f64()
            .unwrap()
            >= 3.0
    );
    assert!(
        first("procstat_rlimit_num_fds_soft", "pidfile=")["Value"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    let found = first("procstat_lookup_pid_count", "pidfile=");
    assert_eq!(dimension_names(found), ["host", "pid_finder", "pidfile"]);
    assert_eq!(found["Value"].as_f64(), Some(1.0));
    let pid = first("procstat_pid", "pattern=");
    assert_eq!(pid["Value"].as_f64(), Some(f64::from(child.id())));
    assert_eq!(dimension_names(pid), ["host", "pattern", "process_name"]);
    let none = first("procstat_lookup_pid_count", "exe=");
    assert_eq!(
        dimension_names(none),
        ["host", "alarm", "exe", "pid_finder"]
    );
    assert_eq!(
        (none["Value"].as_f64(), none["Unit"].as_str()),
        (Some(0.0), Some("None"))
    );
}

/// statsd end to end (issue 20): one datagram with each type, sample rates, DataDog tags and a
/// malformed line; the datums arrive aggregated as the stock agent sends them (`Values`,
/// `Counts`, `StatisticValues`, `metric_type` dimension, unit None, high resolution below a
/// minute of aggregation).
#[test]
fn statsd_lines_arrive_aggregated_as_the_stock_agent_sends_them() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let namespace = common::unique("CWAgentStatsd");
    let port = common::free_udp_port();
    let config = json!({
        "agent": {"region": "us-east-1"},
        "metrics": {
            "namespace": namespace,
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "metrics_collected": {
                "statsd": {
                    "service_address": format!("127.0.0.1:{port}"),
                    "metrics_collection_interval": 1,
                    "metrics_aggregation_interval": 2
                }
            }
        }
    });
    let mut daemon = start(dir.path(), &dir.path().join("state"), &config);
    let datagram = [
        "api.requests:3|c|#env:prod",
        "api.requests:3|c|#env:prod",
        "api.requests:4|c|@0.5|#env:prod",
        "queue.depth:7|g",
        "users:alice|s",
        "users:bob|s",
        "users:alice|s",
        "latency:10|ms",
        "latency:20|ms:20|ms|@0.5",
        "this is not statsd",
    ]
    .join("\n");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(datagram.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let names = ["api_requests", "queue_depth", "users", "latency"];
    let data: Vec<Value> = common::eventually("every statsd metric in the emulator", || {
        let data = common::metric_data(&namespace);
        names
            .iter()
            .all(|n| data.iter().any(|d| d["MetricName"] == *n))
            .then_some(data)
    });
    daemon.wait_stderr("statsd: malformed lines dropped");
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");

    let one = |name: &str| {
        let found: Vec<&Value> = data.iter().filter(|d| d["MetricName"] == name).collect();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0]
    };
    let stats = |d: &Value| {
        let s = &d["StatisticValues"];
        (
            s["Sum"].as_f64().unwrap(),
            s["SampleCount"].as_f64().unwrap(),
            s["Minimum"].as_f64().unwrap(),
            s["Maximum"].as_f64().unwrap(),
        )
    };
    let requests = one("api_requests");
    assert_eq!(
        dimension_names(requests),
        ["host", "env", "metric_type"],
        "{requests}"
    );
    assert!(dimensions(requests).contains(&"metric_type=counter".to_owned()));
    // 3 + 3 + 4 / 0.5, gathered in one collection window.
    assert_eq!(stats(requests), (14.0, 1.0, 14.0, 14.0));
    assert_eq!(
        (
            requests["Unit"].as_str(),
            requests["StorageResolution"].as_i64()
        ),
        (Some("None"), Some(1))
    );
    assert_eq!(requests["Counts"], json!([1.0]));
    assert!(
        requests.get("Value").is_none_or(Value::is_null),
        "{requests}"
    );
    assert_eq!(stats(one("queue_depth")).0, 7.0);
    assert!(dimensions(one("queue_depth")).contains(&"metric_type=gauge".to_owned()));
    assert_eq!(stats(one("users")).0, 2.0);
    let latency = one("latency");
    assert!(dimensions(latency).contains(&"metric_type=timing".to_owned()));
    // 10 and 20 once each, and 20 at a rate of 0.5: weight 2.
    assert_eq!(stats(latency), (70.0, 4.0, 10.0, 20.0));
    assert_eq!(latency["Values"].as_array().unwrap().len(), 2);
    assert_eq!(latency["Counts"], json!([1.0, 3.0]));
}

/// collectd end to end (issue 20): a real collectd (`CWLITE_TEST_COLLECTD`, installed by
/// scripts/test) sends its load and memory values encrypted, as the stock agent requires by
/// default; they arrive named `collectd_<plugin>_<source>` from types.db, with collectd's
/// host and the stock dimensions, aggregated.
#[test]
fn collectd_values_from_a_real_collectd_arrive_decrypted_and_named_by_types_db() {
    let collectd = std::env::var("CWLITE_TEST_COLLECTD").expect(
        "CWLITE_TEST_COLLECTD is not set: run the tests with scripts/test, which installs collectd",
    );
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let namespace = common::unique("CWAgentCollectd");
    let port = common::free_udp_port();
    let auth_file = dir.path().join("auth_file");
    std::fs::write(&auth_file, "alice: s3cret\n").unwrap();
    let config = json!({
        "agent": {"region": "us-east-1"},
        "metrics": {
            "namespace": namespace,
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "metrics_collected": {
                "collectd": {
                    "service_address": format!("udp://127.0.0.1:{port}"),
                    "collectd_auth_file": auth_file,
                    "metrics_aggregation_interval": 2
                }
            }
        }
    });
    let daemon = start(dir.path(), &dir.path().join("state"), &config);
    let collectd_conf = dir.path().join("collectd.conf");
    std::fs::write(
        &collectd_conf,
        format!(
            "Hostname \"collectd-host\"\nFQDNLookup false\nInterval 1\nBaseDir \"{dir}\"\nPIDFile \"{dir}/collectd.pid\"\n\
             PluginDir \"/usr/lib/collectd\"\nTypesDB \"/usr/share/collectd/types.db\"\n\
             LoadPlugin load\nLoadPlugin memory\nLoadPlugin network\n\
             <Plugin network>\n  <Server \"127.0.0.1\" \"{port}\">\n    SecurityLevel Encrypt\n    Username \"alice\"\n    Password \"s3cret\"\n  </Server>\n</Plugin>\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let mut sender = std::process::Command::new(&collectd)
        .args(["-f", "-C"])
        .arg(&collectd_conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let data: Vec<Value> = common::eventually("collectd's load and memory in the emulator", || {
        let data = common::metric_data(&namespace);
        [
            "collectd_load_shortterm",
            "collectd_load_longterm",
            "collectd_memory_value",
        ]
        .iter()
        .all(|n| data.iter().any(|d| d["MetricName"] == *n))
        .then_some(data)
    });
    sender.kill().unwrap();
    sender.wait().unwrap();
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");

    let load = data
        .iter()
        .find(|d| d["MetricName"] == "collectd_load_shortterm")
        .unwrap();
    assert_eq!(
        dimensions(load),
        ["host=collectd-host", "type=load"],
        "collectd's host wins over the agent's"
    );
    assert_eq!(
        (load["Unit"].as_str(), load["StorageResolution"].as_i64()),
        (Some("None"), Some(1))
    );
    assert!(load["StatisticValues"]["SampleCount"].as_f64().unwrap() >= 1.0);
    let used = data
        .iter()
        .find(|d| {
            d["MetricName"] == "collectd_memory_value"
                && dimensions(d).contains(&"type_instance=used".to_owned())
        })
        .expect("memory used");
    assert_eq!(dimension_names(used), ["host", "type", "type_instance"]);
    assert!(used["StatisticValues"]["Maximum"].as_f64().unwrap() > 0.0);
}
