//! `cwlite wizard`: the stock `amazon-cloudwatch-agent-config-wizard`'s Linux questions, with
//! its defaults, writing a stock-format configuration (and, if asked, storing it in Parameter
//! Store for `cwlite ctl -c ssm:<name>`).
//!
//! `plan` owns the answers and the JSON made of them, `prompt` the questions. This module
//! owns the output file (never replaced without asking or `--force`) and the order: ask (or
//! read an answers file), build, check with `config`, write, store. It never touches the
//! configuration directory `cwlite ctl` manages.

pub mod plan;
pub mod prompt;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::config::{self, Environment, Layout, RegionPolicy};
pub use plan::Answers;

/// Where the stock wizard writes its file, and so where the stock documentation's
/// `fetch-config -c file:…` reads it.
pub const DEFAULT_OUTPUT: &str = "/opt/aws/amazon-cloudwatch-agent/bin/config.json";

/// Why the wizard stopped.
#[derive(Debug, thiserror::Error)]
pub enum WizardError {
    /// Reading answers or writing questions failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// The input ended before every question was answered.
    #[error("the input ended before every question was answered")]
    InputEnded,
    /// The answers file is not valid.
    #[error("{file}: {problems}")]
    Answers {
        /// The file.
        file: PathBuf,
        /// Every problem, joined.
        problems: String,
    },
    /// The output exists and may not be replaced.
    #[error("{0} exists: not replaced (answer yes to the question, or pass --force)")]
    Exists(PathBuf),
    /// The output cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// What the wizard made does not validate (a bug: the message says what).
    #[error("the configuration made does not validate: {0}")]
    Invalid(String),
    /// Storing in Parameter Store failed.
    #[error("{0}")]
    Store(String),
}

/// How the wizard gets its answers.
#[derive(Debug, Clone)]
pub enum Source {
    /// Ask on the terminal (or read answer lines from stdin).
    Ask,
    /// Every default.
    Defaults,
    /// A JSON file of [`Answers`]; absent keys take the defaults.
    File(PathBuf),
}

/// One run of the wizard.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the answers come from.
    pub source: Source,
    /// The file to write.
    pub output: PathBuf,
    /// Replace an existing output without asking.
    pub force: bool,
    /// The configuration directory whose common-config gives the credentials, proxy, CA and
    /// `ssm` endpoint for Parameter Store.
    pub layout: Layout,
}

/// Runs the wizard: answers, configuration, file, and Parameter Store if asked.
///
/// # Errors
/// See [`WizardError`]; nothing is written after an error before the write.
pub fn run(
    options: &Options,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<PathBuf, WizardError> {
    let interactive = matches!(options.source, Source::Ask);
    let answers = match &options.source {
        Source::Ask => prompt::Prompter::new(input, output).ask()?,
        Source::Defaults => Answers::default(),
        Source::File(file) => read_answers(file)?,
    };
    let text = plan::render(&plan::configuration(&answers));
    check(&options.output, &text)?;
    let path = &options.output;
    let exists = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
    if exists && !options.force {
        let replace = interactive
            && prompt::Prompter::new(input, output).yes(
                &format!("{} exists. Do you want to replace it?", path.display()),
                false,
            )?;
        if !replace {
            return Err(WizardError::Exists(path.clone()));
        }
    }
    crate::state::write_atomically(path, text.as_bytes()).map_err(|source| WizardError::Write {
        path: path.clone(),
        source,
    })?;
    // Readable by the daemon's user, as the stock wizard leaves it.
    let _ = std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let say = |output: &mut dyn Write, text: String| {
        let _ = writeln!(output, "{text}");
    };
    say(
        output,
        format!(
            "Saved config file to {} successfully.\nCurrent config as follows:\n{text}Apply it with: cwlite ctl -a fetch-config -m onPremise -c file:{} -s",
            path.display(),
            path.display()
        ),
    );
    if let Some(store) = &answers.parameter_store {
        let region = store_in_parameter_store(store, &text, &options.layout)?;
        say(
            output,
            format!(
                "Successfully put config to parameter store {} in {region}.\nApply it on each host with: cwlite ctl -a fetch-config -m onPremise -c ssm:{} -s",
                store.name, store.name
            ),
        );
    }
    Ok(path.clone())
}

fn read_answers(file: &Path) -> Result<Answers, WizardError> {
    let text = std::fs::read(file).map_err(|err| WizardError::Answers {
        file: file.to_owned(),
        problems: err.to_string(),
    })?;
    let answers: Answers = serde_json::from_slice(&text).map_err(|err| WizardError::Answers {
        file: file.to_owned(),
        problems: err.to_string(),
    })?;
    answers.check().map_err(|problems| WizardError::Answers {
        file: file.to_owned(),
        problems: problems.join("; "),
    })?;
    Ok(answers)
}

/// What `cwlite validate` would say of the text, as the file `path` it will be: errors stop
/// the wizard before anything is written.
fn check(path: &Path, text: &str) -> Result<(), WizardError> {
    config::load_text(
        path,
        text,
        None,
        &Environment::from_process(),
        RegionPolicy::Optional,
    )
    .map(|_| ())
    .map_err(|err| {
        WizardError::Invalid(
            err.errors
                .0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// `PutParameter` (a String, overwriting) with the layout's common-config; the region used.
fn store_in_parameter_store(
    store: &plan::ParameterStore,
    text: &str,
    layout: &Layout,
) -> Result<String, WizardError> {
    let name = &store.name;
    crate::aws::ssm::block_on(name, async {
        let client =
            crate::aws::ssm::ParameterStore::for_layout(layout, name, store.region.as_deref())
                .await?;
        let host = crate::config::expand::HostFacts::detect().hostname;
        client
            .put(name, text, &format!("Generated by cwlite wizard on {host}"))
            .await?;
        Ok(client.region().to_owned())
    })
    .map_err(|err| WizardError::Store(err.to_string()))
}
