//! One uploaded original → validated, measured, derived, recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use futures::StreamExt;
use phoenix_domain::library::MediaCommand;
use phoenix_domain::media::Claim;
use phoenix_domain::ports::{Fingerprint, PutOptions, StoreError};
use phoenix_domain::{
    Derivative, GpsPosition, Limits, MediaId, MediaRecord, MediaStatus, MetadataStore, ModelId, ObjectKey, ObjectStore,
    Rejection, SourceInfo,
};
use phoenix_imaging::{Fit, FocalPoint, ImageLimits, ImagingError, PresetSet, Processed, RenderOptions, Rendition};
use time::OffsetDateTime;
use tracing::{Instrument, info, info_span, warn};

use crate::notification::{Notification, ObjectCreated, parse_notification};

/// The actor named in history lines the processor writes.
pub const SYSTEM_ACTOR: &str = "system";
/// Re-applications of a processing outcome after concurrent edits before giving up (and retrying
/// the message).
const MERGE_ATTEMPTS: usize = 4;

/// Derivative keys carry the content hash, so their bytes never change and may be cached forever.
pub const DERIVATIVE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub limits: Limits,
    pub presets: PresetSet,
    /// Records of one batch processed at once; each holds a decoded image in memory.
    pub concurrency: usize,
    /// Keep the GPS position in (admin-only) metadata. Off by default: models' whereabouts are private.
    pub keep_gps: bool,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self { limits: Limits::default(), presets: PresetSet::default(), concurrency: 2, keep_gps: false }
    }
}

