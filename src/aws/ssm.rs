//! Reading one SSM Parameter Store parameter, for `cwlite ctl -c ssm:<name>`: `GetParameter`
//! with decryption, as the stock downloader calls it.
//!
//! Owns the SSM client (the common-config's credentials, proxy and CA, the `ssm` endpoint from
//! `[endpoints]` or `AWS_ENDPOINT_URL_SSM`) and the messages for its failures, which name the
//! parameter, the region and the permission missing. It writes nothing.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_types::region::Region;

use super::{AwsError, AwsErrorKind, ClientSetupError};
use crate::config::{CommonConfig, Environment, Layout};

/// Runs `future` on a runtime of its own, for the ctl and the wizard, which have none.
///
/// # Errors
/// The future's, or [`ParameterError::Runtime`].
pub fn block_on<T>(
    name: &str,
    future: impl std::future::Future<Output = Result<T, ParameterError>>,
) -> Result<T, ParameterError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ParameterError::Runtime {
            name: name.to_owned(),
            source,
        })?
        .block_on(future)
}

/// How many times a `GetParameter` that failed for a reason that passes (an outage, a throttle)
/// is sent in all.
pub const ATTEMPTS: u32 = 3;

/// Why a parameter could not be read. The message names the parameter, the region and the
/// endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ParameterError {
    /// The client could not be built.
    #[error("ssm:{name}: {source}")]
    Setup {
        /// The parameter.
        name: String,
        /// Why.
        source: ClientSetupError,
    },
    /// The parameter does not exist in that region.
    #[error("ssm:{name}: no such parameter in {region} ({endpoint})")]
    NotFound {
        /// The parameter.
        name: String,
        /// The region asked.
        region: String,
        /// The endpoint asked.
        endpoint: String,
    },
    /// The credentials may not read it (or not decrypt it).
    #[error(
        "ssm:{name}: access denied in {region} ({endpoint}): the credentials need {permission}{detail}"
    )]
    Denied {
        /// The parameter.
        name: String,
        /// The region asked.
        region: String,
        /// The endpoint asked.
        endpoint: String,
        /// The IAM permission missing.
        permission: String,
        /// The service's words, when it sent any (`: <words>`), else empty.
        detail: String,
    },
    /// The common-config cannot be read.
    #[error("ssm:{name} is refused, nothing changed: {errors}")]
    CommonConfig {
        /// The parameter.
        name: String,
        /// Every error, joined.
        errors: String,
    },
    /// No region in the profile or the environment.
    #[error("ssm:{name}: no region found; looked at {looked}")]
    NoRegion {
        /// The parameter.
        name: String,
        /// Where it looked.
        looked: String,
    },
    /// No runtime could be started for the call.
    #[error("ssm:{name}: cannot start the async runtime: {source}")]
    Runtime {
        /// The parameter.
        name: String,
        /// The error.
        source: std::io::Error,
    },
    /// Anything else: an outage, a refused request.
    #[error("ssm:{name} in {region}: {error}")]
    Failed {
        /// The parameter.
        name: String,
        /// The region asked.
        region: String,
        /// The classified failure.
        error: AwsError,
    },
}

/// An SSM client for one region.
#[derive(Debug, Clone)]
pub struct ParameterStore {
    client: aws_sdk_ssm::Client,
    region: String,
    endpoint: String,
}

impl ParameterStore {
    /// A client signing for `region` with the common-config's credentials.
    ///
    /// # Errors
    /// The HTTPS stack (proxy, CA bundle) cannot be built.
    pub async fn new(common: &CommonConfig, region: &str) -> Result<Self, ClientSetupError> {
        let endpoint = common.endpoints.ssm.clone();
        let http = super::http_client_for(endpoint.as_ref(), common)?;
        let (credentials, identity_cache) = super::source_credentials(common, region).await?;
        let mut config = aws_sdk_ssm::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(credentials)
            .identity_cache(identity_cache)
            .http_client(http)
            .timeout_config(super::timeouts())
            // Retries are decided here, through `AwsError::is_retryable`, as everywhere else.
            .retry_config(RetryConfig::disabled());
        if let Some(endpoint) = &endpoint {
            config = config.endpoint_url(&endpoint.url);
        }
        Ok(Self {
            client: aws_sdk_ssm::Client::from_conf(config.build()),
            region: region.to_owned(),
            endpoint: endpoint
                .map_or_else(|| format!("https://ssm.{region}.amazonaws.com"), |e| e.url),
        })
    }

