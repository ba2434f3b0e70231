//! Lambda entry point of the media HTTP API: configuration from the environment, one SDK config,
//! the adapters, then the router `phoenix_api::build` makes, served to API Gateway.

use std::sync::Arc;

use phoenix_api::{AuthMode, Config, DerivativeLinks, Ports};
use phoenix_storage::aws::{
    CdnSettings, CloudWatchCdnMetrics, Deployment, JobsDeployment, load_share_keys, sdk_config,
};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let mut config = Config::from_env()?;
    let sdk = sdk_config().await;
    // With a CDN, derivative links are its URLs (`https://{domain}/derived/…`), and the cache
    // statistics read its CloudWatch metrics; without one, presigned GETs and the routes' own
    // counts. The share links' keys: the environment, or the SSM SecureString it names. Both
    // read once, here, at the same time (each may be an SSM call on the cold start).
    let share_keys = async {
        match config.galleries.share_keys.is_none() {
            true => load_share_keys(&sdk).await,
            false => Ok(None),
        }
    };
    let (cdn, share_keys) = tokio::try_join!(CdnSettings::load(&sdk), share_keys)?;
    if let Some(keys) = share_keys {
        config.galleries.share_keys = Some(keys);
    }
    if let Some(cdn) = &cdn {
        config.links = DerivativeLinks::PublicBase(cdn.base_url());
    }
    let cdn_metrics = cdn.map(|cdn| {
        Arc::new(CloudWatchCdnMetrics::new(&sdk, cdn.distribution_id)) as Arc<dyn phoenix_domain::ports::CdnMetrics>
    });
    let deployment = Deployment::from_env(&sdk)?;
    // The API sends maintenance commands to the ingest queue: required here, optional for the worker.
    phoenix_domain::config::env_required("PHOENIX_INGEST_QUEUE_URL")?;
    let jobs = JobsDeployment::from_env(&sdk)?;
    let ports = Ports {
        objects: Arc::new(deployment.objects),
        metadata: Arc::new(deployment.metadata),
        queue: Arc::new(jobs.queue),
        events: Arc::new(jobs.events),
        lanes: Arc::new(jobs.lanes),
        cdn_metrics,
    };
    phoenix_http::lambda::run(phoenix_api::build(config, ports, AuthMode::ApiGateway)).await
}
