//! Creating an upload: validate what the client says it will send, create the record in
//! `uploading`, and hand back a presigned PUT bound to that type and length; and a fresh PUT for
//! a media whose bytes never came ([`renew_upload`]).

use time::OffsetDateTime;

use super::{MediaError, MediaStatus};
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

/// Characters that change how a name is displayed without being seen: bidirectional embeddings,
/// overrides, isolates and marks (`invoice\u{202E}gpj.exe` shows as `invoiceexe.jpg`), zero-width
/// spaces and joiners that hide one name inside another, invisible operators, tag characters and
/// line separators. The zero-width (non-)joiner stays allowed: scripts such as Persian and emoji
/// sequences need them.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200E}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
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
    if let Some(c) = name.chars().find(|c| is_invisible_format(*c)) {
        return Err(UploadError::Invalid(format!(
            "filename must not contain invisible formatting characters such as bidirectional controls \
             (found U+{:04X}): the name would display differently from what it is",
            c as u32
        )));
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
    record.upload_expires_at = Some(upload.expires_at);
    record.record_history(now, actor, "uploaded", format!("upload of {} bytes announced", request.bytes));
    store.create_media(&record).await?;
    Ok((record, upload))
}

/// A fresh presigned PUT for a media still `uploading` (its URL expired, or its bytes never
/// arrived): bound to the type and length announced at creation, recorded in the record
/// (`upload_expires_at`), and the abandoned-upload expiry starts again. Conditional on the version
/// read; any other state is [`MediaError::InvalidState`]. Earlier URLs stay valid until they
/// expire (a presigned URL cannot be revoked): whichever bytes arrive last before the media is
/// judged are the ones processed.
pub async fn renew_upload(
    presigner: &dyn Presigner,
    store: &dyn MediaStore,
    limits: &Limits,
    model: &ModelId,
    media: &MediaId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(MediaRecord, PresignedRequest), MediaError> {
    let mut record = super::read_live(store, model, media).await?;
    if record.status != MediaStatus::Uploading {
        return Err(MediaError::InvalidState(format!(
            "media {media} is {}: only a media still uploading gets a new upload URL",
            record.status.as_str()
        )));
    }
    let upload = presigner
        .presign_put(&record.original_key, &record.content_type, record.declared_bytes, limits.upload_url_ttl)
        .await
        .map_err(MediaError::Store)?;
    record.upload_expires_at = Some(upload.expires_at);
    record.expires_at = Some(now + limits.abandoned_upload_after);
    record.version += 1;
    record.updated_at = now;
    record.record_history(now, actor, "upload_url_renewed", "a new upload URL was handed out");
    store.update_media(&record).await.map_err(MediaError::writing)?;
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
        async fn list_trash_due(&self, _: OffsetDateTime, _: usize) -> crate::ports::StoreResult<Vec<MediaRecord>> {
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

    #[test]
    fn filenames_with_invisible_formatting_are_refused() {
        // Persian with a zero-width non-joiner, and an emoji family joined by ZWJ, are fine.
        assert!(validate_filename("\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}.jpg").is_ok());
        assert!(validate_filename("\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}.png").is_ok());
        let invisible = "\u{202A}\u{202B}\u{202C}\u{202D}\u{202E}\u{2066}\u{2067}\u{2068}\u{2069}\u{200E}\u{200F}\u{061C}\u{200B}\u{2060}\u{FEFF}\u{2028}\u{E0041}";
        for c in invisible.chars() {
            let name = format!("invoice{c}gpj.exe");
            let error = validate_filename(&name).expect_err(&format!("U+{:04X} accepted", c as u32)).to_string();
            assert!(error.contains(&format!("U+{:04X}", c as u32)) && error.contains("bidirectional"), "{error}");
        }
    }

    #[test]
    fn a_media_still_uploading_gets_a_fresh_url_and_nothing_else_does() {
        use crate::media::fakes::Fakes;

        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let limits = Limits::default();
        let model = ModelId::parse("m1").unwrap();
        let request = UploadRequest { filename: "a.png".into(), content_type: "image/png".into(), bytes: 7 };
        let now = OffsetDateTime::now_utc();
        let fakes = Fakes::default();
        let (created, first) =
            rt.block_on(create_upload(&NoStore, &fakes, &limits, &model, request, "u", now)).unwrap();
        assert_eq!(created.upload_expires_at, Some(first.expires_at), "the record knows when its URL expires");

        let later = now + std::time::Duration::from_secs(3600);
        let (renewed, upload) =
            rt.block_on(renew_upload(&NoStore, &fakes, &limits, &model, &created.media_id, "u", later)).unwrap();
        assert_eq!(upload.url, created.original_key.to_string(), "the same key");
        assert_eq!(renewed.upload_expires_at, Some(upload.expires_at));
        assert_eq!(renewed.expires_at, Some(later + limits.abandoned_upload_after), "abandonment starts again");
        assert_eq!((renewed.version, renewed.history[0].action.as_str()), (2, "upload_url_renewed"));
        assert_eq!(fakes.stored(), Some(renewed.clone()));

        let mut processing = renewed;
        processing.status = MediaStatus::Processing;
        *fakes.record.lock().unwrap() = Some(processing.clone());
        let refused = rt.block_on(renew_upload(&NoStore, &fakes, &limits, &model, &created.media_id, "u", later));
        assert!(matches!(refused, Err(MediaError::InvalidState(ref m)) if m.contains("processing")), "{refused:?}");
        assert_eq!(fakes.stored(), Some(processing), "nothing written");
        let missing = rt.block_on(renew_upload(&NoStore, &fakes, &limits, &model, &MediaId::new(), "u", later));
        assert!(matches!(missing, Err(MediaError::NotFound(_))));
    }
}
