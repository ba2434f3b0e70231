//! Lambda entry point of the upload processor: config from the environment, one SDK config, the
//! adapters and the processor built once, then served by the shared SQS batch adapter, which
//! answers every batch with partial batch failures.

use std::collections::HashMap;
use std::sync::Arc;

use phoenix_domain::QueueName;
use phoenix_domain::config::env_required;
use phoenix_storage::aws::{Deployment, SqsQueue, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = phoenix_ingest::Config::from_env()?;
    let sdk = sdk_config().await;
    let deployment = Deployment::from_env(&sdk)?;
    // A regeneration asks the media's galleries to republish, through the publish queue.
    let publish =
        SqsQueue::new(&sdk, HashMap::from([(QueueName::PUBLISH, env_required("PHOENIX_PUBLISH_QUEUE_URL")?)]));
    let processor = phoenix_ingest::build(config, Arc::new(deployment.objects), Arc::new(deployment.metadata))
        .with_publish_queue(Arc::new(publish));
    let concurrency = processor.concurrency();
    phoenix_consumer::run_lambda(processor, concurrency).await
}
