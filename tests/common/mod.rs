//! Helpers shared by the integration tests: temporary configurations, the emulator's address,
//! and a minimal HTTP client for the bridge's recording endpoint.

#![allow(dead_code)]

pub mod fake_logs;
pub mod host;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::PrivateKeyDer};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A program of the test virtual environment (`scripts/test` installs it: `CWLITE_VENV`, else
/// `.venv`); the test fails, never skips, when it is missing.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var("CWLITE_VENV")
        .unwrap_or_else(|_| format!("{}/.venv", env!("CARGO_MANIFEST_DIR")));
    let program = Path::new(&venv).join("bin").join(name);
    assert!(
        program.exists(),
        "{} is missing: scripts/test installs the test requirements",
        program.display()
    );
    program
}

/// A moto server of the test's own (for IAM enforcement, which would disturb the shared one),
/// killed when dropped.
pub struct OwnMoto {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl OwnMoto {
    /// Starts `moto_server` on a free port and waits until it answers.
    pub fn start() -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = std::process::Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let url = format!("{}/moto-api/data.json", moto.url);
        eventually("moto answers", || {
            TcpStream::connect(("127.0.0.1", port))
                .ok()
                .and_then(|_| Some(http("GET", &url)).filter(|body| body.starts_with('{')))
        });
        moto
    }

