//! AWS clients for CloudWatch Logs and CloudWatch, built from a validated configuration.
//!
//! Owns everything between a [`Config`] and a ready SDK client: credentials (`credentials`),
//! the HTTPS stack with proxy and private CA (`http`), endpoint overrides with signing for the
//! right service and region, timeouts (a one-minute attempt timeout, `CWLITE_ATTEMPT_TIMEOUT_SECS`
//! to change it), a check that a successful CloudWatch answer is CBOR, and the classification
//! of SDK failures (`error`). It holds no pipeline state and never reads log files or samples
//! metrics.

pub mod credentials;
pub mod error;
pub mod http;
pub mod role;
pub mod ssm;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::identity::SharedIdentityCache;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::region::Region;

use crate::config::{Config, CredentialsSource, EndpointOverride};
use credentials::ProfileFileCredentials;
pub use error::{AwsError, AwsErrorKind, Disposition};

/// How long a TCP (and TLS) connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request attempt may take, as the stock agent's one-minute HTTP client timeout.
/// An endpoint that accepts a request and never answers (a black hole) costs one attempt of this
/// long, then the request is retried.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Environment variable that replaces [`ATTEMPT_TIMEOUT`] with a whole number of seconds (the
/// fault tests use a few seconds, so a black-holed request is given up within the test).
pub const ATTEMPT_TIMEOUT_ENV: &str = "CWLITE_ATTEMPT_TIMEOUT_SECS";

/// The attempt timeout for the value of [`ATTEMPT_TIMEOUT_ENV`]: whole seconds from 1 to 3600,
/// else [`ATTEMPT_TIMEOUT`].
pub fn attempt_timeout(setting: Option<&str>) -> Duration {
    setting
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|secs| (1..=3600).contains(secs))
        .map_or(ATTEMPT_TIMEOUT, Duration::from_secs)
}

/// Why clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// No region was found (only `validate` tolerates that).
    #[error("no region configured: set agent.region, or region in the profile, or AWS_REGION")]
    NoRegion,
    /// The HTTPS stack could not be built.
    #[error(transparent)]
    Http(#[from] http::HttpSetupError),
    /// Credentials could not be loaded (checked at start so a typo fails fast).
    #[error("cannot load credentials: {0}")]
    Credentials(String),
}

/// Ready clients for both services, sharing credentials.
#[derive(Debug, Clone)]
pub struct Clients {
    /// CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// CloudWatch (metrics).
    pub metrics: aws_sdk_cloudwatch::Client,
    /// Where logs requests go, for messages.
    pub logs_endpoint: String,
    /// Where metrics requests go, for messages.
    pub metrics_endpoint: String,
    /// The region both sign for.
    pub region: String,
    signers: Signers,
}

/// The credentials the clients sign with: the common-config's, and each role a section names,
/// assumed with them.
#[derive(Debug, Clone)]
struct Signers {
    source: SharedCredentialsProvider,
    source_cache: SharedIdentityCache,
    /// Each distinct role once, so that sections naming the same role share its sessions.
    roles: Vec<(String, SharedCredentialsProvider)>,
}

impl Signers {
    async fn new(
        config: &Config,
        source: SharedCredentialsProvider,
        source_cache: SharedIdentityCache,
        region: &str,
    ) -> Result<Self, ClientSetupError> {
        let mut roles: Vec<(String, SharedCredentialsProvider)> = Vec::new();
        let named = [
            config.logs.as_ref().and_then(|l| l.role_arn.clone()),
            config.metrics.as_ref().and_then(|m| m.role_arn.clone()),
        ];
        for role in named.into_iter().flatten() {
            if roles.iter().all(|(r, _)| *r != role) {
                let provider =
                    role::RoleCredentials::new(&role, source.clone(), region, &config.common)
                        .await?;
                roles.push((role, SharedCredentialsProvider::new(provider)));
            }
        }
        Ok(Self {
            source,
            source_cache,
            roles,
        })
    }

    fn for_role(&self, role: Option<&str>) -> (SharedCredentialsProvider, SharedIdentityCache) {
        match role.and_then(|role| self.roles.iter().find(|(r, _)| r == role)) {
            // The role keeps and renews its own session, for every client that signs as it.
            Some((_, provider)) => (provider.clone(), IdentityCache::no_cache()),
            None => (self.source.clone(), self.source_cache.clone()),
        }
    }
}

