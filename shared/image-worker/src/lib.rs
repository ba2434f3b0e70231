//! The image worker: the job lanes' consumer. Each message names a job; the worker takes it under
//! a lease it renews while it works, runs the operation (a crop, rotation, flip or watermark as a
//! new image version; a regeneration; a parent's fan-out into children), and settles it —
//! `succeeded`, `failed`, or queued again after a backoff drawn with full jitter. [`Worker`] is a
//! [`phoenix_consumer::MessageHandler`]; [`Worker::reap`] is the reaper's sweep (of jobs, and of
//! the trash: media past their grace period are purged). The Lambda ([`lambda::run`]) and the
//! local server run both.

mod fan_out;
pub mod lambda;
mod run;
mod work;

use std::sync::Arc;

use phoenix_domain::config::TrashSettings;
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
    /// The job lanes (children and re-queued jobs are sent to them) and the ingest queue (the
    /// trash sweep's `purge` commands).
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
    /// The trash: the reaper purges media past their grace period, queueing each purge with the
    /// delay (`PHOENIX_PURGE_DELAY_SECS`) that lets the sweep write the tombstone first.
    pub trash: TrashSettings,
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
            trash: TrashSettings::from_env()?,
            cpu_permits: phoenix_domain::config::env_or("PHOENIX_JOBS_CPU_PERMITS", cores.saturating_sub(1).max(1))?,
        })
    }
}

/// Media one reaper sweep purges at most (a page of the trash index).
pub const TRASH_SWEEP_LIMIT: usize = 100;

pub struct Worker {
    ports: WorkerPorts,
    processor: Processor,
    settings: JobSettings,
    trash: TrashSettings,
    cpu: Arc<Semaphore>,
    /// What republished gallery documents put before a derivative's key, as the API's publish
    /// (the rights sweep); empty: relative URLs.
    media_base: String,
}

/// The worker, wired: what the Lambda's `main`, the local server and the tests call.
pub fn build(config: WorkerConfig, ports: WorkerPorts) -> Worker {
    let processor = phoenix_ingest::build(config.imaging, ports.objects.clone(), ports.metadata.clone())
        .with_publish_queue(ports.queue.clone());
    Worker {
        processor,
        settings: config.jobs,
        trash: config.trash,
        cpu: Arc::new(Semaphore::new(config.cpu_permits.max(1))),
        media_base: String::new(),
        ports,
    }
}

impl Worker {
    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// Republished galleries link derivatives under `base`, as the API's publish does
    /// (`PHOENIX_PUBLIC_MEDIA_BASE` in AWS; the local server's URL locally).
    pub fn with_media_base(mut self, base: impl Into<String>) -> Self {
        self.media_base = base.into();
        self
    }

    /// The rights sweep (its schedule, every minute): republishes the galleries showing media
    /// whose usage rights have expired, and asks the publish queue to invalidate their CDN paths.
    pub async fn rights_sweep(
        &self,
    ) -> Result<phoenix_domain::galleries::rights::RightsSweep, phoenix_domain::StoreError> {
        let p = &self.ports;
        let ports = phoenix_domain::galleries::GalleryPorts {
            galleries: p.metadata.as_ref(),
            media: p.metadata.as_ref(),
            objects: p.objects.as_ref(),
        };
        let now = time::OffsetDateTime::now_utc();
        phoenix_domain::galleries::rights::sweep(ports, Some(p.queue.as_ref()), &self.media_base, now).await
    }

    /// One sweep of the reaper: jobs whose lease lapsed are re-queued or failed, lost messages
    /// re-sent, parents whose children ended finished; then the trash: up to
    /// [`TRASH_SWEEP_LIMIT`] media past their grace period are deleted (tombstones left) and
    /// their purge queued ([`phoenix_domain::media::sweep_trash`]; more wait for the next sweep).
    /// A trash sweep that cannot list is logged and leaves the jobs' report as it is.
    pub async fn reap(&self) -> Result<ReapReport, JobError> {
        let p = &self.ports;
        let now = time::OffsetDateTime::now_utc();
        let mut report = phoenix_domain::jobs::reap(
            p.metadata.as_ref(),
            p.queue.as_ref(),
            p.events.as_ref(),
            p.lanes.as_ref(),
            &self.settings,
            now,
        )
        .await?;
        let sweep = phoenix_domain::media::sweep_trash(
            p.metadata.as_ref(),
            p.queue.as_ref(),
            now,
            TRASH_SWEEP_LIMIT,
            self.trash.purge_delay,
        )
        .await;
        match sweep {
            Ok(sweep) => report.trash_purged = sweep.purged,
            Err(e) => tracing::warn!(error = %e, "trash sweep failed"),
        }
        Ok(report)
    }
}
