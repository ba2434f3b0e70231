//! Background jobs on the AWS adapters against the emulator (moto server, started by
//! `infra/test.sh`): jobs in DynamoDB, lanes and their dead-letter queues in SQS (with the
//! template's redrive policy), the image worker drained from SQS as the local runtime drains its
//! queues — retried with backoff by changing the message's visibility, dead-lettered after the
//! last attempt, failed at once on a permanent error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use phoenix_consumer::DrainSettings;
use phoenix_domain::jobs::{FaultPlan, Job, JobStatus, Lane, Operation, SubmitPorts, SubmitRequest, Target, submit};
use phoenix_domain::ports::{JobStore, MediaStore, PutOptions};
use phoenix_domain::{MediaId, MediaRecord, ModelId, ObjectStore, Queue, QueueName, keys};
use phoenix_image_worker::{WorkerConfig, WorkerPorts};
use phoenix_storage::aws::{DynamoMetadataStore, S3ObjectStore, SqsQueue, create_table, load_sdk_config};
use phoenix_storage::local::{LocalLanes, RecordingEventBus};
use serde_json::json;
use tokio::sync::watch;

use crate::helpers::{queue_with_dead_letter, test_job_settings, testdata};

struct Stack {
    metadata: Arc<DynamoMetadataStore>,
    queue: Arc<SqsQueue>,
    events: Arc<RecordingEventBus>,
    objects: Arc<S3ObjectStore>,
    stop: watch::Sender<bool>,
    _lanes_dir: tempfile::TempDir,
}