impl Clients {
    /// Builds both clients. No request is sent and credentials are not read yet; see
    /// [`Clients::check_credentials`].
    ///
    /// # Errors
    /// No region, an unusable CA bundle or proxy.
    pub async fn build(config: &Config) -> Result<Self, ClientSetupError> {
        let region = config
            .region
            .as_ref()
            .ok_or(ClientSetupError::NoRegion)?
            .name
            .clone();
        let logs_override = config
            .logs
            .as_ref()
            .and_then(|l| l.endpoint_override.clone());
        let metrics_override = config
            .metrics
            .as_ref()
            .and_then(|m| m.endpoint_override.clone());
        let dual_stack = config.agent.use_dualstack_endpoint;
        let http_for = |endpoint: &Option<EndpointOverride>| {
            http_client_for(endpoint.as_ref(), &config.common)
        };
        let (source, source_cache) = source_credentials(&config.common, &region).await?;
        let signers = Signers::new(config, source, source_cache, &region).await?;
        let (logs_credentials, logs_cache) =
            signers.for_role(config.logs.as_ref().and_then(|l| l.role_arn.as_deref()));
        let (metrics_credentials, metrics_cache) =
            signers.for_role(config.metrics.as_ref().and_then(|m| m.role_arn.as_deref()));
        let timeouts = timeouts();
        // Whether to send again is decided once, by the shippers through `AwsError::is_retryable`,
        // so the SDK makes exactly one attempt per call.
        let retries = RetryConfig::disabled();

        let mut logs = aws_sdk_cloudwatchlogs::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .credentials_provider(logs_credentials)
            .identity_cache(logs_cache)
            .http_client(http_for(&logs_override)?)
            .timeout_config(timeouts.clone())
            .retry_config(retries.clone())
            .use_dual_stack(dual_stack);
        if let Some(endpoint) = &logs_override {
            logs = logs.endpoint_url(&endpoint.url);
        }
        let mut metrics = aws_sdk_cloudwatch::config::Builder::new()
            .interceptor(CborAnswerCheck)
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .credentials_provider(metrics_credentials)
            .identity_cache(metrics_cache)
            .http_client(http_for(&metrics_override)?)
            .timeout_config(timeouts)
            .retry_config(retries)
            .use_dual_stack(dual_stack);
        if let Some(endpoint) = &metrics_override {
            metrics = metrics.endpoint_url(&endpoint.url);
        }
        let default_endpoint = |service: &str| {
            let suffix = if dual_stack {
                "api.aws"
            } else {
                "amazonaws.com"
            };
            format!("https://{service}.{region}.{suffix}")
        };
        Ok(Self {
            logs: aws_sdk_cloudwatchlogs::Client::from_conf(logs.build()),
            metrics: aws_sdk_cloudwatch::Client::from_conf(metrics.build()),
            logs_endpoint: logs_override.map_or_else(|| default_endpoint("logs"), |e| e.url),
            metrics_endpoint: metrics_override
                .map_or_else(|| default_endpoint("monitoring"), |e| e.url),
            region,
            signers,
        })
    }

    /// Loads credentials once, so that a missing profile or key stops `cwlite run` at start
    /// with a clear message instead of failing every request later. Returns the access key id,
    /// which is not secret and helps operators see which key is in use.
    ///
    /// # Errors
    /// The provider's message (file, profile, missing key), never a secret.
    pub async fn check_credentials(&self) -> Result<String, ClientSetupError> {
        use aws_credential_types::provider::ProvideCredentials;
        let credentials = self
            .signers
            .source
            .provide_credentials()
            .await
            .map_err(|err| ClientSetupError::Credentials(describe_credentials_error(&err)))?;
        // Each role once at start too: a role that cannot be assumed (no sts:AssumeRole, a
        // trust policy that does not name the key) is a configuration mistake to show now.
        for (role, provider) in &self.signers.roles {
            provider
                .provide_credentials()
                .await
                .map_err(|err| ClientSetupError::Credentials(describe_credentials_error(&err)))?;
            tracing::debug!(role = %role, "role assumed");
        }
        Ok(credentials.access_key_id().to_owned())
    }
}

