//! The HTTPS client every AWS request goes through: rustls with the system roots plus an
//! optional private CA, and the configured proxy (HTTPS through CONNECT, `no_proxy` honoured).
//!
//! Owns TLS trust and proxy selection. TLS verification is always on: there is no switch to turn
//! it off, and the only way to trust a custom certificate is `ca_bundle_path`. It knows nothing
//! about which service or operation a request is for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_http_client::Connector;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use crate::config::common::{ProxySettings, redact_url};

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// The CA bundle is unreadable.
    #[error("cannot read ca bundle {path}: {reason}")]
    CaBundleUnreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The CA bundle holds no PEM certificate or does not parse.
    #[error("ca bundle {path} is not a pem certificate bundle: {reason}")]
    CaBundleInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A proxy URL was refused.
    #[error("invalid proxy {url}: {reason}")]
    Proxy {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// Builds the client for requests to `endpoint_scheme` (`"https"` or `"http"`): the matching
/// proxy from `proxy`, and the system roots plus `ca_bundle`.
///
/// # Errors
/// An unreadable or invalid CA bundle, or a proxy URL the client refuses.
pub fn build_http_client(
    endpoint_scheme: &str,
    proxy: &ProxySettings,
    ca_bundle: Option<&Path>,
) -> Result<SharedHttpClient, HttpSetupError> {
    let tls_context = tls_context(ca_bundle)?;
    let proxy_url = if endpoint_scheme == "http" {
        &proxy.http_proxy
    } else {
        &proxy.https_proxy
    };
    let proxy_config = match proxy_url {
        None => None,
        Some(url) => {
            let config = if endpoint_scheme == "http" {
                ProxyConfig::http(url.as_str())
            } else {
                ProxyConfig::https(url.as_str())
            };
            let config = config.map_err(|err| HttpSetupError::Proxy {
                url: redact_url(url),
                reason: err.to_string(),
            })?;
            Some(match &proxy.no_proxy {
                Some(rules) => config.no_proxy(rules),
                None => config,
            })
        }
    };
    Ok(SharedHttpClient::new(CwHttpClient {
        tls_context,
        proxy_config,
        connectors: Arc::default(),
    }))
}

fn tls_context(ca_bundle: Option<&Path>) -> Result<TlsContext, HttpSetupError> {
    let mut trust = TrustStore::empty().with_native_roots(true);
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|err| HttpSetupError::CaBundleUnreadable {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(HttpSetupError::CaBundleInvalid {
                path: path.to_owned(),
                reason: "no BEGIN CERTIFICATE block".to_owned(),
            });
        }
        trust = trust.with_pem_certificate(pem);
    }
    TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|err| HttpSetupError::CaBundleInvalid {
            path: ca_bundle.map(Path::to_owned).unwrap_or_default(),
            reason: err.to_string(),
        })
}

/// Hands the SDK one connector per timeout setting, each with our TLS and proxy configuration.
///
/// The SDK's own `Builder` cannot take a proxy, so this small [`HttpClient`] builds connectors
/// with [`Connector::builder`], which can.
/// Connectors by (connect timeout, read timeout).
type ConnectorCache =
    Arc<Mutex<HashMap<(Option<Duration>, Option<Duration>), SharedHttpConnector>>>;

#[derive(Clone)]
struct CwHttpClient {
    tls_context: TlsContext,
    proxy_config: Option<ProxyConfig>,
    connectors: ConnectorCache,
}

/// Written by hand: the proxy configuration's own `Debug` shows its URL with the password,
/// and the SDK prints this client's `Debug` at trace level.
impl std::fmt::Debug for CwHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CwHttpClient")
            .field(
                "proxy",
                &self.proxy_config.as_ref().map(|_| "set (shown nowhere)"),
            )
            .finish_non_exhaustive()
    }
}

impl HttpClient for CwHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        // The map only caches connectors; after a panic elsewhere it is still consistent.
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connectors
            .entry(key)
            .or_insert_with(|| {
                let mut builder = Connector::builder();
                builder.set_connector_settings(Some(settings.clone()));
                builder.set_sleep_impl(components.sleep_impl());
                builder.set_proxy_config(self.proxy_config.clone());
                let connector = builder
                    .enable_tcp_nodelay(true)
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .tls_context(self.tls_context.clone())
                    .build();
                SharedHttpConnector::new(connector)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_bundle_is_named() {
        let err = build_http_client(
            "https",
            &ProxySettings::default(),
            Some(Path::new("/nonexistent/ca.pem")),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read ca bundle /nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = build_http_client("https", &ProxySettings::default(), Some(&path)).unwrap_err();
        assert!(
            err.to_string().contains("is not a pem certificate bundle"),
            "{err}"
        );
    }

    /// L2 of issue 23: `RUST_LOG=trace` printed the derived `Debug` of this client, password
    /// included.
    #[test]
    fn the_client_debug_never_shows_the_proxy_password() {
        let client = CwHttpClient {
            tls_context: tls_context(None).unwrap(),
            proxy_config: Some(ProxyConfig::https("http://user:pw-S3cret@proxy:3128").unwrap()),
            connectors: Arc::default(),
        };
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("S3cret") && shown.contains("proxy"),
            "{shown}"
        );
        let shared = format!("{:?}", SharedHttpClient::new(client));
        assert!(!shared.contains("S3cret"), "{shared}");
    }

    #[test]
    fn a_bad_proxy_url_hides_its_password() {
        let proxy = ProxySettings {
            https_proxy: Some("ftp://u:pw@proxy:21".into()),
            ..Default::default()
        };
        let err = build_http_client("https", &proxy, None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("u:***@proxy") && !text.contains("pw"),
            "{text}"
        );
    }
}
