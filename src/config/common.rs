//! `common-config.toml`: which credentials profile and file, which proxy, which extra CA.
//!
//! Owns reading the stock agent's common configuration and its on-premises defaults (profile
//! `AmazonCloudWatchAgent`, file `$HOME/.aws/credentials`), with the stock fallbacks to the
//! `HTTP(S)_PROXY`, `NO_PROXY` and `AWS_CA_BUNDLE` environment variables. It does not read the
//! credentials themselves; `aws::credentials` does, at the moment a request is signed.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::diag::{ConfigErrors, Diagnostic, JsonPath};
use super::expand::Environment;
use super::model::EndpointOverride;

/// The profile the stock agent uses on premises when none is configured.
pub const DEFAULT_PROFILE: &str = "AmazonCloudWatchAgent";
/// The name of the systemd credential (`LoadCredential=aws-credentials:/path`) holding a shared
/// credentials file. When systemd passes it (`$CREDENTIALS_DIRECTORY`), it is the file read.
pub const SYSTEMD_CREDENTIAL: &str = "aws-credentials";

/// The credentials file systemd passed to the service, if any.
fn systemd_credential(env: &Environment) -> Option<PathBuf> {
    let file = Path::new(&env.var("CREDENTIALS_DIRECTORY")?).join(SYSTEMD_CREDENTIAL);
    file.is_file().then_some(file)
}

/// Where credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum CredentialsSource {
    /// A profile of a shared credentials file, read from that file only.
    Profile {
        /// Profile name.
        profile: String,
        /// The shared credentials file; a `config` file beside it is read for `region`.
        file: PathBuf,
    },
    /// No common-config: the environment's keys, then the default profile of `~/.aws` (the
    /// on-premises part of the SDK's standard chain).
    DefaultChain,
}

/// Proxy settings for HTTPS requests (through CONNECT) and plain HTTP ones.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// Proxy for `http://` endpoints.
    pub http_proxy: Option<String>,
    /// Proxy for `https://` endpoints.
    pub https_proxy: Option<String>,
    /// Hosts that bypass the proxy, comma-separated as in `NO_PROXY`.
    pub no_proxy: Option<String>,
}

impl std::fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySettings")
            .field("http_proxy", &self.http_proxy.as_deref().map(redact_url))
            .field("https_proxy", &self.https_proxy.as_deref().map(redact_url))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl Serialize for ProxySettings {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("ProxySettings", 3)?;
        s.serialize_field("http_proxy", &self.http_proxy.as_deref().map(redact_url))?;
        s.serialize_field("https_proxy", &self.https_proxy.as_deref().map(redact_url))?;
        s.serialize_field("no_proxy", &self.no_proxy)?;
        s.end()
    }
}

/// Hides a password in `scheme://user:password@host`, so proxy URLs can be printed.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    // Everything up to the last '@' is user information, whatever characters the password holds
    // ('/', '?', '#' and '@' included, which a hand-written URL often leaves unescaped).
    match rest.rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &rest[at..]),
            None => format!("{}***{}", &url[..scheme_end + 3], &rest[at..]),
        },
        None => url.to_owned(),
    }
}

/// The validated common configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommonConfig {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Where credentials come from.
    pub credentials: CredentialsSource,
    /// Proxy settings.
    pub proxy: ProxySettings,
    /// An extra CA bundle (PEM) trusted in addition to the system roots.
    pub ca_bundle_path: Option<PathBuf>,
    /// Where the services without an `endpoint_override` in the JSON are reached.
    pub endpoints: ServiceEndpoints,
}

/// Endpoints of the services the stock JSON has no `endpoint_override` for: a cwlite addition
/// to `common-config.toml` (`[endpoints]`), else the SDK's environment variables
/// (`AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL_STS`), else the regional default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceEndpoints {
    /// SSM Parameter Store, for `cwlite ctl -c ssm:<name>`.
    pub ssm: Option<EndpointOverride>,
    /// STS, for `credentials.role_arn`.
    pub sts: Option<EndpointOverride>,
}

