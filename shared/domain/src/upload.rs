//! Creating an upload: validate what the client says it will send, create the record in
//! `uploading`, and hand back a presigned PUT bound to that type and length.

use time::OffsetDateTime;

use crate::config::Limits;
use crate::ids::{MediaId, ModelId, ObjectKey};
use crate::media::MediaRecord;
use crate::ports::{MetadataStore, ObjectStore, PresignedRequest, StoreError};

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
    objects: &dyn ObjectStore,
    metadata: &dyn MetadataStore,
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

    // Millisecond precision, as in the id: `created_at` and the id's timestamp agree exactly, so
    // a creation-time range is an id range.
    let now = now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now);
    let media_id = MediaId::generate_at(now);
    let original_key = ObjectKey::original(model_id, &media_id);
    // Presign first: if that fails nothing has been written.
    let upload = objects.presign_put(&original_key, &content_type, request.bytes, limits.upload_url_ttl).await?;
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
    metadata.create_media(&record).await?;
    Ok((record, upload))
}

#[cfg(test)]
mod tests {
    use super::*;

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
