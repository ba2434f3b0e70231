//! The processor's contract with SQS, on the local adapters with a fault-injecting metadata port:
//! transient failures are reported per message, bad files are final, tests events are ignored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use phoenix_consumer::handle_sqs_batch;
use phoenix_domain::keys;
use phoenix_domain::media::{UploadRequest, create_upload};
use phoenix_domain::ports::{Fingerprint, MediaQuery, Page, PutOptions, StoreResult};
use phoenix_domain::{
    FingerprintStore, Limits, MediaId, MediaRecord, MediaStatus, MediaStore, ModelId, ObjectStore, StoreError,
    TombstoneStore,
};
use phoenix_ingest::{Config, Outcome, Processor};
use phoenix_storage::local::{LocalMetadataStore, LocalObjectStore};

/// Fails the next `failures` reads with `Unavailable`, as a throttled or unreachable store would;
/// with `edit_before_outcome` set, a person edits the caption just before the processor records
/// its outcome (so the processor's write conflicts).
struct Flaky {
    inner: LocalMetadataStore,
    failures: AtomicU32,
    edit_before_outcome: std::sync::atomic::AtomicBool,
    delete_before_outcome: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl MediaStore for Flaky {
    async fn create_media(&self, r: &MediaRecord) -> StoreResult<()> {
        self.inner.create_media(r).await
    }
    async fn get_media(&self, m: &ModelId, id: &MediaId) -> StoreResult<MediaRecord> {
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StoreError::unavailable(anyhow::anyhow!("throttled")));
        }
        self.inner.get_media(m, id).await
    }
    async fn batch_get_media(&self, keys: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>> {
        self.inner.batch_get_media(keys).await
    }
    async fn update_media(&self, r: &MediaRecord) -> StoreResult<()> {
        if r.status == MediaStatus::PendingReview && self.delete_before_outcome.swap(false, Ordering::SeqCst) {
            let current = self.inner.get_media(&r.model_id, &r.media_id).await?;
            self.inner.delete_media(&current).await?;
        }
        if r.status == MediaStatus::PendingReview && self.edit_before_outcome.swap(false, Ordering::SeqCst) {
            let mut edited = self.inner.get_media(&r.model_id, &r.media_id).await?;
            edited.metadata.caption = Some("edited while processing".into());
            edited.focal_point = Some(phoenix_domain::FocalPoint { x: 0.1, y: 0.9 });
            edited.version += 1;
            self.inner.update_media(&edited).await?;
        }
        self.inner.update_media(r).await
    }
    async fn list_media(&self, m: &ModelId, q: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        self.inner.list_media(m, q).await
    }
}

#[async_trait]
impl FingerprintStore for Flaky {
    async fn get_media_with_fingerprints(
        &self,
        m: &ModelId,
        id: &MediaId,
    ) -> StoreResult<(MediaRecord, Vec<Fingerprint>)> {
        self.inner.get_media_with_fingerprints(m, id).await
    }
    async fn put_fingerprint(&self, m: &ModelId, f: &Fingerprint) -> StoreResult<()> {
        self.inner.put_fingerprint(m, f).await
    }
    async fn remove_fingerprint(&self, m: &ModelId, id: &MediaId) -> StoreResult<()> {
        self.inner.remove_fingerprint(m, id).await
    }
}

