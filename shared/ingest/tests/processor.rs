//! The processor's contract with SQS, on the local adapters with a fault-injecting metadata port:
//! transient failures are reported per message, bad files are final, tests events are ignored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use phoenix_consumer::{Delivery, handle_sqs_batch};
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
    trash_before_outcome: std::sync::atomic::AtomicBool,
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
        if r.status == MediaStatus::PendingReview && self.trash_before_outcome.swap(false, Ordering::SeqCst) {
            let mut current = self.inner.get_media(&r.model_id, &r.media_id).await?;
            let grace = std::time::Duration::from_secs(3600);
            current.move_to_trash("someone", time::OffsetDateTime::now_utc(), grace).unwrap();
            self.inner.update_media(&current).await?;
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
    async fn list_trash_due(&self, now: time::OffsetDateTime, limit: usize) -> StoreResult<Vec<MediaRecord>> {
        self.inner.list_trash_due(now, limit).await
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
        trash_before_outcome: Default::default(),
    });
    let processor = phoenix_ingest::build(Config::default(), objects.clone(), metadata.clone());
    Fixture { _dir: dir, objects, metadata, processor }
}

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../../shared/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Creates the record and stores the original, as the upload flow does (declaring the type the
/// bytes have); returns the message body.
async fn uploaded(f: &Fixture, model: &str, bytes: Vec<u8>) -> (ModelId, MediaId, String) {
    let content_type = if bytes.starts_with(b"\x89PNG") { "image/png" } else { "image/jpeg" };
    uploaded_as(f, model, bytes, content_type).await
}

async fn uploaded_as(f: &Fixture, model: &str, bytes: Vec<u8>, content_type: &str) -> (ModelId, MediaId, String) {
    let model = ModelId::parse(model).unwrap();
    let request =
        UploadRequest { filename: "p.jpg".into(), content_type: content_type.into(), bytes: bytes.len() as u64 };
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

/// The notification S3 sends for the object now stored under the media's original key.
async fn notification_of(f: &Fixture, model: &ModelId, media: &MediaId) -> String {
    let key = keys::original(model, media);
    let head = f.objects.head(&key).await.unwrap();
    serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "b"},
        "object": {"key": key.as_str().replace('/', "%2F"), "size": head.size, "eTag": head.etag}
    }}]})
    .to_string()
}

fn delivery(message_id: &str, receive_count: u32) -> Delivery {
    Delivery { message_id: message_id.into(), receive_count }
}

#[tokio::test]
async fn a_later_object_for_a_processed_media_is_refused_and_removed() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-e", photo("photos/rgb16.png")).await;
    f.processor.handle_message(&body).await.unwrap();
    let first = f.metadata.get_media(&model, &media).await.unwrap();
    let key = keys::original(&model, &media);
    // Another photo, then corrupt bytes, overwrite the key (the presigned URL used again).
    for bytes in [photo("photos/alpha.png"), vec![0xFF; 4096]] {
        f.objects.put(&key, Bytes::from(bytes), PutOptions::default()).await.unwrap();
        let later = notification_of(&f, &model, &media).await;
        assert_eq!(f.processor.handle_message(&later).await.unwrap(), vec![Outcome::Refused]);
        let after = f.metadata.get_media(&model, &media).await.unwrap();
        assert_eq!(after.history[0].action, "upload_refused", "{:?}", after.history[0]);
        assert_eq!(
            (after.status, &after.source, &after.derivatives, &after.review, &after.content_type),
            (first.status, &first.source, &first.derivatives, &first.review, &first.content_type),
            "the media is what was judged from the first object"
        );
        assert!(matches!(f.objects.head(&key).await, Err(StoreError::NotFound)), "the stray object is removed");
        for d in &first.derivatives {
            f.objects.head(&d.key).await.expect("the derivatives still stand");
        }
        // The refused object's notification again (SQS may repeat it): nothing more happens.
        assert!(matches!(&f.processor.handle_message(&later).await.unwrap()[0], Outcome::Ignored(_)));
        assert_eq!(f.metadata.get_media(&model, &media).await.unwrap().version, after.version);
    }
    // The first notification replayed is still known as done.
    assert_eq!(f.processor.handle_message(&body).await.unwrap(), vec![Outcome::AlreadyProcessed]);
}

#[tokio::test]
async fn a_later_object_for_a_rejected_file_is_refused_too() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-r", photo("hostile/truncated.jpg")).await;
    f.processor.handle_message(&body).await.unwrap();
    let rejected = f.metadata.get_media(&model, &media).await.unwrap();
    assert_eq!(rejected.status, MediaStatus::Rejected);
    let key = keys::original(&model, &media);
    f.objects.put(&key, Bytes::from(photo("photos/rgb16.png")), PutOptions::default()).await.unwrap();
    let later = notification_of(&f, &model, &media).await;
    assert_eq!(f.processor.handle_message(&later).await.unwrap(), vec![Outcome::Refused]);
    let after = f.metadata.get_media(&model, &media).await.unwrap();
    assert_eq!((after.status, &after.rejection), (MediaStatus::Rejected, &rejected.rejection));
}

