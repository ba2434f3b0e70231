//! A 150-item batch on the AWS adapters against the emulator (moto server, started by
//! `infra/test.sh`): the batch, its chunks and every item's outcome in DynamoDB, written with the
//! item's change in one transaction; the chunks on an SQS queue with the template's redrive
//! policy, drained into the batch worker as Lambda's event source would deliver them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use phoenix_batch_worker::{BatchWorkerConfig, BatchWorkerPorts};
use phoenix_consumer::DrainSettings;
use phoenix_domain::batches::{
    BatchLimits, BatchOperation, BatchPorts, BatchRequest, BatchStatus, Selection, Submitter, submit,
};
use phoenix_domain::media::MediaRecord;
use phoenix_domain::ports::{BatchStore, MediaStore};
use phoenix_domain::{BatchId, MediaId, MediaStatus, ModelId, QueueName};
use phoenix_storage::aws::{DynamoMetadataStore, SqsQueue, create_table, load_sdk_config};
use phoenix_storage::local::RecordingEventBus;
use serde_json::json;
use tokio::sync::watch;

const ITEMS: usize = 150;

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
    let dlq = sqs.create_queue().queue_name(format!("batches-dlq-{suffix}")).send().await.unwrap().queue_url.unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let url = sqs
        .create_queue()
        .queue_name(format!("batches-{suffix}"))
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"maxReceiveCount": 5, "deadLetterTargetArn": dlq_arn}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let metadata = Arc::new(DynamoMetadataStore::new(&sdk, table));
    let queue =
        Arc::new(SqsQueue::new(&sdk, HashMap::from([(QueueName::BATCHES, url), (QueueName::BATCHES_DLQ, dlq)])));

    // 150 processed media, pending review: two chunks, the second partial. (moto copies the
    // whole table for every TransactWriteItems, so its cost grows with the table; 1,000 items
    // take over ten minutes there, see docs/performance.md.)
    let model = ModelId::parse("model-aws-batch").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for _ in 0..ITEMS {
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
    let ports = BatchPorts { batches: metadata.as_ref(), media: metadata.as_ref(), queue: queue.as_ref() };
    let started = std::time::Instant::now();
    let batch = submit(ports, BatchLimits::default(), &admin, request, BatchId::new(), time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!((batch.total, batch.chunks), (ITEMS as u64, 2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
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
        "{ITEMS}-item approve on the emulator: {:.1} s end to end, {:.1} items/s as the batch reports",
        started.elapsed().as_secs_f64(),
        done.items_per_second(time::OffsetDateTime::now_utc()).unwrap_or_default()
    );
    assert_eq!(done.status, BatchStatus::Completed, "{done:?}");
    assert_eq!(done.counts.applied, ITEMS as u64);
    let records =
        metadata.batch_get_media(&ids[..100].iter().map(|m| (model.clone(), *m)).collect::<Vec<_>>()).await.unwrap();
    assert!(records.iter().all(|r| r.status == MediaStatus::Approved && r.version == 2), "applied once each");
    let page = metadata.list_items(&batch.batch_id, None, 100, None).await.unwrap();
    assert_eq!(page.items.len(), 100);
    assert!(page.items.iter().all(|i| i.written_version == Some(2)));
}
