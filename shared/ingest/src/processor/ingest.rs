//! An uploaded original → claimed, validated, derived, stored and recorded, merged with any
//! edits people made meanwhile.

use std::time::Instant;

use bytes::Bytes;
use phoenix_domain::keys::{self, DerivativeName};
use phoenix_domain::media::{AppliedWatermark, Arrival, Claim, arrival};
use phoenix_domain::ports::{Fingerprint, PutOptions};
use phoenix_domain::{
    Derivative, GpsPosition, Limits, MediaId, MediaRecord, MediaStatus, ModelId, ObjectKey, Rejection, SourceInfo,
    StoreError,
};
use phoenix_imaging::{Fit, FocalPoint, ImageLimits, ImagingError, Processed, RenderOptions, Rendition};
use time::OffsetDateTime;
use tracing::{Instrument, info, info_span, warn};

use super::{Attempt, Outcome, ProcessError, Processor, SYSTEM_ACTOR, ms};
use crate::notification::ObjectCreated;

/// Re-applications of a processing outcome after concurrent edits before giving up (and retrying
/// the message).
const MERGE_ATTEMPTS: usize = 4;

fn image_limits(limits: &Limits) -> ImageLimits {
    ImageLimits { max_bytes: limits.max_upload_bytes, max_pixels: limits.max_pixels, max_side: limits.max_side }
}

impl Processor {
    pub(super) async fn handle_record(
        &self,
        event: &ObjectCreated,
        attempt: &Attempt,
    ) -> Result<Outcome, ProcessError> {
        if !event.event_name.starts_with("ObjectCreated") {
            return Ok(Outcome::Ignored(format!("event {}", event.event_name)));
        }
        let Some((model_id, media_id)) = ObjectKey::parse(&event.key).ok().and_then(|k| keys::parse_original(&k))
        else {
            return Ok(Outcome::Ignored(format!("key {:?} is not an original", event.key)));
        };
        let span = info_span!("ingest", model_id = %model_id, media_id = %media_id);
        async {
            let record = match self.media.get_media(&model_id, &media_id).await {
                Ok(r) => r,
                Err(StoreError::NotFound) => return self.remove_orphan(&model_id, &media_id).await,
                Err(e) => return Err(e.into()),
            };
            self.process(record, event.etag.as_deref(), attempt).await
        }
        .instrument(span)
        .await
    }

    /// An original with no record: its media was deleted (or its upload abandoned and expired)
    /// before the bytes arrived. Records are made before an upload URL is handed out, so nobody
    /// will ever claim these bytes; they are removed rather than kept unaccounted for.
    async fn remove_orphan(&self, model: &ModelId, media: &MediaId) -> Result<Outcome, ProcessError> {
        let key = keys::original(model, media);
        self.objects.delete(&key).await?;
        warn!(key = %key, "removed an original that has no media record");
        Ok(Outcome::Ignored("no media record; the orphaned original was removed".into()))
    }

