//! HTTPS to a VPC-endpoint-like host: a private CA from `ca_bundle_path`, an HTTP proxy that
//! tunnels with CONNECT, and `no_proxy`. The endpoint is a TLS terminator (with a certificate
//! from a CA generated here) in front of the emulator; the proxy records what it tunnels.

mod common;

use std::sync::{Arc, Mutex};

use common::test_pki;
use cwlite::aws::{AwsError, AwsErrorKind, Clients};
use cwlite::config::expand::HostFacts;
use cwlite::config::{self, Environment, RegionPolicy};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// Terminates TLS on a loopback port and relays the plain bytes to the emulator.
async fn start_tls_endpoint(server: rustls::ServerConfig) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = common::emulator_endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                // A refused handshake is what one test expects; nothing to relay then.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut plain = TcpStream::connect(&upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

/// An HTTP proxy that only does CONNECT, recording each target.
async fn start_connect_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tunnels = Arc::new(Mutex::new(Vec::new()));
    let recorded = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(tcp);
                let mut request_line = String::new();
                client.read_line(&mut request_line).await.unwrap();
                loop {
                    let mut header = String::new();
                    client.read_line(&mut header).await.unwrap();
                    if header == "\r\n" || header.is_empty() {
                        break;
                    }
                }
                let mut parts = request_line.split_whitespace();
                assert_eq!(
                    parts.next(),
                    Some("CONNECT"),
                    "HTTPS must be tunnelled: {request_line}"
                );
                let target = parts.next().unwrap().to_owned();
                recorded.lock().unwrap().push(target.clone());
                let mut upstream = TcpStream::connect(&target).await.unwrap();
                client
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, tunnels)
}

async fn clients(dir: &std::path::Path, tls_port: u16, common_extra: &str, key: &str) -> Clients {
    let credentials = common::write_credentials(dir, &[("AmazonCloudWatchAgent", key, "secret")]);
    let common_config =
        common::write_common_config(dir, &credentials, "AmazonCloudWatchAgent", common_extra);
    let endpoint = format!("localhost:{tls_port}");
    let config = common::write_json(
        dir,
        "config.json",
        &json!({
            "agent": {"region": "ap-northeast-1"},
            "metrics": {"endpoint_override": endpoint, "metrics_collected": {"mem": {"measurement": ["used_percent"]}}},
            "logs": {"endpoint_override": endpoint, "logs_collected": {"files": {"collect_list": [{"file_path": "/var/log/syslog"}]}}}
        }),
    );
    // A fixed environment: no proxy or CA variable of the machine running the tests leaks in.
    let host = HostFacts {
        hostname: "edge-01".into(),
        ip_address: None,
        date: "2026-11-25".into(),
    };
    let env = Environment::fixed(&[], host);
    let loaded = config::load(
        &[config],
        Some(&common_config),
        &env,
        RegionPolicy::Required,
    )
    .unwrap();
    let clients = Clients::build(&loaded.config).await.unwrap();
    assert_eq!(
        clients.logs_endpoint,
        format!("https://localhost:{tls_port}")
    );
    clients
}

#[tokio::test]
async fn https_goes_through_the_proxy_and_trusts_the_private_ca() {
    let pki = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("private-ca.pem");
    std::fs::write(&ca_path, &pki.ca_pem).unwrap();
    let tls_port = start_tls_endpoint(pki.server).await;
    let (proxy_port, tunnels) = start_connect_proxy().await;
    let key = common::unique("AKIDTLS").replace('-', "");
    let extra = format!(
        "[proxy]\nhttps_proxy = \"http://127.0.0.1:{proxy_port}\"\n[ssl]\nca_bundle_path = \"{}\"\n",
        ca_path.display()
    );
    let clients = clients(dir.path(), tls_port, &extra, &key).await;

    let group = common::unique("cwlite-tls");
    clients
        .logs
        .create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    let described = clients
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&group)
        .send()
        .await
        .unwrap();
    assert_eq!(described.log_groups().len(), 1);
    clients
        .metrics
        .list_metrics()
        .namespace("CWAgent")
        .send()
        .await
        .unwrap();

    let tunnelled = tunnels.lock().unwrap().clone();
    assert!(!tunnelled.is_empty());
    assert!(
        tunnelled
            .iter()
            .all(|t| *t == format!("localhost:{tls_port}")),
        "{tunnelled:?}"
    );
    let services: Vec<_> = common::access_keys_seen()
        .into_iter()
        .filter(|(_, k)| *k == key)
        .map(|(s, _)| s)
        .collect();
    assert!(
        services.contains(&"logs".to_owned()) && services.contains(&"monitoring".to_owned()),
        "{services:?}"
    );
}

#[tokio::test]
async fn no_proxy_hosts_are_reached_directly() {
    let pki = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("private-ca.pem");
    std::fs::write(&ca_path, &pki.ca_pem).unwrap();
    let tls_port = start_tls_endpoint(pki.server).await;
    let (proxy_port, tunnels) = start_connect_proxy().await;
    let extra = format!(
        "[proxy]\nhttps_proxy = \"http://127.0.0.1:{proxy_port}\"\nno_proxy = \"169.254.169.254,localhost\"\n[ssl]\nca_bundle_path = \"{}\"\n",
        ca_path.display()
    );
    let clients = clients(dir.path(), tls_port, &extra, "AKIDNOPROXY").await;
    clients
        .logs
        .describe_log_groups()
        .limit(1)
        .send()
        .await
        .unwrap();
    assert!(
        tunnels.lock().unwrap().is_empty(),
        "no_proxy host went through the proxy"
    );
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let pki = test_pki();
    let dir = tempfile::tempdir().unwrap();
    let tls_port = start_tls_endpoint(pki.server).await;
    let clients = clients(dir.path(), tls_port, "", "AKIDNOCA").await;
    let failure = clients
        .logs
        .describe_log_groups()
        .limit(1)
        .send()
        .await
        .unwrap_err();
    let error = AwsError::from_sdk("DescribeLogGroups", &clients.logs_endpoint, &failure);
    assert_eq!(error.kind, AwsErrorKind::Unreachable, "{error}");
    assert!(error.message.contains("certificate"), "{error}");
}
