//! [`Cdn`] on CloudFront: one `CreateInvalidation` per change set on the deployment's
//! distribution, with the change set's caller reference (CloudFront answers a repeated reference
//! with the first invalidation, and refuses it for other paths). And [`CdnSettings`], which names
//! the distribution and its domain.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudfront::operation::create_invalidation::CreateInvalidationError;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use phoenix_domain::config::{ConfigError, env_or};
use phoenix_domain::ports::{Cdn, CdnError, Invalidation, StoreError};
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::classify;

#[derive(Debug, Clone)]
pub struct CloudFrontCdn {
    client: aws_sdk_cloudfront::Client,
    distribution: Distribution,
}

#[derive(Debug, Clone)]
enum Distribution {
    Id(String),
    /// Named by an SSM parameter ([`CdnSettings`]), read at the first invalidation and kept once
    /// found: a parameter not written yet (the stack still creating the distribution) is
    /// `Unavailable`, so the invalidation is retried rather than dropped.
    Parameter {
        ssm: aws_sdk_ssm::Client,
        name: String,
        id: Arc<OnceCell<String>>,
    },
}

impl CloudFrontCdn {
    /// Invalidates paths of the distribution `distribution_id`.
    pub fn new(config: &SdkConfig, distribution_id: impl Into<String>) -> Self {
        Self::from_client(aws_sdk_cloudfront::Client::new(config), distribution_id)
    }

    pub fn from_client(client: aws_sdk_cloudfront::Client, distribution_id: impl Into<String>) -> Self {
        Self { client, distribution: Distribution::Id(distribution_id.into()) }
    }

    /// The adapter of a function's environment: `PHOENIX_CDN_DISTRIBUTION_ID`, or else the
    /// distribution `PHOENIX_CDN_PARAMETER` names (read at the first invalidation, see
    /// [`CdnSettings`]); neither set: `None`.
    pub fn from_env(config: &SdkConfig) -> Result<Option<Self>, ConfigError> {
        if let Some(id) = optional("PHOENIX_CDN_DISTRIBUTION_ID")? {
            checked_id(&id, "PHOENIX_CDN_DISTRIBUTION_ID")?;
            return Ok(Some(Self::new(config, id)));
        }
        Ok(optional("PHOENIX_CDN_PARAMETER")?.map(|name| Self::from_parameter(config, name)))
    }

    /// Invalidates paths of the distribution the SSM parameter `name` names (as [`CdnSettings`]),
    /// read at the first invalidation and kept once found.
    pub fn from_parameter(config: &SdkConfig, name: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_cloudfront::Client::new(config),
            distribution: Distribution::Parameter {
                ssm: aws_sdk_ssm::Client::new(config),
                name: name.into(),
                id: Arc::new(OnceCell::new()),
            },
        }
    }

    pub fn client(&self) -> &aws_sdk_cloudfront::Client {
        &self.client
    }

    async fn distribution_id(&self) -> Result<&str, CdnError> {
        match &self.distribution {
            Distribution::Id(id) => Ok(id),
            Distribution::Parameter { ssm, name, id } => id
                .get_or_try_init(|| async {
                    match CdnSettings::from_parameter(ssm, name).await {
                        Ok(Some(settings)) => Ok(settings.distribution_id),
                        Ok(None) => Err(CdnError::Unavailable(anyhow::anyhow!(
                            "the CDN's parameter {name:?} does not exist (yet)"
                        ))),
                        Err(e) => Err(CdnError::Unavailable(e.into())),
                    }
                })
                .await
                .map(String::as_str),
        }
    }
}

#[async_trait]
impl Cdn for CloudFrontCdn {
    async fn invalidate(&self, invalidation: &Invalidation) -> Result<String, CdnError> {
        let items: Vec<String> = invalidation.paths().iter().map(|p| p.as_str().to_owned()).collect();
        let quantity = i32::try_from(items.len()).map_err(|e| CdnError::Internal(e.into()))?;
        let paths = Paths::builder().quantity(quantity).set_items(Some(items)).build().map_err(internal)?;
        let batch = InvalidationBatch::builder()
            .paths(paths)
            .caller_reference(invalidation.reference().as_str())
            .build()
            .map_err(internal)?;
        let output = self
            .client
            .create_invalidation()
            .distribution_id(self.distribution_id().await?)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(map_error)?;
        let created = output.invalidation().ok_or_else(|| {
            CdnError::Unavailable(anyhow::anyhow!("cloudfront CreateInvalidation answered without an invalidation"))
        })?;
        Ok(created.id().to_owned())
    }
}

