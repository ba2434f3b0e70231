//! The batch worker: the batches queue's [`MessageHandler`]. A chunk message applies one chunk
//! of a batch (`phoenix_domain::batches::process_chunk`: each item and its outcome written
//! together, items already done left alone); a back-office submission is checked like a token's
//! claims and submitted as the API would; anything else goes to the dead-letter queue at once,
//! with its reason logged, instead of being retried until the redrive takes it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use phoenix_consumer::{Delivery, Failure, MessageHandler};
use phoenix_domain::batches::events::{self, BatchEventKind};
use phoenix_domain::batches::wire::BatchMessage;
use phoenix_domain::batches::{BatchError, BatchLimits, BatchPorts, ChunkMessage, ChunkReport, process_chunk, submit};
use phoenix_domain::ports::{EventBus, Queue, QueueName, StoreError};
use phoenix_domain::{BatchId, MetadataStore};
use time::OffsetDateTime;
use tracing::{error, info, warn};

/// The ports the worker uses.
#[derive(Clone)]
pub struct BatchWorkerPorts {
    pub metadata: Arc<dyn MetadataStore>,
    /// The batches queue and its dead-letter queue.
    pub queue: Arc<dyn Queue>,
    pub events: Arc<dyn EventBus>,
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct BatchWorkerConfig {
    pub limits: BatchLimits,
    /// How long a deleted media stays restorable (`PHOENIX_TRASH_GRACE_SECS`).
    pub trash_grace: Duration,
    /// A `batch.progress` event every this many items (`PHOENIX_BATCH_PROGRESS_EVERY`, default 1,000).
    pub progress_every: u64,
    /// Test only (`PHOENIX_BATCH_CRASH_AFTER_APPLY`): after a chunk is applied, fail its first
    /// delivery before acknowledging it, as a worker that dies right then would.
    pub crash_after_apply: bool,
}

impl BatchWorkerConfig {
    /// From `PHOENIX_BATCHES_PER_MODEL` (3), `PHOENIX_BATCHES_TOTAL` (20),
    /// `PHOENIX_TRASH_GRACE_SECS` (7 days), `PHOENIX_BATCH_PROGRESS_EVERY` (1,000) and
    /// `PHOENIX_BATCH_CRASH_AFTER_APPLY` (false; tests only).
    pub fn from_env() -> Result<Self, phoenix_domain::config::ConfigError> {
        use phoenix_domain::config::env_or;
        let d = Self::default();
        Ok(Self {
            limits: BatchLimits {
                per_model: env_or("PHOENIX_BATCHES_PER_MODEL", d.limits.per_model)?,
                total: env_or("PHOENIX_BATCHES_TOTAL", d.limits.total)?,
            },
            trash_grace: phoenix_domain::config::TrashSettings::from_env()?.grace,
            progress_every: env_or("PHOENIX_BATCH_PROGRESS_EVERY", d.progress_every)?,
            crash_after_apply: env_or("PHOENIX_BATCH_CRASH_AFTER_APPLY", false)?,
        })
    }
}

impl Default for BatchWorkerConfig {
    fn default() -> Self {
        Self {
            limits: BatchLimits::default(),
            trash_grace: phoenix_domain::config::TrashSettings::DEFAULT_GRACE,
            progress_every: 1000,
            crash_after_apply: false,
        }
    }
}

pub struct BatchWorker {
    ports: BatchWorkerPorts,
    config: BatchWorkerConfig,
    crashed_once: Mutex<HashSet<(BatchId, u32)>>,
}

pub fn build(config: BatchWorkerConfig, ports: BatchWorkerPorts) -> BatchWorker {
    BatchWorker { ports, config, crashed_once: Mutex::new(HashSet::new()) }
}

fn store_failure(e: StoreError) -> Failure {
    if e.is_transient() { Failure::Transient(e.into()) } else { Failure::Permanent(e.into()) }
}

#[async_trait]
impl MessageHandler for BatchWorker {
    type Message = BatchMessage;

    /// Every body decodes: what is not a batch message is handled as `Malformed` (dead-lettered).
    fn decode(&self, body: &str) -> Result<BatchMessage, Failure> {
        Ok(BatchMessage::parse(body))
    }

