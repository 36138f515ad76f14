//! Asking the stock wizard's questions on a terminal (or any line-based input), in its words
//! and with its defaults, and turning the answers into [`Answers`].
//!
//! Owns the question flow and the stock prompt format (`default choice: [n]:`, `The value x is
//! not valid to this question.`). It builds no JSON (that is `plan`'s) and writes no file.

use std::io::{BufRead, Write};

use super::WizardError;
use super::plan::{
    Answers, CLASSES, Host, HostMetrics, JournalFilter, Journald, Level, LogFile, ParameterStore,
    Plugins, RETENTIONS, Statsd, default_group,
};

/// Questions and answers over a line-based input and an output.
pub struct Prompter<'a> {
    input: &'a mut dyn BufRead,
    output: &'a mut dyn Write,
}

impl<'a> Prompter<'a> {
    /// Asks on `output`, reads answers from `input`.
    pub fn new(input: &'a mut dyn BufRead, output: &'a mut dyn Write) -> Self {
        Self { input, output }
    }

    fn line(&mut self) -> Result<String, WizardError> {
        let mut line = String::new();
        let read = self.input.read_line(&mut line).map_err(WizardError::Io)?;
        if read == 0 {
            return Err(WizardError::InputEnded);
        }
        Ok(line.trim().to_owned())
    }

    fn say(&mut self, text: &str) -> Result<(), WizardError> {
        writeln!(self.output, "{text}").map_err(WizardError::Io)?;
        self.output.flush().map_err(WizardError::Io)
    }

    /// The stock `Choice`: numbered options, an empty answer takes `default` (1-based); the
    /// 0-based index chosen.
    pub fn choice(
        &mut self,
        question: &str,
        default: usize,
        options: &[&str],
    ) -> Result<usize, WizardError> {
        loop {
            let mut text = format!("{question}\n");
            for (i, option) in options.iter().enumerate() {
                text.push_str(&format!("{}. {option}\n", i + 1));
            }
            text.push_str(&format!("default choice: [{default}]:"));
            self.say(&text)?;
            let answer = self.line()?;
            if answer.is_empty() {
                return Ok(default - 1);
            }
            match answer.parse::<usize>() {
                Ok(n) if (1..=options.len()).contains(&n) => return Ok(n - 1),
                _ => self.say(&format!(
                    "The value {answer} is not valid to this question.\nPlease retry to answer:"
                ))?,
            }
        }
    }

    /// The stock `Yes`/`No`: `yes`/`no` as choices 1 and 2.
    pub fn yes(&mut self, question: &str, default_yes: bool) -> Result<bool, WizardError> {
        let default = if default_yes { 1 } else { 2 };
        Ok(self.choice(question, default, &["yes", "no"])? == 0)
    }

    /// The stock `AskWithDefault`: an empty answer takes `default`.
    pub fn text(&mut self, question: &str, default: &str) -> Result<String, WizardError> {
        self.say(&format!("{question}\ndefault choice: [{default}]"))?;
        let answer = self.line()?;
        Ok(if answer.is_empty() {
            default.to_owned()
        } else {
            answer
        })
    }

    /// The stock `Ask`, asked again until the answer is not empty.
    pub fn required(&mut self, question: &str) -> Result<String, WizardError> {
        loop {
            self.say(question)?;
            let answer = self.line()?;
            if !answer.is_empty() {
                return Ok(answer);
            }
        }
    }

