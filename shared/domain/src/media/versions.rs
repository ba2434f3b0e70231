//! Image versions: an edit (crop, rotate, flip, watermark) never overwrites anything; it makes a
//! new current version with its own source object and derivative set, and the one it replaces is
//! kept, restorable. Version 1 is the upload; its original is never removed while the media lives.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Derivative, MediaError, MediaRecord, SourceInfo};
use crate::ids::{JobId, MediaId, ModelId, ObjectKey, WatermarkName};
use crate::ports::{MediaStore, ObjectStore};

/// A media keeps at most this many versions, the current one included. Past it, the oldest
/// version after the upload (version 1, always kept) is dropped with the objects only it used —
/// a record holds every version's derivative list, and DynamoDB items are at most 400 KB.
pub const MAX_VERSIONS: usize = 10;

/// The watermark a version's derivatives carry: a snapshot of the profile when it was applied, so
/// a later regeneration draws the same mark even if the profile changed since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedWatermark {
    pub profile: WatermarkName,
    /// The logo object (its key changes with its bytes).
    pub logo_key: ObjectKey,
    pub position: String,
    pub margin: f32,
    pub scale: f32,
    pub opacity: f32,
    /// The presets whose derivatives carry it.
    pub presets: Vec<String>,
}

impl Eq for AppliedWatermark {}

impl AppliedWatermark {
    /// 8 hex digits that change with anything that changes the drawn mark: part of the
    /// watermarked derivatives' keys, so they never collide with unmarked ones.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let json = serde_json::to_vec(self).unwrap_or_default();
        sha2::Sha256::digest(&json)[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// How a version came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionOrigin {
    /// `upload`, `crop`, `rotate`, `flip`, `watermark`, `restore`.
    pub operation: String,
    /// What was done, for people: `rotated 90°`, `restored version 2`.
    pub summary: String,
    /// The job that made it: a job that runs again finds its version and makes no second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An earlier version, as kept on the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageVersion {
    pub number: u32,
    pub source_key: ObjectKey,
    pub source: SourceInfo,
    #[serde(default)]
    pub derivatives: Vec<Derivative>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<AppliedWatermark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<VersionOrigin>,
}

/// What a new version is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    pub source_key: ObjectKey,
    pub source: SourceInfo,
    pub derivatives: Vec<Derivative>,
    pub watermark: Option<AppliedWatermark>,
    pub origin: VersionOrigin,
}

impl MediaRecord {
    /// The current version's source: the original, or the object an edit made.
    pub fn current_source_key(&self) -> &ObjectKey {
        self.image_source_key.as_ref().unwrap_or(&self.original_key)
    }

    /// The current version as kept (`None` before the media is processed).
    pub fn current_version(&self) -> Option<ImageVersion> {
        Some(ImageVersion {
            number: self.image_version,
            source_key: self.current_source_key().clone(),
            source: self.source.clone()?,
            derivatives: self.derivatives.clone(),
            watermark: self.watermark.clone(),
            origin: self.version_origin.clone(),
        })
    }

    /// Every version, newest (the current one) first.
    pub fn versions(&self) -> Vec<ImageVersion> {
        self.current_version().into_iter().chain(self.earlier_versions.iter().rev().cloned()).collect()
    }

    /// The version `job` made, if it made one.
    pub fn version_made_by(&self, job: &JobId) -> Option<ImageVersion> {
        self.versions().into_iter().find(|v| v.origin.as_ref().is_some_and(|o| o.job_id.as_ref() == Some(job)))
    }

    /// The number the next version gets.
    pub fn next_version_number(&self) -> u32 {
        self.earlier_versions.iter().map(|v| v.number).chain([self.image_version]).max().unwrap_or(1) + 1
    }

    /// Makes `new` the current version; the one it replaces is kept. Returns the keys of objects
    /// no version uses any more (a version dropped past [`MAX_VERSIONS`]), to delete after the
    /// record is written.
    pub fn push_version(&mut self, new: NewVersion) -> Result<Vec<ObjectKey>, MediaError> {
        let current = self.current_version().ok_or_else(|| {
            MediaError::InvalidState(format!("media {} has no processed image to make a version of", self.media_id))
        })?;
        let number = self.next_version_number();
        self.earlier_versions.push(current);
        self.image_version = number;
        self.image_source_key = Some(new.source_key).filter(|k| k != &self.original_key);
        self.source = Some(new.source);
        self.derivatives = new.derivatives;
        self.watermark = new.watermark;
        self.version_origin = Some(new.origin);
        Ok(self.drop_versions_past_cap())
    }

    /// Makes earlier version `number` current again, as a new version (its objects are reused).
    pub fn restore_version(&mut self, number: u32, origin: VersionOrigin) -> Result<Vec<ObjectKey>, MediaError> {
        if number == self.image_version {
            return Err(MediaError::InvalidState(format!("version {number} is already the current version")));
        }
        let Some(old) = self.earlier_versions.iter().find(|v| v.number == number).cloned() else {
            let known: Vec<u32> = self.versions().iter().map(|v| v.number).collect();
            return Err(MediaError::NotFound(format!(
                "media {} has no version {number} (it has {known:?})",
                self.media_id
            )));
        };
        self.push_version(NewVersion {
            source_key: old.source_key,
            source: old.source,
            derivatives: old.derivatives,
            watermark: old.watermark,
            origin,
        })
    }

