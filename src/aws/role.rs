//! `credentials.role_arn`: the credentials of a role assumed with the profile's own keys, as
//! the stock agent assumes it for the section that names it (or for every section, at agent
//! level).
//!
//! Owns the STS client (the common-config's proxy and CA, the `sts` endpoint from
//! `[endpoints]` or `AWS_ENDPOINT_URL_STS`, else the region's STS) and the stock fallback from a
//! regional STS that is turned off to the partition's primary region. It keeps each role's
//! session and renews it `REFRESH_BEFORE_EXPIRY` before it ends, so every client signing as a
//! role shares one session and a failed renewal leaves the session to its end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use aws_types::region::Region;

use super::ClientSetupError;
use crate::config::CommonConfig;

/// How long before they expire assumed credentials are renewed: a request signed just before
/// the end of a session must still arrive within it, retries included.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The session name cwlite's AssumeRole calls give (visible in the role account's CloudTrail).
pub const SESSION_NAME: &str = "cwlite";

/// How long a session is asked for: STS's own default, an hour.
pub const SESSION_LENGTH: Duration = Duration::from_secs(3600);

/// Environment variable that replaces [`SESSION_LENGTH`] with a whole number of seconds (the
/// tests ask for sessions of seconds, to see them renewed).
pub const SESSION_LENGTH_ENV: &str = "CWLITE_ROLE_SESSION_SECS";

/// The session length for the value of [`SESSION_LENGTH_ENV`]: whole seconds from 1 to 43,200
/// (STS's maximum), else [`SESSION_LENGTH`].
pub fn session_length(setting: Option<&str>) -> Duration {
    setting
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|secs| (1..=43_200).contains(secs))
        .map_or(SESSION_LENGTH, Duration::from_secs)
}

/// Credentials of one role, assumed with `source`.
#[derive(Debug, Clone)]
pub struct RoleCredentials {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    role_arn: String,
    regional: AssumeRoleProvider,
    /// The partition's primary region, when no endpoint is configured: used for good once the
    /// regional STS answers that it is turned off (RegionDisabledException), as the stock agent
    /// does.
    primary: Option<AssumeRoleProvider>,
    use_primary: AtomicBool,
    /// How long before its end a session is renewed: [`REFRESH_BEFORE_EXPIRY`], or a third of
    /// a shorter session.
    renew_before: Duration,
    /// The current session, and when a renewal that failed may be tried again; the lock also
    /// makes concurrent callers wait for one renewal.
    session: tokio::sync::Mutex<(Option<Credentials>, Option<std::time::SystemTime>)>,
}

/// How long a failed renewal waits before the next try while the current session still runs:
/// not one STS call (and one wait for an unreachable STS) per signed request.
pub const RENEWAL_RETRY: Duration = Duration::from_secs(30);