    /// Asks every question of the stock wizard's Linux flow that cwlite has a use for.
    ///
    /// # Errors
    /// The input ended before the last answer, or could not be read.
    pub fn ask(&mut self) -> Result<Answers, WizardError> {
        let mut answers = Answers::default();
        self.say("=============================================================\n= Welcome to the cwlite configuration wizard (the stock      =\n= amazon-cloudwatch-agent-config-wizard's Linux questions)  =\n=============================================================")?;
        // cwlite reads no instance metadata, so the stock default (EC2 when metadata answered)
        // is on premises.
        answers.host = match self.choice(
            "Are you using EC2 or On-Premises hosts?",
            2,
            &["EC2", "On-Premises"],
        )? {
            0 => Host::Ec2,
            _ => Host::OnPremise,
        };
        answers.run_as_user = match self.choice(
            "Which user are you planning to run the agent?",
            1,
            &["cwagent", "root", "others"],
        )? {
            0 => "cwagent".into(),
            1 => "root".into(),
            _ => self.required(
                "Please specify your own user(remember the user must exist before the agent running):",
            )?,
        };
        answers.statsd = if self.yes("Do you want to turn on StatsD daemon?", true)? {
            let port = loop {
                let text =
                    self.text("Which port do you want StatsD daemon to listen to?", "8125")?;
                match text.parse::<u16>() {
                    Ok(port) if port > 0 => break port,
                    _ => self.say(&format!(
                        "The value {text} is not valid to this question.\nPlease retry to answer:"
                    ))?,
                }
            };
            let collection = [10, 30, 60][self.choice(
                "What is the collect interval for StatsD daemon?",
                1,
                &["10s", "30s", "60s"],
            )?];
            let aggregation = [0, 10, 30, 60][self.choice(
                "What is the aggregation interval for metrics collected by StatsD daemon?",
                4,
                &["Do not aggregate", "10s", "30s", "60s"],
            )?];
            Some(Statsd {
                port,
                collection_interval: collection,
                aggregation_interval: aggregation,
            })
        } else {
            None
        };
        answers.collectd = self.yes(
            "Do you want to monitor metrics from CollectD? (cwlite listens for collectd's network plugin)",
            true,
        )?;
        answers.host_metrics = if self.yes(
            "Do you want to monitor any host metrics? e.g. CPU, memory, etc.",
            true,
        )? {
            Some(self.host_metrics(answers.host)?)
        } else {
            None
        };
        answers.log_files = self.log_files(&answers)?;
        answers.journald = self.journald(&answers)?;
        answers.parameter_store = if self.yes(
            "Do you want to store the config in the SSM parameter store?",
            true,
        )? {
            let name = self.text(
                    "What parameter store name do you want to use to store your config? (Use 'AmazonCloudWatch-' prefix if you use our managed AWS policy)",
                    super::plan::DEFAULT_PARAMETER,
                )?;
            let region = self.text(
                    "Which region do you want to store the config in the parameter store? (empty: the profile's)",
                    "",
                )?;
            Some(ParameterStore {
                name,
                region: Some(region).filter(|r| !r.is_empty()),
            })
        } else {
            None
        };
        Ok(answers)
    }

    fn host_metrics(&mut self, host: Host) -> Result<HostMetrics, WizardError> {
        let mut metrics = HostMetrics {
            per_core: self.yes("Do you want to monitor cpu metrics per core?", true)?,
            ..HostMetrics::default()
        };
        if host == Host::Ec2 {
            metrics.ec2_dimensions = self.yes("Do you want to add ec2 dimensions (ImageId, InstanceId, InstanceType, AutoScalingGroupName) into all of your metrics if the info is available?", true)?;
            metrics.aggregate_instance_id = self.yes(
                "Do you want to aggregate ec2 dimensions (InstanceId)?",
                true,
            )?;
        }
        metrics.interval = [1, 10, 30, 60][self.choice(
            "Would you like to collect your metrics at high resolution (sub-minute resolution)? This enables sub-minute resolution for all metrics, but you can customize for specific metrics in the output json file.",
            4,
            &["1s", "10s", "30s", "60s"],
        )?];
        loop {
            metrics.level = [Level::Basic, Level::Standard, Level::Advanced, Level::None][self
                .choice(
                    "Which default metrics config do you want?",
                    1,
                    &["Basic", "Standard", "Advanced", "None"],
                )?];
            if metrics.level == Level::None {
                metrics.plugins = Plugins {
                    cpu: self.yes("Do you want to monitor CPU status?", true)?,
                    memory: self.yes("Do you want to monitor memory status?", true)?,
                    disk: self.yes("Do you want to monitor disk status?", true)?,
                    network: self.yes("Do you want to monitor network status?", true)?,
                    swap: self.yes("Do you want to monitor swap status?", true)?,
                };
                return Ok(metrics);
            }
            let preview = super::plan::configuration(&Answers {
                host,
                statsd: None,
                collectd: false,
                journald: Vec::new(),
                host_metrics: Some(metrics.clone()),
                ..Answers::default()
            });
            self.say(&format!(
                "Current config as follows:\n{}",
                super::plan::render(&preview)
            ))?;
            if self.yes("Are you satisfied with the above config? Note: it can be manually customized after the wizard completes to add additional items.", true)? {
                return Ok(metrics);
            }
        }
    }

    fn retention(&mut self) -> Result<i64, WizardError> {
        let options: Vec<String> = RETENTIONS.iter().map(ToString::to_string).collect();
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        Ok(RETENTIONS[self.choice("Log Group Retention in days", 1, &options)?])
    }

    fn log_files(&mut self, answers: &Answers) -> Result<Vec<LogFile>, WizardError> {
        let mut files = Vec::new();
        if !self.yes("Do you want to monitor any log files?", true)? {
            return Ok(files);
        }
        loop {
            let path = self.required("Log file path:")?;
            let group = self.text("Log group name:", &default_group(&path))?;
            let class = CLASSES[self.choice("Log group class:", 1, &CLASSES)?].to_owned();
            let stream = self.text("Log stream name:", answers.default_stream())?;
            let retention = self.retention()?;
            files.push(LogFile {
                path,
                group: Some(group),
                stream: Some(stream),
                retention,
                class,
            });
            if !self.yes(
                "Do you want to specify any additional log files to monitor?",
                true,
            )? {
                return Ok(files);
            }
        }
    }

