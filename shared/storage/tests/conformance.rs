//! Every adapter against the one contract of its port (`phoenix_storage::conformance`); built
//! with the `conformance` feature, which this package's dev-dependency on itself turns on.
//!
//! The AWS adapters run against an emulator (moto) that `infra/test.sh` starts; they never skip.

#[cfg(feature = "aws")]
mod aws {
    use std::collections::HashMap;

    use aws_config::SdkConfig;
    use phoenix_domain::QueueName;
    use phoenix_storage::aws::{DynamoMetadataStore, S3ObjectStore, SqsQueue, create_table, load_sdk_config};
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
    use phoenix_domain::QueueName;
    use phoenix_storage::conformance;
    use phoenix_storage::local::{LocalMetadataStore, LocalObjectStore, LocalQueue, QueueSettings};

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

    /// The three metadata ports of one store, together (as a deployment wires them).
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