/// The credentials of the common-config (a profile's static keys, or the environment's keys
/// then the default profile)
/// and the identity cache that suits them.
///
/// # Errors
/// The HTTPS stack for the default profile's own STS calls cannot be built.
pub async fn source_credentials(
    common: &crate::config::CommonConfig,
    region: &str,
) -> Result<(SharedCredentialsProvider, SharedIdentityCache), ClientSetupError> {
    // The file provider checks its file on every call and caches by itself, so the SDK must
    // not cache (a rotated key is then used at once). The default profile may assume a role
    // through STS, so its answers are cached until they expire.
    Ok(match &common.credentials {
        CredentialsSource::Profile { profile, file } => (
            SharedCredentialsProvider::new(ProfileFileCredentials::new(file, profile)),
            IdentityCache::no_cache(),
        ),
        CredentialsSource::DefaultChain => {
            // The profile's STS calls go through the same proxy and CA bundle as the rest, and
            // the SDK has no HTTP client of its own here (cwlite builds without one).
            let http =
                http::build_http_client("https", &common.proxy, common.ca_bundle_path.as_deref())?;
            let provider_config =
                aws_config::provider_config::ProviderConfig::default().with_http_client(http);
            // The standard chain's on-premises part: the environment's keys, then the default
            // profile (which may itself assume a role through STS). Instance metadata, ECS and
            // web identity are left out: cwlite never asks the host's metadata service.
            let profile = aws_config::profile::ProfileFileCredentialsProvider::builder()
                .configure(&provider_config.with_region(Some(Region::new(region.to_owned()))))
                .build();
            let chain = aws_config::meta::credentials::CredentialsProviderChain::first_try(
                "Environment",
                aws_config::environment::credentials::EnvironmentVariableCredentialsProvider::new(),
            )
            .or_else("Profile", profile);
            (
                SharedCredentialsProvider::new(chain),
                IdentityCache::lazy().build(),
            )
        }
    })
}

/// The HTTP client for one service: plain HTTP only for an explicit `http://` endpoint, with
/// the common-config's proxy and CA bundle.
///
/// # Errors
/// The proxy or the CA bundle is unusable.
pub fn http_client_for(
    endpoint: Option<&EndpointOverride>,
    common: &crate::config::CommonConfig,
) -> Result<SharedHttpClient, http::HttpSetupError> {
    let scheme = if endpoint.is_some_and(EndpointOverride::is_plain_http) {
        "http"
    } else {
        "https"
    };
    http::build_http_client(scheme, &common.proxy, common.ca_bundle_path.as_deref())
}

/// The connect and attempt timeouts every client uses.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt_timeout(
            std::env::var(ATTEMPT_TIMEOUT_ENV).ok().as_deref(),
        ))
        .build()
}

fn describe_credentials_error(
    err: &aws_credential_types::provider::error::CredentialsError,
) -> String {
    use std::error::Error;
    // The provider's own message is in the source chain; the top level only says "not loaded".
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        message = inner.to_string();
        source = inner.source();
    }
    message
}

/// Refuses a successful CloudWatch answer whose body is not CBOR. PutMetricData has no output,
/// so the SDK takes any HTTP 200 as delivered, whatever its body: a proxy's page or a garbled
/// answer lost the batch. Refused here, the call fails as a bad response and is sent again.
#[derive(Debug)]
struct CborAnswerCheck;

impl Intercept for CborAnswerCheck {
    fn name(&self) -> &'static str {
        "CborAnswerCheck"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.output_or_error().is_err() {
            return Ok(());
        }
        match context.response().body().bytes() {
            Some(body) if !is_cbor_map(body) => Err(format!(
                "a successful answer whose body is not CBOR ({} bytes)",
                body.len()
            )
            .into()),
            _ => Ok(()),
        }
    }
}

/// Whether `body` is empty or exactly one CBOR map, as an RPC v2 CBOR answer is.
fn is_cbor_map(body: &[u8]) -> bool {
    use aws_smithy_cbor::data::Type;
    if body.is_empty() {
        return true;
    }
    let mut decoder = aws_smithy_cbor::Decoder::new(body);
    matches!(decoder.datatype(), Ok(Type::Map | Type::MapIndef))
        && decoder.skip().is_ok()
        && decoder.position() == body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_body_or_one_whole_cbor_map_is_a_cbor_answer() {
        assert!(is_cbor_map(b""));
        assert!(is_cbor_map(&[0xa0]), "an empty map");
        assert!(is_cbor_map(&[0xa1, 0x61, b'a', 0x01]), "{{\"a\": 1}}");
        assert!(is_cbor_map(&[0xbf, 0xff]), "an empty indefinite map");
        for garbage in [
            &b"<html><body>502 proxy error</body></html>"[..],
            &b"\xff\x00 this is not cbor"[..],
            &[0x81, 0x01][..],
            &[0xa1, 0x61][..],
            &[0xa0, 0xa0][..],
        ] {
            assert!(!is_cbor_map(garbage), "{garbage:?}");
        }
    }

    #[test]
    fn the_attempt_timeout_is_a_minute_unless_the_environment_names_whole_seconds() {
        assert_eq!(attempt_timeout(None), ATTEMPT_TIMEOUT);
        assert_eq!(attempt_timeout(Some("3")), Duration::from_secs(3));
        assert_eq!(attempt_timeout(Some(" 90 ")), Duration::from_secs(90));
        for bad in ["", "0", "-1", "1.5", "soon", "3601"] {
            assert_eq!(attempt_timeout(Some(bad)), ATTEMPT_TIMEOUT, "{bad:?}");
        }
    }
}
