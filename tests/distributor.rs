//! The SSM Distributor package (`packaging/distributor/build.py`) as `AWS-ConfigureAWSPackage`
//! uses it: the manifest read with the SSM agent's selection rules, and the zips' scripts run as
//! the agent runs them (`sh <action>.sh` in the unpacked zip, the previous version's
//! uninstall.sh before the next version's install.sh), into scratch roots: the file tree by
//! copy, the `.deb` through the real dpkg (`--root`, maintainer scripts outside a chroot). The
//! daemons they start are real, in process mode, and ship to moto.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::OwnMoto;
use serde_json::json;

const WRAPPER: &str = "opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl";

/// Two versions of the package, built once per run from the test binary (stripped: the
/// debug build's symbols would make each zip hundreds of megabytes).
struct Packages {
    dir: PathBuf,
}

impl Packages {
    fn get() -> &'static Self {
        static PACKAGES: OnceLock<Packages> = OnceLock::new();
        PACKAGES.get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("distributor");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let binary = dir.join("cwlite");
            run_ok(
                Command::new("strip")
                    .arg("-o")
                    .arg(&binary)
                    .arg(env!("CARGO_BIN_EXE_cwlite")),
            );
            for version in ["1.0.0", "1.0.1"] {
                build(&binary, version, &dir.join(version));
            }
            Packages { dir }
        })
    }

    fn zip(&self, version: &str, name: &str) -> PathBuf {
        self.dir.join(version).join(name)
    }

    /// One zip unpacked, as the SSM agent keeps each version's (Python's unzip, which, like
    /// Go's, may not keep the modes).
    fn unpack(&self, version: &str, name: &str, into: &Path) -> PathBuf {
        let dir = into.join(format!("{version}-{name}"));
        run_ok(
            Command::new(python())
                .args(["-m", "zipfile", "-e"])
                .arg(self.zip(version, name))
                .arg(&dir),
        );
        dir
    }
}

fn python() -> String {
    std::env::var("CWLITE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn build(binary: &Path, version: &str, out: &Path) {
    run_ok(
        Command::new(python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/packaging/distributor/build.py"
            ))
            .arg("--bin")
            .arg(format!("x86_64={}", binary.display()))
            .args(["--version", version, "--compress", "gzip", "--out"])
            .arg(out),
    );
}

fn run_ok(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sha256(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path));
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// The file the SSM agent picks (`birdwatcherservice.go`): the platform's own key, else
/// `_any`; the version exactly, else the most specific `X.Y.*` wildcard, else `_any`, else `*`;
/// the architecture exactly, else `_any`. `Err` is the agent's own message.
fn select(
    manifest: &serde_json::Value,
    platform: &str,
    version: &str,
    arch: &str,
) -> Result<String, String> {
    let none = || {
        format!(
            "no manifest found for platform: {platform}, version {version}, architecture {arch}"
        )
    };
    let packages = &manifest["packages"];
    let by_platform = packages
        .get(platform)
        .or_else(|| packages.get("_any"))
        .ok_or_else(none)?;
    let versions = by_platform.as_object().ok_or_else(none)?;
    let by_version = versions
        .get(version)
        .or_else(|| {
            versions
                .iter()
                .filter_map(|(key, value)| {
                    let prefix = key.strip_suffix('*')?;
                    (version.starts_with(prefix) && prefix.ends_with('.'))
                        .then_some((prefix.len(), value))
                })
                .max_by_key(|(len, _)| *len)
                .map(|(_, value)| value)
        })
        .or_else(|| versions.get("_any"))
        .or_else(|| versions.get("*"))
        .ok_or_else(none)?;
    let file = by_version
        .get(arch)
        .or_else(|| by_version.get("_any"))
        .ok_or_else(none)?;
    Ok(file["file"].as_str().unwrap().to_owned())
}