    fn journald(&mut self, answers: &Answers) -> Result<Vec<Journald>, WizardError> {
        const UNITS: [&str; 9] = [
            "systemd",
            "kernel",
            "sshd",
            "docker",
            "nginx",
            "apache2",
            "NetworkManager",
            "firewalld",
            "audit",
        ];
        let mut entries = Vec::new();
        if !self.yes("Do you want to monitor journald logs?", true)? {
            return Ok(entries);
        }
        loop {
            let mut entry = Journald::default();
            if !self.yes("Do you want to collect logs from all units?", true)? {
                for unit in UNITS {
                    if self.yes(&format!("Do you want to monitor {unit} unit logs?"), true)? {
                        entry.units.push(unit.to_owned());
                    }
                }
                if self.yes("Do you want to monitor custom units?", true)? {
                    let custom = self.required("Enter custom unit names (comma-separated):")?;
                    entry.units.extend(
                        custom
                            .split(',')
                            .map(str::trim)
                            .filter(|u| !u.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
            entry.group = self.text("Log group name:", "journald")?;
            entry.stream = Some(self.text("Log stream name:", answers.default_stream())?);
            if self.yes(
                "Do you want to add regex filters to include/exclude specific log entries?",
                true,
            )? {
                loop {
                    let kind = ["include", "exclude"][self.choice(
                        "Filter type:",
                        1,
                        &[
                            "Include (events matching regex)",
                            "Exclude (events matching regex)",
                        ],
                    )?];
                    let expression = loop {
                        let pattern = self.required("Enter regex pattern:")?;
                        match crate::config::go_regex::GoRegex::new(&pattern) {
                            Ok(_) => break pattern,
                            Err(err) => {
                                self.say(&format!("Error: Invalid regex pattern: {err}"))?
                            }
                        }
                    };
                    entry.filters.push(JournalFilter {
                        kind: kind.into(),
                        expression,
                    });
                    if !self.yes("Do you want to add another regex filter?", true)? {
                        break;
                    }
                }
            }
            entry.retention = self.retention()?;
            entries.push(entry);
            if !self.yes(
                "Do you want to specify any additional journald configurations to monitor?",
                true,
            )? {
                return Ok(entries);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(typed: &str) -> (Result<Answers, WizardError>, String) {
        let mut input = std::io::Cursor::new(typed.as_bytes().to_vec());
        let mut output = Vec::new();
        let answers = Prompter::new(&mut input, &mut output).ask();
        (answers, String::from_utf8(output).unwrap())
    }

    #[test]
    fn enter_everywhere_takes_the_stock_defaults_until_a_path_is_needed() {
        // host, user, statsd, port, interval, aggregation, collectd, host metrics, per core,
        // resolution, preset, satisfied, log files? -> no, journald? -> no, store? -> no.
        let typed = "\n\n\n\n\n\n\n\n\n\n\n\n2\n2\n2\n";
        let (answers, shown) = ask(typed);
        let answers = answers.unwrap();
        assert_eq!(answers.host, Host::OnPremise);
        assert_eq!(answers.run_as_user, "cwagent");
        assert_eq!(answers.statsd, Some(Statsd::default()));
        assert!(answers.collectd);
        assert_eq!(answers.host_metrics, Some(HostMetrics::default()));
        assert!(answers.log_files.is_empty() && answers.journald.is_empty());
        assert_eq!(answers.parameter_store, None);
        assert!(
            shown.contains("1. EC2\n2. On-Premises\ndefault choice: [2]:"),
            "{shown}"
        );
        assert!(shown.contains("Current config as follows:"));
    }

    #[test]
    fn a_wrong_choice_is_asked_again_and_loops_end_on_no() {
        // EC2 after a wrong number, user "svc", no StatsD, collectd or host metrics, one log file
        // (default group, infrequent access, stream "web", 14 days), journald with every
        // default and no filter, nothing stored.
        let typed =
            "7\n1\n3\nsvc\n2\n2\n2\n\n/var/log/a b.log\n\n2\nweb\n6\n2\n\n\n\n\n2\n\n2\n2\n";
        let (answers, shown) = ask(typed);
        let answers = answers.unwrap();
        assert!(shown.contains("The value 7 is not valid to this question."));
        assert_eq!(answers.host, Host::Ec2);
        assert_eq!(answers.run_as_user, "svc");
        assert_eq!(answers.statsd, None);
        assert!(!answers.collectd);
        assert_eq!(answers.host_metrics, None);
        assert_eq!(
            answers.log_files,
            [LogFile {
                path: "/var/log/a b.log".into(),
                group: Some("a_b.log".into()),
                stream: Some("web".into()),
                retention: 14,
                class: "INFREQUENT_ACCESS".into(),
            }]
        );
        assert_eq!(answers.journald.len(), 1);
        assert_eq!(answers.journald[0].stream.as_deref(), Some("{instance_id}"));
    }

    #[test]
    fn input_that_ends_early_is_an_error() {
        let (answers, _) = ask("\n\n");
        assert!(matches!(answers, Err(WizardError::InputEnded)));
    }
}
