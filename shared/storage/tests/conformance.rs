//! Every adapter against the one contract of its port (`phoenix_storage::conformance`); built
//! with the `conformance` feature, which this package's dev-dependency on itself turns on.
//!
//! The AWS adapters run against an emulator (moto) that `infra/test.sh` starts; they never skip.

#[cfg(feature = "aws")]
mod aws {
    use std::collections::{BTreeMap, HashMap};

    use aws_config::SdkConfig;
    use phoenix_domain::QueueName;
    use phoenix_domain::jobs::Lane;
    use phoenix_domain::ports::{BusEvent, EventBus, LaneControl, StoreError};
    use phoenix_storage::aws::{
        DynamoMetadataStore, EventBridgeBus, LambdaLanes, S3ObjectStore, SqsQueue, create_table, load_sdk_config,
    };
    use phoenix_storage::conformance;

    /// A unique, lower-case suffix: buckets, tables and queues of concurrent runs never collide.
    fn suffix() -> String {
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    }

    async fn emulator() -> SdkConfig {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        if endpoint.is_empty() {
            panic!(
                "AWS_ENDPOINT_URL is not set: the emulator-backed tests must run via `infra/test.sh` \
                 (it starts moto and sets the AWS environment), e.g. \
                 `infra/test.sh -p phoenix-storage --test conformance`"
            );
        }
        load_sdk_config().await
    }

    fn force_path_style() -> bool {
        std::env::var("PHOENIX_S3_FORCE_PATH_STYLE").map_or(true, |v| v != "false")
    }

    #[tokio::test]
    async fn s3_object_store() {
        let config = emulator().await;
        let bucket = format!("conformance-{}", suffix());
        let store = S3ObjectStore::new(&config, bucket.clone(), force_path_style());
        store.client().create_bucket().bucket(&bucket).send().await.expect("create the bucket");
        conformance::object_store_suite(&store).await;
    }

    /// A store on a table of its own.
    async fn dynamodb() -> DynamoMetadataStore {
        let config = emulator().await;
        let table = format!("conformance-{}", suffix());
        let store = DynamoMetadataStore::new(&config, table.clone());
        create_table(store.client(), &table).await.expect("create the table");
        store
    }

    #[tokio::test]
    async fn dynamodb_media_store() {
        conformance::media_store_suite(&dynamodb().await).await;
    }

    #[tokio::test]
    async fn dynamodb_fingerprint_store() {
        let store = dynamodb().await;
        conformance::fingerprint_store_suite(&store, &store).await;
    }

    #[tokio::test]
    async fn dynamodb_tombstone_store() {
        let store = dynamodb().await;
        conformance::tombstone_store_suite(&store, &store, &store).await;
    }

    #[tokio::test]
    async fn dynamodb_trash() {
        let store = dynamodb().await;
        conformance::trash_suite(&store, &store).await;
    }

    #[tokio::test]
    async fn dynamodb_job_store() {
        conformance::job_store_suite(&dynamodb().await).await;
    }

    #[tokio::test]
    async fn dynamodb_batch_store() {
        let store = dynamodb().await;
        conformance::batch_store_suite(&store, &store).await;
    }

    #[tokio::test]
    async fn dynamodb_idempotency_store() {
        conformance::idempotency_store_suite(&dynamodb().await).await;
    }

    /// A queue of this run; returns its URL and ARN.
    async fn queue_with_arn(client: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
        let url = client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create a queue")
            .queue_url
            .expect("a queue url");
        let arn = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("read the queue's ARN")
            .attributes
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
            .expect("a queue ARN");
        (url, arn)
    }

    /// What a rule delivered to its SQS target: each message body is EventBridge's envelope.
    struct QueueListener {
        client: aws_sdk_sqs::Client,
        url: String,
    }

    #[async_trait::async_trait]
    impl conformance::DeliveredEvents for QueueListener {
        async fn delivered(&self, want: usize) -> Vec<serde_json::Value> {
            let mut events = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while events.len() < want && std::time::Instant::now() < deadline {
                let output = self
                    .client
                    .receive_message()
                    .queue_url(&self.url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .expect("receive from the rule's target");
                for message in output.messages.unwrap_or_default() {
                    let body = message.body.unwrap_or_default();
                    events.push(serde_json::from_str(&body).unwrap_or_else(|e| panic!("an envelope {body:?}: {e}")));
                    if let Some(receipt) = message.receipt_handle {
                        self.client
                            .delete_message()
                            .queue_url(&self.url)
                            .receipt_handle(receipt)
                            .send()
                            .await
                            .expect("delete");
                    }
                }
            }
            events
        }
    }

