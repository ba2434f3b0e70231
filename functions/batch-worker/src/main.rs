//! Lambda entry point of the batch worker: config from the environment, one SDK config, the
//! adapters and the worker built once, then served by the shared SQS batch adapter (partial batch
//! failures; a `Later` failure's wait set through the message's visibility).

use std::sync::Arc;

use phoenix_batch_worker::{BatchWorkerConfig, BatchWorkerPorts};
use phoenix_domain::QueueName;
use phoenix_domain::config::env_required;
use phoenix_storage::aws::{Deployment, EventBridgeBus, SqsQueue, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = BatchWorkerConfig::from_env()?;
    let sdk = sdk_config().await;
    let deployment = Deployment::from_env(&sdk)?;
    let urls = vec![
        (QueueName::BATCHES, env_required("PHOENIX_BATCHES_QUEUE_URL")?),
        (QueueName::BATCHES_DLQ, env_required("PHOENIX_BATCHES_DLQ_URL")?),
    ];
    let queue: Arc<dyn phoenix_domain::Queue> = Arc::new(SqsQueue::new(&sdk, urls.iter().cloned().collect()));
    let events = EventBridgeBus::new(&sdk, env_required("PHOENIX_EVENT_BUS")?);
    let ports =
        BatchWorkerPorts { metadata: Arc::new(deployment.metadata), queue: queue.clone(), events: Arc::new(events) };
    let retimer = phoenix_consumer::Retimer::new(queue, &urls);
    phoenix_consumer::run_lambda_retimed(phoenix_batch_worker::build(config, ports), 1, retimer).await
}
