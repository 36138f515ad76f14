//! Substitutions in configuration strings: `${ENV}` variables and the stock agent's `{placeholders}`.
//!
//! Owns [`Environment`] (environment variables and host facts, injectable for tests) and the
//! two expansion passes: `${NAME}` in every string value before decoding (the stock daemon does
//! this at runtime), and `{hostname}`, `{instance_id}`, … in log group and stream names, resolved
//! once at start with the stock agent's on-premises fallbacks. `${aws:…}` is left alone here; it
//! belongs to metric dimensions.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::Value;

use super::diag::{Collector, JsonPath};

/// On-premises value of `{instance_id}` and `${aws:InstanceId}`.
pub const UNKNOWN_INSTANCE_ID: &str = "i-UNKNOWN";
/// On-premises value of `{ip_address}` when no interface has an IPv4 address.
pub const UNKNOWN_IP: &str = "UNKNOWN-IP";
/// Value of `{aws_region}` when no region is known.
pub const UNKNOWN_REGION: &str = "UNKNOWN-REGION";
/// On-premises value of `{account_id}`.
pub const UNKNOWN_ACCOUNT: &str = "UNKNOWN-ACCOUNT";

/// Facts about the host that placeholders and defaults need, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The OS hostname.
    pub hostname: String,
    /// The first non-loopback IPv4 address, in interface index order.
    pub ip_address: Option<Ipv4Addr>,
    /// Today's local date as `YYYY-MM-DD`.
    pub date: String,
}

impl HostFacts {
    /// Reads the real host.
    pub fn detect() -> Self {
        let hostname = sysinfo::System::host_name()
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let date = jiff::ZonedDateTime::now().date().to_string();
        Self {
            hostname,
            ip_address: first_ipv4(),
            date,
        }
    }
}

/// The first non-loopback IPv4 address of an interface, interfaces taken in kernel index order
/// (as Go's `net.InterfaceAddrs` lists them), so the answer does not depend on hash order.
fn first_ipv4() -> Option<Ipv4Addr> {
    let networks = sysinfo::Networks::new_with_refreshed_list().ok()?;
    let mut candidates: Vec<(u32, Ipv4Addr)> = Vec::new();
    for (name, data) in &networks {
        let index = std::fs::read_to_string(
            std::path::Path::new("/sys/class/net")
                .join(name)
                .join("ifindex"),
        )
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX);
        for ip in data.ip_networks() {
            if let std::net::IpAddr::V4(v4) = ip.addr
                && !v4.is_loopback()
            {
                candidates.push((index, v4));
            }
        }
    }
    candidates.sort();
    candidates.first().map(|(_, ip)| *ip)
}

/// Where configuration reads the outside world from: environment variables, `$HOME` and host facts.
#[derive(Debug, Clone)]
pub struct Environment {
    vars: HashMap<String, String>,
    /// Facts about this host.
    pub host: HostFacts,
}

impl Environment {
    /// The process environment and the real host.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
            host: HostFacts::detect(),
        }
    }

    /// A fixed environment, for tests.
    pub fn fixed(vars: &[(&str, &str)], host: HostFacts) -> Self {
        Self {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            host,
        }
    }

    /// A variable's value; empty values count as unset, as the stock agent treats them.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set.
    pub fn first_var(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.var(n))
    }

    /// `$HOME`, else `/root` as the stock translator falls back to.
    pub fn home(&self) -> PathBuf {
        PathBuf::from(self.var("HOME").unwrap_or("/root"))
    }
}

/// Replaces `${NAME}`, `${NAME:-default}` and `${NAME-default}` in every string of `value`.
/// An unset variable without default becomes empty, as in the stock agent, with a warning.
pub fn expand_env_in_tree(
    value: &mut Value,
    path: &JsonPath,
    env: &Environment,
    diagnostics: &mut Collector,
) {
    match value {
        Value::String(text) if text.contains("${") => {
            let (expanded, unset) = expand_env(text, env);
            for name in unset {
                diagnostics.warn(
                    path,
                    format!(
                        "environment variable {name} is not set; it expands to an empty string"
                    ),
                );
            }
            *text = expanded;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env_in_tree(item, &path.index(i), env, diagnostics);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                expand_env_in_tree(item, &path.key(key), env, diagnostics);
            }
        }
        _ => {}
    }
}

