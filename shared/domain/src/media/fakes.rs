//! In-memory stand-ins for the ports the media use cases name, recording every call in order,
//! so a use case's test can check what it wrote and in which order (tests only).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::{MediaId, ModelId};
use crate::media::MediaRecord;
use crate::ports::{
    Fingerprint, FingerprintStore, MediaQuery, MediaStore, Page, Queue, QueueName, ReceivedMessage, StoreError,
    StoreResult, TombstoneStore,
};

/// One record, conditional writes as the adapters do them, and a log of calls.
#[derive(Default)]
pub struct Fakes {
    pub record: Mutex<Option<MediaRecord>>,
    pub tombstone: Mutex<Option<MediaRecord>>,
    pub calls: Mutex<Vec<String>>,
    pub sent: Mutex<Vec<(String, Duration)>>,
    pub queue_down: bool,
}

impl Fakes {
    pub fn holding(record: MediaRecord) -> Self {
        Self { record: Mutex::new(Some(record)), ..Self::default() }
    }

    fn log(&self, call: &str) {
        self.calls.lock().unwrap().push(call.to_owned());
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn stored(&self) -> Option<MediaRecord> {
        self.record.lock().unwrap().clone()
    }
}

#[async_trait]
impl MediaStore for Fakes {
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()> {
        self.log("create");
        *self.record.lock().unwrap() = Some(record.clone());
        Ok(())
    }
    async fn get_media(&self, _: &ModelId, media: &MediaId) -> StoreResult<MediaRecord> {
        self.log("get");
        self.stored().filter(|r| r.media_id == *media).ok_or(StoreError::NotFound)
    }
    async fn batch_get_media(&self, _: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>> {
        unreachable!("the media use cases read one record")
    }
    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()> {
        self.log("update");
        let mut stored = self.record.lock().unwrap();
        match stored.as_ref().map(|r| r.version) {
            None => Err(StoreError::NotFound),
            Some(v) if v + 1 != record.version => Err(StoreError::VersionConflict { current: Some(v) }),
            Some(_) => {
                *stored = Some(record.clone());
                Ok(())
            }
        }
    }
    async fn list_media(&self, _: &ModelId, _: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        unreachable!("the media use cases read one record")
    }
    async fn list_trash_due(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<MediaRecord>> {
        self.log("list_trash_due");
        crate::ports::bounds::page_size(limit)?;
        Ok(self.stored().into_iter().filter(|r| r.purge_after().is_some_and(|at| at <= now)).collect())
    }
}

#[async_trait]
impl FingerprintStore for Fakes {
    async fn get_media_with_fingerprints(
        &self,
        _: &ModelId,
        _: &MediaId,
    ) -> StoreResult<(MediaRecord, Vec<Fingerprint>)> {
        unreachable!("the media use cases read records alone")
    }
    async fn put_fingerprint(&self, _: &ModelId, _: &Fingerprint) -> StoreResult<()> {
        self.log("put_fingerprint");
        Ok(())
    }
    async fn remove_fingerprint(&self, _: &ModelId, _: &MediaId) -> StoreResult<()> {
        self.log("remove_fingerprint");
        Ok(())
    }
}

#[async_trait]
impl TombstoneStore for Fakes {
    async fn delete_media(&self, record: &MediaRecord) -> StoreResult<()> {
        self.log("delete");
        let mut stored = self.record.lock().unwrap();
        match stored.as_ref().map(|r| r.version) {
            Some(v) if v == record.version => {
                *self.tombstone.lock().unwrap() = stored.take();
                Ok(())
            }
            Some(v) => Err(StoreError::VersionConflict { current: Some(v) }),
            None => Err(StoreError::NotFound),
        }
    }
    async fn get_tombstone(&self, _: &ModelId, _: &MediaId) -> StoreResult<Option<MediaRecord>> {
        Ok(self.tombstone.lock().unwrap().clone())
    }
    async fn remove_tombstone(&self, _: &ModelId, _: &MediaId) -> StoreResult<()> {
        *self.tombstone.lock().unwrap() = None;
        Ok(())
    }
}

#[async_trait]
impl Queue for Fakes {
    async fn send(&self, _: &QueueName, body: &str, delay: Duration) -> StoreResult<String> {
        self.log("send");
        if self.queue_down {
            return Err(StoreError::unavailable(anyhow::anyhow!("queue down")));
        }
        self.sent.lock().unwrap().push((body.to_owned(), delay));
        Ok("m".into())
    }
    async fn receive(&self, _: &QueueName, _: usize, _: Duration, _: Duration) -> StoreResult<Vec<ReceivedMessage>> {
        unreachable!("use cases only send")
    }
    async fn delete(&self, _: &QueueName, _: &str) -> StoreResult<()> {
        unreachable!("use cases only send")
    }
    async fn change_visibility(&self, _: &QueueName, _: &str, _: Duration) -> StoreResult<()> {
        unreachable!("use cases only send")
    }
    async fn depth(&self, _: &QueueName) -> StoreResult<u64> {
        unreachable!("use cases only send")
    }
    async fn stats(&self, _: &QueueName) -> StoreResult<crate::ports::QueueStats> {
        unreachable!("use cases only send")
    }
}

/// A fresh upload of model `m1` at version 1, with no bytes yet.
pub fn uploaded_record() -> MediaRecord {
    let now = OffsetDateTime::now_utc();
    MediaRecord::new_upload(
        ModelId::parse("m1").unwrap(),
        MediaId::new(),
        "a.jpg".into(),
        "image/jpeg".into(),
        10,
        now,
        None,
    )
}

/// A processed media at version 1, ready for review and edits.
pub fn processed_record() -> MediaRecord {
    let mut record = uploaded_record();
    record.status = crate::media::MediaStatus::PendingReview;
    record.source = Some(
        serde_json::from_value(serde_json::json!({
            "etag": "e", "bytes": 10, "format": "jpeg", "width": 1, "height": 1, "orientation": 1,
            "sha256": "00".repeat(32)
        }))
        .unwrap(),
    );
    record.derivatives = vec![
        serde_json::from_value(serde_json::json!({
            "preset": "small", "preset_version": 1, "format": "webp", "width": 1, "height": 1, "bytes": 1,
            "key": "derived/m1/x/small.webp", "source_etag": "e"
        }))
        .unwrap(),
    ];
    record
}