fn internal(e: impl Into<anyhow::Error>) -> CdnError {
    CdnError::Internal(e.into())
}

/// CloudFront's refusals that say something specific; the rest as every adapter classifies them
/// (throttling, 5xx, a missing distribution or access denied: `Unavailable`; another 4xx:
/// `Invalid`).
fn map_error(
    err: aws_sdk_cloudfront::error::SdkError<CreateInvalidationError, aws_sdk_cloudfront::config::http::HttpResponse>,
) -> CdnError {
    const OP: &str = "cloudfront CreateInvalidation";
    match err.as_service_error() {
        Some(CreateInvalidationError::TooManyInvalidationsInProgress(_)) => {
            return CdnError::TooManyInProgress(anyhow::Error::new(err).context(OP));
        }
        // Not in CloudFront's model of this operation, so matched by its code.
        Some(e) if e.code() == Some("InvalidationBatchAlreadyExists") => {
            return CdnError::Invalid(format!(
                "{OP}: the caller reference was already used for other paths: {}",
                e.message().unwrap_or_default()
            ));
        }
        _ => {}
    }
    match classify(OP, err) {
        StoreError::Invalid(message) => CdnError::Invalid(message),
        StoreError::Internal(e) => CdnError::Internal(e),
        StoreError::Unavailable(e) => CdnError::Unavailable(e),
        other => CdnError::Unavailable(anyhow::Error::new(other)),
    }
}

/// The distribution a deployment's functions invalidate and serve derivatives from, read once at
/// start-up:
/// - `PHOENIX_CDN_DISTRIBUTION_ID` and `PHOENIX_CDN_DOMAIN` (both or neither): the distribution's
///   id and its domain name (`d111111abcdef8.cloudfront.net`, or an alternate domain);
/// - otherwise `PHOENIX_CDN_PARAMETER`: the name of an SSM parameter holding
///   `{"distribution_id": …, "domain": …}`. This is how `template.yaml` passes them to the API
///   function: the distribution sits in front of that function's HTTP API, so the function cannot
///   name the distribution in its own environment (CloudFormation would see a cycle).
///
/// Neither set: no CDN (local runs, tests).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CdnSettings {
    pub distribution_id: String,
    /// A host name, without scheme or path.
    pub domain: String,
}

impl CdnSettings {
    pub async fn load(config: &SdkConfig) -> Result<Option<Self>, ConfigError> {
        match (optional("PHOENIX_CDN_DISTRIBUTION_ID")?, optional("PHOENIX_CDN_DOMAIN")?) {
            (Some(distribution_id), Some(domain)) => {
                return Self::checked(distribution_id, domain, "PHOENIX_CDN_DOMAIN").map(Some);
            }
            (None, None) => {}
            (Some(_), None) => return Err(error("PHOENIX_CDN_DOMAIN", "is required with PHOENIX_CDN_DISTRIBUTION_ID")),
            (None, Some(_)) => return Err(error("PHOENIX_CDN_DISTRIBUTION_ID", "is required with PHOENIX_CDN_DOMAIN")),
        }
        match optional("PHOENIX_CDN_PARAMETER")? {
            Some(name) => Self::from_parameter(&aws_sdk_ssm::Client::new(config), &name).await,
            None => Ok(None),
        }
    }