/// The deployment as template.yaml declares it (table, bucket, lanes with their DLQs and
/// `maxReceiveCount` = the job attempts), and the worker draining the normal lane.
async fn stack() -> Stack {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "emulator-backed tests need AWS_ENDPOINT_URL: run them with infra/test.sh, which starts moto server"
    );
    let sdk = load_sdk_config().await;
    let suffix = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let (bucket, table) = (format!("jobs-{suffix}"), format!("jobs-{suffix}"));
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let settings = test_job_settings();
    let mut urls = HashMap::new();
    for lane in Lane::ALL {
        let (url, dlq) = queue_with_dead_letter(
            &sqs,
            &format!("{}-{suffix}", lane.queue().0),
            &format!("{}-{suffix}", lane.dead_letter_queue().0),
            settings.max_attempts,
        )
        .await;
        urls.insert(lane.queue(), url);
        urls.insert(lane.dead_letter_queue(), dlq);
    }
    let objects = Arc::new(S3ObjectStore::new(&sdk, bucket, true));
    let metadata = Arc::new(DynamoMetadataStore::new(&sdk, table));
    let queue = Arc::new(SqsQueue::new(&sdk, urls));
    let events = Arc::new(RecordingEventBus::in_memory());
    let lanes_dir = tempfile::tempdir().unwrap();
    let lanes = Arc::new(LocalLanes::open(&lanes_dir.path().join("lanes.sqlite")).unwrap());
    let ports = WorkerPorts {
        objects: objects.clone(),
        metadata: metadata.clone(),
        queue: queue.clone(),
        events: events.clone(),
        lanes,
    };
    let config = WorkerConfig {
        imaging: phoenix_ingest::Config::default(),
        jobs: settings.clone(),
        trash: phoenix_domain::config::TrashSettings::default(),
        cpu_permits: 1,
    };
    let worker = Arc::new(phoenix_image_worker::build(config, ports));
    let (stop, stopped) = watch::channel(false);
    let drain =
        DrainSettings { visibility: Duration::from_secs(60), batch_size: 1, in_flight: 2, ..DrainSettings::default() };
    tokio::spawn(phoenix_consumer::drain(queue.clone(), QueueName::JOBS_NORMAL, worker, drain, stopped));
    Stack { metadata, queue, events, objects, stop, _lanes_dir: lanes_dir }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Stack {
    /// A processed media: the original in S3, made into derivatives by the upload processor.
    async fn processed_media(&self, model: &ModelId) -> MediaId {
        let now = time::OffsetDateTime::now_utc();
        let media = MediaId::new();
        let photo = std::fs::read(testdata("photos/grayscale.jpg")).unwrap();
        let record = MediaRecord::new_upload(
            model.clone(),
            media,
            "g.jpg".into(),
            "image/jpeg".into(),
            photo.len() as u64,
            now,
            None,
        );
        self.metadata.create_media(&record).await.unwrap();
        let key = keys::original(model, &media);
        let put = PutOptions { content_type: Some("image/jpeg".into()), cache_control: None };
        let info = self.objects.put(&key, Bytes::from(photo), put).await.unwrap();
        let notification = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
            "bucket": {"name": "b"}, "object": {"key": key.as_str(), "size": info.size, "eTag": info.etag}}}]});
        let processor =
            phoenix_ingest::build(phoenix_ingest::Config::default(), self.objects.clone(), self.metadata.clone());
        processor.handle_message(&notification.to_string()).await.unwrap();
        assert_eq!(
            self.metadata.get_media(model, &media).await.unwrap().status,
            phoenix_domain::MediaStatus::PendingReview
        );
        media
    }

    async fn submit(&self, model: &ModelId, media: MediaId, fault: FaultPlan) -> Job {
        let request = SubmitRequest {
            operation: Operation::Regenerate { presets: vec!["small".into()] },
            target: Target::media(model.clone(), media),
            lane: Lane::Normal,
            fault: Some(fault),
        };
        let m = self.metadata.as_ref();
        let ports =
            SubmitPorts { jobs: m, idempotency: m, media: m, queue: self.queue.as_ref(), events: self.events.as_ref() };
        submit(ports, &test_job_settings(), "tester", request, None, time::OffsetDateTime::now_utc()).await.unwrap().job
    }

    async fn wait_ended(&self, job: &Job) -> Job {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let now = self.metadata.get_job(&job.job_id).await.unwrap();
            if now.status.is_terminal() {
                return now;
            }
            assert!(tokio::time::Instant::now() < deadline, "job still {:?}: {now:?}", now.status);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn dead_letters(&self) -> u64 {
        let s = self.queue.stats(&QueueName::JOBS_NORMAL_DLQ).await.unwrap();
        s.visible + s.in_flight + s.delayed
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_the_emulator_retry_dead_letter_and_fail_fast() {
    let stack = stack().await;
    let model = ModelId::parse("model-jobs-aws").unwrap();
    let media = stack.processed_media(&model).await;

    // Fails twice, then succeeds: three attempts, backoff set through the message's visibility.
    let flaky = stack.submit(&model, media, FaultPlan { transient_failures: 2, ..FaultPlan::default() }).await;
    // Always fails: failed after the last attempt, its message in the lane's DLQ.
    let doomed = stack.submit(&model, media, FaultPlan { transient_failures: u32::MAX, ..FaultPlan::default() }).await;
    // Fails permanently: one attempt.
    let broken = stack.submit(&model, media, FaultPlan { permanent: true, ..FaultPlan::default() }).await;

    let flaky = stack.wait_ended(&flaky).await;
    assert_eq!(flaky.status, JobStatus::Succeeded, "{flaky:?}");
    assert_eq!(flaky.attempts.len(), 3);
    let caps: Vec<_> = flaky.attempts[..2].iter().map(|a| a.backoff_cap_ms.unwrap()).collect();
    assert_eq!(caps, [200, 400]);
    for pair in flaky.attempts.windows(2) {
        assert!(pair[1].started_at >= pair[0].retry_at.unwrap() - time::Duration::seconds(1), "{pair:?}");
    }
    assert_eq!(flaky.result.as_ref().unwrap().summary, "rebuilt small");

    let doomed = stack.wait_ended(&doomed).await;
    assert_eq!(doomed.status, JobStatus::Failed);
    assert_eq!(doomed.attempts.len(), 3);
    assert_eq!(doomed.error.as_ref().unwrap().code, "attempts_exhausted");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stack.dead_letters().await != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the failed job's message never reached the DLQ");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let broken = stack.wait_ended(&broken).await;
    assert_eq!(broken.status, JobStatus::Failed);
    assert_eq!(broken.attempts.len(), 1);
    assert_eq!(broken.error.as_ref().unwrap().code, "invalid_params");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stack.dead_letters().await, 1, "a permanent failure is not dead-lettered");

    let kinds = |job: &Job| -> Vec<String> {
        let id = job.job_id.to_string();
        stack
            .events
            .events()
            .iter()
            .filter(|e| e.detail["job_id"] == id.as_str())
            .map(|e| e.detail_type.clone())
            .collect()
    };
    assert_eq!(kinds(&broken), ["job.queued", "job.started", "job.failed"]);
    assert_eq!(kinds(&flaky).last().map(String::as_str), Some("job.succeeded"));
}
