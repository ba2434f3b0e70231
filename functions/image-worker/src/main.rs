//! Lambda entry point of the image worker: config from the environment, one SDK config, the
//! adapters and the worker built once, then served for the lane queues' batches and the reaper's
//! schedule.

use std::sync::Arc;

use phoenix_image_worker::{WorkerConfig, WorkerPorts};
use phoenix_storage::aws::{Deployment, JobsDeployment, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = WorkerConfig::from_env()?;
    let sdk = sdk_config().await;
    let deployment = Deployment::from_env(&sdk)?;
    let jobs = JobsDeployment::from_env(&sdk)?;
    let queue: Arc<dyn phoenix_domain::Queue> = Arc::new(jobs.queue.clone());
    let retimer = phoenix_consumer::Retimer::new(queue.clone(), &jobs.queue_urls());
    let ports = WorkerPorts {
        objects: Arc::new(deployment.objects),
        metadata: Arc::new(deployment.metadata),
        queue,
        events: Arc::new(jobs.events),
        lanes: Arc::new(jobs.lanes),
    };
    // The rights sweep republishes galleries with derivative URLs as the API's publish makes them.
    let mut media_base = phoenix_domain::config::env_or("PHOENIX_PUBLIC_MEDIA_BASE", String::new())?;
    if media_base.is_empty()
        && let Some(cdn) = phoenix_storage::aws::CdnSettings::load(&sdk).await?
    {
        media_base = cdn.base_url();
    }
    let worker = phoenix_image_worker::build(config, ports).with_media_base(media_base);
    phoenix_image_worker::lambda::run(worker, retimer).await
}