#[test]
fn the_manifest_is_the_distributor_format_and_sends_each_platform_its_zip() {
    let packages = Packages::get();
    let dir = packages.dir.join("1.0.0");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["schemaVersion"], "2.0");
    assert_eq!(manifest["version"], "1.0.0");

    // Every file named is there, with its checksum, and nothing else is uploaded.
    let files = manifest["files"].as_object().unwrap();
    let mut names: Vec<&String> = files.keys().collect();
    names.sort();
    assert_eq!(names, ["cwlite-deb-x86_64.zip", "cwlite-linux-x86_64.zip"]);
    for (name, entry) in files {
        assert_eq!(
            entry["checksums"]["sha256"].as_str().unwrap(),
            sha256(&dir.join(name)),
            "{name}"
        );
    }

    // What the SSM agent reports (os-release ID, mapped), and what it gets.
    for (platform, version, expected) in [
        ("ubuntu", "22.04", "cwlite-deb-x86_64.zip"),
        ("debian", "12", "cwlite-deb-x86_64.zip"),
        ("amazon", "2023", "cwlite-linux-x86_64.zip"),
        ("amazon", "2", "cwlite-linux-x86_64.zip"),
        ("redhat", "9.4", "cwlite-linux-x86_64.zip"),
        ("suse", "15.5", "cwlite-linux-x86_64.zip"),
        ("opensuseleap", "15.5", "cwlite-linux-x86_64.zip"),
        ("rocky", "9.3", "cwlite-linux-x86_64.zip"),
        ("oracle", "8.9", "cwlite-linux-x86_64.zip"),
    ] {
        assert_eq!(
            select(&manifest, platform, version, "x86_64").as_deref(),
            Ok(expected),
            "{platform} {version}"
        );
    }
    // No arm64 binary was given, and Windows (whose agent would count a missing install.ps1
    // a success) gets nothing: the agent says so rather than install the wrong file.
    assert_eq!(
        select(&manifest, "ubuntu", "22.04", "arm64"),
        Err("no manifest found for platform: ubuntu, version 22.04, architecture arm64".into())
    );
    assert_eq!(
        select(&manifest, "windows", "10.0.20348", "x86_64"),
        Err(
            "no manifest found for platform: windows, version 10.0.20348, architecture x86_64"
                .into()
        )
    );

    // Each zip has one implementation of each action at its root (both .sh and .ps1 is an
    // error for the agent), and the .deb is this version's, for amd64.
    for name in files.keys() {
        let unpacked = packages.unpack("1.0.0", name, &packages.dir.join("manifest-check"));
        for action in ["install", "uninstall", "update", "validate"] {
            assert!(
                unpacked.join(format!("{action}.sh")).is_file(),
                "{name}: {action}.sh"
            );
            assert!(
                !unpacked.join(format!("{action}.ps1")).exists(),
                "{name}: {action}.ps1"
            );
        }
        if name.contains("-deb-") {
            let out = run_ok(
                Command::new("dpkg-deb")
                    .arg("-f")
                    .arg(unpacked.join("cwlite.deb"))
                    .args(["Version", "Architecture", "Depends", "Conflicts"]),
            );
            let fields = String::from_utf8(out.stdout).unwrap();
            assert!(
                fields.contains("Version: 1.0.0\n") && fields.contains("Architecture: amd64\n"),
                "{fields}"
            );
            assert!(
                fields.contains("Depends: libc6 (>= 2.")
                    && fields.contains("Conflicts: amazon-cloudwatch-agent"),
                "{fields}"
            );
        } else {
            assert!(
                unpacked.join("files/usr/bin/cwlite").is_file()
                    && unpacked.join(format!("files/{WRAPPER}")).is_file()
            );
        }
    }

    // The same inputs make the same bytes: a rebuild uploads nothing new.
    let again = packages.dir.join("again");
    build(&packages.dir.join("cwlite"), "1.0.0", &again);
    assert_eq!(
        std::fs::read(again.join("manifest.json")).unwrap(),
        std::fs::read(dir.join("manifest.json")).unwrap()
    );
}

/// A binary for one architecture given as another's is refused, naming both.
#[test]
fn a_binary_of_the_wrong_architecture_is_refused() {
    let packages = Packages::get();
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/distributor/build.py"
        ))
        .arg("--bin")
        .arg(format!("arm64={}", packages.dir.join("cwlite").display()))
        .arg("--out")
        .arg(packages.dir.join("wrong"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("is built for x86_64, not arm64"),
        "{stderr}"
    );
    assert!(!packages.dir.join("wrong/manifest.json").exists());
}

/// One host under a scratch root: the package scripts as the SSM agent runs them, and the ctl
/// through the stock wrapper. Dropping it kills a daemon left running.
struct Root {
    dir: tempfile::TempDir,
    root: PathBuf,
    env: Vec<(String, String)>,
}