    #[tokio::test]
    async fn eventbridge_bus() {
        let config = emulator().await;
        let name = format!("conformance-{}", suffix());
        let sqs = aws_sdk_sqs::Client::new(&config);
        let (url, arn) = queue_with_arn(&sqs, &format!("{name}-events")).await;
        let bus = EventBridgeBus::new(&config, name.clone());
        let events = bus.client();
        events.create_event_bus().name(&name).send().await.expect("create the bus");
        events
            .put_rule()
            .name(format!("{name}-jobs"))
            .event_bus_name(&name)
            .event_pattern(serde_json::json!({ "source": ["phoenix.jobs"] }).to_string())
            .send()
            .await
            .expect("create the rule");
        events
            .put_targets()
            .rule(format!("{name}-jobs"))
            .event_bus_name(&name)
            .targets(aws_sdk_eventbridge::types::Target::builder().id("queue").arn(arn).build().expect("a target"))
            .send()
            .await
            .expect("target the queue");
        conformance::event_bus_suite(&bus, &QueueListener { client: sqs, url }).await;

        // PutEvents answers 200 with a failed entry for an entry it refuses (here: no detail
        // type); the entry's error code is reported.
        let refused = BusEvent {
            source: "phoenix.jobs",
            detail_type: String::new(),
            detail: serde_json::json!({ "event_id": "refused" }),
            time: time::OffsetDateTime::now_utc(),
        };
        match bus.publish(&refused).await {
            Err(StoreError::Unavailable(e)) if format!("{e:#}").contains("InvalidArgument") => {}
            other => panic!("a refused entry must be Unavailable with its error code, got {other:?}"),
        }
    }

    /// An IAM role on the emulator (Lambda refuses a function whose role does not exist), made
    /// with one Query API request: moto serves IAM on the same port and checks no signature.
    async fn lambda_role(name: &str) -> String {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Principal": { "Service": "lambda.amazonaws.com" }, "Action": "sts:AssumeRole" }]
        })
        .to_string();
        let body = reqwest::Client::new()
            .post(format!("{}/", endpoint.trim_end_matches('/')))
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            )
            .form(&[
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", &policy),
            ])
            .send()
            .await
            .expect("CreateRole")
            .text()
            .await
            .expect("CreateRole's answer");
        let start = body.find("<Arn>").map(|i| i + 5).unwrap_or_else(|| panic!("no role ARN in {body}"));
        let end = body[start..].find("</Arn>").expect("</Arn>") + start;
        body[start..end].to_owned()
    }

    #[tokio::test]
    async fn lambda_lanes() {
        let config = emulator().await;
        let name = format!("conformance-{}", suffix());
        let role = lambda_role(&name).await;
        let lambda = aws_sdk_lambda::Client::new(&config);
        // An empty zip archive: moto keeps the code without running it (no Docker needed).
        let empty_zip = [b"PK\x05\x06".as_slice(), &[0u8; 18]].concat();
        lambda
            .create_function()
            .function_name(&name)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role)
            .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(empty_zip.into()).build())
            .send()
            .await
            .expect("create the worker function");
        let sqs = aws_sdk_sqs::Client::new(&config);
        let mut mappings = BTreeMap::new();
        for lane in Lane::ALL {
            let (_, arn) = queue_with_arn(&sqs, &format!("{name}-{}", lane.as_str())).await;
            let mapping = lambda
                .create_event_source_mapping()
                .function_name(&name)
                .event_source_arn(arn)
                .batch_size(1)
                .enabled(true)
                .send()
                .await
                .expect("map the lane's queue to the function");
            mappings.insert(lane, mapping.uuid.expect("a mapping UUID"));
        }
        conformance::lane_control_suite(&LambdaLanes::new(&config, mappings.clone())).await;

        // Without its mapping (the worker's wiring) a lane reads as running and cannot be switched.
        let unwired = LambdaLanes::new(&config, BTreeMap::from([(Lane::High, mappings[&Lane::High].clone())]));
        assert!(!unwired.is_paused(Lane::Normal).await.expect("is_paused without a mapping"));
        match unwired.set_paused(Lane::Normal, true).await {
            Err(StoreError::Internal(e)) if e.to_string().contains("PHOENIX_JOBS_NORMAL_MAPPING") => {}
            other => panic!("switching a lane without a mapping must be Internal, naming its variable, got {other:?}"),
        }
        // A mapping that does not exist is the deployment's fault: Unavailable, never Invalid.
        // (Asked with GetEventSourceMapping: moto answers an UpdateEventSourceMapping of an
        // unknown mapping without Lambda's error.)
        let wrong = LambdaLanes::new(
            &config,
            BTreeMap::from([(Lane::High, "00000000-0000-0000-0000-000000000000".to_owned())]),
        );
        match wrong.is_paused(Lane::High).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("an unknown mapping must be Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn sqs_queue() {
        let config = emulator().await;
        let client = aws_sdk_sqs::Client::new(&config);
        let name = format!("conformance-{}", suffix());

        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("create the dead-letter queue")
            .queue_url
            .expect("a queue url");
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("read the dead-letter queue's ARN")
            .attributes
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
            .expect("a queue ARN");
        let redrive = serde_json::json!({ "maxReceiveCount": 2, "deadLetterTargetArn": dlq_arn }).to_string();
        let main_url = client
            .create_queue()
            .queue_name(&name)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .expect("create the main queue")
            .queue_url
            .expect("a queue url");

        let urls = HashMap::from([(QueueName::INGEST, main_url), (QueueName::INGEST_DLQ, dlq_url)]);
        let queue = SqsQueue::new(&config, urls);
        conformance::queue_suite(&queue, &QueueName::INGEST, &QueueName::INGEST_DLQ).await;
    }
}

