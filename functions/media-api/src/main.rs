//! Lambda entry point of the media HTTP API: config from the environment, one SDK config, the
//! adapters, then `lambda_http::run` over the router. Everything else lives in `phoenix-api`.

use std::sync::Arc;
use std::time::Duration;

use phoenix_api::{AppState, AuthMode, DerivativeLinks};
use phoenix_domain::Limits;
use phoenix_domain::config::env_or;
use phoenix_storage::aws::{Deployment, ingest_queue_from_env, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let link_ttl = Duration::from_secs(env_or("PHOENIX_DERIVATIVE_URL_TTL_SECS", 3600)?);
    let purge_delay = Duration::from_secs(env_or("PHOENIX_PURGE_DELAY_SECS", 60)?);

    let config = sdk_config().await;
    let deployment = Deployment::from_env(&config)?;
    let state = AppState {
        objects: Arc::new(deployment.objects),
        metadata: Arc::new(deployment.metadata),
        limits: Limits::from_env()?,
        auth: AuthMode::ApiGateway,
        links: DerivativeLinks::Presigned(link_ttl),
        queue: Arc::new(ingest_queue_from_env(&config)?),
        purge_delay,
    };
    lambda_http::run(phoenix_api::router(state)).await
}