    fn drop_versions_past_cap(&mut self) -> Vec<ObjectKey> {
        let mut dropped = Vec::new();
        while self.earlier_versions.len() + 1 > MAX_VERSIONS {
            // The upload (version 1) stays; the next oldest goes.
            let index = self.earlier_versions.iter().position(|v| v.number != 1).unwrap_or(0);
            dropped.push(self.earlier_versions.remove(index));
        }
        let in_use: std::collections::HashSet<ObjectKey> = self
            .versions()
            .into_iter()
            .flat_map(|v| std::iter::once(v.source_key).chain(v.derivatives.into_iter().map(|d| d.key)))
            .chain([self.original_key.clone()])
            .collect();
        let mut keys: Vec<ObjectKey> = dropped
            .into_iter()
            .flat_map(|v| std::iter::once(v.source_key).chain(v.derivatives.into_iter().map(|d| d.key)))
            .filter(|k| !in_use.contains(k))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// Which version of which media to restore, and who asks.
#[derive(Debug, Clone, Copy)]
pub struct RestoreRequest<'a> {
    pub model: &'a ModelId,
    pub media: &'a MediaId,
    pub number: u32,
    /// The media version the caller read (`If-Match`), if it named one.
    pub expected_version: Option<u64>,
    pub actor: &'a str,
    pub now: OffsetDateTime,
}

/// Restores version `number` of a media as a new current version (the caller's `If-Match` read
/// `expected_version`, if given). Objects no version uses any more are deleted after the write.
pub async fn restore_version(
    store: &dyn MediaStore,
    objects: &dyn ObjectStore,
    queue: &dyn crate::ports::Queue,
    request: RestoreRequest<'_>,
) -> Result<MediaRecord, MediaError> {
    let RestoreRequest { model, media, number, expected_version, actor, now } = request;
    let mut record = super::read_live(store, model, media).await?;
    if let Some(expected) = expected_version
        && expected != record.version
    {
        return Err(MediaError::stale(record.version, expected));
    }
    let summary = format!("restored version {number}");
    let origin = VersionOrigin { operation: "restore".into(), summary: summary.clone(), job_id: None, at: now };
    let unused = record.restore_version(number, origin)?;
    record.record_history(now, actor, "version_restored", summary);
    record.version += 1;
    record.updated_at = now;
    store.update_media(&record).await.map_err(MediaError::writing)?;
    crate::galleries::republish::request(queue, None, &record, crate::galleries::republish::Reason::Version).await;
    for key in unused {
        if let Err(e) = objects.delete(&key).await {
            tracing::warn!(key = %key, error = %e, "could not delete an object of a dropped version");
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fakes::processed_record;

    fn edit(record: &MediaRecord, n: u32, job: Option<JobId>) -> NewVersion {
        let mut source = record.source.clone().unwrap();
        source.sha256 = format!("{n:064}");
        NewVersion {
            source_key: ObjectKey::parse(&format!("versions/m1/{}/{n}.jpg", record.media_id)).unwrap(),
            source,
            derivatives: vec![],
            watermark: None,
            origin: VersionOrigin {
                operation: "rotate".into(),
                summary: "rotated".into(),
                job_id: job,
                at: OffsetDateTime::now_utc(),
            },
        }
    }

    #[test]
    fn edits_stack_up_and_a_restore_makes_a_new_version_of_an_old_one() {
        let mut record = processed_record();
        let original = record.clone();
        assert_eq!(record.image_version, 1);
        let job = JobId::new();
        assert!(record.push_version(edit(&original, 2, Some(job))).unwrap().is_empty());
        assert_eq!(record.image_version, 2);
        assert_eq!(record.current_source_key().as_str(), format!("versions/m1/{}/2.jpg", record.media_id));
        assert_eq!(record.version_made_by(&job).unwrap().number, 2);
        let now = OffsetDateTime::now_utc();
        let origin = VersionOrigin { operation: "restore".into(), summary: "r".into(), job_id: None, at: now };
        record.restore_version(1, origin.clone()).unwrap();
        assert_eq!(record.image_version, 3);
        assert_eq!(record.current_source_key(), &original.original_key);
        assert_eq!(record.derivatives, original.derivatives);
        assert_eq!(record.versions().iter().map(|v| v.number).collect::<Vec<_>>(), [3, 2, 1]);
        assert!(matches!(record.restore_version(3, origin.clone()), Err(MediaError::InvalidState(_))));
        assert!(matches!(record.restore_version(9, origin), Err(MediaError::NotFound(_))));
    }

    #[test]
    fn past_the_cap_the_oldest_edit_goes_with_its_objects_and_the_upload_stays() {
        let mut record = processed_record();
        let original = record.clone();
        let mut dropped = Vec::new();
        for n in 2..=(MAX_VERSIONS as u32 + 2) {
            dropped.extend(record.push_version(edit(&original, n, None)).unwrap());
        }
        let numbers: Vec<u32> = record.versions().iter().map(|v| v.number).collect();
        assert_eq!(numbers.len(), MAX_VERSIONS);
        assert_eq!(*numbers.last().unwrap(), 1, "the upload is kept");
        assert!(!numbers.contains(&2) && !numbers.contains(&3));
        let dropped: Vec<&str> = dropped.iter().map(|k| k.as_str()).collect();
        assert_eq!(dropped.len(), 2, "{dropped:?}");
        assert!(dropped[0].ends_with("/2.jpg") && dropped[1].ends_with("/3.jpg"), "{dropped:?}");
    }
}