    async fn handle(&self, message: BatchMessage, _: &Delivery) -> Result<(), Failure> {
        match message {
            BatchMessage::Chunk(chunk) => self.chunk(chunk).await,
            BatchMessage::Submission(submission) => {
                let body = serde_json::to_string(&submission).unwrap_or_default();
                let submitter = match submission.submitter.into_submitter() {
                    Ok(s) => s,
                    Err(e) => return self.dead_letter(&body, &e.to_string()).await,
                };
                let request = match submission.batch.into_request() {
                    Ok(r) => r,
                    Err(e) => return self.dead_letter(&body, &e.to_string()).await,
                };
                let m = self.ports.metadata.as_ref();
                let ports = BatchPorts { batches: m, media: m, galleries: m, queue: self.ports.queue.as_ref() };
                let now = OffsetDateTime::now_utc();
                match submit(ports, self.config.limits, &submitter, request, BatchId::new(), now).await {
                    Ok(batch) => {
                        info!(batch_id = %batch.batch_id, total = batch.total, submitter = %submitter.subject, "batch submitted from the queue");
                        self.emit(BatchEventKind::Submitted, &batch).await;
                        Ok(())
                    }
                    Err(BatchError::Limited { message, retry_after }) => {
                        Err(Failure::Later { after: retry_after, reason: anyhow::anyhow!(message) })
                    }
                    Err(BatchError::Store(e)) => Err(store_failure(e)),
                    Err(e) => self.dead_letter(&body, &e.to_string()).await,
                }
            }
            BatchMessage::Malformed { body, reason } => self.dead_letter(&body, &reason).await,
        }
    }
}

impl BatchWorker {
    async fn chunk(&self, message: ChunkMessage) -> Result<(), Failure> {
        let m = self.ports.metadata.as_ref();
        let report = process_chunk(
            m,
            m,
            m,
            self.ports.queue.as_ref(),
            &message.batch_id,
            message.chunk,
            self.config.trash_grace,
        )
        .await
        .map_err(|e| match e {
            // The batch expired (TTL) or was never written: nothing to apply.
            StoreError::NotFound => Failure::permanent(anyhow::anyhow!("no batch {} (expired?)", message.batch_id)),
            other => store_failure(other),
        })?;
        if self.config.crash_after_apply && self.crashed_once.lock().unwrap().insert((message.batch_id, message.chunk))
        {
            warn!(batch_id = %message.batch_id, chunk = message.chunk, "test switch: failing after the chunk was applied");
            return Err(Failure::transient(anyhow::anyhow!("test switch: crashed after applying the chunk")));
        }
        match report {
            ChunkReport::Skipped(status) => {
                info!(batch_id = %message.batch_id, chunk = message.chunk, status = status.as_str(), "chunk skipped");
            }
            ChunkReport::Done { counts, batch, ended } => {
                info!(batch_id = %message.batch_id, chunk = message.chunk, applied = counts.applied, "chunk applied");
                // The batch as the chunk's tally left it: no second read.
                let done = batch.counts.total();
                let before = done.saturating_sub(counts.total());
                if self.config.progress_every > 0
                    && done / self.config.progress_every > before / self.config.progress_every
                {
                    self.emit(BatchEventKind::Progress, &batch).await;
                }
                if ended {
                    let kind =
                        if batch.rollback_of.is_some() { BatchEventKind::RolledBack } else { BatchEventKind::Finished };
                    self.emit(kind, &batch).await;
                }
            }
        }
        Ok(())
    }

    /// Moves a body that will never make a batch to the dead-letter queue, with its reason in the
    /// log, and acknowledges it.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), Failure> {
        error!(reason, "a batches-queue message that does not make a batch: moved to the dead-letter queue");
        self.ports.queue.send(&QueueName::BATCHES_DLQ, body, Duration::ZERO).await.map(|_| ()).map_err(store_failure)
    }

    async fn emit(&self, kind: BatchEventKind, batch: &phoenix_domain::batches::Batch) {
        events::emit(self.ports.events.as_ref(), batch, kind).await;
    }
}
