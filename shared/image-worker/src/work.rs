//! The work each operation does on one media: an edit or a watermark makes a new image version
//! (its own source object and derivatives, made by the upload pipeline); a regeneration brings
//! the current version's derivatives up to date. A job that runs again finds the version it made
//! and makes no second one.

use std::time::Duration;

use bytes::Bytes;
use phoenix_domain::galleries::republish::{self, Reason};
use phoenix_domain::jobs::{FlipAxis, Job, JobResult, Operation};
use phoenix_domain::media::{AppliedWatermark, NewVersion, VersionOrigin};
use phoenix_domain::ports::PutOptions;
use phoenix_domain::watermarks::{WatermarkError, get_profile};
use phoenix_domain::{MediaId, MediaRecord, MediaStatus, StoreError, keys};
use phoenix_imaging::{CropSpec, EditOp, FocalPoint, ImageLimits, ImagingError, Rotation};
use phoenix_ingest::{Outcome, ProcessError, SYSTEM_ACTOR};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::Worker;
use crate::run::Done;

/// Why work failed: worth another attempt, or never going to work.
#[derive(Debug)]
pub(crate) enum WorkError {
    Transient(String),
    /// `code`: `invalid_params`, `source_unreadable`, `media_gone`, `invalid_state`, `internal`.
    Permanent {
        code: &'static str,
        message: String,
    },
}

impl WorkError {
    fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self::Permanent { code, message: message.into() }
    }
}

impl From<StoreError> for WorkError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() { Self::Transient(format!("{e:#}")) } else { Self::permanent("internal", format!("{e:#}")) }
    }
}

impl From<ProcessError> for WorkError {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Transient(e) => Self::Transient(format!("{e:#}")),
            ProcessError::Busy(until) => Self::Transient(format!("the media is being processed until {until}")),
            ProcessError::Permanent(e) => Self::permanent("source_unreadable", format!("{e:#}")),
            ProcessError::Malformed(e) => Self::permanent("internal", e.to_string()),
        }
    }
}

/// Edits write this many times over concurrent changes to the record before the attempt fails.
const WRITE_ATTEMPTS: usize = 5;

impl Worker {
    pub(crate) async fn work(&self, job: &Job, holder: &str) -> Result<Done, WorkError> {
        self.inject_faults(job).await?;
        let Some(media) = job.target.media_id else {
            return self.fan_out(job, holder).await;
        };
        let result = match &job.operation {
            Operation::Regenerate { presets } => self.regenerate(job, media, presets).await?,
            Operation::Watermark { profile } => {
                let profile = get_profile(self.ports.objects.as_ref(), profile).await.map_err(|e| match e {
                    WatermarkError::NotFound(m) => WorkError::permanent("invalid_params", m),
                    WatermarkError::Store(e) => e.into(),
                    WatermarkError::Invalid { message, .. } => WorkError::permanent("invalid_params", message),
                })?;
                self.make_version(job, media, Edit::Watermark(profile.applied())).await?
            }
            op @ (Operation::Crop { .. } | Operation::Rotate { .. } | Operation::Flip { .. }) => {
                self.make_version(job, media, Edit::Pixels(op.clone())).await?
            }
        };
        Ok(Done::Finished(result))
    }

    /// The test-only fault plan, honoured only when the deployment turned fault injection on.
    async fn inject_faults(&self, job: &Job) -> Result<(), WorkError> {
        let Some(plan) = job.fault.filter(|_| self.settings.fault_injection) else { return Ok(()) };
        if plan.stall_ms > 0 {
            tokio::time::sleep(Duration::from_millis(plan.stall_ms)).await;
        }
        let attempt = phoenix_domain::jobs::lifecycle::run_attempts(job);
        if plan.permanent {
            return Err(WorkError::permanent("invalid_params", "injected permanent failure"));
        }
        if attempt <= plan.transient_failures {
            return Err(WorkError::Transient(format!("injected transient failure {attempt}")));
        }
        Ok(())
    }

