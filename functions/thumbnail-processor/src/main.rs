//! Lambda entry point of the upload processor: config from the environment, one SDK config, the
//! adapters and the processor built once, then every SQS batch handed to `Processor::handle_batch`,
//! which answers with partial batch failures.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use phoenix_domain::Limits;
use phoenix_domain::config::{env_or, env_required};
use phoenix_ingest::{Processor, ProcessorConfig, presets_from_env};
use phoenix_storage::aws::{DynamoMetadataStore, S3ObjectStore, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let bucket = env_required("PHOENIX_BUCKET")?;
    let table = env_required("PHOENIX_TABLE")?;
    let path_style = env_or("PHOENIX_S3_FORCE_PATH_STYLE", false)?;
    let config = ProcessorConfig {
        limits: Limits::from_env()?,
        concurrency: env_or("PHOENIX_PROCESSOR_CONCURRENCY", ProcessorConfig::default().concurrency)?,
        presets: presets_from_env()?,
        keep_gps: env_or("PHOENIX_KEEP_GPS", false)?,
    };

    let sdk = sdk_config().await;
    let processor = Arc::new(Processor::new(
        Arc::new(S3ObjectStore::new(&sdk, bucket, path_style)),
        Arc::new(DynamoMetadataStore::new(&sdk, table)),
        config,
    ));
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(processor.handle_batch(event.payload).await)
    }))
    .await
}
