//! The AWS adapters: S3 for objects, DynamoDB for metadata (media, jobs, idempotency), SQS for
//! queues, EventBridge for lifecycle events, Lambda event source mappings for pausing lanes,
//! CloudFront for invalidations.
//!
//! Every client is built from one [`SdkConfig`]; the endpoint comes from the standard
//! `AWS_ENDPOINT_URL` variable, so the same binary talks to AWS or to an emulator (moto).

mod cdn;
mod cdn_metrics;
mod dynamo;
mod events;
mod lanes;
mod s3;
mod share_keys;
mod sqs;

use std::error::Error as StdError;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_smithy_http_client::tls;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use phoenix_domain::StoreError;
use tokio::sync::OnceCell;

pub use cdn::{CdnSettings, CloudFrontCdn};
pub use cdn_metrics::{CLOUDFRONT_METRICS_REGION, CloudWatchCdnMetrics};
pub use dynamo::{DynamoMetadataStore, IndexSpec, KeySpec, TABLE, TableSpec, create_table};
pub use events::EventBridgeBus;
pub use lanes::LambdaLanes;
pub use s3::S3ObjectStore;
pub use share_keys::{load_share_keys, share_keys_from_parameter};
pub use sqs::SqsQueue;

static SDK_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The process's AWS configuration, loaded once (credentials, region, endpoint from the
/// environment) and shared by every client. TLS is rustls on ring.
pub async fn sdk_config() -> SdkConfig {
    SDK_CONFIG.get_or_init(load_sdk_config).await.clone()
}

/// Loads a fresh configuration, bypassing the process-wide cache of [`sdk_config`]. Tests use it:
/// each `#[tokio::test]` has its own runtime, and an HTTP connection pool must not outlive the
/// runtime that opened its connections.
pub async fn load_sdk_config() -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client).load().await
}

/// Where a deployment's data lives, from the environment every function shares:
/// `PHOENIX_BUCKET`, `PHOENIX_TABLE` (required) and `PHOENIX_S3_FORCE_PATH_STYLE` (emulators).
pub struct Deployment {
    pub objects: S3ObjectStore,
    pub metadata: DynamoMetadataStore,
}

impl Deployment {
    pub fn from_env(config: &SdkConfig) -> Result<Self, phoenix_domain::config::ConfigError> {
        use phoenix_domain::config::{env_or, env_required};
        let path_style = env_or("PHOENIX_S3_FORCE_PATH_STYLE", false)?;
        Ok(Self {
            objects: S3ObjectStore::new(config, env_required("PHOENIX_BUCKET")?, path_style),
            metadata: DynamoMetadataStore::new(config, env_required("PHOENIX_TABLE")?),
        })
    }
}

/// The job system's AWS resources, from the environment of the functions that use them (the API
/// and the worker):
/// - `PHOENIX_JOBS_HIGH_QUEUE_URL`, `PHOENIX_JOBS_NORMAL_QUEUE_URL` (required): the lanes;
/// - `PHOENIX_JOBS_HIGH_DLQ_URL`, `PHOENIX_JOBS_NORMAL_DLQ_URL` (optional; the API's stats and
///   redrive need them, the worker does not);
/// - `PHOENIX_INGEST_QUEUE_URL` (optional): the ingest queue, for a function that sends to it too;
/// - `PHOENIX_EVENT_BUS` (required): the bus lifecycle events go to;
/// - `PHOENIX_JOBS_HIGH_MAPPING`, `PHOENIX_JOBS_NORMAL_MAPPING` (optional): the lanes' event source
///   mapping UUIDs, for pause and resume (without one a lane reads as running and refuses to be
///   paused).
///
/// One [`SqsQueue`] knows every queue given, under the domain's names (`QueueName::JOBS_HIGH`, …).
pub struct JobsDeployment {
    pub queue: SqsQueue,
    pub events: EventBridgeBus,
    pub lanes: LambdaLanes,
}