#[tokio::test]
async fn a_redelivery_takes_over_the_claim_of_its_dead_delivery() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-crash", photo("photos/rgb16.png")).await;
    // A first delivery of message "a" claimed the media, then its process died (kill -9, a
    // Lambda timeout): the record says `processing` with a claim that is still live.
    let mut record = f.metadata.get_media(&model, &media).await.unwrap();
    let etag = f.objects.head(&record.original_key).await.unwrap().etag;
    record.take_claim(&etag, Some("a"), time::OffsetDateTime::now_utc(), Limits::default().processing_lease);
    record.version += 1;
    f.metadata.update_media(&record).await.unwrap();

    // Another message for the same object meets a live claim of another delivery: reported as
    // a transient failure (it comes back later), never acknowledged as done.
    let other = batch(&f.processor, &[("b", &body)]).await;
    assert_eq!(other.batch_item_failures.len(), 1, "a live claim of another delivery is not 'done'");
    let error = f.processor.handle_delivery(&body, &delivery("b", 1)).await.unwrap_err();
    assert!(error.to_string().contains("comes back"), "{error}");
    assert_eq!(f.metadata.get_media(&model, &media).await.unwrap(), record, "nothing written");

    // The same message delivered again: its earlier delivery is gone, so it takes over at once.
    assert_eq!(f.processor.handle_delivery(&body, &delivery("a", 2)).await.unwrap(), vec![Outcome::Processed]);
    let done = f.metadata.get_media(&model, &media).await.unwrap();
    assert_eq!(done.status, MediaStatus::PendingReview);
    // Now the other message finds the work done.
    assert_eq!(f.processor.handle_delivery(&body, &delivery("b", 2)).await.unwrap(), vec![Outcome::AlreadyProcessed]);
}

#[tokio::test]
async fn the_last_delivery_marks_an_unfinished_media_rejected_instead_of_leaving_it_processing() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-last", photo("photos/rgb16.png")).await;
    let mut record = f.metadata.get_media(&model, &media).await.unwrap();
    let etag = f.objects.head(&record.original_key).await.unwrap().etag;
    // Delivery 4 of message "a" claimed it and died.
    record.take_claim(&etag, Some("a"), time::OffsetDateTime::now_utc(), Limits::default().processing_lease);
    record.version += 1;
    f.metadata.update_media(&record).await.unwrap();

    // Delivery 5, the queue's last: no image work, the media is not left `processing`, and the
    // message is reported (for the dead-letter queue).
    let last = Config::DEFAULT_MAX_RECEIVES;
    let error = f.processor.handle_delivery(&body, &delivery("a", last)).await.unwrap_err();
    assert!(error.to_string().contains("processing_failed"), "{error}");
    let failed = f.metadata.get_media(&model, &media).await.unwrap();
    assert_eq!(failed.status, MediaStatus::Rejected);
    assert_eq!(failed.rejection.as_ref().unwrap().code, "processing_failed");
    assert!(failed.claim.is_none() && failed.derivatives.is_empty());
    assert_eq!(failed.history[0].action, "processing_failed");

    // A redrive from the dead-letter queue (a new delivery) processes it afresh.
    assert_eq!(f.processor.handle_delivery(&body, &delivery("a2", 1)).await.unwrap(), vec![Outcome::Processed]);
    let done = f.metadata.get_media(&model, &media).await.unwrap();
    assert_eq!((done.status, done.rejection), (MediaStatus::PendingReview, None));
}

#[tokio::test]
async fn a_last_delivery_that_finds_the_work_done_or_held_does_not_give_up() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-last2", photo("photos/rgb16.png")).await;
    f.processor.handle_message(&body).await.unwrap();
    let last = Config::DEFAULT_MAX_RECEIVES;
    assert_eq!(
        f.processor.handle_delivery(&body, &delivery("x", last)).await.unwrap(),
        vec![Outcome::AlreadyProcessed]
    );
    assert_eq!(f.metadata.get_media(&model, &media).await.unwrap().status, MediaStatus::PendingReview);
}

#[tokio::test]
async fn a_declared_png_that_is_a_jpeg_becomes_a_jpeg() {
    let f = fixture();
    let (model, media, body) = uploaded_as(&f, "m-type", photo("photos/portrait-6mp.jpg"), "image/png").await;
    assert_eq!(f.processor.handle_message(&body).await.unwrap(), vec![Outcome::Processed]);
    let record = f.metadata.get_media(&model, &media).await.unwrap();
    assert_eq!(record.source.as_ref().unwrap().format, "jpeg");
    assert_eq!(record.content_type, "image/jpeg", "the type follows the bytes");
    let line = record.history.iter().find(|h| h.action == "content_type_corrected").expect("a history line");
    assert_eq!(line.summary, "declared image/png, the bytes are image/jpeg");
}

