//! The image worker: the job lanes' consumer. Each message names a job; the worker takes it under
//! a lease it renews while it works, runs the operation (a crop, rotation, flip or watermark as a
//! new image version; a regeneration; a parent's fan-out into children), and settles it —
//! `succeeded`, `failed`, or queued again after a backoff drawn with full jitter. [`Worker`] is a
//! [`phoenix_consumer::MessageHandler`]; [`Worker::reap`] is the reaper's sweep. The Lambda
//! ([`lambda::run`]) and the local server run both.

mod fan_out;
pub mod lambda;
mod run;
mod work;

use std::sync::Arc;

use phoenix_domain::jobs::{JobError, JobSettings, ReapReport};
use phoenix_domain::ports::{EventBus, LaneControl};
use phoenix_domain::{MetadataStore, ObjectStore, Queue};
use phoenix_ingest::Processor;
use tokio::sync::Semaphore;

/// The ports the worker uses.
#[derive(Clone)]
pub struct WorkerPorts {
    pub objects: Arc<dyn ObjectStore>,
    pub metadata: Arc<dyn MetadataStore>,
    /// The job lanes (children and re-queued jobs are sent to them).
    pub queue: Arc<dyn Queue>,
    pub events: Arc<dyn EventBus>,
    pub lanes: Arc<dyn LaneControl>,
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The image pipeline's configuration (limits, presets), as the upload processor reads it.
    pub imaging: phoenix_ingest::Config,
    pub jobs: JobSettings,
    /// Image operations run at once in this process, whatever the lanes' concurrency: locally one
    /// core is left to upload ingest, so bulk jobs never starve new uploads
    /// (`PHOENIX_JOBS_CPU_PERMITS`; default: the cores less one, at least one).
    pub cpu_permits: usize,
}

impl WorkerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            imaging: phoenix_ingest::Config::from_env()?,
            jobs: JobSettings::from_env()?,
            cpu_permits: phoenix_domain::config::env_or("PHOENIX_JOBS_CPU_PERMITS", cores.saturating_sub(1).max(1))?,
        })
    }
}

pub struct Worker {
    ports: WorkerPorts,
    processor: Processor,
    settings: JobSettings,
    cpu: Arc<Semaphore>,
}

/// The worker, wired: what the Lambda's `main`, the local server and the tests call.
pub fn build(config: WorkerConfig, ports: WorkerPorts) -> Worker {
    let processor = phoenix_ingest::build(config.imaging, ports.objects.clone(), ports.metadata.clone());
    Worker { processor, settings: config.jobs, cpu: Arc::new(Semaphore::new(config.cpu_permits.max(1))), ports }
}

impl Worker {
    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// One sweep of the reaper: jobs whose lease lapsed are re-queued or failed, lost messages
    /// re-sent, parents whose children ended finished.
    pub async fn reap(&self) -> Result<ReapReport, JobError> {
        let p = &self.ports;
        phoenix_domain::jobs::reap(
            p.metadata.as_ref(),
            p.queue.as_ref(),
            p.events.as_ref(),
            p.lanes.as_ref(),
            &self.settings,
            time::OffsetDateTime::now_utc(),
        )
        .await
    }
}