#[cfg(feature = "local")]
mod local {
    use std::path::PathBuf;

    use phoenix_domain::QueueName;
    use phoenix_domain::jobs::Lane;
    use phoenix_domain::ports::LaneControl;
    use phoenix_storage::conformance;
    use phoenix_storage::local::{
        LocalLanes, LocalMetadataStore, LocalObjectStore, LocalQueue, QueueSettings, RecordingEventBus,
    };

    #[tokio::test]
    async fn local_object_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = LocalObjectStore::open(
            &dir.path().join("objects"),
            "http://127.0.0.1:9/storage".to_owned(),
            b"conformance-signing-key".to_vec(),
        )
        .expect("open the local object store");
        conformance::object_store_suite(&store).await;
    }

    fn local_metadata(dir: &tempfile::TempDir) -> LocalMetadataStore {
        LocalMetadataStore::open(&dir.path().join("metadata.sqlite")).expect("open the local metadata store")
    }

    #[tokio::test]
    async fn local_media_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        conformance::media_store_suite(&local_metadata(&dir)).await;
    }

    #[tokio::test]
    async fn local_fingerprint_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = local_metadata(&dir);
        conformance::fingerprint_store_suite(&store, &store).await;
    }

    #[tokio::test]
    async fn local_tombstone_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = local_metadata(&dir);
        conformance::tombstone_store_suite(&store, &store, &store).await;
    }

    #[tokio::test]
    async fn local_trash() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = local_metadata(&dir);
        conformance::trash_suite(&store, &store).await;
    }

    #[tokio::test]
    async fn local_job_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        conformance::job_store_suite(&local_metadata(&dir)).await;
    }

    #[tokio::test]
    async fn local_concurrent_children() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        conformance::concurrent_children_suite(&local_metadata(&dir)).await;
    }

    #[tokio::test]
    async fn local_batch_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = local_metadata(&dir);
        conformance::batch_store_suite(&store, &store).await;
    }

    #[tokio::test]
    async fn local_idempotency_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        conformance::idempotency_store_suite(&local_metadata(&dir)).await;
    }

    #[tokio::test]
    async fn local_lanes() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("queues.sqlite");
        let lanes = LocalLanes::open(&path).expect("open the lane switches");
        conformance::lane_control_suite(&lanes).await;
        // A pause survives a restart (a second open of the same file).
        lanes.set_paused(Lane::Normal, true).await.expect("pause");
        let reopened = LocalLanes::open(&path).expect("open again");
        assert!(reopened.is_paused(Lane::Normal).await.expect("is_paused"), "a pause survives a restart");
        assert!(!reopened.is_paused(Lane::High).await.expect("is_paused"));
        // Next to the queues, in the same file.
        LocalQueue::open(&path, vec![(QueueName::JOBS_HIGH, QueueSettings { max_receive: 5, dead_letter: None })])
            .expect("the queues open the same database");
    }

    /// What the bus appended to its file, each line parsed.
    struct FileListener(PathBuf);

    #[async_trait::async_trait]
    impl conformance::DeliveredEvents for FileListener {
        async fn delivered(&self, _want: usize) -> Vec<serde_json::Value> {
            let text = std::fs::read_to_string(&self.0).expect("read events.jsonl");
            text.lines().map(|line| serde_json::from_str(line).expect("one JSON object a line")).collect()
        }
    }

    #[tokio::test]
    async fn local_event_bus() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("data").join("events.jsonl");
        let bus = RecordingEventBus::open(&path).expect("open the event bus");
        conformance::event_bus_suite(&bus, &FileListener(path.clone())).await;
        let recorded = bus.events();
        let types: Vec<&str> = recorded.iter().map(|e| e.detail_type.as_str()).collect();
        assert_eq!(
            types,
            ["job.queued", "job.started", "job.succeeded"],
            "events() holds what was published, in order"
        );
        // A restart appends to the same file.
        let again = RecordingEventBus::open(&path).expect("open again");
        assert!(again.events().is_empty(), "memory starts empty");
        conformance::event_bus_suite(&again, &FileListener(path.clone())).await;
        let lines = std::fs::read_to_string(&path).expect("read").lines().count();
        assert_eq!(lines, 6, "the file keeps every event");
    }

    /// The five metadata ports of one store, together (as a deployment wires them).
    #[tokio::test]
    async fn local_metadata_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        conformance::metadata_store_suite(&local_metadata(&dir)).await;
    }

    #[tokio::test]
    async fn local_queue() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let queue = LocalQueue::open(
            &dir.path().join("queues.sqlite"),
            vec![
                (QueueName::INGEST, QueueSettings { max_receive: 2, dead_letter: Some(QueueName::INGEST_DLQ) }),
                (QueueName::INGEST_DLQ, QueueSettings { max_receive: 10, dead_letter: None }),
            ],
        )
        .expect("open the local queues");
        conformance::queue_suite(&queue, &QueueName::INGEST, &QueueName::INGEST_DLQ).await;
    }
}
