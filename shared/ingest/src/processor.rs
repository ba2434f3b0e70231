//! One uploaded original → validated, measured, derived, recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use futures::StreamExt;
use phoenix_domain::media::Claim;
use phoenix_domain::ports::{PutOptions, StoreError};
use phoenix_domain::{
    Derivative, Limits, MediaRecord, MediaStatus, MetadataStore, ObjectKey, ObjectStore, Rejection, SourceInfo,
};
use phoenix_imaging::{ImageLimits, ImagingError, Preset, Processed};
use time::OffsetDateTime;
use tracing::{Instrument, info, info_span, warn};

use crate::notification::{Notification, ObjectCreated, parse_notification};

/// Derivative keys carry the content hash, so their bytes never change and may be cached forever.
pub const DERIVATIVE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub limits: Limits,
    pub presets: Vec<Preset>,
    /// Records of one batch processed at once; each holds a decoded image in memory.
    pub concurrency: usize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self { limits: Limits::default(), presets: phoenix_imaging::default_presets(), concurrency: 2 }
    }
}

/// What became of one notification record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Derivatives written, record now `pending_review`.
    Processed,
    /// The file was refused; the record is `rejected` with this code.
    Rejected(String),
    /// This object version was processed before: no work done.
    AlreadyProcessed,
    /// Another delivery holds a live claim on this object version; it will finish or be retried.
    InFlight,
    /// Not ours to process (not an original, no such record, object gone).
    Ignored(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Worth retrying: a store was unavailable or another writer raced us.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// The message is not an S3 notification; it goes to the dead-letter queue for inspection.
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        Self::Transient(e.into())
    }
}

pub struct Processor {
    objects: Arc<dyn ObjectStore>,
    metadata: Arc<dyn MetadataStore>,
    config: ProcessorConfig,
}

fn image_limits(limits: &Limits) -> ImageLimits {
    ImageLimits { max_bytes: limits.max_upload_bytes, max_pixels: limits.max_pixels, max_side: limits.max_side }
}

impl Processor {
    pub fn new(objects: Arc<dyn ObjectStore>, metadata: Arc<dyn MetadataStore>, config: ProcessorConfig) -> Self {
        Self { objects, metadata, config }
    }