impl JobsDeployment {
    pub fn from_env(config: &SdkConfig) -> Result<Self, phoenix_domain::config::ConfigError> {
        use phoenix_domain::QueueName;
        use phoenix_domain::config::env_required;
        use phoenix_domain::jobs::Lane;

        let optional = |name: &str| {
            phoenix_domain::config::env_or(name, String::new())
                .map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
        };
        let mut urls = std::collections::HashMap::from([
            (QueueName::JOBS_HIGH, env_required("PHOENIX_JOBS_HIGH_QUEUE_URL")?),
            (QueueName::JOBS_NORMAL, env_required("PHOENIX_JOBS_NORMAL_QUEUE_URL")?),
        ]);
        for (queue, name) in [
            (QueueName::JOBS_HIGH_DLQ, "PHOENIX_JOBS_HIGH_DLQ_URL"),
            (QueueName::JOBS_NORMAL_DLQ, "PHOENIX_JOBS_NORMAL_DLQ_URL"),
            (QueueName::INGEST, "PHOENIX_INGEST_QUEUE_URL"),
            (QueueName::BATCHES, "PHOENIX_BATCHES_QUEUE_URL"),
            (QueueName::PUBLISH, "PHOENIX_PUBLISH_QUEUE_URL"),
        ] {
            if let Some(url) = optional(name)? {
                urls.insert(queue, url);
            }
        }
        let mut mappings = std::collections::BTreeMap::new();
        for (lane, name) in [(Lane::High, "PHOENIX_JOBS_HIGH_MAPPING"), (Lane::Normal, "PHOENIX_JOBS_NORMAL_MAPPING")] {
            if let Some(uuid) = optional(name)? {
                mappings.insert(lane, uuid);
            }
        }
        Ok(Self {
            queue: SqsQueue::new(config, urls),
            events: EventBridgeBus::new(config, env_required("PHOENIX_EVENT_BUS")?),
            lanes: LambdaLanes::new(config, mappings),
        })
    }

    /// The queues configured, each with its URL (what a consumer needs to tell which logical
    /// queue an SQS record came from).
    pub fn queue_urls(&self) -> Vec<(phoenix_domain::QueueName, String)> {
        self.queue.urls()
    }
}

/// Error codes that mean "slow down" or "try again", whatever the HTTP status.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "LimitExceededException",
];

/// Error codes that mean the deployment is wrong (missing resource, bad credentials), not the
/// request: an operator must act, so they are reported as `Unavailable`, never as `Invalid`.
const DEPLOYMENT_CODES: &[&str] = &[
    "NoSuchBucket",
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
    "InvalidSecurity",
];

/// Maps an SDK failure that the caller did not handle specifically onto the port's errors:
/// timeouts, dispatch failures, throttling, 5xx and deployment problems are `Unavailable`
/// (with the SDK error in the anyhow chain); a 4xx the service blames on the request is `Invalid`;
/// a request the SDK cannot even build (our bug) is `Internal`.
pub(crate) fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if matches!(err, SdkError::ConstructionFailure(_)) {
        return StoreError::Internal(anyhow::Error::new(err).context(op));
    }
    let client_error = match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or_default();
            let message = ctx.err().message().unwrap_or_default();
            let blamed_on_request = (400..500).contains(&status)
                && !matches!(status, 401 | 403 | 404 | 408 | 429)
                && !TRANSIENT_CODES.contains(&code)
                && !DEPLOYMENT_CODES.contains(&code);
            blamed_on_request.then(|| {
                let code = if code.is_empty() { "error" } else { code };
                if message.is_empty() { format!("{op}: {code}") } else { format!("{op}: {code}: {message}") }
            })
        }
        _ => None,
    };
    match client_error {
        Some(message) => StoreError::Invalid(message),
        None => StoreError::Unavailable(anyhow::Error::new(err).context(op)),
    }
}

/// Whole seconds, rounding a fractional second up (a delay or a visibility is never shortened).
pub(crate) fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
