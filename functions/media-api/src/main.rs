//! Lambda entry point of the media HTTP API: configuration from the environment, one SDK config,
//! the adapters, then the router `phoenix_api::build` makes, served to API Gateway.

use std::sync::Arc;

use phoenix_api::{AuthMode, Config, Ports};
use phoenix_storage::aws::{Deployment, JobsDeployment, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = sdk_config().await;
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
    };
    phoenix_http::lambda::run(phoenix_api::build(config, ports, AuthMode::ApiGateway)).await
}