/// The environment variables [`ServiceEndpoints`] falls back to, as the AWS SDKs name them.
pub const ENDPOINT_ENV: [(&str, &str); 2] = [
    ("ssm", "AWS_ENDPOINT_URL_SSM"),
    ("sts", "AWS_ENDPOINT_URL_STS"),
];

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommon {
    credentials: Option<RawCommonCredentials>,
    proxy: Option<RawProxy>,
    ssl: Option<RawSsl>,
    imds: Option<toml::Table>,
    endpoints: Option<RawEndpoints>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoints {
    ssm: Option<String>,
    sts: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommonCredentials {
    shared_credential_profile: Option<String>,
    shared_credential_file: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    http_proxy: Option<String>,
    https_proxy: Option<String>,
    no_proxy: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsl {
    ca_bundle_path: Option<String>,
}

impl CommonConfig {
    /// Reads `path` (or applies the no-file defaults), returning the settings and any warnings.
    ///
    /// # Errors
    /// An unreadable file, a TOML syntax error (with line and column), an unknown key or a
    /// proxy URL that is not `http://` or `https://`.
    pub fn load(
        path: Option<&Path>,
        env: &Environment,
    ) -> Result<(Self, Vec<Diagnostic>), ConfigErrors> {
        let mut warnings = Vec::new();
        let Some(path) = path else {
            let credentials = match systemd_credential(env) {
                Some(file) => CredentialsSource::Profile {
                    profile: DEFAULT_PROFILE.to_owned(),
                    file,
                },
                None => CredentialsSource::DefaultChain,
            };
            let endpoints = endpoints(RawEndpoints::default(), None, env)?;
            let config = Self {
                file: None,
                credentials,
                proxy: proxy_from_env(env),
                ca_bundle_path: env.var("AWS_CA_BUNDLE").map(PathBuf::from),
                endpoints,
            };
            return Ok((config, warnings));
        };
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigErrors(vec![Diagnostic::file(
                path,
                format!("cannot read common config: {err}"),
            )])
        })?;
        let raw: RawCommon = toml::from_str(&text).map_err(|err| {
            let position = err.span().map(|span| line_column(&text, span.start));
            ConfigErrors(vec![Diagnostic {
                file: Some(path.to_owned()),
                path: JsonPath::root(),
                position,
                message: format!("invalid common config: {}", err.message()),
            }])
        })?;
        if raw.imds.is_some() {
            warnings.push(Diagnostic {
                file: Some(path.to_owned()),
                path: JsonPath::parse_dotted("imds"),
                position: None,
                message: "ignored: cwlite never queries instance metadata".to_owned(),
            });
        }
        let credentials = raw.credentials.unwrap_or_default();
        let profile = non_empty(credentials.shared_credential_profile)
            .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
        let configured = non_empty(credentials.shared_credential_file).map(PathBuf::from);
        let file = match (systemd_credential(env), configured) {
            (Some(systemd), configured) => {
                if let Some(configured) = configured {
                    warnings.push(Diagnostic {
                        file: Some(path.to_owned()),
                        path: JsonPath::parse_dotted("credentials.shared_credential_file"),
                        position: None,
                        message: format!(
                            "{} is not read: systemd passes the credential {SYSTEMD_CREDENTIAL}, which is used instead",
                            configured.display()
                        ),
                    });
                }
                systemd
            }
            (None, Some(configured)) => configured,
            (None, None) => env.home().join(".aws").join("credentials"),
        };
        let proxy = match raw.proxy {
            Some(p) => ProxySettings {
                http_proxy: non_empty(p.http_proxy),
                https_proxy: non_empty(p.https_proxy),
                no_proxy: non_empty(p.no_proxy),
            },
            None => proxy_from_env(env),
        };
        let mut errors = Vec::new();
        for (key, url) in [
            ("proxy.http_proxy", &proxy.http_proxy),
            ("proxy.https_proxy", &proxy.https_proxy),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                errors.push(Diagnostic {
                    file: Some(path.to_owned()),
                    path: JsonPath::parse_dotted(key),
                    position: None,
                    message: format!(
                        "proxy url {} must start with http:// or https://",
                        redact_url(url)
                    ),
                });
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let ca_bundle_path = raw
            .ssl
            .and_then(|s| non_empty(s.ca_bundle_path))
            .map(PathBuf::from)
            .or_else(|| env.var("AWS_CA_BUNDLE").map(PathBuf::from));
        let endpoints = endpoints(raw.endpoints.unwrap_or_default(), Some(path), env)?;
        let config = Self {
            file: Some(path.to_owned()),
            credentials: CredentialsSource::Profile { profile, file },
            proxy,
            ca_bundle_path,
            endpoints,
        };
        Ok((config, warnings))
    }
}

/// `[endpoints]`, each key falling back to its environment variable; a bad value is an error
/// naming the key (or the variable).
fn endpoints(
    raw: RawEndpoints,
    file: Option<&Path>,
    env: &Environment,
) -> Result<ServiceEndpoints, ConfigErrors> {
    let mut errors = Vec::new();
    let mut one = |service: &str, configured: Option<String>| {
        let variable = ENDPOINT_ENV
            .iter()
            .find(|(s, _)| *s == service)
            .map_or("", |(_, v)| v);
        let (text, key, file) = match non_empty(configured) {
            Some(text) => (text, format!("endpoints.{service}"), file),
            None => (
                non_empty(env.var(variable).map(str::to_owned))?,
                variable.to_owned(),
                None,
            ),
        };
        match EndpointOverride::parse(&text) {
            Ok(endpoint) => Some(endpoint),
            Err(message) => {
                errors.push(Diagnostic {
                    file: file.map(Path::to_owned),
                    path: JsonPath::parse_dotted(&key),
                    position: None,
                    message,
                });
                None
            }
        }
    };
    let endpoints = ServiceEndpoints {
        ssm: one("ssm", raw.ssm),
        sts: one("sts", raw.sts),
    };
    if errors.is_empty() {
        Ok(endpoints)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn proxy_from_env(env: &Environment) -> ProxySettings {
    ProxySettings {
        http_proxy: env
            .first_var(&["HTTP_PROXY", "http_proxy"])
            .map(str::to_owned),
        https_proxy: env
            .first_var(&["HTTPS_PROXY", "https_proxy"])
            .map(str::to_owned),
        no_proxy: env.first_var(&["NO_PROXY", "no_proxy"]).map(str::to_owned),
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::expand::HostFacts;

    fn env(vars: &[(&str, &str)]) -> Environment {
        let host = HostFacts {
            hostname: "h".into(),
            ip_address: None,
            date: "2026-11-25".into(),
        };
        Environment::fixed(vars, host)
    }

    fn load_text(
        text: &str,
        vars: &[(&str, &str)],
    ) -> Result<(CommonConfig, Vec<Diagnostic>), ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("common-config.toml");
        std::fs::write(&path, text).unwrap();
        CommonConfig::load(Some(&path), &env(vars))
    }

    #[test]
    fn an_empty_file_means_the_on_premises_profile_in_home() {
        let (config, _) = load_text("", &[("HOME", "/home/cw")]).unwrap();
        assert_eq!(
            config.credentials,
            CredentialsSource::Profile {
                profile: DEFAULT_PROFILE.into(),
                file: PathBuf::from("/home/cw/.aws/credentials")
            }
        );
        let (config, _) = load_text("", &[]).unwrap();
        assert!(
            matches!(config.credentials, CredentialsSource::Profile { file, .. } if file == Path::new("/root/.aws/credentials"))
        );
    }

    #[test]
    fn service_endpoints_come_from_the_file_then_the_sdk_variables() {
        let (config, _) = load_text(
            "[endpoints]\nssm = \"vpce-1.ssm.eu-west-1.vpce.amazonaws.com\"\n",
            &[
                ("AWS_ENDPOINT_URL_SSM", "https://ignored.example"),
                ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566/"),
            ],
        )
        .unwrap();
        assert_eq!(
            config.endpoints.ssm.unwrap().url,
            "https://vpce-1.ssm.eu-west-1.vpce.amazonaws.com"
        );
        assert_eq!(config.endpoints.sts.unwrap().url, "http://127.0.0.1:4566");
        let no_file = CommonConfig::load(None, &env(&[("AWS_ENDPOINT_URL_SSM", "ssm.local")]))
            .unwrap()
            .0;
        assert_eq!(no_file.endpoints.ssm.unwrap().url, "https://ssm.local");
        assert_eq!(no_file.endpoints.sts, None);
        let err = load_text("[endpoints]\nsts = \"ftp://x\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("endpoints.sts"), "{err}");
        let err =
            CommonConfig::load(None, &env(&[("AWS_ENDPOINT_URL_SSM", "ftp://x")])).unwrap_err();
        assert!(err.to_string().contains("AWS_ENDPOINT_URL_SSM"), "{err}");
        assert!(load_text("[endpoints]\nlogs = \"x\"\n", &[]).is_err());
    }

    #[test]
    fn every_section_is_read() {
        let text = r#"
[credentials]
shared_credential_profile = "ops"
shared_credential_file = "/etc/cwlite/credentials"
[proxy]
http_proxy = "http://proxy:3128"
https_proxy = "http://user:secret@proxy:3128"
no_proxy = "169.254.169.254,localhost"
[ssl]
ca_bundle_path = "/etc/pki/private-ca.pem"
"#;
        let (config, warnings) = load_text(text, &[("HTTPS_PROXY", "http://ignored:1")]).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(
            config.credentials,
            CredentialsSource::Profile {
                profile: "ops".into(),
                file: "/etc/cwlite/credentials".into()
            }
        );
        assert_eq!(
            config.proxy.https_proxy.as_deref(),
            Some("http://user:secret@proxy:3128")
        );
        assert_eq!(
            config.proxy.no_proxy.as_deref(),
            Some("169.254.169.254,localhost")
        );
        assert_eq!(
            config.ca_bundle_path,
            Some(PathBuf::from("/etc/pki/private-ca.pem"))
        );
        let shown = serde_json::to_string(&config).unwrap();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("user:***@proxy:3128"), "{shown}");
    }

    #[test]
    fn proxy_and_ca_fall_back_to_the_environment() {
        let (config, _) = load_text(
            "[credentials]\n",
            &[
                ("https_proxy", "http://p:8080"),
                ("NO_PROXY", "localhost"),
                ("AWS_CA_BUNDLE", "/ca.pem"),
            ],
        )
        .unwrap();
        assert_eq!(config.proxy.https_proxy.as_deref(), Some("http://p:8080"));
        assert_eq!(config.proxy.no_proxy.as_deref(), Some("localhost"));
        assert_eq!(config.ca_bundle_path, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn no_file_means_the_default_chain() {
        let (config, _) = CommonConfig::load(None, &env(&[])).unwrap();
        assert_eq!(config.credentials, CredentialsSource::DefaultChain);
    }

    #[test]
    fn syntax_errors_and_unknown_keys_are_located() {
        let err = load_text("[credentials]\nshared_credential_profile = \n", &[]).unwrap_err();
        assert_eq!(err.0[0].position.map(|p| p.0), Some(2), "{err}");
        let err = load_text("[credentials]\nprofile = \"x\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("unknown field `profile`"), "{err}");
    }

    #[test]
    fn a_proxy_without_scheme_is_an_error() {
        let err = load_text("[proxy]\nhttps_proxy = \"proxy:3128\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("proxy.https_proxy"), "{err}");
    }

    #[test]
    fn imds_settings_are_ignored_with_a_warning() {
        let (_, warnings) = load_text("[imds]\nimds_retries = 1\n", &[]).unwrap();
        assert!(warnings[0].to_string().contains("imds"));
    }

    #[test]
    fn redaction_keeps_the_user_and_hides_the_password() {
        assert_eq!(redact_url("http://u:p@h:1/x"), "http://u:***@h:1/x");
        assert_eq!(redact_url("http://h:1"), "http://h:1");
        assert_eq!(redact_url("http://u:p/a?b#c@h:1"), "http://u:***@h:1");
        assert_eq!(redact_url("http://token@h:1"), "http://***@h:1");
        let settings = ProxySettings {
            https_proxy: Some("http://u:s3cret@h:1".into()),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn a_systemd_credential_is_the_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(SYSTEMD_CREDENTIAL),
            "[AmazonCloudWatchAgent]\n",
        )
        .unwrap();
        let credentials_dir = dir.path().to_str().unwrap();
        let (config, warnings) = load_text(
            "[credentials]\nshared_credential_file = \"/root/.aws/credentials\"\n",
            &[("CREDENTIALS_DIRECTORY", credentials_dir)],
        )
        .unwrap();
        assert_eq!(
            config.credentials,
            CredentialsSource::Profile {
                profile: DEFAULT_PROFILE.into(),
                file: dir.path().join(SYSTEMD_CREDENTIAL),
            }
        );
        assert!(
            warnings[0].to_string().contains(
                "/root/.aws/credentials is not read: systemd passes the credential aws-credentials"
            ),
            "{}",
            warnings[0]
        );
        // Without the credential, the configured file stays.
        let (config, _) = load_text(
            "[credentials]\nshared_credential_file = \"/root/.aws/credentials\"\n",
            &[("CREDENTIALS_DIRECTORY", "/nonexistent")],
        )
        .unwrap();
        assert!(
            matches!(config.credentials, CredentialsSource::Profile { file, .. } if file == Path::new("/root/.aws/credentials"))
        );
    }
}