impl Root {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        Self {
            dir,
            root,
            env: Vec::new(),
        }
    }

    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// `sh <action>.sh` in the unpacked zip, with what the SSM agent exports.
    fn script(&self, unpacked: &Path, action: &str) -> Output {
        Command::new("sh")
            .arg(format!("{action}.sh"))
            .current_dir(unpacked)
            .env("CWLITE_ROOT", &self.root)
            .env("BWS_ACTION_NAME", action)
            .env("BWS_PLATFORM_NAME", "amazon")
            .env("BWS_PLATFORM_VERSION", "2023")
            .env("BWS_ARCHITECTURE", "x86_64")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    }

    fn script_ok(&self, unpacked: &Path, action: &str) -> String {
        let out = self.script(unpacked, action);
        assert!(
            out.status.success(),
            "{action}.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The stock ctl command, as ManageAgent runs it, on this root.
    fn ctl(&self, args: &[&str]) -> String {
        let mut command = Command::new(self.path(WRAPPER));
        command
            .env("CWLITE", self.path("usr/bin/cwlite"))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--root")
            .arg(&self.root)
            .args(args);
        String::from_utf8(run_ok(&mut command).stdout).unwrap()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ctl(&["-a", "status", "-m", "onPremise"])).unwrap()
    }

    fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.path("var/lib/cwlite/ctl.pid")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }

    /// The operator's part: the credentials, and the common-config changed to use them (a
    /// change the upgrade must keep).
    fn configure(&self, key: &(String, String), extra: &str) -> String {
        let credentials = self.path("etc/cwlite/credentials");
        std::fs::write(
            &credentials,
            format!(
                "[AmazonCloudWatchAgent]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                key.0, key.1
            ),
        )
        .unwrap();
        let common = format!(
            "[credentials]\nshared_credential_profile = \"AmazonCloudWatchAgent\"\nshared_credential_file = \"{}\"\n{extra}",
            credentials.display()
        );
        std::fs::write(self.path("etc/cwlite/common-config.toml"), &common).unwrap();
        common
    }
}

impl Root {
    /// dpkg's database under the root, with the two libraries the package depends on; its
    /// path.
    fn dpkg_database(&self) -> PathBuf {
        let admin = self.path("var/lib/dpkg");
        std::fs::create_dir_all(admin.join("info")).unwrap();
        std::fs::create_dir_all(admin.join("updates")).unwrap();
        let libraries = run_ok(Command::new("dpkg-query").args(["-s", "libc6", "libgcc-s1"]));
        std::fs::write(admin.join("status"), libraries.stdout).unwrap();
        for library in ["libc6:amd64", "libgcc-s1:amd64"] {
            std::fs::write(admin.join(format!("info/{library}.list")), "").unwrap();
        }
        admin
    }

