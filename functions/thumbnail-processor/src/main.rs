//! Lambda entry point of the upload processor: config from the environment, one SDK config, the
//! adapters and the processor built once, then served by the shared SQS batch adapter, which
//! answers every batch with partial batch failures.

use std::sync::Arc;

use phoenix_storage::aws::{Deployment, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = phoenix_ingest::Config::from_env()?;
    let deployment = Deployment::from_env(&sdk_config().await)?;
    let processor = phoenix_ingest::build(config, Arc::new(deployment.objects), Arc::new(deployment.metadata));
    let concurrency = processor.concurrency();
    phoenix_consumer::run_lambda(processor, concurrency).await
}