    /// Processes the stored original of `record`, unless its object version was judged already,
    /// another live delivery holds it (a transient failure: the message comes back later), or the
    /// media was judged from another object (the later one is refused,
    /// [`phoenix_domain::media::arrival`]). The last delivery the queue makes does no image work:
    /// it gives up instead, so that the media does not stay `processing`.
    pub(super) async fn process(
        &self,
        mut record: MediaRecord,
        event_etag: Option<&str>,
        attempt: &Attempt,
    ) -> Result<Outcome, ProcessError> {
        let now = OffsetDateTime::now_utc();
        let holder = attempt.message_id.as_deref();
        if record.is_trashed() {
            // Neither processed nor removed: a restore brings it back as it was, and after the
            // grace period the trash sweep purges every object it owns.
            return Ok(Outcome::Ignored("the media is in the trash".into()));
        }
        // The event's object version first: a replay costs one read.
        if let Some(etag) = event_etag {
            match arrival(&record, etag, holder, now) {
                Arrival::Done => return Ok(Outcome::AlreadyProcessed),
                Arrival::Busy { until } => return Err(ProcessError::Busy(until)),
                // Decided on what is stored now: the event may be older than the object.
                Arrival::Process | Arrival::Refuse => {}
                Arrival::Trashed => return Ok(Outcome::Ignored("the media is in the trash".into())),
            }
        }
        let started = Instant::now();
        let head = match self.objects.head(&record.original_key).await {
            Ok(head) => head,
            Err(StoreError::NotFound) => return self.original_gone(record).await,
            Err(e) => return Err(e.into()),
        };
        match arrival(&record, &head.etag, holder, now) {
            Arrival::Done => return Ok(Outcome::AlreadyProcessed),
            Arrival::Busy { until } => return Err(ProcessError::Busy(until)),
            Arrival::Refuse => return self.refuse(record, &head.etag).await,
            Arrival::Process if attempt.last => return self.give_up(record, attempt).await,
            Arrival::Process => {}
            Arrival::Trashed => return Ok(Outcome::Ignored("the media is in the trash".into())),
        }

        // Claim the object version so a duplicate delivery does not repeat the work.
        record.take_claim(&head.etag, holder, now, self.config.limits.processing_lease);
        self.write(&mut record, now).await?;

        let limits = &self.config.limits;
        if head.size > limits.max_upload_bytes {
            let message =
                format!("the file is {} bytes, over the limit of {} bytes", head.size, limits.max_upload_bytes);
            return self.reject(record, "file_too_large", message).await;
        }
        let (info, bytes) = match self.objects.get(&record.original_key, limits.max_upload_bytes).await {
            Ok(found) => found,
            Err(StoreError::NotFound) => return self.original_gone(record).await,
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
        let sniffed_type = processed.probe.format.mime();
        let (timings, width, height) = (processed.timings, processed.probe.width, processed.probe.height);
        let rendition_count = processed.renditions.len();
        let store_started = Instant::now();
        let derivatives = self.store_renditions(&record, &sha256, &info.etag, processed.renditions, None).await?;
        let store = store_started.elapsed();

        let superseded = superseded(&record.derivatives, &derivatives);
        // The fingerprint first: writing it again on a retry is harmless, and once the record
        // says `pending_review` a replay skips this work.
        if let Some(phash) = &source.phash {
            let fingerprint = Fingerprint { media_id: record.media_id, phash: phash.clone() };
            match self.fingerprints.put_fingerprint(&record.model_id, &fingerprint).await {
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
                // A declared `image/png` whose bytes are a JPEG is a JPEG from now on.
                r.follow_sniffed_type(sniffed_type, now, SYSTEM_ACTOR);
            })
            .await?;
        let Some(written) = written else {
            // Deleted (or moved to the trash) while it was processed: its purge may have run
            // already, so what this run stored is removed here.
            self.delete_all(derivatives.iter().map(|d| d.key.clone()).collect()).await;
            self.fingerprints.remove_fingerprint(&model, &media).await?;
            return Ok(Outcome::Ignored("the media was deleted while it was processed".into()));
        };
        self.delete_all(superseded).await;
        if written.focal_point != focal_point {
            // The focal point moved while the crops were cut around the old one. A failure is
            // not retried through the message (its replay would be skipped): it is logged, and
            // the next regeneration (or focal-point edit) rebuilds the crops.
            if let Err(e) = self.regenerate(&model, &media, &self.cover_presets()).await {
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

    /// Stores each rendition under its derivative key ([`keys::derivative`]) and describes it;
    /// renditions of the presets `watermark` names carry its digest in their keys.
    pub async fn store_renditions(
        &self,
        record: &MediaRecord,
        sha256: &str,
        etag: &str,
        renditions: Vec<Rendition>,
        watermark: Option<&AppliedWatermark>,
    ) -> Result<Vec<Derivative>, ProcessError> {
        let mut derivatives = Vec::with_capacity(renditions.len());
        let digest = watermark.map(|w| w.digest());
        for rendition in renditions {
            let marked = watermark.is_some_and(|w| w.presets.contains(&rendition.preset));
            let focal_point = match (self.config.presets.get(&rendition.preset).map(|p| &p.fit), record.focal_point) {
                (Some(Fit::Cover { .. }), Some(f)) => {
                    Some(((f.x * 1000.0).round() as u32, (f.y * 1000.0).round() as u32))
                }
                _ => None,
            };
            let name = DerivativeName {
                source_sha256: sha256,
                preset: &rendition.preset,
                preset_version: rendition.preset_version,
                focal_point,
                watermark: digest.as_deref().filter(|_| marked),
                extension: rendition.format.extension(),
            };
            let key = keys::derivative(&record.model_id, &record.media_id, name).ok_or_else(|| {
                ProcessError::Permanent(anyhow::anyhow!(
                    "no valid derivative key for preset {:?} of a source hashed {sha256:?}",
                    rendition.preset
                ))
            })?;
            let options = PutOptions {
                content_type: Some(rendition.format.mime().to_owned()),
                cache_control: Some(phoenix_domain::keys::DERIVATIVE_CACHE_CONTROL.to_owned()),
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

    /// What a processed source is, for the record.
    pub fn source_info(&self, processed: &Processed, etag: String, bytes: u64, sha256: String) -> SourceInfo {
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

    /// Renders `only` these presets (all when `None`) from the original's bytes.
    pub(super) async fn render(
        &self,
        bytes: Bytes,
        only: Option<Vec<String>>,
        record: &MediaRecord,
    ) -> Result<Processed, ImagingError> {
        let options = RenderOptions {
            focal_point: record.focal_point.map(|f| FocalPoint { x: f.x, y: f.y }),
            ..RenderOptions::default()
        };
        self.render_with(bytes, only, options).await
    }

    /// Renders `only` these presets (all when `None`) from a version's source bytes, with the
    /// watermark `watermark` names drawn on its presets (its logo read from the object store).
    pub async fn render_version(
        &self,
        bytes: Bytes,
        only: Option<Vec<String>>,
        record: &MediaRecord,
        watermark: Option<&AppliedWatermark>,
    ) -> Result<Processed, ProcessError> {
        let mut options = RenderOptions {
            focal_point: record.focal_point.map(|f| FocalPoint { x: f.x, y: f.y }),
            ..RenderOptions::default()
        };
        if let Some(mark) = watermark {
            options.watermark = Some(self.load_watermark(mark).await?);
        }
        self.render_with(bytes, only, options)
            .await
            .map_err(|e| ProcessError::Permanent(anyhow::anyhow!("the source does not render ({}): {e}", e.code())))
    }

    async fn load_watermark(&self, mark: &AppliedWatermark) -> Result<phoenix_imaging::Watermark, ProcessError> {
        let (_, png) = match self.objects.get(&mark.logo_key, 8 * 1024 * 1024).await {
            Ok(found) => found,
            Err(StoreError::NotFound) => {
                return Err(ProcessError::Permanent(anyhow::anyhow!("the watermark logo {} is gone", mark.logo_key)));
            }
            Err(e) => return Err(e.into()),
        };
        let logo = phoenix_imaging::decode_logo(&png)
            .map_err(|e| ProcessError::Permanent(anyhow::anyhow!("the watermark logo does not decode: {e}")))?;
        let position = serde_json::from_value(serde_json::Value::String(mark.position.clone()))
            .map_err(|e| ProcessError::Permanent(anyhow::anyhow!("watermark position {:?}: {e}", mark.position)))?;
        Ok(phoenix_imaging::Watermark {
            logo: std::sync::Arc::new(logo),
            position,
            margin: mark.margin,
            scale: mark.scale,
            opacity: mark.opacity,
            presets: mark.presets.clone(),
        })
    }

    async fn render_with(
        &self,
        bytes: Bytes,
        only: Option<Vec<String>>,
        options: RenderOptions,
    ) -> Result<Processed, ImagingError> {
        let limits = image_limits(&self.config.limits);
        let presets = self.config.presets.clone();
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
            record = match self.media.get_media(&record.model_id, &record.media_id).await {
                // Moved to the trash meanwhile: as if deleted, nothing is recorded (a restore
                // brings it back `uploading`, the sweep purges it).
                Ok(fresh) if fresh.is_trashed() => return Ok(None),
                Ok(fresh) => fresh,
                Err(StoreError::NotFound) => return Ok(None), // deleted meanwhile: nothing to record
                Err(e) => return Err(e.into()),
            };
            if record.claim != claim {
                return Err(ProcessError::Transient(anyhow::anyhow!("another delivery took over this media")));
            }
        }
        Err(ProcessError::Transient(anyhow::anyhow!("the media record kept changing while it was processed")))
    }
}

impl Processor {
    /// A later object for a judged media: the refusal is recorded (status, review and
    /// derivatives stay), then the object is removed. Retried, the refusal is not recorded twice.
    pub(super) async fn refuse(&self, record: MediaRecord, etag: &str) -> Result<Outcome, ProcessError> {
        warn!(etag, status = record.status.as_str(), "a later upload for a judged media is refused and removed");
        let now = OffsetDateTime::now_utc();
        let mut noted = record.clone();
        if noted.note_refused_upload(etag, now, SYSTEM_ACTOR) {
            self.write(&mut noted, now).await?;
        }
        self.objects.delete(&record.original_key).await?;
        Ok(Outcome::Refused)
    }

    /// The last delivery the queue will make found the media still unjudged: every earlier one
    /// crashed, timed out or failed. Rather than leave it `processing` (or `uploading` with its
    /// bytes stored), it is marked `rejected` with `processing_failed`, and the message is
    /// reported so that it ends in the dead-letter queue, whose redrive processes it afresh.
    async fn give_up(&self, mut record: MediaRecord, attempt: &Attempt) -> Result<Outcome, ProcessError> {
        for _ in 0..MERGE_ATTEMPTS {
            let now = OffsetDateTime::now_utc();
            let mut failed = record.clone();
            failed.give_up_processing(attempt.receive_count, now, SYSTEM_ACTOR);
            match self.write(&mut failed, now).await {
                Ok(()) => {
                    warn!(deliveries = attempt.receive_count, "gave up: the media is rejected (processing_failed)");
                    return Err(ProcessError::Permanent(anyhow::anyhow!(
                        "gave up after {} deliveries: the media is now rejected with processing_failed",
                        attempt.receive_count
                    )));
                }
                Err(ProcessError::Transient(_)) => {}
                Err(e) => return Err(e),
            }
            record = match self.media.get_media(&record.model_id, &record.media_id).await {
                Ok(fresh) if fresh.is_trashed() => return Ok(Outcome::Ignored("the media is in the trash".into())),
                Ok(fresh) => fresh,
                Err(StoreError::NotFound) => return Ok(Outcome::Ignored("the media was deleted".into())),
                Err(e) => return Err(e.into()),
            };
            if record.judged_etag().is_some() {
                return Ok(Outcome::AlreadyProcessed);
            }
            if let Some(claim) = record.claim.as_ref().filter(|_| record.status == MediaStatus::Processing)
                && claim.excludes(attempt.message_id.as_deref(), OffsetDateTime::now_utc())
            {
                return Err(ProcessError::Busy(claim.until));
            }
        }
        Err(ProcessError::Transient(anyhow::anyhow!("the media record kept changing while giving up on it")))
    }

    /// The original is not in the store. A media claimed for it goes back to `uploading` (a
    /// new upload URL brings the bytes) rather than staying `processing`; otherwise the
    /// notification is stale (a refused or purged object) and there is nothing to do.
    async fn original_gone(&self, record: MediaRecord) -> Result<Outcome, ProcessError> {
        if record.status != MediaStatus::Processing {
            return Ok(Outcome::Ignored("the original is gone".into()));
        }
        let now = OffsetDateTime::now_utc();
        let mut released = record;
        released.release_missing_original(now, SYSTEM_ACTOR);
        self.write(&mut released, now).await?;
        warn!("the claimed original is gone: the media is uploading again");
        Ok(Outcome::Ignored("the original is gone; the media is uploading again".into()))
    }
}

/// Another delivery holds a live claim: a transient failure, so the message comes back later
/// (SQS: after the visibility timeout, by which the claim has lapsed; locally: after the drain's
/// backoff) and is never acknowledged as done.
/// Objects of `old` that `new` no longer uses.
pub(super) fn superseded(old: &[Derivative], new: &[Derivative]) -> Vec<ObjectKey> {
    old.iter().map(|d| d.key.clone()).filter(|k| !new.iter().any(|d| &d.key == k)).collect()
}