    async fn media(&self, job: &Job, media: MediaId) -> Result<MediaRecord, WorkError> {
        match self.ports.metadata.get_media(&job.model_id, &media).await {
            Ok(record) if record.is_trashed() => {
                Err(WorkError::permanent("media_gone", format!("media {media} is in the trash")))
            }
            Ok(record) => Ok(record),
            Err(StoreError::NotFound) => {
                Err(WorkError::permanent("media_gone", format!("media {media} no longer exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn regenerate(&self, job: &Job, media: MediaId, presets: &[String]) -> Result<JobResult, WorkError> {
        let _cpu = self.cpu.acquire().await.map_err(|e| WorkError::Transient(e.to_string()))?;
        let outcome = self.processor.regenerate(&job.model_id, &media, presets).await?;
        let summary = match &outcome {
            Outcome::Regenerated(p) => format!("rebuilt {}", p.join(", ")),
            Outcome::UpToDate => "up to date".to_owned(),
            Outcome::Ignored(reason) => {
                return Err(WorkError::permanent("invalid_state", format!("nothing to regenerate: {reason}")));
            }
            Outcome::Refused => return Err(WorkError::permanent("invalid_state", "the original was replaced")),
            other => format!("{other:?}"),
        };
        let record = self.media(job, media).await?;
        Ok(JobResult {
            media_id: Some(media),
            image_version: Some(record.image_version),
            derivatives: record.derivatives,
            summary,
        })
    }

    /// Makes the new version `edit` describes, unless this job made it already.
    async fn make_version(&self, job: &Job, media: MediaId, edit: Edit) -> Result<JobResult, WorkError> {
        let record = self.media(job, media).await?;
        if let Some(made) = record.version_made_by(&job.job_id) {
            info!(version = made.number, "this job made its version already");
            return Ok(result(
                media,
                made.number,
                made.derivatives,
                made.origin.map(|o| o.summary).unwrap_or_default(),
            ));
        }
        let Some(source) = record.source.clone() else {
            return Err(WorkError::permanent("invalid_state", format!("media {media} has no processed image")));
        };
        if matches!(record.status, MediaStatus::Uploading | MediaStatus::Processing) {
            return Err(WorkError::permanent("invalid_state", format!("media {media} is {}", record.status.as_str())));
        }
        let limits = &self.processor.config().limits;
        let (_, bytes) = match self.ports.objects.get(record.current_source_key(), limits.max_upload_bytes).await {
            Ok(found) => found,
            Err(StoreError::NotFound) => {
                return Err(WorkError::permanent("source_unreadable", "the current version's source object is gone"));
            }
            Err(e) => return Err(e.into()),
        };
        let _cpu = self.cpu.acquire().await.map_err(|e| WorkError::Transient(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let new = match &edit {
            Edit::Pixels(op) => {
                let image_limits = ImageLimits {
                    max_bytes: limits.max_upload_bytes,
                    max_pixels: limits.max_pixels,
                    max_side: limits.max_side,
                };
                let edit_op = edit_op(op, &record)?;
                let edited =
                    tokio::task::spawn_blocking(move || phoenix_imaging::edit_source(&bytes, &image_limits, &edit_op))
                        .await
                        .unwrap_or_else(|join| Err(ImagingError::from_panic(join.to_string())))
                        .map_err(|e| match e {
                            ImagingError::InvalidEdit { .. } => WorkError::permanent("invalid_params", e.to_string()),
                            other => WorkError::permanent("source_unreadable", other.to_string()),
                        })?;
                let key = keys::version_source(&job.model_id, &media, &job.job_id, edited.format.extension());
                let edited_bytes = Bytes::from(edited.bytes);
                let put = PutOptions { content_type: Some(edited.format.mime().to_owned()), cache_control: None };
                let stored = self.ports.objects.put(&key, edited_bytes.clone(), put).await?;
                let sha256 = phoenix_imaging::sha256_hex(&edited_bytes);
                let processed =
                    self.processor.render_version(edited_bytes, None, &record, record.watermark.as_ref()).await?;
                let mut new_source =
                    self.processor.source_info(&processed, stored.etag.clone(), stored.size, sha256.clone());
                keep_capture_metadata(&mut new_source, &source);
                let derivatives = self
                    .processor
                    .store_renditions(&record, &sha256, &stored.etag, processed.renditions, record.watermark.as_ref())
                    .await?;
                let summary = format!("{} ({}x{})", edited.operations.join(", "), edited.width, edited.height);
                NewVersion {
                    source_key: key,
                    source: new_source,
                    derivatives,
                    watermark: record.watermark.clone(),
                    origin: VersionOrigin { operation: op.name().into(), summary, job_id: Some(job.job_id), at: now },
                }
            }
            Edit::Watermark(mark) => {
                let configured: Vec<String> =
                    mark.presets.iter().filter(|p| self.processor.config().presets.get(p).is_some()).cloned().collect();
                if configured.is_empty() {
                    return Err(WorkError::permanent(
                        "invalid_params",
                        format!("none of the profile's presets {:?} is configured", mark.presets),
                    ));
                }
                let processed =
                    self.processor.render_version(bytes, Some(configured.clone()), &record, Some(mark)).await?;
                let marked = self
                    .processor
                    .store_renditions(&record, &source.sha256, &source.etag, processed.renditions, Some(mark))
                    .await?;
                // Presets the mark does not name keep their current derivatives.
                let mut derivatives: Vec<_> =
                    record.derivatives.iter().filter(|d| !configured.contains(&d.preset)).cloned().collect();
                derivatives.extend(marked);
                NewVersion {
                    source_key: record.current_source_key().clone(),
                    source: source.clone(),
                    derivatives,
                    watermark: Some(mark.clone()),
                    origin: VersionOrigin {
                        operation: "watermark".into(),
                        summary: format!("watermark {} on {}", mark.profile, configured.join(", ")),
                        job_id: Some(job.job_id),
                        at: now,
                    },
                }
            }
        };
        self.record_version(job, media, new).await
    }

    /// Writes `new` as the media's current version, re-reading over concurrent edits.
    async fn record_version(&self, job: &Job, media: MediaId, new: NewVersion) -> Result<JobResult, WorkError> {
        for _ in 0..WRITE_ATTEMPTS {
            let mut record = self.media(job, media).await?;
            if let Some(made) = record.version_made_by(&job.job_id) {
                return Ok(result(
                    media,
                    made.number,
                    made.derivatives,
                    made.origin.map(|o| o.summary).unwrap_or_default(),
                ));
            }
            let summary = new.origin.summary.clone();
            let unused =
                record.push_version(new.clone()).map_err(|e| WorkError::permanent("invalid_state", e.to_string()))?;
            let now = OffsetDateTime::now_utc();
            record.record_history(
                now,
                SYSTEM_ACTOR,
                "version_created",
                format!("version {}: {summary}", record.image_version),
            );
            record.version += 1;
            record.updated_at = now;
            match self.ports.metadata.update_media(&record).await {
                Ok(()) => {
                    // Galleries showing the media show the new version after their republish.
                    republish::request(self.ports.queue.as_ref(), None, &record, Reason::Version).await;
                    for key in unused {
                        if let Err(e) = self.ports.objects.delete(&key).await {
                            warn!(key = %key, error = %e, "could not delete an object of a dropped version");
                        }
                    }
                    return Ok(result(media, record.image_version, record.derivatives, summary));
                }
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(StoreError::NotFound) => {
                    return Err(WorkError::permanent("media_gone", format!("media {media} was deleted meanwhile")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(WorkError::Transient("the media record kept changing while the version was recorded".into()))
    }
}

enum Edit {
    Pixels(Operation),
    Watermark(AppliedWatermark),
}

fn result(media: MediaId, version: u32, derivatives: Vec<phoenix_domain::Derivative>, summary: String) -> JobResult {
    JobResult { media_id: Some(media), image_version: Some(version), derivatives, summary }
}

/// The imaging edit for a job's operation; an aspect crop centres on the media's focal point.
fn edit_op(op: &Operation, record: &MediaRecord) -> Result<EditOp, WorkError> {
    let invalid = |m: &str| WorkError::permanent("invalid_params", m.to_owned());
    Ok(match op {
        Operation::Crop { rect: Some(r), .. } => {
            EditOp::Crop(CropSpec::Rect { x: r.x, y: r.y, width: r.width, height: r.height })
        }
        Operation::Crop { aspect: Some(a), .. } => {
            let focal = record.focal_point.map(|f| FocalPoint { x: f.x, y: f.y }).unwrap_or_default();
            EditOp::Crop(CropSpec::Aspect { width: a.width, height: a.height, focal })
        }
        Operation::Rotate { degrees } => EditOp::Rotate(
            Rotation::from_degrees(u32::from(*degrees)).ok_or_else(|| invalid("rotation is 90, 180 or 270"))?,
        ),
        Operation::Flip { axis: FlipAxis::Horizontal } => EditOp::Flip(phoenix_imaging::FlipAxis::Horizontal),
        Operation::Flip { axis: FlipAxis::Vertical } => EditOp::Flip(phoenix_imaging::FlipAxis::Vertical),
        _ => return Err(invalid("not an edit of pixels")),
    })
}

/// An edited source is a fresh encode without EXIF: what the camera said about the photo is
/// carried over from the version it was made from.
fn keep_capture_metadata(new: &mut phoenix_domain::SourceInfo, old: &phoenix_domain::SourceInfo) {
    new.camera_make = new.camera_make.take().or_else(|| old.camera_make.clone());
    new.camera_model = new.camera_model.take().or_else(|| old.camera_model.clone());
    new.captured_at = new.captured_at.take().or_else(|| old.captured_at.clone());
    new.lens = new.lens.take().or_else(|| old.lens.clone());
    new.artist = new.artist.take().or_else(|| old.artist.clone());
    new.copyright = new.copyright.take().or_else(|| old.copyright.clone());
    new.gps = new.gps.or(old.gps);
}