    /// A client with the common-config of `layout` (credentials, proxy, CA, `ssm` endpoint), in
    /// `region`, else the profile's or `AWS_REGION` (as the stock agent finds it before any JSON
    /// is read), for parameter `name`.
    ///
    /// # Errors
    /// The common-config is invalid, no region is found, or the client cannot be built.
    pub async fn for_layout(
        layout: &Layout,
        name: &str,
        region: Option<&str>,
    ) -> Result<Self, ParameterError> {
        let env = Environment::from_process();
        let common_path = layout.common_config_if_present();
        let (common, _) = CommonConfig::load(common_path.as_deref(), &env).map_err(|errors| {
            ParameterError::CommonConfig {
                name: name.to_owned(),
                errors: errors
                    .0
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })?;
        let region = match region {
            Some(region) => region.to_owned(),
            None => crate::config::validate::region_without_json(&common, &env)
                .map(|r| r.name)
                .map_err(|looked| ParameterError::NoRegion {
                    name: name.to_owned(),
                    looked,
                })?,
        };
        Self::new(&common, &region)
            .await
            .map_err(|source| ParameterError::Setup {
                name: name.to_owned(),
                source,
            })
    }

    /// The region asked.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The value of parameter `name` (a name or an ARN), a SecureString decrypted.
    ///
    /// # Errors
    /// See [`ParameterError`]; an outage or a throttle is tried [`ATTEMPTS`] times first.
    pub async fn get(&self, name: &str) -> Result<String, ParameterError> {
        self.with_retries(|| async {
            self.client
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map(|output| output.parameter.and_then(|p| p.value).unwrap_or_default())
                .map_err(|err| AwsError::from_sdk("GetParameter", &self.endpoint, &err))
        })
        .await
        .map_err(|err| self.describe(name, "ssm:GetParameter", err))
    }

    /// Stores `value` as String parameter `name`, replacing it if it exists (as the stock
    /// wizard does).
    ///
    /// # Errors
    /// See [`ParameterError`]; an outage or a throttle is tried [`ATTEMPTS`] times first.
    pub async fn put(
        &self,
        name: &str,
        value: &str,
        description: &str,
    ) -> Result<(), ParameterError> {
        self.with_retries(|| async {
            self.client
                .put_parameter()
                .name(name)
                .value(value)
                .description(description)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .overwrite(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|err| AwsError::from_sdk("PutParameter", &self.endpoint, &err))
        })
        .await
        .map_err(|err| self.describe(name, "ssm:PutParameter", err))
    }

    /// `call` until it succeeds, fails for a reason that does not pass, or has been made
    /// [`ATTEMPTS`] times, with a capped backoff between.
    async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        let mut backoff = crate::ship::retry::Backoff::new(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(4),
        );
        let mut attempt = 1;
        loop {
            match call().await {
                Err(err) if err.is_retryable() && attempt < ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    fn describe(&self, name: &str, action: &str, error: AwsError) -> ParameterError {
        let (name, region, endpoint) =
            (name.to_owned(), self.region.clone(), self.endpoint.clone());
        match (error.kind, error.code.as_deref()) {
            (_, Some("ParameterNotFound")) => ParameterError::NotFound {
                name,
                region,
                endpoint,
            },
            (AwsErrorKind::AccessDenied, _)
            | (_, Some("AccessDeniedException" | "AccessDenied")) => {
                let permission = if error.message.to_ascii_lowercase().contains("kms") {
                    "kms:Decrypt on the parameter's KMS key (a SecureString)".to_owned()
                } else {
                    format!(
                        "{action} on arn:aws:ssm:{region}:<account>:parameter/{}",
                        name.trim_start_matches('/')
                    )
                };
                ParameterError::Denied {
                    name,
                    region,
                    endpoint,
                    permission,
                    // A 403 without an error code (a proxy's or an emulator's page) says nothing more.
                    detail: error
                        .code
                        .as_ref()
                        .map(|_| format!(": {}", error.message))
                        .unwrap_or_default(),
                }
            }
            _ => ParameterError::Failed {
                name,
                region,
                error,
            },
        }
    }
}