/// The presets from the file named by `PHOENIX_PRESETS_FILE`, else the built-in set.
pub fn presets_from_env() -> anyhow::Result<PresetSet> {
    match std::env::var("PHOENIX_PRESETS_FILE") {
        Ok(path) if !path.trim().is_empty() => {
            PresetSet::from_file(path.trim()).map_err(|e| anyhow::anyhow!("PHOENIX_PRESETS_FILE {path}: {e}"))
        }
        _ => Ok(PresetSet::default()),
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
        if let Ok(command) = serde_json::from_str::<MediaCommand>(body) {
            let outcome = match command {
                MediaCommand::Regenerate { model_id, media_id, presets, crops } => {
                    let mut force = presets;
                    if crops {
                        force.extend(self.cover_presets());
                    }
                    self.regenerate(&model_id, &media_id, &force).await?
                }
                MediaCommand::Purge { model_id, media_id } => self.purge(&model_id, &media_id).await?,
            };
            return Ok(vec![outcome]);
        }
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
                Err(StoreError::NotFound) => return self.remove_orphan(&model_id, &media_id).await,
                Err(e) => return Err(e.into()),
            };
            self.process(record, event.etag.as_deref()).await
        }
        .instrument(span)
        .await
    }

    /// An original with no record: its media was deleted (or its upload abandoned and expired)
    /// before the bytes arrived. Records are made before an upload URL is handed out, so nobody
    /// will ever claim these bytes; they are removed rather than kept unaccounted for.
    async fn remove_orphan(&self, model: &ModelId, media: &MediaId) -> Result<Outcome, ProcessError> {
        let key = ObjectKey::original(model, media);
        self.objects.delete(&key).await?;
        warn!(key = %key, "removed an original that has no media record");
        Ok(Outcome::Ignored("no media record; the orphaned original was removed".into()))
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

        let sha256 = phoenix_imaging::sha256_hex(&bytes);
        let processed = match self.render(bytes, None, &record).await {
            Ok(p) => p,
            Err(e) => return self.reject(record, e.code(), e.to_string()).await,
        };

        // Metadata first: storing moves the encoded bytes out of `processed` instead of copying them.
        let source = self.source_info(&processed, info.etag.clone(), info.size, sha256.clone());
        let (timings, width, height) = (processed.timings, processed.probe.width, processed.probe.height);
        let rendition_count = processed.renditions.len();
        let store_started = Instant::now();
        let derivatives = self.store_renditions(&record, &sha256, &info.etag, processed.renditions).await?;
        let store = store_started.elapsed();

        let superseded = superseded(&record.derivatives, &derivatives);
        // The fingerprint first: writing it again on a retry is harmless, and once the record
        // says `pending_review` a replay skips this work.
        if let Some(phash) = &source.phash {
            let fingerprint = Fingerprint { media_id: record.media_id, phash: phash.clone() };
            match self.metadata.put_fingerprint(&record.model_id, &fingerprint).await {
                Ok(()) => {}
                // A refusal that will not change on a retry (the model's fingerprints are full)
                // costs duplicate detection for this photo, not the photo.
                Err(StoreError::Invalid(e)) => warn!(error = %e, "fingerprint not recorded"),
                Err(e) => return Err(e.into()),
            }
        }
        let summary = format!("{} derivatives from a {}x{} {}", derivatives.len(), width, height, source.format);
        let claim = record.claim.clone();
        let (model, media, focal_point) = (record.model_id.clone(), record.media_id, record.focal_point);
        let now = OffsetDateTime::now_utc();
        let written = self
            .write_merged(record, claim, |r| {
                r.status = MediaStatus::PendingReview;
                r.claim = None;
                r.expires_at = None;
                r.rejection = None;
                r.source = Some(source.clone());
                r.derivatives = derivatives.clone();
                r.record_history(now, SYSTEM_ACTOR, "processed", summary.clone());
            })
            .await?;
        let Some(written) = written else {
            // Deleted while it was processed: its purge may have run already, so what this run
            // stored is removed here.
            self.delete_all(derivatives.iter().map(|d| d.key.clone()).collect()).await;
            self.metadata.remove_fingerprint(&model, &media).await?;
            return Ok(Outcome::Ignored("the media was deleted while it was processed".into()));
        };
        self.delete_all(superseded).await;
        if written.focal_point != focal_point {
            // The focal point moved while the crops were cut around the old one.
            // Boxed: a regeneration may itself reprocess (when the original changed). A failure
            // is not retried through the message (its replay would be skipped): it is logged, and
            // the next regeneration (or focal-point edit) rebuilds the crops.
            if let Err(e) = Box::pin(self.regenerate(&model, &media, &self.cover_presets())).await {
                warn!(error = %e, "could not rebuild the crops around the new focal point");
            }
        }
        let t = &timings;
        info!(
            fetch_ms = ms(fetch),
            decode_ms = ms(t.decode),
            resize_ms = ms(t.resize),
            encode_ms = ms(t.encode),
            store_ms = ms(store),
            total_ms = ms(started.elapsed()),
            bytes = info.size,
            width,
            height,
            renditions = rendition_count,
            "processed"
        );
        Ok(Outcome::Processed)
    }

    /// Rebuilds exactly the derivatives whose preset is stale (missing, an older version, other
    /// formats) or named in `force`, drops those of presets no longer configured, and deletes the
    /// superseded objects. Up-to-date media cost one read.
    pub async fn regenerate(
        &self,
        model: &ModelId,
        media: &MediaId,
        force: &[String],
    ) -> Result<Outcome, ProcessError> {
        let mut record = match self.metadata.get_media(model, media).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => return Ok(Outcome::Ignored("no such media".into())),
            Err(e) => return Err(e.into()),
        };
        let Some(source) = record.source.clone() else {
            return Ok(Outcome::Ignored(format!("media is {} with no processed original", record.status.as_str())));
        };
        let presets = &self.config.presets;
        let stale: Vec<String> = presets
            .presets
            .iter()
            .filter(|p| force.contains(&p.name) || !is_current(&record.derivatives, p))
            .map(|p| p.name.clone())
            .collect();
        let unconfigured = record.derivatives.iter().any(|d| presets.get(&d.preset).is_none());
        if stale.is_empty() && !unconfigured {
            return Ok(Outcome::UpToDate);
        }
        let (info, bytes) = match self.objects.get(&record.original_key, self.config.limits.max_upload_bytes).await {
            Ok(found) => found,
            Err(StoreError::NotFound) => return Ok(Outcome::Ignored("the original is gone".into())),
            Err(e) => return Err(e.into()),
        };
        if info.etag != source.etag {
            // The original changed since it was processed: that is a new upload, not a regeneration.
            return self.process(record, None).await;
        }
        let mut derivatives: Vec<Derivative> = record
            .derivatives
            .iter()
            .filter(|d| presets.get(&d.preset).is_some() && !stale.contains(&d.preset))
            .cloned()
            .collect();
        if !stale.is_empty() {
            let processed = self
                .render(bytes, Some(stale.clone()), &record)
                .await
                .map_err(|e| ProcessError::Transient(anyhow::anyhow!("the original no longer renders: {e}")))?;
            derivatives.extend(self.store_renditions(&record, &source.sha256, &info.etag, processed.renditions).await?);
        }
        let superseded = superseded(&record.derivatives, &derivatives);
        record.derivatives = derivatives;
        let now = OffsetDateTime::now_utc();
        let summary = if stale.is_empty() {
            "dropped unconfigured presets".to_owned()
        } else {
            format!("rebuilt {}", stale.join(", "))
        };
        record.record_history(now, SYSTEM_ACTOR, "regenerated", summary);
        self.write(&mut record, now).await?;
        self.delete_all(superseded).await;
        info!(presets = ?stale, "regenerated");
        Ok(Outcome::Regenerated(stale))
    }

    async fn store_renditions(
        &self,
        record: &MediaRecord,
        sha256: &str,
        etag: &str,
        renditions: Vec<Rendition>,
    ) -> Result<Vec<Derivative>, ProcessError> {
        let mut derivatives = Vec::with_capacity(renditions.len());
        for rendition in renditions {
            // Content hash, preset version and (for crops) the focal point in the key: whatever
            // changes the bytes changes the key, so a cached derivative is never stale.
            let crop = match (self.config.presets.get(&rendition.preset).map(|p| &p.fit), record.focal_point) {
                (Some(Fit::Cover { .. }), Some(f)) => {
                    format!("-f{}x{}", (f.x * 1000.0).round() as u32, (f.y * 1000.0).round() as u32)
                }
                _ => String::new(),
            };
            let key = ObjectKey::parse(&format!(
                "derived/{}/{}/{}/{}-v{}{crop}.{}",
                record.model_id,
                record.media_id,
                &sha256[..16],
                rendition.preset,
                rendition.preset_version,
                rendition.format.extension()
            ))
            .map_err(|e| ProcessError::Transient(e.into()))?;
            let options = PutOptions {
                content_type: Some(rendition.format.mime().to_owned()),
                cache_control: Some(DERIVATIVE_CACHE_CONTROL.to_owned()),
            };
            let stored = self.objects.put(&key, Bytes::from(rendition.bytes), options).await?;
            derivatives.push(Derivative {
                preset: rendition.preset,
                preset_version: rendition.preset_version,
                format: rendition.format.as_str().to_owned(),
                width: rendition.width,
                height: rendition.height,
                bytes: stored.size,
                key,
                source_etag: etag.to_owned(),
                operations: rendition.operations,
            });
        }
        Ok(derivatives)
    }

    fn source_info(&self, processed: &Processed, etag: String, bytes: u64, sha256: String) -> SourceInfo {
        let (probe, analysis) = (&processed.probe, &processed.analysis);
        SourceInfo {
            etag,
            bytes,
            format: probe.format.as_str().to_owned(),
            width: probe.width,
            height: probe.height,
            orientation: probe.orientation,
            sha256,
            camera_make: probe.camera_make.clone(),
            camera_model: probe.camera_model.clone(),
            captured_at: probe.captured_at.clone(),
            lens: probe.lens.clone(),
            artist: probe.artist.clone(),
            copyright: probe.copyright.clone(),
            gps: probe
                .gps
                .filter(|_| self.config.keep_gps)
                .map(|g| GpsPosition { latitude: g.latitude, longitude: g.longitude }),
            placeholder: Some(analysis.thumbhash.clone()),
            dominant_color: Some(analysis.dominant_color.clone()),
            phash: Some(analysis.phash.clone()),
        }
    }

    async fn delete_all(&self, keys: Vec<ObjectKey>) {
        for key in keys {
            if let Err(e) = self.objects.delete(&key).await {
                warn!(key = %key, error = %e, "could not delete a superseded derivative");
            }
        }
    }

    async fn render(
        &self,
        bytes: Bytes,
        only: Option<Vec<String>>,
        record: &MediaRecord,
    ) -> Result<Processed, ImagingError> {
        let limits = image_limits(&self.config.limits);
        let presets = self.config.presets.clone();
        let options = RenderOptions { focal_point: record.focal_point.map(|f| FocalPoint { x: f.x, y: f.y }) };
        // CPU-bound: off the async workers, so one big photo does not stall the others.
        tokio::task::spawn_blocking(move || {
            let only: Option<Vec<&str>> = only.as_ref().map(|names| names.iter().map(String::as_str).collect());
            phoenix_imaging::process(&bytes, &limits, &presets, only.as_deref(), &options)
        })
        .await
        .unwrap_or_else(|join| Err(ImagingError::from_panic(join.to_string())))
    }

    async fn reject(&self, record: MediaRecord, code: &str, message: String) -> Result<Outcome, ProcessError> {
        warn!(code, %message, "upload rejected");
        let now = OffsetDateTime::now_utc();
        let claim = record.claim.clone();
        self.write_merged(record, claim, |r| {
            r.status = MediaStatus::Rejected;
            r.expires_at = None;
            r.source = None;
            r.rejection = Some(Rejection { code: code.to_owned(), message: message.clone() });
            // The claim stays as the record of which object version was judged, for the replay check.
            if let Some(claim) = r.claim.as_mut() {
                claim.until = now;
            }
            r.record_history(now, SYSTEM_ACTOR, "rejected_file", format!("{code}: {message}"));
        })
        .await?;
        Ok(Outcome::Rejected(code.to_owned()))
    }

    /// The presets that crop (around the focal point).
    fn cover_presets(&self) -> Vec<String> {
        let presets = &self.config.presets.presets;
        presets.iter().filter(|p| matches!(p.fit, Fit::Cover { .. })).map(|p| p.name.clone()).collect()
    }

    /// Applies the outcome of processing to the record (the record as written; `None` if the
    /// media was deleted meanwhile). People may edit a record while its
    /// photo is processed (caption, tags): on a version conflict the outcome is applied again to
    /// what they wrote, as long as this delivery's claim is still the record's claim.
    async fn write_merged(
        &self,
        mut record: MediaRecord,
        claim: Option<Claim>,
        apply: impl Fn(&mut MediaRecord),
    ) -> Result<Option<MediaRecord>, ProcessError> {
        for _ in 0..MERGE_ATTEMPTS {
            let mut next = record.clone();
            apply(&mut next);
            match self.write(&mut next, OffsetDateTime::now_utc()).await {
                Ok(()) => return Ok(Some(next)),
                Err(ProcessError::Transient(_)) if claim.is_some() => {}
                Err(e) => return Err(e),
            }
            record = match self.metadata.get_media(&record.model_id, &record.media_id).await {
                Ok(fresh) => fresh,
                Err(StoreError::NotFound) => return Ok(None), // deleted meanwhile: nothing to record
                Err(e) => return Err(e.into()),
            };
            if record.claim.as_ref().map(|c| &c.etag) != claim.as_ref().map(|c| &c.etag) {
                return Err(ProcessError::Transient(anyhow::anyhow!("another delivery took over this media")));
            }
        }
        Err(ProcessError::Transient(anyhow::anyhow!("the media record kept changing while it was processed")))
    }

    /// Removes every object of a deleted media, then its tombstone. The API enqueues this with a
    /// delay longer than its own timeout, so a delete that did not happen is seen as such.
    pub async fn purge(&self, model: &ModelId, media: &MediaId) -> Result<Outcome, ProcessError> {
        let Some(tombstone) = self.metadata.get_tombstone(model, media).await? else {
            return Ok(Outcome::Ignored("no tombstone: never deleted, or already purged".into()));
        };
        let mut removed = 0;
        // Listing catches objects the record no longer names (a crash between writing a
        // derivative and recording it).
        let prefix = format!("derived/{model}/{media}/");
        let mut cursor = None;
        loop {
            let page = self.objects.list(&prefix, cursor.take(), 1000).await?;
            for key in &page.keys {
                self.objects.delete(key).await?;
                removed += 1;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for derivative in &tombstone.derivatives {
            self.objects.delete(&derivative.key).await?;
        }
        self.objects.delete(&tombstone.original_key).await?;
        self.metadata.remove_tombstone(model, media).await?;
        info!(removed, "purged a deleted media");
        Ok(Outcome::Purged(removed + 1))
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

/// Whether the record holds this preset's current version in exactly its configured formats.
fn is_current(derivatives: &[Derivative], preset: &phoenix_imaging::Preset) -> bool {
    let mut made: Vec<&str> = derivatives
        .iter()
        .filter(|d| d.preset == preset.name && d.preset_version == preset.version)
        .map(|d| d.format.as_str())
        .collect();
    let mut wanted: Vec<&str> = preset.formats.iter().map(|f| f.as_str()).collect();
    made.sort_unstable();
    wanted.sort_unstable();
    made == wanted
}

/// Objects of `old` that `new` no longer uses.
fn superseded(old: &[Derivative], new: &[Derivative]) -> Vec<ObjectKey> {
    old.iter().map(|d| d.key.clone()).filter(|k| !new.iter().any(|d| &d.key == k)).collect()
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