    /// Handles an SQS batch; the response names only the messages SQS should deliver again.
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let concurrency = self.config.concurrency.max(1);
        let failures: Vec<String> = futures::stream::iter(event.records)
            .map(|message| self.handle_sqs_message(message))
            .buffer_unordered(concurrency)
            .filter_map(|failed| async move { failed })
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        response
    }

    /// `Some(message_id)` when the message must be retried.
    async fn handle_sqs_message(&self, message: SqsMessage) -> Option<String> {
        let id = message.message_id.clone().unwrap_or_default();
        let span = info_span!("message", message_id = %id);
        let result = self.handle_message(message.body.as_deref().unwrap_or_default()).instrument(span.clone()).await;
        let _guard = span.enter();
        match result {
            Ok(outcomes) => {
                for outcome in outcomes {
                    info!(?outcome, "record handled");
                }
                None
            }
            Err(e) => {
                warn!(error = %e, "message will be retried");
                Some(id)
            }
        }
    }

    /// Handles one message body: an S3 notification with any number of records. Fails (for a
    /// retry) if any record failed transiently; records already done are skipped on the retry.
    pub async fn handle_message(&self, body: &str) -> Result<Vec<Outcome>, ProcessError> {
        let records = match parse_notification(body).map_err(|e| ProcessError::Malformed(e.to_string()))? {
            Notification::Test => return Ok(vec![Outcome::Ignored("s3:TestEvent".into())]),
            Notification::Records(records) => records,
        };
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            outcomes.push(self.handle_record(&record).await?);
        }
        Ok(outcomes)
    }

    async fn handle_record(&self, event: &ObjectCreated) -> Result<Outcome, ProcessError> {
        if !event.event_name.starts_with("ObjectCreated") {
            return Ok(Outcome::Ignored(format!("event {}", event.event_name)));
        }
        let Some((model_id, media_id)) = ObjectKey::parse(&event.key).ok().and_then(|k| k.parse_original()) else {
            return Ok(Outcome::Ignored(format!("key {:?} is not an original", event.key)));
        };
        let span = info_span!("ingest", model_id = %model_id, media_id = %media_id);
        async {
            let record = match self.metadata.get_media(&model_id, &media_id).await {
                Ok(r) => r,
                Err(StoreError::NotFound) => return Ok(Outcome::Ignored("no media record for this object".into())),
                Err(e) => return Err(e.into()),
            };
            self.process(record, event.etag.as_deref()).await
        }
        .instrument(span)
        .await
    }

    /// The replay check: has this object version been handled, or is it being handled now?
    fn replay_outcome(record: &MediaRecord, etag: &str, now: OffsetDateTime) -> Option<Outcome> {
        match record.status {
            MediaStatus::Uploading => None,
            MediaStatus::Processing => {
                let claim = record.claim.as_ref()?;
                (claim.etag == etag && claim.until > now).then_some(Outcome::InFlight)
            }
            MediaStatus::Rejected if record.source.is_none() => {
                // Rejected before measuring: known by the claim's ETag.
                (record.claim.as_ref().map(|c| c.etag.as_str()) == Some(etag)).then_some(Outcome::AlreadyProcessed)
            }
            _ => (record.source.as_ref().map(|s| s.etag.as_str()) == Some(etag)).then_some(Outcome::AlreadyProcessed),
        }
    }

    async fn process(&self, mut record: MediaRecord, event_etag: Option<&str>) -> Result<Outcome, ProcessError> {
        let now = OffsetDateTime::now_utc();
        if let Some(outcome) = event_etag.and_then(|etag| Self::replay_outcome(&record, etag, now)) {
            return Ok(outcome);
        }
        let started = Instant::now();
        let head = match self.objects.head(&record.original_key).await {
            Ok(head) => head,
            Err(StoreError::NotFound) => return Ok(Outcome::Ignored("the original is gone".into())),
            Err(e) => return Err(e.into()),
        };
        // The event may be older than the object; what is stored now is what we process.
        if let Some(outcome) = Self::replay_outcome(&record, &head.etag, now) {
            return Ok(outcome);
        }

        // Claim the object version so a duplicate delivery does not repeat the work.
        record.status = MediaStatus::Processing;
        record.claim = Some(Claim { etag: head.etag.clone(), until: now + self.config.limits.processing_lease });
        self.write(&mut record, now).await?;

        let limits = &self.config.limits;
        if head.size > limits.max_upload_bytes {
            let message =
                format!("the file is {} bytes, over the limit of {} bytes", head.size, limits.max_upload_bytes);
            return self.reject(record, "file_too_large", message).await;
        }
        let (info, bytes) = match self.objects.get(&record.original_key, limits.max_upload_bytes).await {
            Ok(found) => found,
            Err(StoreError::NotFound) => return Ok(Outcome::Ignored("the original is gone".into())),
            Err(e) => return Err(e.into()),
        };
        let fetch = started.elapsed();

        let processed = match self.render(bytes.clone()).await {
            Ok(p) => p,
            Err(e) => return self.reject(record, e.code(), e.to_string()).await,
        };

        let store_started = Instant::now();
        let sha256 = phoenix_imaging::sha256_hex(&bytes);
        let mut derivatives = Vec::with_capacity(processed.renditions.len());
        for rendition in &processed.renditions {
            let key = ObjectKey::parse(&format!(
                "derived/{}/{}/{}/{}.{}",
                record.model_id,
                record.media_id,
                &sha256[..16],
                rendition.preset,
                rendition.format.extension()
            ))
            .map_err(|e| ProcessError::Transient(e.into()))?;
            let options = PutOptions {
                content_type: Some(rendition.format.mime().to_owned()),
                cache_control: Some(DERIVATIVE_CACHE_CONTROL.to_owned()),
            };
            let stored = self.objects.put(&key, Bytes::from(rendition.bytes.clone()), options).await?;
            derivatives.push(Derivative {
                preset: rendition.preset.clone(),
                format: rendition.format.as_str().to_owned(),
                width: rendition.width,
                height: rendition.height,
                bytes: stored.size,
                key,
            });
        }
        let store = store_started.elapsed();

        let probe = &processed.probe;
        let superseded: Vec<ObjectKey> = record
            .derivatives
            .iter()
            .map(|d| d.key.clone())
            .filter(|k| !derivatives.iter().any(|d| &d.key == k))
            .collect();
        record.status = MediaStatus::PendingReview;
        record.claim = None;
        record.expires_at = None;
        record.rejection = None;
        record.source = Some(SourceInfo {
            etag: info.etag.clone(),
            bytes: info.size,
            format: probe.format.as_str().to_owned(),
            width: probe.width,
            height: probe.height,
            orientation: probe.orientation,
            sha256,
            camera_make: probe.camera_make.clone(),
            camera_model: probe.camera_model.clone(),
            captured_at: probe.captured_at.clone(),
        });
        record.derivatives = derivatives;
        self.write(&mut record, OffsetDateTime::now_utc()).await?;
        for key in superseded {
            if let Err(e) = self.objects.delete(&key).await {
                warn!(key = %key, error = %e, "could not delete a superseded derivative");
            }
        }
        let t = &processed.timings;
        info!(
            fetch_ms = ms(fetch),
            decode_ms = ms(t.decode),
            resize_ms = ms(t.resize),
            encode_ms = ms(t.encode),
            store_ms = ms(store),
            total_ms = ms(started.elapsed()),
            bytes = info.size,
            width = probe.width,
            height = probe.height,
            "processed"
        );
        Ok(Outcome::Processed)
    }

    async fn render(&self, bytes: Bytes) -> Result<Processed, ImagingError> {
        let limits = image_limits(&self.config.limits);
        let presets = self.config.presets.clone();
        // CPU-bound: off the async workers, so one big photo does not stall the others.
        tokio::task::spawn_blocking(move || phoenix_imaging::process(&bytes, &limits, &presets))
            .await
            .unwrap_or_else(|join| Err(ImagingError::from_panic(join.to_string())))
    }

    async fn reject(&self, mut record: MediaRecord, code: &str, message: String) -> Result<Outcome, ProcessError> {
        warn!(code, %message, "upload rejected");
        record.status = MediaStatus::Rejected;
        record.expires_at = None;
        record.source = None;
        record.rejection = Some(Rejection { code: code.to_owned(), message });
        // The claim stays as the record of which object version was judged, for the replay check.
        if let Some(claim) = record.claim.as_mut() {
            claim.until = OffsetDateTime::now_utc();
        }
        self.write(&mut record, OffsetDateTime::now_utc()).await?;
        Ok(Outcome::Rejected(code.to_owned()))
    }

    /// A conditional write of the next version; a conflict means another writer got there first,
    /// and the whole message is retried against what it wrote.
    async fn write(&self, record: &mut MediaRecord, now: OffsetDateTime) -> Result<(), ProcessError> {
        record.version += 1;
        record.updated_at = now;
        self.metadata.update_media(record).await.map_err(|e| match e {
            StoreError::VersionConflict { .. } => {
                ProcessError::Transient(anyhow::anyhow!("the media record changed while it was processed"))
            }
            other => other.into(),
        })
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