    /// Creates IAM users allowed exactly `users`' actions (on any resource) and SSM
    /// `parameters` (name, value, type), then turns IAM enforcement on. Returns each user's
    /// access key and secret.
    pub fn least_privilege(
        &self,
        users: &[(&str, &[&str])],
        parameters: &[(&str, &str, &str)],
    ) -> std::collections::HashMap<String, (String, String)> {
        let spec = serde_json::json!({
            "users": users.iter().map(|(name, actions)| (name.to_string(), serde_json::json!(actions))).collect::<serde_json::Map<_, _>>(),
            "parameters": parameters.iter().map(|(name, value, kind)| serde_json::json!({"name": name, "value": value, "type": kind})).collect::<Vec<_>>(),
        });
        let mut child = std::process::Command::new(venv_bin("python"))
            .arg(format!(
                "{}/tests/support/moto_iam.py",
                env!("CARGO_MANIFEST_DIR")
            ))
            .arg(&self.url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "moto_iam.py failed");
        let keys: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        keys.as_object()
            .unwrap()
            .iter()
            .map(|(name, k)| {
                (
                    name.clone(),
                    (
                        k["key"].as_str().unwrap().to_owned(),
                        k["secret"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect()
    }
}

impl OwnMoto {
    /// The messages of stream `s` of `group`, read with `key`; none while the group is missing.
    pub fn messages(&self, key: &(String, String), group: &str) -> Vec<String> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let client = aws_sdk_cloudwatchlogs::Client::from_conf(
                aws_sdk_cloudwatchlogs::config::Builder::new()
                    .http_client(sdk_http_client())
                    .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
                    .region(aws_sdk_cloudwatchlogs::config::Region::new("eu-west-1"))
                    .credentials_provider(aws_sdk_cloudwatchlogs::config::Credentials::new(
                        &key.0, &key.1, None, None, "test",
                    ))
                    .endpoint_url(&self.url)
                    .build(),
            );
            match client
                .get_log_events()
                .log_group_name(group)
                .log_stream_name("s")
                .start_from_head(true)
                .send()
                .await
            {
                Ok(page) => page
                    .events()
                    .iter()
                    .filter_map(|e| e.message().map(str::to_owned))
                    .collect(),
                Err(_) => Vec::new(),
            }
        })
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulator (moto behind the CBOR bridge) started by `scripts/test`. Tests that need it fail,
/// never skip, when it is missing.
pub fn emulator_endpoint() -> String {
    std::env::var("CWLITE_TEST_ENDPOINT")
        .expect("CWLITE_TEST_ENDPOINT is not set: run the tests with scripts/test, which starts the emulator")
}

/// A UDP port free on 127.0.0.1 a moment ago, for a listener under test.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A name no other test (or earlier run against the same emulator) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes a credentials file (mode 600) holding `profiles` as `(name, access key, secret)`.
pub fn write_credentials(dir: &Path, profiles: &[(&str, &str, &str)]) -> PathBuf {
    let path = dir.join("credentials");
    let mut text = String::new();
    for (name, key, secret) in profiles {
        text.push_str(&format!(
            "[{name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Writes a common-config.toml naming `profile` in `credentials`, plus `extra` TOML.
pub fn write_common_config(dir: &Path, credentials: &Path, profile: &str, extra: &str) -> PathBuf {
    let path = dir.join("common-config.toml");
    std::fs::write(
        &path,
        format!(
            "[credentials]\nshared_credential_profile = \"{profile}\"\nshared_credential_file = \"{}\"\n{extra}",
            credentials.display()
        ),
    )
    .unwrap();
    path
}

/// Writes `json` as `name` in `dir`.
pub fn write_json(dir: &Path, name: &str, json: &serde_json::Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(json).unwrap()).unwrap();
    path
}

/// A plain HTTP/1.1 request to the bridge; returns the body.
pub fn http(method: &str, url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = TcpStream::connect(authority).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    body.to_owned()
}

/// Every (service, access key id) the bridge saw signed requests with.
pub fn access_keys_seen() -> Vec<(String, String)> {
    let body = http(
        "GET",
        &format!("{}/_bridge/access-keys", emulator_endpoint()),
    );
    let seen: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    seen.iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_owned(),
                s["access_key_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The built `cwlite` binary, run from the project root, with no AWS keys from the environment
/// (the configured profile must be what signs).
pub fn cwlite() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cwlite"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    command
}

/// `cwlite status --json` of the daemon with state in `state` (`Null` when there is none).
pub fn status_json(state: &Path) -> serde_json::Value {
    let out = cwlite()
        .args(["status", "--json", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// `command` run by `sh` after the shell commands `setup`, itself started through `launcher`
/// (a program and its arguments, or nothing), with `command`'s environment and directory.
pub fn after_shell(
    command: &std::process::Command,
    launcher: &[&str],
    setup: &str,
) -> std::process::Command {
    let (program, first) = match launcher.split_first() {
        Some((program, rest)) => (*program, rest),
        None => ("sh", &[][..]),
    };
    let mut wrapped = std::process::Command::new(program);
    wrapped.args(first);
    if !launcher.is_empty() {
        wrapped.arg("sh");
    }
    wrapped
        .arg("-c")
        .arg(format!("{setup} && exec \"$0\" \"$@\""))
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Writes what `cwlite run` needs into `dir` (credentials with profile `AmazonCloudWatchAgent`
/// holding `access_key` and `secret`, `common-config.toml`, `config.json` from `config`) and
/// returns the command that runs it with state in `state_dir`; tests add flags and environment.
pub fn run_command(
    dir: &Path,
    state_dir: &Path,
    config: &serde_json::Value,
    access_key: &str,
    secret: &str,
) -> std::process::Command {
    let credentials = write_credentials(dir, &[("AmazonCloudWatchAgent", access_key, secret)]);
    let common_config = write_common_config(dir, &credentials, "AmazonCloudWatchAgent", "");
    let config = write_json(dir, "config.json", config);
    let mut command = cwlite();
    command
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--common-config")
        .arg(common_config)
        .arg("--state-dir")
        .arg(state_dir);
    command
}

/// Starts `cwlite run` with `config`, profile `AmazonCloudWatchAgent` holding `access_key`, and
/// state in `state_dir`; returns once it logged that it started.
pub fn start_daemon(
    dir: &Path,
    state_dir: &Path,
    config: &serde_json::Value,
    access_key: &str,
) -> Daemon {
    let mut daemon = Daemon::spawn(&mut run_command(
        dir, state_dir, config, access_key, "secret",
    ));
    daemon.wait_stderr("started");
    daemon
}

/// Appends `text` to `path`, creating the file if needed.
pub fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// A running `cwlite` child whose stdout and stderr lines are collected by reader threads.
pub struct Daemon {
    pub child: std::process::Child,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
    /// Every stderr line read so far.
    pub stderr_seen: Vec<String>,
    /// Every stdout line read so far.
    pub stdout_seen: Vec<String>,
}

/// How long a test waits for something the daemon must do before calling it a failure.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

fn lines_of(reader: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A test that fails half-way must not leave its daemon running.
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    /// Starts `command` with piped output.
    pub fn spawn(command: &mut std::process::Command) -> Self {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
            stdout_seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; panics with everything seen at the deadline.
    pub fn wait_stderr(&mut self, needle: &str) -> String {
        let until = std::time::Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with {needle:?}; stderr so far:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Moves every stderr line written so far into `stderr_seen`, without waiting.
    pub fn drain_stderr(&mut self) {
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push(line);
        }
    }

    /// Like [`Daemon::wait_stderr`], but also satisfied by a line already seen.
    pub fn wait_stderr_any(&mut self, needle: &str) -> String {
        if let Some(line) = self.stderr_seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        self.wait_stderr(needle)
    }

    /// Waits for a stdout line for which `accept` is true.
    pub fn wait_stdout(&mut self, accept: impl Fn(&str) -> bool) -> String {
        let until = std::time::Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.stdout_seen.push(line.clone());
                    if accept(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no expected stdout line; stderr so far:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` (such as "TERM") and waits for the exit; returns the status and the rest of stderr.
    pub fn stop(mut self, signal: &str) -> (std::process::ExitStatus, Vec<String>) {
        let killed = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        // The pipes close at exit, so the reader threads finish and the channels drain.
        self.stderr_seen.extend(self.stderr.iter());
        self.stdout_seen.extend(self.stdout.iter());
        (status, std::mem::take(&mut self.stderr_seen))
    }
}

/// A loopback HTTP relay in front of the emulator that can refuse connections on demand, as an
/// endpoint outage does. Each connection carries one request (the relay answers with
/// `Connection: close`), so turning it off never cuts a request in half: a request either reached
/// the emulator and got its answer, or was refused before it was sent.
pub struct Relay {
    pub port: u16,
    upstream: String,
    accept: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Relay {
    /// Starts relaying 127.0.0.1:<port> to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> std::sync::Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = std::sync::Arc::new(Self {
            port: listener.local_addr().unwrap().port(),
            upstream: upstream.to_owned(),
            accept: std::sync::Mutex::new(None),
        });
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay_one(client, upstream.clone()));
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    /// Closes the listening socket: new connections are refused. Requests in progress finish.
    pub async fn refuse(&self) {
        let task = self.accept.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        // The listener is gone with the task: connecting must now fail.
        assert!(std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err());
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }
}

pub async fn read_http_message<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    data.reserve((head_end + length).saturating_sub(data.len()));
    while data.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    }
    Some((head, data[head_end..head_end + length].to_vec()))
}

fn with_connection_close(head: &str) -> String {
    let mut out: Vec<&str> = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    out.push("Connection: close");
    format!("{}\r\n\r\n", out.join("\r\n"))
}

async fn relay_one(mut client: tokio::net::TcpStream, upstream: String) {
    use tokio::io::AsyncWriteExt;
    let Some((head, body)) = read_http_message(&mut client).await else {
        return;
    };
    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
        return;
    };
    if server
        .write_all(with_connection_close(&head).as_bytes())
        .await
        .is_err()
        || server.write_all(&body).await.is_err()
    {
        return;
    }
    let Some((response_head, response_body)) = read_http_message(&mut server).await else {
        return;
    };
    let _ = client
        .write_all(with_connection_close(&response_head).as_bytes())
        .await;
    let _ = client.write_all(&response_body).await;
    let _ = client.shutdown().await;
}

/// Every PutMetricData datum the bridge accepted for `namespace`.
pub fn metric_data(namespace: &str) -> Vec<serde_json::Value> {
    let body = http(
        "GET",
        &format!(
            "{}/_bridge/metric-data?namespace={namespace}",
            emulator_endpoint()
        ),
    );
    serde_json::from_str(&body).unwrap()
}

/// The fields of a `/proc/.../stat` line after the command name (which may hold spaces and
/// parentheses): field `n` of the whole line is `n - 3` here.
pub fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, after_name) = stat.rsplit_once(") ")?;
    Some(after_name.split_whitespace().collect())
}

/// Minor page faults of process `pid` so far, all its threads: pages touched for the first
/// time, which the kernel zeroes (field 10 of `/proc/<pid>/stat`). `None` when the process
/// is gone.
pub fn minor_page_faults(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.get(7)?.parse().ok()
}

/// The heaps of glibc malloc arenas other than the main one in process `pid`, from its
/// `/proc/<pid>/maps`: each is an anonymous mapping at a 64 MiB boundary whose reserved rest
/// (`---p`) ends exactly 64 MiB further (glibc's `HEAP_MAX_SIZE` on 64-bit), which thread
/// stacks and other mappings are not.
pub fn malloc_arena_heaps(pid: u32) -> Vec<String> {
    const HEAP_MAX: u64 = 64 << 20;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    // (start, end, perms, line) of anonymous mappings, in address order.
    let anonymous: Vec<(u64, u64, &str, &str)> = maps
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // address perms offset dev inode, and no path.
            if fields.len() != 5 || fields[4] != "0" {
                return None;
            }
            let (start, end) = fields[0].split_once('-')?;
            Some((
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
                fields[1],
                line,
            ))
        })
        .collect();
    let mut heaps = Vec::new();
    for (i, &(start, _, perms, line)) in anonymous.iter().enumerate() {
        if perms != "rw-p" || start % HEAP_MAX != 0 {
            continue;
        }
        let mut at = start;
        for &(from, to, _, _) in &anonymous[i..] {
            if from != at {
                break;
            }
            at = to;
            if at == start + HEAP_MAX {
                heaps.push(line.to_owned());
                break;
            }
        }
    }
    heaps
}

/// Polls `check` until it returns `Some`, failing at the deadline with `what`.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let until = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        // Polling an external service for a state it reaches on its own schedule; the deadline
        // above, not this pause, decides failure.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A private CA generated here, and a `localhost` certificate signed by it.
pub struct TestPki {
    /// The CA, for `ca_bundle_path`.
    pub ca_pem: String,
    /// A server configuration with the certificate.
    pub server: rustls::ServerConfig,
}

pub fn test_pki() -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "cwlite test private CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        server,
    }
}

/// The HTTP client cwlite itself uses, for the tests' own SDK clients: cwlite builds the SDK
/// without a default client (that would link a second TLS stack).
pub fn sdk_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    cwlite::aws::http::build_http_client(
        "http",
        &cwlite::config::common::ProxySettings::default(),
        None,
    )
    .unwrap()
}

/// Runs the real logrotate (installed by `scripts/test`) once, forced, on `log` with
/// `options` (`;`-separated directives; `missingok` is added).
pub fn logrotate(dir: &Path, log: &Path, options: &str) {
    let binary = std::env::var("CWLITE_TEST_LOGROTATE")
        .expect("CWLITE_TEST_LOGROTATE is not set: run the tests with scripts/test");
    let conf = dir.join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{} {{\n    {}\n    missingok\n}}\n",
            log.display(),
            options.replace(';', "\n    ")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(binary)
        .arg("-f")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "logrotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
