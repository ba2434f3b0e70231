//! Lambda entry point of the upload processor: config from the environment, one SDK config, the
//! adapters and the processor built once, then every SQS batch handed to `Processor::handle_batch`,
//! which answers with partial batch failures.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use phoenix_domain::Limits;
use phoenix_domain::config::env_or;
use phoenix_ingest::{Processor, ProcessorConfig, presets_from_env};
use phoenix_storage::aws::{Deployment, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = ProcessorConfig {
        limits: Limits::from_env()?,
        concurrency: env_or("PHOENIX_PROCESSOR_CONCURRENCY", ProcessorConfig::default().concurrency)?,
        presets: presets_from_env()?,
        keep_gps: env_or("PHOENIX_KEEP_GPS", false)?,
    };

    let deployment = Deployment::from_env(&sdk_config().await)?;
    let processor = Arc::new(Processor::new(Arc::new(deployment.objects), Arc::new(deployment.metadata), config));
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(processor.handle_batch(event.payload).await)
    }))
    .await
}