/// Expands one string; returns it and the names of unset variables without default.
pub fn expand_env(text: &str, env: &Environment) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut unset = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (name, default) = match inner
            .find(":-")
            .map(|i| (i, 2))
            .or_else(|| inner.find('-').map(|i| (i, 1)))
        {
            Some((i, len)) => (&inner[..i], Some((&inner[i + len..], len == 2))),
            None => (inner, None),
        };
        if !is_env_name(name) {
            // `${aws:InstanceId}` and other non-variable text stay as written.
            out.push_str(&rest[start..start + 2 + end + 1]);
        } else {
            match (env.vars.get(name), default) {
                (Some(value), Some((fallback, true))) if value.is_empty() => out.push_str(fallback),
                (Some(value), _) => out.push_str(value),
                (None, Some((fallback, _))) => out.push_str(fallback),
                (None, None) => unset.push(name.to_owned()),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (out, unset)
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Values for the stock agent's name placeholders, fixed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders {
    pairs: [(&'static str, String); 7],
}

impl Placeholders {
    /// The on-premises values: OS hostname for both host names, no instance or account.
    pub fn on_premises(host: &HostFacts, region: Option<&str>) -> Self {
        Self {
            pairs: [
                ("{instance_id}", UNKNOWN_INSTANCE_ID.to_owned()),
                ("{hostname}", host.hostname.clone()),
                ("{local_hostname}", host.hostname.clone()),
                (
                    "{ip_address}",
                    host.ip_address
                        .map_or_else(|| UNKNOWN_IP.to_owned(), |ip| ip.to_string()),
                ),
                ("{aws_region}", region.unwrap_or(UNKNOWN_REGION).to_owned()),
                ("{account_id}", UNKNOWN_ACCOUNT.to_owned()),
                ("{date}", host.date.clone()),
            ],
        }
    }

    /// Replaces every known placeholder; unknown `{words}` stay, as in the stock agent.
    pub fn resolve(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (key, value) in &self.pairs {
            if out.contains(key) {
                out = out.replace(key, value);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn host() -> HostFacts {
        HostFacts {
            hostname: "web-01".into(),
            ip_address: Some(Ipv4Addr::new(10, 1, 2, 3)),
            date: "2026-11-25".into(),
        }
    }

    #[test]
    fn env_variables_expand_with_defaults() {
        let env = Environment::fixed(&[("REGION", "eu-west-1"), ("EMPTY", "")], host());
        assert_eq!(expand_env("${REGION}", &env), ("eu-west-1".into(), vec![]));
        assert_eq!(expand_env("a-${REGION}-b", &env).0, "a-eu-west-1-b");
        assert_eq!(expand_env("${NOPE:-x}", &env).0, "x");
        assert_eq!(expand_env("${EMPTY:-x}", &env).0, "x");
        assert_eq!(expand_env("${EMPTY-x}", &env).0, "");
        assert_eq!(
            expand_env("${NOPE}", &env),
            (String::new(), vec!["NOPE".to_owned()])
        );
    }

    #[test]
    fn aws_dimension_placeholders_are_left_alone() {
        let env = Environment::fixed(&[], host());
        assert_eq!(expand_env("${aws:InstanceId}", &env).0, "${aws:InstanceId}");
        assert_eq!(expand_env("${unterminated", &env).0, "${unterminated");
    }

    #[test]
    fn tree_expansion_warns_with_the_path() {
        let env = Environment::fixed(&[("R", "us-east-1")], host());
        let mut value = serde_json::json!({"agent": {"region": "${R}", "hostname": "${MISSING}"}});
        let mut diagnostics = Collector::default();
        expand_env_in_tree(&mut value, &JsonPath::root(), &env, &mut diagnostics);
        assert_eq!(value["agent"]["region"], "us-east-1");
        assert_eq!(value["agent"]["hostname"], "");
        assert_eq!(diagnostics.warnings.len(), 1);
        assert_eq!(diagnostics.warnings[0].path.to_string(), "agent.hostname");
        assert!(diagnostics.warnings[0].message.contains("MISSING"));
    }

    #[test]
    fn placeholders_use_on_premises_fallbacks() {
        let placeholders = Placeholders::on_premises(&host(), None);
        assert_eq!(
            placeholders.resolve("{hostname}/{local_hostname}/{ip_address}/{instance_id}/{aws_region}/{account_id}/{date}/{other}"),
            "web-01/web-01/10.1.2.3/i-UNKNOWN/UNKNOWN-REGION/UNKNOWN-ACCOUNT/2026-11-25/{other}"
        );
        let no_ip = HostFacts {
            ip_address: None,
            ..host()
        };
        assert_eq!(
            Placeholders::on_premises(&no_ip, Some("ap-northeast-1"))
                .resolve("{ip_address} {aws_region}"),
            "UNKNOWN-IP ap-northeast-1"
        );
    }

    #[test]
    fn the_real_host_has_a_name_and_a_date() {
        let facts = HostFacts::detect();
        assert!(!facts.hostname.is_empty());
        assert_eq!(facts.date.len(), 10);
    }
}