    /// Reads the settings from the SSM parameter `name`. A parameter that does not exist (yet: a
    /// stack update that adds the distribution writes it last) is no CDN, with a warning (the API
    /// then hands out presigned links; [`CloudFrontCdn::from_env`] asks again at its next
    /// invalidation); a parameter that cannot be read or parsed is an error.
    pub async fn from_parameter(client: &aws_sdk_ssm::Client, name: &str) -> Result<Option<Self>, ConfigError> {
        const VAR: &str = "PHOENIX_CDN_PARAMETER";
        let output = match client.get_parameter().name(name).send().await {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => {
                tracing::warn!(parameter = name, "the CDN's parameter does not exist (yet): running without the CDN");
                return Ok(None);
            }
            Err(e) => {
                return Err(error(VAR, &format!("reading the SSM parameter {name:?}: {:#}", anyhow::Error::new(e))));
            }
        };
        let value = output.parameter().and_then(|p| p.value()).unwrap_or_default();
        let settings: Self = serde_json::from_str(value).map_err(|e| {
            error(VAR, &format!("the SSM parameter {name:?} must be {{\"distribution_id\", \"domain\"}}: {e}"))
        })?;
        Self::checked(settings.distribution_id, settings.domain, VAR).map(Some)
    }

    fn checked(distribution_id: String, domain: String, var: &str) -> Result<Self, ConfigError> {
        let host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if domain.is_empty() || !domain.chars().all(host_char) || domain.starts_with(['.', '-']) {
            return Err(error(
                var,
                &format!("{domain:?} must be a host name, without scheme or path (e.g. d111111abcdef8.cloudfront.net)"),
            ));
        }
        checked_id(&distribution_id, var)?;
        Ok(Self { distribution_id, domain: domain.to_ascii_lowercase() })
    }

    /// Where the distribution serves paths from: `https://{domain}` (derivatives are
    /// `{base_url}/derived/…`).
    pub fn base_url(&self) -> String {
        format!("https://{}", self.domain)
    }

    /// The adapter invalidating this distribution.
    pub fn cdn(&self, config: &SdkConfig) -> CloudFrontCdn {
        CloudFrontCdn::new(config, self.distribution_id.clone())
    }
}

fn optional(name: &str) -> Result<Option<String>, ConfigError> {
    env_or(name, String::new()).map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
}

fn checked_id(distribution_id: &str, var: &str) -> Result<(), ConfigError> {
    if distribution_id.is_empty() || !distribution_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(error(var, &format!("distribution id {distribution_id:?} must be letters and digits")));
    }
    Ok(())
}

