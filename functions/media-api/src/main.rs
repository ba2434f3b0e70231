//! Lambda entry point of the media HTTP API: configuration from the environment, one SDK config,
//! the adapters, then the router `phoenix_api::build` makes, served to API Gateway.

use std::sync::Arc;

use phoenix_api::{AuthMode, Config, Ports};
use phoenix_storage::aws::{Deployment, ingest_queue_from_env, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = sdk_config().await;
    let deployment = Deployment::from_env(&sdk)?;
    let ports = Ports {
        objects: Arc::new(deployment.objects),
        metadata: Arc::new(deployment.metadata),
        queue: Arc::new(ingest_queue_from_env(&sdk)?),
    };
    phoenix_http::lambda::run(phoenix_api::build(config, ports, AuthMode::ApiGateway)).await
}