#[async_trait]
impl TombstoneStore for Flaky {
    async fn delete_media(&self, r: &MediaRecord) -> StoreResult<()> {
        self.inner.delete_media(r).await
    }
    async fn get_tombstone(&self, m: &ModelId, id: &MediaId) -> StoreResult<Option<MediaRecord>> {
        self.inner.get_tombstone(m, id).await
    }
    async fn remove_tombstone(&self, m: &ModelId, id: &MediaId) -> StoreResult<()> {
        self.inner.remove_tombstone(m, id).await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    objects: Arc<LocalObjectStore>,
    metadata: Arc<Flaky>,
    processor: Processor,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let objects =
        Arc::new(LocalObjectStore::open(&dir.path().join("o"), "http://127.0.0.1:1".into(), b"k".to_vec()).unwrap());
    let metadata = Arc::new(Flaky {
        inner: LocalMetadataStore::open(&dir.path().join("m.sqlite")).unwrap(),
        failures: AtomicU32::new(0),
        edit_before_outcome: Default::default(),
        delete_before_outcome: Default::default(),
    });
    let processor = phoenix_ingest::build(Config::default(), objects.clone(), metadata.clone());
    Fixture { _dir: dir, objects, metadata, processor }
}

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../../shared/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Creates the record and stores the original, as the upload flow does; returns the message body.
async fn uploaded(f: &Fixture, model: &str, bytes: Vec<u8>) -> (ModelId, MediaId, String) {
    let model = ModelId::parse(model).unwrap();
    let request =
        UploadRequest { filename: "p.jpg".into(), content_type: "image/jpeg".into(), bytes: bytes.len() as u64 };
    let (record, _) = create_upload(
        f.objects.as_ref(),
        f.metadata.as_ref(),
        &Limits::default(),
        &model,
        request,
        "model-user",
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let info = f.objects.put(&record.original_key, Bytes::from(bytes), PutOptions::default()).await.unwrap();
    let body = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "b"},
        "object": {"key": record.original_key.as_str().replace('/', "%2F"), "size": info.size, "eTag": info.etag}
    }}]});
    (model, record.media_id, body.to_string())
}

fn event(messages: &[(&str, &str)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (id, body) in messages {
        let mut m = SqsMessage::default();
        m.message_id = Some((*id).to_owned());
        m.body = Some((*body).to_owned());
        event.records.push(m);
    }
    event
}

/// The batch as Lambda (or the local drain) hands it over, through the shared adapter.
async fn batch(processor: &Processor, messages: &[(&str, &str)]) -> SqsBatchResponse {
    handle_sqs_batch(processor, event(messages), processor.concurrency()).await
}

#[tokio::test]
async fn only_the_transiently_failed_message_is_reported() {
    let f = fixture();
    let (model_a, media_a, body_a) = uploaded(&f, "m-a", photo("photos/rgb16.png")).await;
    let (_, _, body_b) = uploaded(&f, "m-b", photo("photos/rgb16.png")).await;
    // One message's first read fails: the batch reports exactly that one.
    f.metadata.failures.store(1, Ordering::SeqCst);
    let processor =
        phoenix_ingest::build(Config { concurrency: 1, ..Default::default() }, f.objects.clone(), f.metadata.clone());
    let response = batch(&processor, &[("a", &body_a), ("b", &body_b)]).await;
    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, vec!["a"]);

    // Its retry succeeds, and a further replay does nothing.
    let retry = batch(&f.processor, &[("a", &body_a)]).await;
    assert!(retry.batch_item_failures.is_empty());
    let done = f.metadata.get_media(&model_a, &media_a).await.unwrap();
    assert_eq!(done.status, MediaStatus::PendingReview);
    assert_eq!(f.processor.handle_message(&body_a).await.unwrap(), vec![Outcome::AlreadyProcessed]);
    assert_eq!(f.metadata.get_media(&model_a, &media_a).await.unwrap().version, done.version);
}

#[tokio::test]
async fn a_bad_file_is_rejected_once_and_not_retried() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-c", photo("hostile/truncated.jpg")).await;
    let response = batch(&f.processor, &[("c", &body)]).await;
    assert!(response.batch_item_failures.is_empty(), "a bad file is final, not a retry");
    let record = f.metadata.get_media(&model, &media).await.unwrap();
    assert_eq!(record.status, MediaStatus::Rejected);
    assert_eq!(record.rejection.as_ref().unwrap().code, "corrupt_image");
    assert_eq!(f.processor.handle_message(&body).await.unwrap(), vec![Outcome::AlreadyProcessed]);
}

#[tokio::test]
async fn test_events_foreign_keys_and_orphans_are_acknowledged() {
    let f = fixture();
    let test_event = include_str!("fixtures/s3-test-event.json");
    let foreign = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"derived/m/x.jpg"}}}]}"#;
    let orphan = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"originals/m-d/01jd3k6v2q8m3y7x9t0b5n4c2a"}}}]}"#;
    let response = batch(&f.processor, &[("t", test_event), ("f", foreign), ("o", orphan)]).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(matches!(f.processor.handle_message(orphan).await.unwrap()[0], Outcome::Ignored(_)));
}