fn error(name: &str, message: &str) -> ConfigError {
    ConfigError { name: name.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    //! CloudFront's refusals that the emulator never gives (it has no invalidation limits and no
    //! throttling), answered by a stand-in that speaks CloudFront's documented error format, so the
    //! SDK parses them as it parses CloudFront's.

    use aws_sdk_cloudfront::config::retry::RetryConfig;
    use aws_sdk_cloudfront::config::{BehaviorVersion, Credentials, Region};
    use phoenix_domain::ports::{CallerReference, CdnPath};

    use super::*;

    /// A server answering every request with `status` and CloudFront's error document for `code`
    /// (a plain thread: it outlives the test's runtime harmlessly).
    fn refusing(status: u16, code: &'static str) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            for mut socket in listener.incoming().flatten() {
                // Headers, then the body the request declares.
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let n = socket.read(&mut buffer).unwrap_or(0);
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                let body = format!(
                    "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\
                     <Error><Type>Sender</Type><Code>{code}</Code><Message>refused by the stand-in</Message></Error>\
                     <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
                );
                let response = format!(
                    "HTTP/1.1 {status} Refused\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes());
            }
        });
        format!("http://{address}")
    }

    fn cdn(endpoint: String) -> CloudFrontCdn {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_sdk_cloudfront::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .http_client(http_client)
            .build();
        CloudFrontCdn::from_client(aws_sdk_cloudfront::Client::from_conf(config), "E2QWRUHEXAMPLE")
    }

    fn invalidation() -> Invalidation {
        Invalidation::new(CallerReference::parse("gallery-g1-v2").unwrap(), [CdnPath::parse("/g/summer").unwrap()])
            .unwrap()
    }

    #[tokio::test]
    async fn too_many_invalidations_in_progress_is_transient_with_a_wait() {
        let cdn = cdn(refusing(400, "TooManyInvalidationsInProgress"));
        match cdn.invalidate(&invalidation()).await {
            Err(e @ CdnError::TooManyInProgress(_)) => {
                assert!(e.is_transient());
                assert_eq!(e.retry_after(), Some(phoenix_domain::ports::cdn::BUSY_RETRY_AFTER));
            }
            other => panic!("TooManyInvalidationsInProgress must be TooManyInProgress, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn throttling_and_failures_are_unavailable() {
        for (status, code) in [(400, "Throttling"), (503, "ServiceUnavailable"), (500, "InternalError")] {
            let cdn = cdn(refusing(status, code));
            match cdn.invalidate(&invalidation()).await {
                Err(CdnError::Unavailable(_)) => {}
                other => panic!("{status} {code} must be Unavailable, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_reused_reference_and_bad_arguments_are_final() {
        for (status, code) in
            [(409, "InvalidationBatchAlreadyExists"), (400, "InvalidArgument"), (400, "BatchTooLarge")]
        {
            let cdn = cdn(refusing(status, code));
            match cdn.invalidate(&invalidation()).await {
                Err(e @ CdnError::Invalid(_)) => assert!(!e.is_transient()),
                other => panic!("{status} {code} must be Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn settings_name_a_host_and_an_id() {
        let ok = CdnSettings::checked("E2QWRUHEXAMPLE".into(), "Media.Example.com".into(), "X").unwrap();
        assert_eq!(ok.base_url(), "https://media.example.com");
        for (id, domain) in [
            ("E1", "https://d1.cloudfront.net"),
            ("E1", "d1.cloudfront.net/"),
            ("E1", ""),
            ("", "d1.cloudfront.net"),
            ("E-1", "d1.net"),
        ] {
            assert!(CdnSettings::checked(id.into(), domain.into(), "X").is_err(), "{id:?} {domain:?} is refused");
        }
    }

    /// The template and this module agree: the API function names the parameter the stack
    /// writes, the parameter holds what [`CdnSettings`] reads, and the CDN routes the public
    /// paths to the API and the derivatives to the bucket.
    #[test]
    fn the_template_wires_the_cdn_this_module_reads() {
        use serde_yaml::Value;
        const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
        let raw = std::fs::read_to_string(TEMPLATE).expect("read template.yaml");
        let template: Value = serde_yaml::from_str(&raw).expect("template.yaml parses");
        let resources = &template["Resources"];
        let sub = |v: &Value| match v {
            Value::Tagged(t) if t.tag == "!Sub" => t.value.as_str().map(str::to_owned),
            _ => None,
        };

        let parameter = &resources["CdnParameter"]["Properties"];
        let env = &resources["MediaApiFunction"]["Properties"]["Environment"]["Variables"];
        assert_eq!(env["PHOENIX_CDN_PARAMETER"], parameter["Name"], "the API names the stack's parameter");
        let value = sub(&parameter["Value"]).expect("the parameter's value is a !Sub");
        let value = value
            .replace("${CdnDistribution.DomainName}", "d111111abcdef8.cloudfront.net")
            .replace("${CdnDistribution}", "E2QWRUHEXAMPLE");
        let settings: CdnSettings = serde_json::from_str(&value).expect("the parameter holds CdnSettings");
        assert_eq!(settings.distribution_id, "E2QWRUHEXAMPLE");
        assert_eq!(settings.domain, "d111111abcdef8.cloudfront.net");

        let config = &resources["CdnDistribution"]["Properties"]["DistributionConfig"];
        let behaviors: std::collections::BTreeMap<&str, (&str, &str)> = config["CacheBehaviors"]
            .as_sequence()
            .expect("cache behaviors")
            .iter()
            .map(|b| {
                let policy = b["CachePolicyId"].as_str().unwrap_or("(a policy of the stack)");
                (b["PathPattern"].as_str().unwrap(), (b["TargetOriginId"].as_str().unwrap(), policy))
            })
            .collect();
        const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
        assert_eq!(behaviors["/v1/public/*"].0, "api");
        assert_eq!(behaviors["/g/*"].0, "api");
        assert_eq!(behaviors["/s/*"], ("api", CACHING_DISABLED), "share links go to the API, never cached");
        assert_eq!(behaviors["/derived/*"].0, "derivatives");
        assert_ne!(behaviors["/g/*"].1, CACHING_DISABLED, "published galleries are cached");
        assert_eq!(config["HttpVersion"].as_str(), Some("http2and3"));
    }
}