#[test]
fn the_lease_and_the_receives_agree_with_the_deployment() {
    // template.yaml: the processor's Timeout is the lease (the time one delivery may take), the
    // queue's visibility timeout is at least that, and its redrive's maxReceiveCount is the
    // processor's `max_receives` (its last delivery only gives up).
    let template = std::fs::read_to_string(format!("{}/../../template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let value = |block: &str, key: &str| -> u64 {
        let header = format!("  {block}:");
        let mut lines = template.lines().skip_while(|l| *l != header);
        lines.next().unwrap_or_else(|| panic!("no {block} in template.yaml"));
        // The resource's own lines are indented deeper than its name.
        let line = lines
            .take_while(|l| l.trim().is_empty() || l.starts_with("   ") || l.trim_start().starts_with('#'))
            .find(|l| l.trim_start().starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} in {block}"));
        line.split(':').nth(1).unwrap().trim().trim_matches('"').parse().unwrap()
    };
    let lease = Limits::default().processing_lease.as_secs();
    assert_eq!(value("ThumbnailProcessorFunction", "Timeout"), lease);
    assert!(value("IngestQueue", "VisibilityTimeout") >= lease);
    assert_eq!(value("IngestQueue", "maxReceiveCount"), u64::from(Config::default().max_receives));
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

#[tokio::test]
async fn a_media_moved_to_the_trash_while_processing_stays_there_and_is_not_processed_again() {
    let f = fixture();
    let (model, media, body) = uploaded(&f, "m-trash", photo("photos/rgb16.png")).await;
    f.metadata.trash_before_outcome.store(true, Ordering::SeqCst);
    let outcomes = f.processor.handle_message(&body).await.unwrap();
    assert!(matches!(&outcomes[0], Outcome::Ignored(_)), "{outcomes:?}");
    let record = f.metadata.get_media(&model, &media).await.unwrap();
    assert_eq!(record.status, MediaStatus::Deleted, "not resurrected by the processor's outcome");
    assert!(record.derivatives.is_empty());
    let left = f.objects.list(&keys::derived_prefix(&model, &media), None, 100).await.unwrap();
    assert!(left.keys.is_empty(), "derivatives left behind: {:?}", left.keys);

    // A redelivery finds it in the trash: nothing processed, the original kept for a restore.
    let outcomes = f.processor.handle_message(&body).await.unwrap();
    assert!(matches!(&outcomes[0], Outcome::Ignored(why) if why.contains("trash")), "{outcomes:?}");
    assert!(f.objects.head(&record.original_key).await.is_ok(), "the original stays until the purge");
    assert_eq!(f.metadata.get_media(&model, &media).await.unwrap(), record);
}

#[tokio::test]
async fn a_regeneration_asks_the_galleries_showing_the_media_to_republish() {
    use phoenix_domain::galleries::republish::{Reason, RepublishMessage};
    use phoenix_domain::ports::{Queue, QueueName};
    use phoenix_storage::local::{LocalQueue, QueueSettings};

    let f = fixture();
    let settings = QueueSettings { max_receive: 3, dead_letter: None };
    let queue =
        Arc::new(LocalQueue::open(&f._dir.path().join("q.sqlite"), vec![(QueueName::PUBLISH, settings)]).unwrap());
    let processor = phoenix_ingest::build(Config::default(), f.objects.clone(), f.metadata.clone())
        .with_publish_queue(queue.clone());
    let (model, media, body) = uploaded(&f, "m-regen", photo("photos/grayscale.jpg")).await;
    processor.handle_message(&body).await.unwrap();
    let mut record = f.metadata.get_media(&model, &media).await.unwrap();
    record.galleries = vec![phoenix_domain::media::GalleryLink {
        gallery_id: phoenix_domain::GalleryId::parse("shown-here").unwrap(),
        published: true,
    }];
    record.version += 1;
    f.metadata.update_media(&record).await.unwrap();
    assert_eq!(queue.depth(&QueueName::PUBLISH).await.unwrap(), 0, "processing asked nothing");

    let outcome = processor.regenerate(&model, &media, &["small".to_owned()]).await.unwrap();
    assert!(matches!(outcome, Outcome::Regenerated(_)), "{outcome:?}");
    let received = queue
        .receive(&QueueName::PUBLISH, 10, std::time::Duration::from_secs(30), std::time::Duration::ZERO)
        .await
        .unwrap();
    let messages: Vec<RepublishMessage> = received.iter().map(|m| RepublishMessage::parse(&m.body).unwrap()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!((messages[0].gallery_id.as_str(), messages[0].reason), ("shown-here", Reason::Version));

    // Up to date: no new keys, nothing asked.
    assert_eq!(processor.regenerate(&model, &media, &[]).await.unwrap(), Outcome::UpToDate);
    assert_eq!(queue.depth(&QueueName::PUBLISH).await.unwrap(), 1, "only the one, in flight");
}