    /// A configuration tailing one file to the shared emulator, fetched and started as
    /// ManageAgent does; the daemon's pid.
    fn start_tailing(&self, group: &str) -> u32 {
        let source = self.dir.path().join("config.json");
        std::fs::write(
            &source,
            json!({"agent": {"region": "eu-west-1"}, "logs": {"endpoint_override": common::emulator_endpoint(), "logs_collected": {"files": {"collect_list": [
                {"file_path": self.dir.path().join("app.log").display().to_string(), "log_group_name": common::unique(group)}
            ]}}}})
            .to_string(),
        )
        .unwrap();
        let location = format!("file:{}", source.display());
        self.ctl(&[
            "-a",
            "fetch-config",
            "-m",
            "onPremise",
            "-c",
            &location,
            "-s",
        ]);
        self.pid().expect("the daemon runs")
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Whether `pid` runs: an exited daemon may stay a zombie until this container's init reaps it.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Field 3, the state.
    common::stat_fields(&stat).is_some_and(|fields| !matches!(fields.first(), Some(&("Z" | "X"))))
}

/// The process's binary, as the kernel sees it (an upgraded one shows as deleted).
fn exe(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap()
        .display()
        .to_string()
}

/// What the "done when" asks, on a host without dpkg: the package installed by
/// AWS-ConfigureAWSPackage, the configuration fetched from Parameter Store and started as
/// ManageAgent does (least-privilege key, `ssm` endpoint), status running; then an upgrade
/// keeps the configuration, the operator's common-config and the checkpoints (no line sent
/// twice) and restarts the daemon on the new binary; an uninstall stops it and removes the
/// program, not the configuration or the state.
#[test]
fn the_file_tree_installs_fetches_from_parameter_store_upgrades_and_uninstalls() {
    let packages = Packages::get();
    let moto = OwnMoto::start();
    let host = Root::new();
    let log = host.dir.path().join("app.log");
    common::append(&log, "before the upgrade\n");
    let config = json!({
        "agent": {"region": "eu-west-1"},
        "logs": {"endpoint_override": moto.url, "force_flush_interval": 1, "logs_collected": {"files": {"collect_list": [
            {"file_path": log.display().to_string(), "log_group_name": "fleet", "log_stream_name": "s"}
        ]}}}
    })
    .to_string();
    let keys = moto.least_privilege(
        &[
            (
                "agent",
                &[
                    "ssm:GetParameter",
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                ],
            ),
            ("reader", &["logs:GetLogEvents"]),
        ],
        &[("AmazonCloudWatch-linux", &config, "String")],
    );
    let unpacked = host.dir.path().join("packages");
    let v1 = packages.unpack("1.0.0", "cwlite-linux-x86_64.zip", &unpacked);
    let v2 = packages.unpack("1.0.1", "cwlite-linux-x86_64.zip", &unpacked);
    let mut host = host;
    host.env.push(("AWS_REGION".into(), "eu-west-1".into()));

    // Install: the program, the stock paths, the unit enabled; nothing started yet.
    let out = host.script_ok(&v1, "install");
    assert!(
        out.contains("/etc/cwlite/credentials"),
        "the next step is named: {out}"
    );
    for file in [
        "usr/bin/cwlite",
        WRAPPER,
        "usr/lib/systemd/system/cwlite.service",
        "etc/cwlite/common-config.toml",
    ] {
        assert!(host.path(file).is_file(), "{file}");
    }
    assert_eq!(
        std::fs::read_link(
            host.path("opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d")
        )
        .unwrap(),
        Path::new("/etc/cwlite/amazon-cloudwatch-agent.d")
    );
    assert_eq!(
        std::fs::read_link(host.path("etc/systemd/system/multi-user.target.wants/cwlite.service"))
            .unwrap(),
        Path::new("/usr/lib/systemd/system/cwlite.service")
    );
    host.script_ok(&v1, "validate");
    assert_eq!(host.status()["status"], "stopped");
    assert_eq!(host.status()["configstatus"], "not configured");

    // ManageAgent: fetch from Parameter Store, start; the line arrives.
    let common = host.configure(
        &keys["agent"],
        &format!("[endpoints]\nssm = \"{}\"\n", moto.url),
    );
    let out = host.ctl(&[
        "-c",
        "ssm:AmazonCloudWatch-linux",
        "-s",
        "-a",
        "fetch-config",
        "-m",
        "onPremise",
    ]);
    assert!(out.contains("Configuration validation succeeded"), "{out}");
    let status = host.status();
    assert_eq!(
        (status["status"].as_str(), status["configstatus"].as_str()),
        (Some("running"), Some("configured"))
    );
    common::eventually("the first line in CloudWatch Logs", || {
        (moto.messages(&keys["reader"], "fleet") == ["before the upgrade"]).then_some(())
    });
    let before = host.pid().unwrap();
    let fetched = host.path("etc/cwlite/amazon-cloudwatch-agent.d/ssm_AmazonCloudWatch-linux");
    assert_eq!(std::fs::read_to_string(&fetched).unwrap(), config);

    // Upgrade, as the SSM agent does it: the old version's uninstall.sh, the new install.sh.
    host.script_ok(&v1, "uninstall");
    assert!(!alive(before), "the old daemon stopped with its program");
    assert!(
        host.path("etc/cwlite/restart").exists(),
        "it ran: the marker says so"
    );
    host.script_ok(&v2, "install");
    let after = host.pid().expect("the upgrade started the daemon again");
    assert_ne!(after, before);
    assert_eq!(
        exe(after),
        host.path("usr/bin/cwlite").display().to_string()
    );
    assert!(!host.path("etc/cwlite/restart").exists());
    assert_eq!(
        std::fs::read_to_string(&fetched).unwrap(),
        config,
        "the configuration is kept"
    );
    assert_eq!(
        std::fs::read_to_string(host.path("etc/cwlite/common-config.toml")).unwrap(),
        common,
        "the operator's common-config is kept"
    );
    assert_eq!(
        std::fs::read_to_string(host.path("var/lib/cwlite-package/version")).unwrap(),
        "1.0.1\n"
    );
    // The checkpoints are kept: the new daemon sends only the new line.
    common::append(&log, "after the upgrade\n");
    common::eventually("the second line in CloudWatch Logs", || {
        let got = moto.messages(&keys["reader"], "fleet");
        (got.len() >= 2).then_some(got)
    });
    assert_eq!(host.status()["status"], "running");
    assert_eq!(
        moto.messages(&keys["reader"], "fleet"),
        ["before the upgrade", "after the upgrade"]
    );

    // Uninstall: the daemon stops and the program goes; what the operator made stays.
    host.script_ok(&v2, "uninstall");
    assert!(!alive(after));
    for gone in [
        "usr/bin/cwlite",
        WRAPPER,
        "usr/lib/systemd/system/cwlite.service",
        "usr/share/doc/cwlite",
        "opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d",
    ] {
        assert!(
            !host.path(gone).exists() && std::fs::symlink_metadata(host.path(gone)).is_err(),
            "{gone} is left"
        );
    }
    for kept in [
        "etc/cwlite/credentials",
        "etc/cwlite/common-config.toml",
        "etc/cwlite/amazon-cloudwatch-agent.d/ssm_AmazonCloudWatch-linux",
        "var/lib/cwlite",
    ] {
        assert!(host.path(kept).exists(), "{kept} is gone");
    }
    let out = host.script(&v2, "validate");
    assert!(
        !out.status.success(),
        "validate.sh passes with nothing installed"
    );
    // The marker stays, as the stock package's does: installing again starts the daemon again.
    assert!(host.path("etc/cwlite/restart").exists());
    host.script_ok(&v2, "install");
    let again = host.pid().expect("running again after the reinstall");
    assert!(alive(again) && !host.path("etc/cwlite/restart").exists());

    // A daemon the operator stopped stays stopped across an upgrade.
    host.ctl(&["-a", "stop"]);
    host.script_ok(&v2, "uninstall");
    assert!(!host.path("etc/cwlite/restart").exists());
    host.script_ok(&v1, "install");
    assert_eq!(host.status()["status"], "stopped");
}

/// On Debian and Ubuntu the package is the `.deb`, installed by the real dpkg: the same
/// upgrade through `dpkg -i` (as apt does: prerm upgrade, postinst) and through the SSM
/// agent's uninstall-then-install (here back to the older version, as a rollback does);
/// removal keeps the conffiles and what the ctl made, purge removes the latter.
#[test]
fn the_deb_installs_upgrades_downgrades_and_purges_through_dpkg() {
    let packages = Packages::get();
    let host = Root::new();
    let admin = host.dpkg_database();
    let installed = || {
        // Empty once purged (dpkg-query then fails: no such package).
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", admin.display()))
            .args(["-W", "-f=${Status} ${Version}", "cwlite"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let unpacked = host.dir.path().join("packages");
    let v1 = packages.unpack("1.0.0", "cwlite-deb-x86_64.zip", &unpacked);
    let v2 = packages.unpack("1.0.1", "cwlite-deb-x86_64.zip", &unpacked);

    host.script_ok(&v1, "install");
    assert_eq!(installed(), "install ok installed 1.0.0");
    assert!(host.path(WRAPPER).is_file());
    // A link to the unit's path on the host (there only under the root).
    assert_eq!(
        std::fs::read_link(host.path("etc/systemd/system/multi-user.target.wants/cwlite.service"))
            .unwrap(),
        Path::new("/usr/lib/systemd/system/cwlite.service")
    );
    let common = host.configure(&("AKIDDEB".into(), "s".into()), "");
    let first = host.start_tailing("deb");

    // apt's way: dpkg -i over the installed version restarts the running daemon.
    run_ok(
        Command::new("dpkg")
            .arg(format!("--root={}", host.root.display()))
            .args(["--force-script-chrootless", "--log=/dev/null", "-i"])
            .arg(v2.join("cwlite.deb")),
    );
    assert_eq!(installed(), "install ok installed 1.0.1");
    let second = host.pid().expect("running after dpkg -i");
    assert_ne!(second, first);
    assert!(!alive(first));
    assert_eq!(
        exe(second),
        host.path("usr/bin/cwlite").display().to_string()
    );

    // The SSM agent's way, here a rollback: 1.0.1's uninstall.sh, then 1.0.0's install.sh.
    host.script_ok(&v2, "uninstall");
    assert_eq!(installed(), "deinstall ok config-files 1.0.1");
    assert!(!alive(second));
    host.script_ok(&v1, "install");
    assert_eq!(installed(), "install ok installed 1.0.0");
    let third = host.pid().expect("running after the reinstall");
    assert_ne!(third, second);
    assert_eq!(
        std::fs::read_to_string(host.path("etc/cwlite/common-config.toml")).unwrap(),
        common
    );
    assert_eq!(host.status()["configstatus"], "configured");
    host.script_ok(&v1, "validate");

    // Uninstall, then purge.
    host.script_ok(&v1, "uninstall");
    assert!(!alive(third));
    assert!(!host.path("usr/bin/cwlite").exists() && !host.path(WRAPPER).exists());
    assert!(
        host.path("etc/cwlite/common-config.toml").exists()
            && host
                .path("etc/cwlite/amazon-cloudwatch-agent.d/file_config.json")
                .exists()
    );
    run_ok(
        Command::new("dpkg")
            .arg(format!("--root={}", host.root.display()))
            .args([
                "--force-script-chrootless",
                "--log=/dev/null",
                "--purge",
                "cwlite",
            ]),
    );
    assert_eq!(installed(), "");
    for gone in [
        "etc/cwlite/common-config.toml",
        "etc/cwlite/amazon-cloudwatch-agent.d",
        "etc/cwlite/restart",
        "var/lib/cwlite",
        "etc/systemd/system/multi-user.target.wants/cwlite.service",
    ] {
        assert!(
            std::fs::symlink_metadata(host.path(gone)).is_err(),
            "{gone} is left after purge"
        );
    }
    assert!(
        host.path("etc/cwlite/credentials").exists(),
        "the operator's credentials stay"
    );
}

/// What the SSM agent does when a new version fails to install (here: its binary does not run
/// on the host, as a glibc binary on a musl host): the new install.sh fails with the reason and
/// installs nothing, then the old version's install.sh runs again and starts the daemon that
/// ran. An in-place update (update.sh) restarts the daemon on the new binary.
#[test]
fn a_failed_upgrade_rolls_back_to_the_daemon_that_ran() {
    let packages = Packages::get();
    let host = Root::new();
    let unpacked = host.dir.path().join("packages");
    let v1 = packages.unpack("1.0.0", "cwlite-linux-x86_64.zip", &unpacked);
    let v2 = packages.unpack("1.0.1", "cwlite-linux-x86_64.zip", &unpacked);
    let broken = packages.unpack(
        "1.0.1",
        "cwlite-linux-x86_64.zip",
        &host.dir.path().join("broken"),
    );
    // What a musl host does to a glibc binary: the loader is not there.
    std::fs::write(
        broken.join("files/usr/bin/cwlite"),
        "#!/nonexistent/ld-linux\n",
    )
    .unwrap();

    // Nothing installed: the broken package is refused and leaves nothing behind.
    let out = host.script(&broken, "install");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("does not run on amazon 2023") && stderr.contains("glibc 2."),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&host.root).unwrap().count(),
        0,
        "nothing installed"
    );

    host.script_ok(&v1, "install");
    host.configure(&("AKIDROLLBACK".into(), "s".into()), "");
    let first = host.start_tailing("rollback");

    // In place: the new version's update.sh alone.
    host.script_ok(&v2, "update");
    let second = host.pid().unwrap();
    assert!(second != first && !alive(first) && alive(second));
    assert_eq!(
        exe(second),
        host.path("usr/bin/cwlite").display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(host.path("var/lib/cwlite-package/version")).unwrap(),
        "1.0.1\n"
    );

    // The failed upgrade, then the rollback to the installed version.
    host.script_ok(&v2, "uninstall");
    assert!(!alive(second));
    assert!(!host.script(&broken, "install").status.success());
    assert!(
        !host.path("usr/bin/cwlite").exists(),
        "the broken binary was not installed"
    );
    host.script_ok(&v2, "install");
    let third = host.pid().expect("the rollback started the daemon again");
    assert!(third != second && alive(third));
    assert_eq!(host.status()["configstatus"], "configured");
}

/// A new version whose default `common-config.toml` changed, installed by the SSM agent over
/// an operator's edited one: no conffile question (the agent has no terminal, and dpkg would
/// fail at it), the operator's file stays in force, and the new default lies beside it as
/// `common-config.toml.dpkg-dist`, as apt leaves it.
#[test]
fn an_operators_common_config_survives_a_changed_default_without_a_question() {
    let packages = Packages::get();
    let host = Root::new();
    host.dpkg_database();
    let unpacked = host.dir.path().join("packages");
    let v1 = packages.unpack("1.0.0", "cwlite-deb-x86_64.zip", &unpacked);
    // 1.0.2: 1.0.1's .deb with another default common-config (and its md5sum).
    let v3 = packages.unpack(
        "1.0.1",
        "cwlite-deb-x86_64.zip",
        &host.dir.path().join("v3"),
    );
    let tree = host.dir.path().join("v3-tree");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-R")
            .arg(v3.join("cwlite.deb"))
            .arg(&tree),
    );
    let default =
        "# a new default\n[credentials]\nshared_credential_profile = \"AmazonCloudWatchAgent\"\n";
    std::fs::write(tree.join("etc/cwlite/common-config.toml"), default).unwrap();
    let md5 = run_ok(
        Command::new("md5sum")
            .arg("etc/cwlite/common-config.toml")
            .current_dir(&tree),
    );
    let md5sums = std::fs::read_to_string(tree.join("DEBIAN/md5sums")).unwrap();
    let md5sums: String = md5sums
        .lines()
        .map(|l| if l.ends_with(" etc/cwlite/common-config.toml") { String::from_utf8_lossy(&md5.stdout).trim_end().to_owned() } else { l.to_owned() } + "\n")
        .collect();
    std::fs::write(tree.join("DEBIAN/md5sums"), md5sums).unwrap();
    let control = std::fs::read_to_string(tree.join("DEBIAN/control")).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        control.replace("Version: 1.0.1", "Version: 1.0.2"),
    )
    .unwrap();
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "-b"])
            .arg(&tree)
            .arg(v3.join("cwlite.deb")),
    );

    host.script_ok(&v1, "install");
    let edited = host.configure(
        &("AKIDCONF".into(), "s".into()),
        "[proxy]\nhttps_proxy = \"http://proxy.internal:3128\"\n",
    );
    host.script_ok(&v1, "uninstall");
    // As the SSM agent runs it: no terminal (stdin closed).
    host.script_ok(&v3, "install");
    let out = run_ok(
        Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                host.path("var/lib/dpkg").display()
            ))
            .args(["-W", "-f=${Version}", "cwlite"]),
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "1.0.2");
    assert_eq!(
        std::fs::read_to_string(host.path("etc/cwlite/common-config.toml")).unwrap(),
        edited
    );
    assert_eq!(
        std::fs::read_to_string(host.path("etc/cwlite/common-config.toml.dpkg-dist")).unwrap(),
        default
    );
}

/// A file at one of cwlite's paths that cwlite did not put there (the stock agent's ctl
/// command) stops the install before anything is copied, and stays.
#[test]
fn the_tree_does_not_overwrite_another_programs_file() {
    let packages = Packages::get();
    let host = Root::new();
    let unpacked = packages.unpack(
        "1.0.0",
        "cwlite-linux-x86_64.zip",
        &host.dir.path().join("packages"),
    );
    let stock = host.path(WRAPPER);
    std::fs::create_dir_all(stock.parent().unwrap()).unwrap();
    std::fs::write(&stock, "#!/bin/sh\n# the stock agent's\n").unwrap();
    let out = host.script(&unpacked, "install");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("/{WRAPPER} is not cwlite's")),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&stock).unwrap(),
        "#!/bin/sh\n# the stock agent's\n"
    );
    assert!(!host.path("usr/bin/cwlite").exists());
}
