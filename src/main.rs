//! The `cwlite` command: parses the command line, sets up logging, and maps errors to exit codes.
//! Everything else lives in the library.

use std::path::PathBuf;
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
        #[arg(long = "config", value_name = "PATH", required = true, num_args = 1..)]
        config: Vec<PathBuf>,
        /// The stock agent's common-config.toml (credentials profile, proxy, CA bundle).
        #[arg(long, value_name = "FILE")]
        common_config: Option<PathBuf>,
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
        #[arg(long, value_name = "FILE")]
        common_config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate {
            mut config,
            paths,
            common_config,
        } => {
            config.extend(paths);
            if config.is_empty() {
                eprintln!("error: name at least one configuration file or directory");
                return ExitCode::from(2);
            }
            validate(&config, common_config.as_deref())
        }
        Command::Run {
            config,
            common_config,
            state_dir,
            dry_run,
            metric_spool_mib,
        } => {
            let options = RunOptions {
                dry_run,
                state_dir,
                metric_spool_bytes: metric_spool_mib * 1024 * 1024,
            };
            match run(&config, common_config.as_deref(), options) {
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

fn validate(paths: &[PathBuf], common_config: Option<&std::path::Path>) -> ExitCode {
    let env = Environment::from_process();
    match config::load(paths, common_config, &env, RegionPolicy::Optional) {
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

fn run(
    paths: &[PathBuf],
    common_config: Option<&std::path::Path>,
    options: RunOptions,
) -> anyhow::Result<ExitCode> {
    let env = Environment::from_process();
    let loaded = match config::load(paths, common_config, &env, RegionPolicy::Required) {
        Ok(loaded) => loaded,
        Err(err) => {
            print_diagnostics(&err.warnings, &err.errors.0);
            eprintln!("configuration is invalid: {} error(s)", err.errors.0.len());
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    };
    init_logging(loaded.config.agent.debug);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let shutdown = {
        let _inside = runtime.enter();
        daemon::shutdown_signal()
    };
    let result = runtime.block_on(daemon::run(&loaded.config, &options, shutdown));
    // A collection stuck in the kernel (a hung network mount) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Logs go to stderr (journald under systemd) without colours when not on a terminal;
/// `RUST_LOG` overrides the level that `agent.debug` sets.
fn init_logging(debug: bool) {
    use std::io::IsTerminal;
    let default_level = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default_level},aws_smithy_runtime=warn,aws_config=warn,hyper=warn"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
