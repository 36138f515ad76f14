//! Helpers shared by the integration tests: temporary configurations, the emulator's address,
//! and a minimal HTTP client for the bridge's recording endpoint.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The emulator (moto behind the CBOR bridge) started by `scripts/test`. Tests that need it fail,
/// never skip, when it is missing.
pub fn emulator_endpoint() -> String {
    std::env::var("CWLITE_TEST_ENDPOINT")
        .expect("CWLITE_TEST_ENDPOINT is not set: run the tests with scripts/test, which starts the emulator")
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
        (status, self.stderr_seen)
    }
}