impl RoleCredentials {
    /// Credentials of `role_arn`, assumed through STS in `region` (or the configured `sts`
    /// endpoint) with `source`.
    ///
    /// # Errors
    /// The HTTPS stack (proxy, CA bundle) cannot be built.
    pub async fn new(
        role_arn: &str,
        source: SharedCredentialsProvider,
        region: &str,
        common: &CommonConfig,
    ) -> Result<Self, ClientSetupError> {
        let endpoint = common.endpoints.sts.as_ref();
        let http = super::http_client_for(endpoint, common)?;
        let length = session_length(std::env::var(SESSION_LENGTH_ENV).ok().as_deref());
        let provider = |region: &str| {
            let mut sdk = aws_types::SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.to_owned()))
                .credentials_provider(source.clone())
                // The profile's provider reads its file on every call: a rotated key is used
                // for the next AssumeRole, not after the SDK's 15-minute cache.
                .identity_cache(aws_config::identity::IdentityCache::no_cache())
                .http_client(http.clone())
                .timeout_config(super::timeouts())
                // A refused or failed AssumeRole fails the request it was for; whether to
                // send that again is the shipper's decision, as for every other failure.
                .retry_config(RetryConfig::disabled())
                .time_source(aws_smithy_async::time::SharedTimeSource::default())
                .sleep_impl(
                    aws_smithy_async::rt::sleep::default_async_sleep().expect("tokio sleep"),
                );
            if let Some(endpoint) = endpoint {
                sdk = sdk.endpoint_url(&endpoint.url);
            }
            let sdk = sdk.build();
            AssumeRoleProvider::builder(role_arn)
                .session_name(SESSION_NAME)
                .session_length(length)
                .configure(&sdk)
                .build()
        };
        let regional = provider(region).await;
        let primary = match (endpoint, primary_region(region)) {
            (None, primary) if primary != region => Some(provider(primary).await),
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                role_arn: role_arn.to_owned(),
                regional,
                primary,
                use_primary: AtomicBool::new(false),
                renew_before: REFRESH_BEFORE_EXPIRY.min(length / 3),
                session: tokio::sync::Mutex::new((None, None)),
            }),
        })
    }

    /// The role assumed.
    pub fn role_arn(&self) -> &str {
        &self.inner.role_arn
    }

    /// The current session while it has more than `renew_before` left, else a new one; a
    /// failed renewal keeps the current session to its end.
    async fn credentials(&self) -> aws_credential_types::provider::Result {
        let mut guard = self.inner.session.lock().await;
        let (session, retry_at) = &mut *guard;
        let now = std::time::SystemTime::now();
        let ends_after = |credentials: &Credentials, at: std::time::SystemTime| {
            credentials.expiry().is_none_or(|end| end > at)
        };
        if let Some(current) = session.as_ref()
            && (ends_after(current, now + self.inner.renew_before)
                || (retry_at.is_some_and(|at| now < at) && ends_after(current, now)))
        {
            return Ok(current.clone());
        }
        match self.assume().await {
            Ok(fresh) => {
                tracing::info!(
                    role = %self.inner.role_arn,
                    access_key_id = %fresh.access_key_id(),
                    expires_in_secs = fresh.expiry().and_then(|end| end.duration_since(now).ok()).map_or(0, |d| d.as_secs()),
                    "role session started"
                );
                *session = Some(fresh.clone());
                *retry_at = None;
                Ok(fresh)
            }
            Err(err) => match session.as_ref().filter(|current| ends_after(current, now)) {
                Some(current) => {
                    tracing::warn!(role = %self.inner.role_arn, retry_in_secs = RENEWAL_RETRY.as_secs(), "cannot renew the role session ({err}); the current one is used meanwhile, to its end at most");
                    *retry_at = Some(now + RENEWAL_RETRY);
                    Ok(current.clone())
                }
                None => Err(err),
            },
        }
    }

    async fn assume(&self) -> aws_credential_types::provider::Result {
        let inner = &self.inner;
        if let Some(primary) = &inner.primary
            && inner.use_primary.load(Ordering::Relaxed)
        {
            return primary
                .provide_credentials()
                .await
                .map_err(|e| self.named(e));
        }
        match inner.regional.provide_credentials().await {
            Err(err) if is_region_disabled(&err) && inner.primary.is_some() => {
                tracing::info!(
                    role = %inner.role_arn,
                    "the regional STS endpoint is turned off for this account; assuming the role through the partition's primary region from now on"
                );
                inner.use_primary.store(true, Ordering::Relaxed);
                let primary = inner.primary.as_ref().expect("checked above");
                primary
                    .provide_credentials()
                    .await
                    .map_err(|e| self.named(e))
            }
            other => other.map_err(|e| self.named(e)),
        }
    }

    /// Names the role in a failure, with the permission it needs.
    fn named(&self, err: CredentialsError) -> CredentialsError {
        let detail = super::describe_credentials_error(&err);
        CredentialsError::provider_error(format!(
            "cannot assume role {} (the profile's keys need sts:AssumeRole on it, and its trust policy must allow them): {detail}",
            self.inner.role_arn
        ))
    }
}

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

/// The primary region of `region`'s partition, where STS is always on.
pub fn primary_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "cn-north-1"
    } else if region.starts_with("us-gov-") {
        "us-gov-west-1"
    } else if region.starts_with("us-isob-") {
        "us-isob-east-1"
    } else if region.starts_with("us-iso-") {
        "us-iso-east-1"
    } else {
        "us-east-1"
    }
}

/// Whether STS answered that it is not activated in this region for the account. The SDK
/// hands it on as an invalid configuration whose source is the service's error; its code is in
/// the text of that chain.
fn is_region_disabled(err: &CredentialsError) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(current) = source {
        if format!("{current:?}").contains("RegionDisabledException") {
            return true;
        }
        source = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_is_an_hour_unless_the_environment_names_whole_seconds() {
        assert_eq!(session_length(None), SESSION_LENGTH);
        assert_eq!(session_length(Some("12")), Duration::from_secs(12));
        for bad in ["", "0", "1.5", "43201", "an hour"] {
            assert_eq!(session_length(Some(bad)), SESSION_LENGTH, "{bad:?}");
        }
    }

    #[test]
    fn each_partition_falls_back_to_its_primary_region() {
        assert_eq!(primary_region("eu-west-1"), "us-east-1");
        assert_eq!(primary_region("us-east-1"), "us-east-1");
        assert_eq!(primary_region("cn-northwest-1"), "cn-north-1");
        assert_eq!(primary_region("us-gov-east-1"), "us-gov-west-1");
        assert_eq!(primary_region("us-iso-west-1"), "us-iso-east-1");
        assert_eq!(primary_region("us-isob-east-1"), "us-isob-east-1");
    }

    #[test]
    fn a_region_disabled_answer_is_recognised_in_the_error_chain() {
        #[derive(Debug)]
        struct Service;
        impl std::fmt::Display for Service {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("service error")
            }
        }
        impl std::error::Error for Service {}
        #[derive(Debug)]
        struct RegionDisabledException;
        impl std::fmt::Display for RegionDisabledException {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("STS is not activated in this region")
            }
        }
        impl std::error::Error for RegionDisabledException {}
        assert!(is_region_disabled(
            &CredentialsError::invalid_configuration(RegionDisabledException)
        ));
        assert!(!is_region_disabled(&CredentialsError::provider_error(
            Service
        )));
    }
}
