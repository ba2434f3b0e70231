//! A 1,000-item batch on the AWS adapters against the emulator (moto server, started by
//! `infra/test.sh`): the batch, its chunks and every item's outcome in DynamoDB, each committed
//! with the item's change (a record without index entries carries its outcome as a batch mark);
//! the chunks on an SQS queue with the template's redrive policy, drained into the batch worker
//! as Lambda's event source would deliver them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use phoenix_batch_worker::{BatchWorkerConfig, BatchWorkerPorts};
use phoenix_consumer::DrainSettings;
use phoenix_domain::batches::{
    BatchLimits, BatchOperation, BatchPorts, BatchRequest, BatchStatus, CHUNK_SIZE, Selection, Submitter, submit,
};
use phoenix_domain::media::MediaRecord;
use phoenix_domain::ports::{BatchStore, MediaStore};
use phoenix_domain::{BatchId, MediaId, MediaStatus, ModelId, QueueName};
use phoenix_storage::aws::{DynamoMetadataStore, SqsQueue, create_table, load_sdk_config};
use phoenix_storage::local::RecordingEventBus;
use serde_json::json;
use tokio::sync::watch;

use crate::helpers::queue_with_dead_letter;

/// The items of the batch: 1,000 in the test suite (ten chunks);
/// `bench/batches-emulator.sh` runs the same flow with 10,000.
fn items() -> usize {
    std::env::var("PHOENIX_EMULATOR_BATCH_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_on_the_emulator() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "emulator-backed tests need AWS_ENDPOINT_URL: run them with infra/test.sh, which starts moto server"
    );
    let sdk = load_sdk_config().await;
    let suffix = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let table = format!("batches-{suffix}");
    create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (url, dlq) =
        queue_with_dead_letter(&sqs, &format!("batches-{suffix}"), &format!("batches-dlq-{suffix}"), 5).await;
    let metadata = Arc::new(DynamoMetadataStore::new(&sdk, table));
    let queue =
        Arc::new(SqsQueue::new(&sdk, HashMap::from([(QueueName::BATCHES, url), (QueueName::BATCHES_DLQ, dlq)])));

    // Processed media without tags or galleries, pending review: each item is one PutItem of
    // its record (with its batch mark) and one of its outcome.
    let items = items();
    let model = ModelId::parse("model-aws-batch").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for _ in 0..items {
        let media = MediaId::new();
        let mut r = MediaRecord::new_upload(model.clone(), media, "p.jpg".into(), "image/jpeg".into(), 10, now, None);
        r.created_at = media.created_at();
        r.status = MediaStatus::PendingReview;
        r.source = Some(serde_json::from_value(json!({
            "etag": "e", "bytes": 10, "format": "jpeg", "width": 4, "height": 3, "orientation": 1, "sha256": "00".repeat(32)
        })).unwrap());
        r.derivatives = vec![
            serde_json::from_value(json!({
                "preset": "small", "preset_version": 1, "format": "webp", "width": 4, "height": 3, "bytes": 1,
                "key": "derived/x/y/small.webp", "source_etag": "e"
            }))
            .unwrap(),
        ];
        metadata.create_media(&r).await.unwrap();
        ids.push(media);
    }

    let events = Arc::new(RecordingEventBus::in_memory());
    let worker = Arc::new(phoenix_batch_worker::build(
        BatchWorkerConfig::default(),
        BatchWorkerPorts { metadata: metadata.clone(), queue: queue.clone(), events },
    ));
    let (stop, stopped) = watch::channel(false);
    let drain =
        DrainSettings { visibility: Duration::from_secs(120), batch_size: 1, in_flight: 2, ..DrainSettings::default() };
    tokio::spawn(phoenix_consumer::drain(queue.clone(), QueueName::BATCHES, worker, drain, stopped));

    let admin = Submitter { subject: "admin-1".into(), admin: true, model_id: None };
    let request = BatchRequest {
        model_id: model.clone(),
        operation: BatchOperation::Approve { note: None },
        selection: Selection::Items(ids.clone()),
        dry_run: false,
    };
    let ports = BatchPorts {
        batches: metadata.as_ref(),
        media: metadata.as_ref(),
        galleries: metadata.as_ref(),
        queue: queue.as_ref(),
    };
    let started = std::time::Instant::now();
    let batch = submit(ports, BatchLimits::default(), &admin, request, BatchId::new(), time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!((batch.total, batch.chunks), (items as u64, items.div_ceil(CHUNK_SIZE) as u32));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300.max(3 * items as u64));
    let done = loop {
        let b = metadata.get_batch(&batch.batch_id).await.unwrap();
        if !b.status.is_active() {
            break b;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {:?}: {:?}", b.status, b.counts);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = stop.send(true);
    println!(
        "{items}-item approve on the emulator: {:.1} s end to end, {:.1} items/s as the batch reports",
        started.elapsed().as_secs_f64(),
        done.items_per_second(time::OffsetDateTime::now_utc()).unwrap_or_default()
    );
    assert_eq!(done.status, BatchStatus::Completed, "{done:?}");
    assert_eq!(done.counts.applied, items as u64);
    for part in ids.chunks(100) {
        let records =
            metadata.batch_get_media(&part.iter().map(|m| (model.clone(), *m)).collect::<Vec<_>>()).await.unwrap();
        assert_eq!(records.len(), part.len());
        assert!(records.iter().all(|r| r.status == MediaStatus::Approved && r.version == 2), "applied once each");
    }
    let (mut outcomes, mut cursor) = (0, None);
    loop {
        let page = metadata.list_items(&batch.batch_id, None, 100, cursor).await.unwrap();
        assert!(page.items.iter().all(|i| i.written_version == Some(2)));
        outcomes += page.items.len();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(outcomes, items, "one outcome per item");
}
