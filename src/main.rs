//! The `cwlite` command: parses the command line, sets up logging, and maps errors to exit codes.
//! Everything else lives in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use cwlite::config::{self, Diagnostic, Environment, RegionPolicy};
use cwlite::daemon::{self, RunOptions};

/// Exit code for an invalid configuration or a failed start-up check.
const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "cwlite",
    version,
    about = "A small drop-in replacement for the Amazon CloudWatch Agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Collect metrics and tail logs into CloudWatch.
    Run {
        /// A stock agent JSON file, or a directory of them (repeatable).
        #[arg(long = "config", value_name = "PATH", required_unless_present = "etc", num_args = 1..)]
        config: Vec<PathBuf>,
        /// The stock agent's common-config.toml (credentials profile, proxy, CA bundle).
        #[arg(long, value_name = "FILE", conflicts_with = "etc")]
        common_config: Option<PathBuf>,
        /// Read what `cwlite ctl` manages in DIR instead: DIR/cwlite.json, every file of
        /// DIR/amazon-cloudwatch-agent.d, DIR/common-config.toml, and the log level `cwlite
        /// ctl -a set-log-level` leaves in DIR/env-config.json.
        #[arg(long, value_name = "DIR", conflicts_with = "config")]
        etc: Option<PathBuf>,
        /// Where checkpoints and spools are kept.
        #[arg(long, value_name = "DIR", default_value = daemon::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Send nothing: print each request that would go to AWS as one JSON object per line.
        #[arg(long)]
        dry_run: bool,
        /// Most MiB of metric batches kept on disk while CloudWatch cannot be reached (the
        /// default holds days of the default metric set); beyond it the oldest are dropped.
        #[arg(long, value_name = "MIB", default_value_t = cwlite::ship::cloudwatch_metrics::DEFAULT_SPOOL_BYTES / (1024 * 1024), value_parser = clap::value_parser!(u64).range(1..=65_536))]
        metric_spool_mib: u64,
        /// Most MiB of log data held between reading and CloudWatch's acknowledgement; when it
        /// is spent (CloudWatch slow or unreachable), reading pauses instead of dropping.
        #[arg(long, value_name = "MIB", default_value_t = cwlite::queue::DEFAULT_LOG_BUDGET_BYTES as u64 / (1024 * 1024), value_parser = clap::value_parser!(u64).range(2..=4_096))]
        log_buffer_mib: u64,
        /// Also publish cwlite's own health (cwlite_up, backlog, lag, retries, what was not
        /// delivered) with the host metrics, so a fleet can alarm on a stuck agent.
        #[arg(long)]
        self_metrics: bool,
    },
    /// Show what the daemon running on a state directory is doing (from its status file).
    Status {
        /// The daemon's state directory.
        #[arg(long, value_name = "DIR", default_value = daemon::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Print the figures as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration and print it with every default filled in.
    Validate {
        /// A stock agent JSON file, or a directory of them (repeatable).
        #[arg(long = "config", value_name = "PATH", num_args = 1..)]
        config: Vec<PathBuf>,
        /// Configuration files given without --config.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// The stock agent's common-config.toml.
        #[arg(long, value_name = "FILE", conflicts_with = "etc")]
        common_config: Option<PathBuf>,
        /// Check what `cwlite ctl` manages in DIR (see `run --etc`).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "paths"])]
        etc: Option<PathBuf>,
    },
    /// The stock configuration wizard's Linux questions: writes a stock-format configuration,
    /// and stores it in SSM Parameter Store if asked.
    Wizard {
        /// The file to write.
        #[arg(long, value_name = "FILE", default_value = cwlite::wizard::DEFAULT_OUTPUT)]
        output: PathBuf,
        /// Take the answers from this JSON file instead of asking (absent keys: the defaults).
        #[arg(long, value_name = "FILE", conflicts_with = "defaults")]
        answers: Option<PathBuf>,
        /// Take every default instead of asking.
        #[arg(long)]
        defaults: bool,
        /// Replace the output file if it exists, without asking.
        #[arg(long)]
        force: bool,
        /// The configuration directory whose common-config is used for Parameter Store.
        #[arg(long, value_name = "DIR", default_value = config::layout::DEFAULT_ETC)]
        etc: PathBuf,
    },
    /// The stock amazon-cloudwatch-agent-ctl: fetch, append or remove configurations, start,
    /// stop, status, set-log-level.
    #[command(disable_version_flag = true)]
    Ctl {
        /// fetch-config|append-config|remove-config|start|stop|status|set-log-level
        #[arg(short = 'a', value_name = "ACTION")]
        action: Option<String>,
        /// ec2|onPremise|onPrem|auto (cwlite reads no instance metadata: auto is onPremise).
        #[arg(short = 'm', value_name = "MODE", default_value = "ec2")]
        mode: String,
        /// default|all|file:<path>|ssm:<parameter-name>
        #[arg(short = 'c', value_name = "LOCATION", default_value = "default")]
        location: String,
        /// Restart the service after a configuration action.
        #[arg(short = 's')]
        restart: bool,
        /// INFO|DEBUG|WARN|ERROR|OFF, for set-log-level.
        #[arg(short = 'l', value_name = "LEVEL")]
        log_level: Option<String>,
        /// The configuration directory.
        #[arg(long, value_name = "DIR", default_value = config::layout::DEFAULT_ETC)]
        etc: PathBuf,
        /// The daemon's state directory.
        #[arg(long, value_name = "DIR", default_value = daemon::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// What runs the daemon: systemd or process (detected: systemd when it booted the host).
        #[arg(long, value_name = "INIT", hide = true)]
        init: Option<String>,
        /// For package scripts (dpkg's DPKG_ROOT): a system installed under DIR, so
        /// DIR/etc/cwlite, DIR/var/lib/cwlite and DIR/usr/bin/cwlite, and no systemd (it runs
        /// only the host's root).
        #[arg(long, value_name = "DIR", hide = true)]
        root: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Before anything is read: no core dump, ptrace or /proc/<pid>/mem for other users of a
    // process that holds the AWS secret key in memory.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let cli = Cli::parse();
    match cli.command {
        Command::Status { state_dir, json } => status(&state_dir, json),
        Command::Validate {
            mut config,
            paths,
            common_config,
            etc,
        } => {
            config.extend(paths);
            let source = match etc {
                Some(etc) => Source::Layout(config::Layout::new(etc)),
                None if config.is_empty() => {
                    eprintln!("error: name at least one configuration file or directory");
                    return ExitCode::from(2);
                }
                None => Source::Paths(config, common_config),
            };
            validate(&source)
        }
        Command::Ctl {
            action,
            mode,
            location,
            restart,
            log_level,
            etc,
            state_dir,
            init,
            root,
        } => ctl(
            action.as_deref(),
            &mode,
            &location,
            restart,
            log_level,
            etc,
            state_dir,
            init.as_deref(),
            root.as_deref(),
        ),
        Command::Wizard {
            output,
            answers,
            defaults,
            force,
            etc,
        } => {
            let options = cwlite::wizard::Options {
                source: match (answers, defaults) {
                    (Some(file), _) => cwlite::wizard::Source::File(file),
                    (None, true) => cwlite::wizard::Source::Defaults,
                    (None, false) => cwlite::wizard::Source::Ask,
                },
                output,
                force,
                layout: config::Layout::new(etc),
            };
            let mut input = std::io::stdin().lock();
            match cwlite::wizard::run(&options, &mut input, &mut std::io::stdout()) {
                Ok(_) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Command::Run {
            config,
            common_config,
            etc,
            state_dir,
            dry_run,
            metric_spool_mib,
            log_buffer_mib,
            self_metrics,
        } => {
            let options = RunOptions {
                dry_run,
                state_dir,
                metric_spool_bytes: metric_spool_mib * 1024 * 1024,
                log_buffer_bytes: usize::try_from(log_buffer_mib * 1024 * 1024)
                    .unwrap_or(usize::MAX),
                self_metrics,
                log_level: None,
            };
            let source = match etc {
                Some(etc) => Source::Layout(config::Layout::new(etc)),
                None => Source::Paths(config, common_config),
            };
            match run(source, options) {
                Ok(code) => code,
                Err(err) => {
                    tracing::error!("{err:#}");
                    eprintln!("error: {err:#}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}

fn print_diagnostics(warnings: &[Diagnostic], errors: &[Diagnostic]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    for error in errors {
        eprintln!("error: {error}");
    }
}

/// Where `run` and `validate` read the configuration.
#[derive(Debug, Clone)]
enum Source {
    /// `--config` files and directories, and `--common-config`.
    Paths(Vec<PathBuf>, Option<PathBuf>),
    /// `--etc`: what `cwlite ctl` manages.
    Layout(config::Layout),
}

impl Source {
    fn load(&self, policy: RegionPolicy) -> Result<config::Loaded, config::LoadError> {
        let env = Environment::from_process();
        match self {
            Self::Paths(paths, common) => config::load(paths, common.as_deref(), &env, policy),
            Self::Layout(layout) => config::load_layout(layout, &env, policy),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn ctl(
    action: Option<&str>,
    mode: &str,
    location: &str,
    restart: bool,
    log_level: Option<String>,
    etc: PathBuf,
    state_dir: PathBuf,
    init: Option<&str>,
    root: Option<&Path>,
) -> ExitCode {
    use cwlite::ctl::{self, Action, Location, Mode, Request, service};
    // dpkg's DPKG_ROOT is empty or "/" for the host itself, which systemd may run.
    let root = root.filter(|root| *root != Path::new("/"));
    let under_root = |path: PathBuf| match root {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(&path)),
        None => path,
    };
    let (etc, state_dir) = (under_root(etc), under_root(state_dir));
    let parsed = (|| {
        let request = Request {
            action: Action::parse(action.unwrap_or_default())?,
            mode: Mode::parse(mode)?,
            location: Location::parse(location)?,
            restart,
            log_level,
        };
        let init = match init {
            None if root.is_some() => service::Init::Process,
            None => service::Init::detect(),
            Some("systemd") => service::Init::Systemd,
            Some("process") => service::Init::Process,
            Some(other) => {
                return Err(ctl::CtlError::Usage(format!(
                    "invalid init {other:?}: systemd|process"
                )));
            }
        };
        let program = std::env::current_exe().map_err(|source| ctl::CtlError::Io {
            what: "cannot find the cwlite binary".into(),
            source,
        })?;
        let service = service::Service {
            init,
            layout: config::Layout::new(etc),
            state_dir,
            program,
        };
        Ok((request, service))
    })();
    let result = parsed
        .and_then(|(request, service)| ctl::run(&request, &service, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn validate(source: &Source) -> ExitCode {
    match source.load(RegionPolicy::Optional) {
        Ok(loaded) => {
            print_diagnostics(&loaded.warnings, &[]);
            match serde_json::to_string_pretty(&loaded.config) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: cannot print the configuration: {err}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Err(err) => {
            print_diagnostics(&err.warnings, &err.errors.0);
            eprintln!("configuration is invalid: {} error(s)", err.errors.0.len());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Exit code of `status` when no daemon runs on the state directory (the LSB convention).
const EXIT_NOT_RUNNING: u8 = 3;

fn status(state_dir: &std::path::Path, json: bool) -> ExitCode {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match cwlite::telemetry::read_status(state_dir) {
        Ok((report, running)) => {
            if json {
                let mut value = serde_json::to_value(&report).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.insert("running".into(), running.into());
                }
                println!("{value}");
            } else {
                if !running {
                    println!(
                        "cwlite is not running on {} (the last figures, from pid {}, follow)\n",
                        state_dir.display(),
                        report.pid
                    );
                }
                print!("{}", report.human(now));
            }
            if running {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_NOT_RUNNING)
            }
        }
        Err(err) => {
            eprintln!("cwlite is not running on {}: {err}", state_dir.display());
            ExitCode::from(EXIT_NOT_RUNNING)
        }
    }
}

fn run(source: Source, mut options: RunOptions) -> anyhow::Result<ExitCode> {
    // First, while this is the only thread.
    daemon::memory::tune_malloc();
    let loaded = match source.load(RegionPolicy::Required) {
        Ok(loaded) => loaded,
        Err(err) => {
            print_diagnostics(&err.warnings, &err.errors.0);
            eprintln!("configuration is invalid: {} error(s)", err.errors.0.len());
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    };
    // A dry run writes nothing, so it has no state directory to hand over either. The switch
    // comes before the log file is opened, so that it is opened as the user, not as root.
    let switch = match loaded
        .config
        .agent
        .run_as_user
        .as_ref()
        .filter(|_| !options.dry_run)
    {
        Some(user) => Some(
            daemon::privileges::run_as(user, &options.state_dir)
                .with_context(|| format!("agent.run_as_user {user:?}"))?,
        ),
        None => None,
    };
    let apply_level = init_logging(
        loaded.config.agent.debug,
        loaded.config.agent.logfile.as_deref(),
    );
    if let Source::Layout(layout) = &source {
        options.log_level = Some(daemon::log_level::LevelFile {
            path: layout.env_config(),
            apply: apply_level,
        });
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(switch) = switch {
        switch.log();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let signals = {
        let _inside = runtime.enter();
        daemon::Signals::install().context("cannot install the signal handlers")?
    };
    let reload = move || match source.load(RegionPolicy::Required) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            Ok(loaded.config)
        }
        Err(err) => {
            for warning in &err.warnings {
                tracing::warn!("{warning}");
            }
            Err(err.errors.0.iter().map(ToString::to_string).collect())
        }
    };
    let result = runtime.block_on(daemon::run(loaded.config, &options, &reload, signals));
    // A collection stuck in the kernel (a hung network mount) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Logs go to stderr (journald under systemd) without colours when not on a terminal, or to
/// `agent.logfile` when it is set and can be opened; `RUST_LOG` overrides the level that
/// `agent.debug` sets, and `cwlite ctl -a set-log-level` overrides both while the daemon runs
/// (through the returned function).
fn init_logging(debug: bool, logfile: Option<&std::path::Path>) -> daemon::log_level::ApplyLevel {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let default_level = if debug { "debug" } else { "info" };
    let with_level = |level: &str| {
        format!("{level},aws_smithy_runtime=warn,aws_config=warn,hyper=warn")
            .parse::<Targets>()
            .unwrap_or_default()
    };
    let configured = move || {
        std::env::var("RUST_LOG")
            .ok()
            .and_then(|directives| directives.parse::<Targets>().ok())
            .unwrap_or_else(|| with_level(default_level))
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(configured());
    let registry = tracing_subscriber::registry().with(filter);
    let file = logfile.map(|path| open_logfile(path).map_err(|err| (path, err)));
    match file {
        Some(Ok(file)) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_ansi(false)
                    .with_target(false),
            )
            .init(),
        // Under systemd, stderr goes to the journal (JOURNAL_STREAM is set): it stamps the time
        // itself and takes the priority from a `<N>` prefix, so `journalctl -p warning` works.
        other if std::env::var_os("JOURNAL_STREAM").is_some() => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(false)
                        .event_format(JournalPriority(
                            tracing_subscriber::fmt::format()
                                .without_time()
                                .with_target(false),
                        )),
                )
                .init();
            if let Some(Err((path, err))) = other {
                tracing::warn!(file = %cwlite::telemetry::shown(path), "agent.logfile cannot be opened ({err}); logging to the journal");
            }
        }
        other => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::stderr().is_terminal())
                        .with_target(false),
                )
                .init();
            if let Some(Err((path, err))) = other {
                tracing::warn!(file = %cwlite::telemetry::shown(path), "agent.logfile cannot be opened ({err}); logging to stderr");
            }
        }
    }
    std::sync::Arc::new(move |level: Option<&str>| {
        let filter = match level {
            Some("OFF") => Targets::new(),
            Some(level) => with_level(&level.to_ascii_lowercase()),
            None => configured(),
        };
        let _ = handle.reload(filter);
    })
}

/// `agent.logfile`, opened for appending without following a link (whoever can write its
/// directory could point one at any file) or waiting on a FIFO, and only if it is a regular
/// file. Created 0640.
fn open_logfile(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    cwlite::regular::open(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640),
        path,
    )
}

/// Prefixes each line with its syslog priority (`<3>` error … `<7>` debug), which the journal
/// reads from a service's stderr (sd-daemon(3)).
struct JournalPriority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JournalPriority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
