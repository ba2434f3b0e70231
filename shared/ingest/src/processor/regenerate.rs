//! Bringing a processed media's derivatives up to date with the configured presets.

use phoenix_domain::galleries::republish::{self, Reason};
use phoenix_domain::{Derivative, MediaId, MediaRecord, ModelId, StoreError};
use phoenix_imaging::Preset;
use time::OffsetDateTime;
use tracing::info;

use super::ingest::superseded;
use super::{Outcome, ProcessError, Processor, SYSTEM_ACTOR};

impl Processor {
    /// Rebuilds exactly the derivatives whose preset is stale (missing, an older version, other
    /// formats) or named in `force`, drops those of presets no longer configured, and deletes the
    /// superseded objects. Up-to-date media cost one read. With a publish queue, the galleries
    /// the media is in are asked to republish ([`Processor::with_publish_queue`]).
    pub async fn regenerate(
        &self,
        model: &ModelId,
        media: &MediaId,
        force: &[String],
    ) -> Result<Outcome, ProcessError> {
        let mut record = match self.media.get_media(model, media).await {
            Ok(r) if r.is_trashed() => return Ok(Outcome::Ignored("the media is in the trash".into())),
            Ok(r) => r,
            Err(StoreError::NotFound) => return Ok(Outcome::Ignored("no such media".into())),
            Err(e) => return Err(e.into()),
        };
        let Some(source) = record.source.clone() else {
            return Ok(Outcome::Ignored(format!("media is {} with no processed original", record.status.as_str())));
        };
        let presets = &self.config.presets;
        let mut stale = self.stale_presets(&record);
        for name in force {
            if presets.get(name).is_some() && !stale.contains(name) {
                stale.push(name.clone());
            }
        }
        let unconfigured = record.derivatives.iter().any(|d| presets.get(&d.preset).is_none());
        if stale.is_empty() && !unconfigured {
            return Ok(Outcome::UpToDate);
        }
        let edited = record.image_source_key.is_some();
        let (info, bytes) =
            match self.objects.get(record.current_source_key(), self.config.limits.max_upload_bytes).await {
                Ok(found) => found,
                Err(StoreError::NotFound) if edited => {
                    return Err(ProcessError::Permanent(anyhow::anyhow!("the current version's source is gone")));
                }
                Err(StoreError::NotFound) => return Ok(Outcome::Ignored("the original is gone".into())),
                Err(e) => return Err(e.into()),
            };
        if info.etag != source.etag && edited {
            return Err(ProcessError::Permanent(anyhow::anyhow!(
                "the current version's source changed since it was made"
            )));
        }
        if info.etag != source.etag {
            // The original was replaced since it was processed: a later upload, which is refused
            // (one upload per URL), not a reason to change the media.
            return self.refuse(record, &info.etag).await;
        }
        let mut derivatives: Vec<Derivative> = record
            .derivatives
            .iter()
            .filter(|d| presets.get(&d.preset).is_some() && !stale.contains(&d.preset))
            .cloned()
            .collect();
        if !stale.is_empty() {
            // The same bytes and presets fail the same way again: a person has to look.
            let watermark = record.watermark.clone();
            let processed = self.render_version(bytes, Some(stale.clone()), &record, watermark.as_ref()).await?;
            let renditions = processed.renditions;
            derivatives.extend(
                self.store_renditions(&record, &source.sha256, &info.etag, renditions, watermark.as_ref()).await?,
            );
        }
        // Objects an earlier version still shows stay (a restored version shares its objects).
        let superseded: Vec<_> = superseded(&record.derivatives, &derivatives)
            .into_iter()
            .filter(|k| !record.earlier_versions.iter().any(|v| v.derivatives.iter().any(|d| &d.key == k)))
            .collect();
        record.derivatives = derivatives;
        let now = OffsetDateTime::now_utc();
        let summary = if stale.is_empty() {
            "dropped unconfigured presets".to_owned()
        } else {
            format!("rebuilt {}", stale.join(", "))
        };
        record.record_history(now, SYSTEM_ACTOR, "regenerated", summary);
        self.write(&mut record, now).await?;
        // Published documents name the derivatives' keys: the galleries showing the media are
        // republished with the new ones (the old objects go next).
        if let Some(queue) = &self.publish {
            republish::request(queue.as_ref(), None, &record, Reason::Version).await;
        }
        self.delete_all(superseded).await;
        info!(presets = ?stale, "regenerated");
        Ok(Outcome::Regenerated(stale))
    }
}

impl Processor {
    /// The configured presets whose derivatives the record lacks or holds in an older version
    /// or other formats (what a regeneration rebuilds; a `stale` job's selection).
    pub fn stale_presets(&self, record: &MediaRecord) -> Vec<String> {
        let presets = &self.config.presets.presets;
        presets.iter().filter(|p| !is_current(&record.derivatives, p)).map(|p| p.name.clone()).collect()
    }
}

/// Whether the record holds this preset's current version in exactly its configured formats.
fn is_current(derivatives: &[Derivative], preset: &Preset) -> bool {
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
