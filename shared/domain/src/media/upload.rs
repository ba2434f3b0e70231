//! Creating an upload: validate what the client says it will send, create the record in
//! `uploading`, and hand back a presigned PUT bound to that type and length.

use time::OffsetDateTime;

use crate::config::Limits;
use crate::ids::{MediaId, ModelId};
use crate::keys;
use crate::media::MediaRecord;
use crate::ports::{MediaStore, PresignedRequest, Presigner, StoreError};

/// The content types an upload may declare. The processor still sniffs the bytes.
pub const ACCEPTED_CONTENT_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

pub const MAX_FILENAME_LEN: usize = 255;

#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub filename: String,
    pub content_type: String,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("content type {0:?} is not accepted; use one of image/jpeg, image/png, image/webp")]
    UnsupportedType(String),
    #[error("{bytes} bytes is over the limit of {limit} bytes")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn validate_filename(name: &str) -> Result<(), UploadError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(UploadError::Invalid("filename must not be empty".into()));
    }
    if name.len() > MAX_FILENAME_LEN {
        return Err(UploadError::Invalid(format!("filename must be at most {MAX_FILENAME_LEN} bytes")));
    }
    if name.chars().any(|c| c.is_control() || c == '/' || c == '\\') || trimmed == "." || trimmed == ".." {
        return Err(UploadError::Invalid(
            "filename must be a plain name: no path separators or control characters".into(),
        ));
    }
    Ok(())
}

/// Validates the request, records the media as `uploading` and presigns its PUT.
pub async fn create_upload(
    presigner: &dyn Presigner,
    store: &dyn MediaStore,
    limits: &Limits,
    model_id: &ModelId,
    request: UploadRequest,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(MediaRecord, PresignedRequest), UploadError> {
    validate_filename(&request.filename)?;
    let content_type = request.content_type.trim().to_ascii_lowercase();
    if !ACCEPTED_CONTENT_TYPES.contains(&content_type.as_str()) {
        return Err(UploadError::UnsupportedType(request.content_type));
    }
    if request.bytes == 0 {
        return Err(UploadError::Invalid("bytes must be greater than zero".into()));
    }
    if request.bytes > limits.max_upload_bytes {
        return Err(UploadError::TooLarge { bytes: request.bytes, limit: limits.max_upload_bytes });
    }

    let media_id = MediaId::generate_at(now);
    // `created_at` is the id's own instant (milliseconds; later than `now` when ids made
    // concurrently had to stay in order), so a creation-time range is exactly an id range.
    let now = media_id.created_at();
    let original_key = keys::original(model_id, &media_id);
    // Presign first: if that fails nothing has been written.
    let upload = presigner.presign_put(&original_key, &content_type, request.bytes, limits.upload_url_ttl).await?;
    let mut record = MediaRecord::new_upload(
        model_id.clone(),
        media_id,
        request.filename,
        content_type,
        request.bytes,
        now,
        Some(now + limits.abandoned_upload_after),
    );
    record.record_history(now, actor, "uploaded", format!("upload of {} bytes announced", request.bytes));
    store.create_media(&record).await?;
    Ok((record, upload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_created_at_its_ids_instant() {
        let limits = Limits::default();
        let store = NoStore;
        let model = ModelId::parse("m1").unwrap();
        let request = || UploadRequest { filename: "a.jpg".into(), content_type: "image/jpeg".into(), bytes: 1 };
        let later = OffsetDateTime::now_utc() + std::time::Duration::from_secs(60);
        let earlier = later - std::time::Duration::from_secs(30);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (first, _) = rt.block_on(create_upload(&store, &store, &limits, &model, request(), "u", later)).unwrap();
        // A request that read the clock earlier but makes its id later still sorts after.
        let (second, _) = rt.block_on(create_upload(&store, &store, &limits, &model, request(), "u", earlier)).unwrap();
        for record in [&first, &second] {
            let ms = record.created_at.unix_timestamp_nanos() / 1_000_000;
            assert_eq!(ms as u64, record.media_id.timestamp_ms());
            assert_eq!(record.created_at.nanosecond() % 1_000_000, 0);
        }
        assert!(second.media_id > first.media_id && second.created_at >= first.created_at);
    }

    /// Accepts every write; presigns nothing real.
    struct NoStore;

    #[async_trait::async_trait]
    impl Presigner for NoStore {
        async fn presign_put(
            &self,
            key: &crate::ids::ObjectKey,
            _: &str,
            _: u64,
            ttl: std::time::Duration,
        ) -> crate::ports::StoreResult<PresignedRequest> {
            Ok(PresignedRequest {
                method: "PUT".into(),
                url: key.to_string(),
                headers: Default::default(),
                expires_at: OffsetDateTime::now_utc() + ttl,
            })
        }
        async fn presign_get(
            &self,
            _: &crate::ids::ObjectKey,
            _: std::time::Duration,
        ) -> crate::ports::StoreResult<PresignedRequest> {
            unreachable!("uploads presign PUTs only")
        }
    }

    #[async_trait::async_trait]
    impl MediaStore for NoStore {
        async fn create_media(&self, _: &MediaRecord) -> crate::ports::StoreResult<()> {
            Ok(())
        }
        async fn get_media(&self, _: &ModelId, _: &MediaId) -> crate::ports::StoreResult<MediaRecord> {
            unreachable!("uploads only create")
        }
        async fn batch_get_media(&self, _: &[(ModelId, MediaId)]) -> crate::ports::StoreResult<Vec<MediaRecord>> {
            unreachable!("uploads only create")
        }
        async fn update_media(&self, _: &MediaRecord) -> crate::ports::StoreResult<()> {
            unreachable!("uploads only create")
        }
        async fn list_media(
            &self,
            _: &ModelId,
            _: &crate::ports::MediaQuery,
        ) -> crate::ports::StoreResult<crate::ports::Page<MediaRecord>> {
            unreachable!("uploads only create")
        }
    }

    #[test]
    fn filenames_are_plain_names() {
        assert!(validate_filename("IMG_0001.jpg").is_ok());
        assert!(validate_filename("été à Paris.jpeg").is_ok());
        for bad in ["", "  ", "../x.jpg", "a/b.jpg", "a\\b", "a\u{0}b", ".."] {
            assert!(validate_filename(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_filename(&"a".repeat(256)).is_err());
    }
}