#[tokio::test]
async fn an_original_whose_media_is_gone_is_removed() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-gone", photo("photos/rgb16.png")).await;
    let record = f.metadata.get_media(&model, &media).await.unwrap();
    f.metadata.delete_media(&record).await.unwrap();
    assert!(batch(&f.processor, &[("g", &body)]).await.batch_item_failures.is_empty());
    assert!(matches!(f.objects.head(&record.original_key).await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn an_edit_made_while_processing_is_kept() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-edit", photo("photos/rgb16.png")).await;
    f.metadata.edit_before_outcome.store(true, Ordering::SeqCst);
    let response = batch(&f.processor, &[("e", &body)]).await;
    assert!(response.batch_item_failures.is_empty(), "the conflict is resolved, not retried");
    let record = f.metadata.get_media(&model, &media).await.unwrap();
    assert_eq!(record.status, MediaStatus::PendingReview);
    assert!(!record.derivatives.is_empty());
    assert_eq!(record.metadata.caption.as_deref(), Some("edited while processing"), "the person's edit survives");
    // The crops were cut around the old focal point, then rebuilt around the new one.
    assert_eq!(record.history[0].action, "regenerated");
    assert_eq!(record.history[1].action, "processed");
    let crops: Vec<&str> =
        record.derivatives.iter().filter(|d| d.preset.starts_with("cover-")).map(|d| d.key.as_str()).collect();
    assert!(!crops.is_empty() && crops.iter().all(|k| k.contains("-f100x900.")), "{crops:?}");
    // The fingerprint was recorded for duplicate detection.
    let (_, prints) = f.metadata.get_media_with_fingerprints(&model, &media).await.unwrap();
    assert_eq!(prints.len(), 1);
    assert_eq!(Some(&prints[0].phash), record.source.as_ref().unwrap().phash.as_ref());
}

#[tokio::test]
async fn a_malformed_message_is_reported_for_the_dead_letter_queue() {
    let f = fixture();
    let response = batch(&f.processor, &[("x", "this is not JSON")]).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "x");
}

#[tokio::test]
async fn new_content_makes_new_keys_and_removes_the_superseded() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-e", photo("photos/rgb16.png")).await;
    f.processor.handle_message(&body).await.unwrap();
    let first = f.metadata.get_media(&model, &media).await.unwrap();
    // The same key overwritten with other bytes (a new object version).
    let key = keys::original(&model, &media);
    let info = f.objects.put(&key, Bytes::from(photo("photos/alpha.png")), PutOptions::default()).await.unwrap();
    let body = body.replace(&first.source.as_ref().unwrap().etag, &info.etag);
    assert_eq!(f.processor.handle_message(&body).await.unwrap(), vec![Outcome::Processed]);
    let second = f.metadata.get_media(&model, &media).await.unwrap();
    for (old, new) in first.derivatives.iter().zip(&second.derivatives) {
        assert_ne!(old.key, new.key, "keys change with content");
        assert!(matches!(f.objects.head(&old.key).await, Err(StoreError::NotFound)), "superseded object deleted");
        f.objects.head(&new.key).await.unwrap();
    }
}

#[tokio::test]
async fn a_media_deleted_while_processing_leaves_nothing_behind() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-del", photo("photos/rgb16.png")).await;
    f.metadata.delete_before_outcome.store(true, Ordering::SeqCst);
    let outcomes = f.processor.handle_message(&body).await.unwrap();
    assert!(matches!(&outcomes[0], Outcome::Ignored(why) if why.contains("deleted")), "{outcomes:?}");
    let left = f.objects.list(&keys::derived_prefix(&model, &media), None, 100).await.unwrap();
    assert!(left.keys.is_empty(), "derivatives left behind: {:?}", left.keys);
    let tombstone = f.metadata.get_tombstone(&model, &media).await.unwrap().expect("the delete's tombstone");
    let other = uploaded(&f, "m-del", photo("photos/rgb16.png")).await;
    assert!(batch(&f.processor, &[("o", &other.2)]).await.batch_item_failures.is_empty());
    let (_, prints) = f.metadata.get_media_with_fingerprints(&model, &other.1).await.unwrap();
    assert!(prints.iter().all(|p| p.media_id != tombstone.media_id), "the deleted media's fingerprint is gone");
    assert_eq!(prints.len(), 1);
}
