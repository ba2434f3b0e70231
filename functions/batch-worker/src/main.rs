//! Lambda entry point of the batch worker, which also runs the publisher
//! ([decision 11](../../../docs/decisions/0011-publisher-in-the-batch-worker.md)): config from the
//! environment, one SDK config, the adapters and both handlers built once, then each SQS batch
//! handed to the handler of the queue it came from (its records' `eventSourceARN`) by the shared
//! SQS batch adapter (partial batch failures; a `Later` failure's wait set through the message's
//! visibility).

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use phoenix_batch_worker::{BatchWorkerConfig, BatchWorkerPorts};
use phoenix_consumer::handle_sqs_batch_retimed;
use phoenix_domain::QueueName;
use phoenix_domain::config::{env_or, env_required};
use phoenix_publisher::{HttpWarmer, NoCdn, PublisherConfig, PublisherPorts};
use phoenix_storage::aws::{CdnSettings, CloudFrontCdn, Deployment, EventBridgeBus, SqsQueue, sdk_config};

/// Galleries of one publish batch handled at once are bounded inside the publisher; messages of
/// a batches-queue batch one at a time (the source's batch size is 1 anyway).
const BATCH_CONCURRENCY: usize = 1;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = BatchWorkerConfig::from_env()?;
    let sdk = sdk_config().await;
    let deployment = Deployment::from_env(&sdk)?;
    let publish_url = env_required("PHOENIX_PUBLISH_QUEUE_URL")?;
    let urls = vec![
        (QueueName::BATCHES, env_required("PHOENIX_BATCHES_QUEUE_URL")?),
        (QueueName::BATCHES_DLQ, env_required("PHOENIX_BATCHES_DLQ_URL")?),
        (QueueName::PUBLISH, publish_url.clone()),
        (QueueName::PUBLISH_DLQ, env_required("PHOENIX_PUBLISH_DLQ_URL")?),
    ];
    let queue: Arc<dyn phoenix_domain::Queue> = Arc::new(SqsQueue::new(&sdk, urls.iter().cloned().collect()));
    let events = EventBridgeBus::new(&sdk, env_required("PHOENIX_EVENT_BUS")?);
    let metadata: Arc<dyn phoenix_domain::MetadataStore> = Arc::new(deployment.metadata);
    let ports = BatchWorkerPorts { metadata: metadata.clone(), queue: queue.clone(), events: Arc::new(events) };
    let worker = phoenix_batch_worker::build(config, ports);

    // The publisher links derivatives as the API does: the configured base, else the CDN's. The
    // CDN's settings are read once; the adapter reads them itself only if they were not there yet.
    let settings = CdnSettings::load(&sdk).await?;
    let cdn_base = settings.as_ref().map(CdnSettings::base_url);
    let media_base = match env_or("PHOENIX_PUBLIC_MEDIA_BASE", String::new())? {
        base if base.is_empty() => cdn_base.clone().unwrap_or_default(),
        base => base,
    };
    let cdn: Arc<dyn phoenix_domain::ports::Cdn> = match (&settings, CloudFrontCdn::from_env(&sdk)?) {
        (Some(settings), _) => Arc::new(settings.cdn(&sdk)),
        (None, Some(cdn)) => Arc::new(cdn),
        (None, None) => Arc::new(NoCdn),
    };
    let warmer = HttpWarmer::from_env(cdn_base.as_deref())?.map(|w| Arc::new(w) as Arc<dyn phoenix_publisher::Warmer>);
    let publisher = phoenix_publisher::build(
        PublisherConfig { media_base },
        PublisherPorts { metadata, objects: Arc::new(deployment.objects), queue: queue.clone(), cdn, warmer },
    );

    let publish_queue = publish_url.rsplit('/').next().unwrap_or_default().to_owned();
    let retimer = phoenix_consumer::Retimer::new(queue, &urls);
    let (worker, publisher, retimer, publish_queue) = (&worker, &publisher, &retimer, publish_queue.as_str());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // One event source mapping per queue: every record of a batch comes from one queue.
        let from_publish = event
            .payload
            .records
            .first()
            .and_then(|r| r.event_source_arn.as_deref())
            .is_some_and(|arn| arn.rsplit(':').next() == Some(publish_queue));
        let response = if from_publish {
            handle_sqs_batch_retimed(publisher, event.payload, BATCH_CONCURRENCY, retimer).await
        } else {
            handle_sqs_batch_retimed(worker, event.payload, BATCH_CONCURRENCY, retimer).await
        };
        Ok::<SqsBatchResponse, lambda_runtime::Error>(response)
    }))
    .await
}
