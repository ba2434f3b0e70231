//! The processor: one ingest-queue message → its records or its command handled, with the
//! outcome of each and the error mapping that decides whether SQS's retry can help.

mod ingest;
mod purge;
mod regenerate;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use phoenix_consumer::{Delivery, Failure, MessageHandler};
use phoenix_domain::messages::MediaCommand;
use phoenix_domain::ports::{FingerprintStore, MediaStore, Queue, TombstoneStore};
use phoenix_domain::{LibraryStore, MediaRecord, ObjectKey, ObjectStore, StoreError};
use phoenix_imaging::Fit;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::config::Config;
use crate::message::{IngestMessage, MalformedMessage};
use crate::notification::Notification;

/// The actor named in history lines the processor writes.
pub const SYSTEM_ACTOR: &str = "system";

/// What became of one notification record or command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Derivatives written, record now `pending_review`.
    Processed,
    /// The file was refused; the record is `rejected` with this code.
    Rejected(String),
    /// This object version was processed before: no work done.
    AlreadyProcessed,
    /// A later object for a media already judged: refused and removed, the record unchanged but
    /// for a history line (docs/decisions/0006-one-upload-per-url.md).
    Refused,
    /// Not ours to process (not an original, no such record, object gone).
    Ignored(String),
    /// A regeneration rebuilt these presets.
    Regenerated(Vec<String>),
    /// A regeneration found every derivative current: no work done.
    UpToDate,
    /// A deleted media's objects were removed (this many).
    Purged(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Worth retrying: a store was unavailable or another writer raced us.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Another delivery holds the claim on this original until then: retry after it.
    #[error("another delivery holds the claim on this original until {0}; the message comes back after it")]
    Busy(time::OffsetDateTime),
    /// Retrying will not help: a store refused the request or failed on our side, a key could
    /// not be built, an original that rendered before no longer does.
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
    /// The message is neither a media command nor an S3 notification.
    #[error("malformed message: {0}")]
    Malformed(#[from] MalformedMessage),
}

/// Agrees with [`StoreError::is_transient`]: only an unavailable store is worth a retry.
impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() { Self::Transient(e.into()) } else { Self::Permanent(e.into()) }
    }
}

impl From<ProcessError> for Failure {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Transient(e) => Failure::Transient(e),
            busy @ ProcessError::Busy(until) => {
                let left = (until - time::OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                // A second past the lease, so the claim has surely lapsed when it comes back.
                let after = std::time::Duration::from_secs(left.whole_seconds().unsigned_abs() + 1);
                Failure::Later { after, reason: busy.into() }
            }
            ProcessError::Permanent(e) => Failure::Permanent(e),
            malformed @ ProcessError::Malformed(_) => Failure::Permanent(malformed.into()),
        }
    }
}

/// The upload processor; build it with [`crate::build`]. It holds each port it uses by itself.
pub struct Processor {
    objects: Arc<dyn ObjectStore>,
    media: Arc<dyn MediaStore>,
    fingerprints: Arc<dyn FingerprintStore>,
    tombstones: Arc<dyn TombstoneStore>,
    config: Config,
    /// The publish queue, when the deployment wires it: a regeneration (new derivative keys)
    /// asks the galleries showing the media to republish.
    publish: Option<Arc<dyn Queue>>,
}

#[async_trait]
impl MessageHandler for Processor {
    type Message = IngestMessage;

    fn decode(&self, body: &str) -> Result<IngestMessage, Failure> {
        IngestMessage::parse(body).map_err(|e| ProcessError::from(e).into())
    }

    async fn handle(&self, message: IngestMessage, delivery: &Delivery) -> Result<(), Failure> {
        let attempt = Attempt::of(delivery, &self.config);
        for outcome in self.dispatch(message, &attempt).await? {
            info!(?outcome, "record handled");
        }
        Ok(())
    }
}

/// Which delivery of its message the processor is handling: who takes claims, and whether this
/// is the last delivery the queue will make (which does no image work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// The queue message's id: a claim's holder.
    pub(crate) message_id: Option<String>,
    pub(crate) receive_count: u32,
    pub(crate) last: bool,
}

impl Attempt {
    fn of(delivery: &Delivery, config: &Config) -> Self {
        Self {
            message_id: Some(delivery.message_id.clone()).filter(|id| !id.is_empty()),
            receive_count: delivery.receive_count,
            last: config.is_last_delivery(delivery.receive_count),
        }
    }

    /// A call outside any queue (tests, tools): a first delivery of no known message.
    fn direct() -> Self {
        Self { message_id: None, receive_count: 1, last: false }
    }
}

impl Processor {
    pub(crate) fn new(config: Config, objects: Arc<dyn ObjectStore>, metadata: Arc<dyn LibraryStore>) -> Self {
        Self {
            objects,
            media: metadata.clone(),
            fingerprints: metadata.clone(),
            tombstones: metadata,
            config,
            publish: None,
        }
    }

    /// Regenerations ask the galleries showing the media to republish through `queue` (their
    /// documents name the derivatives' keys, which a regeneration changes and whose old objects
    /// it deletes).
    pub fn with_publish_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.publish = Some(queue);
        self
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Messages of one batch handled at once (what the batch adapters are given).
    pub fn concurrency(&self) -> usize {
        self.config.concurrency.max(1)
    }

    /// Decodes and handles one message body, returning what became of each of its records.
    /// Fails at the first record that fails; records already done are skipped on the retry.
    pub async fn handle_message(&self, body: &str) -> Result<Vec<Outcome>, ProcessError> {
        self.dispatch(IngestMessage::parse(body)?, &Attempt::direct()).await
    }

    /// As [`Processor::handle_message`], as this delivery of a queue message (its id holds the
    /// claims it takes; its receive count tells the last delivery).
    pub async fn handle_delivery(&self, body: &str, delivery: &Delivery) -> Result<Vec<Outcome>, ProcessError> {
        self.dispatch(IngestMessage::parse(body)?, &Attempt::of(delivery, &self.config)).await
    }

    async fn dispatch(&self, message: IngestMessage, attempt: &Attempt) -> Result<Vec<Outcome>, ProcessError> {
        let records = match message {
            IngestMessage::Command(MediaCommand::Regenerate { model_id, media_id, mut presets, crops }) => {
                if crops {
                    presets.extend(self.cover_presets());
                }
                return Ok(vec![self.regenerate(&model_id, &media_id, &presets).await?]);
            }
            IngestMessage::Command(MediaCommand::Purge { model_id, media_id }) => {
                return Ok(vec![self.purge(&model_id, &media_id).await?]);
            }
            IngestMessage::Notification(Notification::Test) => {
                return Ok(vec![Outcome::Ignored("s3:TestEvent".into())]);
            }
            IngestMessage::Notification(Notification::Records(records)) => records,
        };
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            outcomes.push(self.handle_record(&record, attempt).await?);
        }
        Ok(outcomes)
    }

    /// A conditional write of the next version; a conflict (or the record gone) means another
    /// writer got there first, and the whole message is retried against what it wrote.
    async fn write(&self, record: &mut MediaRecord, now: OffsetDateTime) -> Result<(), ProcessError> {
        record.version += 1;
        record.updated_at = now;
        self.media.update_media(record).await.map_err(|e| match e {
            StoreError::VersionConflict { .. } | StoreError::NotFound => {
                ProcessError::Transient(anyhow::anyhow!("the media record changed while it was processed"))
            }
            other => other.into(),
        })
    }

    async fn delete_all(&self, keys: Vec<ObjectKey>) {
        for key in keys {
            if let Err(e) = self.objects.delete(&key).await {
                warn!(key = %key, error = %e, "could not delete a superseded derivative");
            }
        }
    }

    /// The presets that crop (around the focal point).
    pub(crate) fn cover_presets(&self) -> Vec<String> {
        let presets = &self.config.presets.presets;
        presets.iter().filter(|p| matches!(p.fit, Fit::Cover { .. })).map(|p| p.name.clone()).collect()
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_claim_elsewhere_sends_the_message_back_after_the_lease() {
        let until = time::OffsetDateTime::now_utc() + time::Duration::seconds(40);
        match Failure::from(ProcessError::Busy(until)) {
            Failure::Later { after, .. } => assert!((40..=41).contains(&after.as_secs()), "{after:?}"),
            other => panic!("not a retry after the lease: {other}"),
        }
        let lapsed = time::OffsetDateTime::now_utc() - time::Duration::seconds(5);
        assert!(
            matches!(Failure::from(ProcessError::Busy(lapsed)), Failure::Later { after, .. } if after.as_secs() <= 1)
        );
    }

    #[test]
    fn only_an_unavailable_store_is_worth_a_retry() {
        let transient = |e: StoreError| Failure::from(ProcessError::from(e)).is_transient();
        assert!(transient(StoreError::unavailable(anyhow::anyhow!("throttled"))));
        assert!(!transient(StoreError::Invalid("too many".into())));
        assert!(!transient(StoreError::internal(anyhow::anyhow!("undecodable item"))));
        assert!(!transient(StoreError::NotFound));
        assert!(!transient(StoreError::AlreadyExists));
        let malformed = ProcessError::from(IngestMessage::parse("not json").unwrap_err());
        assert!(!Failure::from(malformed).is_transient());
    }
}
