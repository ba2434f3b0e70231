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
    async fn dynamodb_share_link_store() {
        conformance::share_link_store_suite(&dynamodb().await).await;
    }

    /// A crash between a batch item's marked record and its outcome (the single-PutItem path):
    /// a PATCH meanwhile settles the outcome it would otherwise drop, and the chunk's
    /// redelivery settles the rest, applies nothing twice and counts each item once.
    #[tokio::test]
    async fn dynamodb_batch_marks_survive_a_crash_before_the_outcome() {
        use phoenix_domain::batches::{BatchOperation, BatchStatus, ChunkReport, ItemOutcome, process_chunk};
        use phoenix_domain::ports::{BatchStore, MediaStore};
        use phoenix_domain::{Category, MediaId, MediaStatus, ModelId};

        let store = dynamodb().await;
        let model = ModelId::parse("marks").unwrap();
        let mut batch = conformance::sample_batch(&model, BatchStatus::Queued);
        batch.operation = BatchOperation::Approve { note: None };
        batch.submitted_as_admin = true;
        let mut chunk = conformance::sample_chunks(&batch, 3).remove(0);
        chunk.origin_seqs.clear();
        (batch.total, batch.chunks) = (3, 1);
        for media in &chunk.media_ids {
            let record = conformance::sample_record(&model, media, MediaStatus::PendingReview);
            assert!(record.metadata.tags.is_empty() && record.galleries.is_empty(), "the single-PutItem path");
            store.create_media(&record).await.unwrap();
        }
        store.create_batch(&batch, std::slice::from_ref(&chunk)).await.unwrap();
        let grace = std::time::Duration::from_secs(60);
        let ids: &[MediaId] = &chunk.media_ids;
        // The records are in no gallery: nothing is asked to republish.
        let queue_dir = tempfile::tempdir().unwrap();
        let queue = phoenix_storage::local::LocalQueue::open(&queue_dir.path().join("q.sqlite"), vec![]).unwrap();

        // Every item's record is written with its mark; each stops there, as a crash would.
        store.crash_after_marked_puts(3);
        let crashed = process_chunk(&store, &store, &store, &queue, &batch.batch_id, 0, grace).await;
        assert!(crashed.is_err_and(|e| e.is_transient()));
        let first = store.get_media(&model, &ids[0]).await.unwrap();
        assert_eq!((first.status, first.version), (MediaStatus::Approved, 2));
        assert!(store.get_items(&batch.batch_id, 0, 3).await.unwrap().is_empty(), "no outcome yet");

        // A PATCH of that record (a blind single PutItem) settles the outcome before dropping the mark.
        let mut edited = first.clone();
        edited.metadata.category = Some(Category::parse("editorial").unwrap());
        edited.version = 3;
        store.update_media(&edited).await.unwrap();
        let settled = store.get_item(&batch.batch_id, 0).await.unwrap();
        assert_eq!((settled.outcome, settled.written_version), (ItemOutcome::Applied, Some(2)));
        assert_eq!(settled.before.unwrap().status, MediaStatus::PendingReview);

        // The redelivery finds the other two items' own marks on their records.
        let report = process_chunk(&store, &store, &store, &queue, &batch.batch_id, 0, grace).await.unwrap();
        let ChunkReport::Done { counts, batch: done, ended } = report else { panic!("{report:?}") };
        assert!(ended);
        assert_eq!((counts.applied, counts.total()), (3, 3));
        assert_eq!((done.status, done.counts.applied), (BatchStatus::Completed, 3));
        let records =
            store.batch_get_media(&ids.iter().map(|m| (model.clone(), *m)).collect::<Vec<_>>()).await.unwrap();
        for record in records {
            let expected = if record.media_id == ids[0] { 3 } else { 2 };
            assert_eq!((record.status, record.version), (MediaStatus::Approved, expected), "applied once");
        }
        assert_eq!(store.get_media(&model, &ids[0]).await.unwrap().metadata.category, edited.metadata.category);
        let outcomes = store.get_items(&batch.batch_id, 0, 3).await.unwrap();
        assert!(outcomes.iter().all(|o| o.outcome == ItemOutcome::Applied && o.written_version == Some(2)));
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
    async fn dynamodb_gallery_store() {
        conformance::gallery_store_suite(&dynamodb().await).await;
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

    /// The CloudFront adapter on the emulator's CloudFront, and the CDN settings from its SSM.
    /// The cache stats' CloudWatch reader against the emulator's CloudWatch: the figures of the
    /// distribution's own metrics in the window, and none of another distribution's.
    #[tokio::test]
    async fn cloudwatch_cdn_metrics() {
        use aws_sdk_cloudwatch::primitives::DateTime;
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
        use phoenix_domain::ports::CdnMetrics;
        use phoenix_storage::aws::CloudWatchCdnMetrics;
        use time::{Duration, OffsetDateTime};

        let config = emulator().await;
        let id = format!("E{}", suffix().to_ascii_uppercase());
        let metrics = CloudWatchCdnMetrics::new(&config, id.clone());
        let now = OffsetDateTime::now_utc();
        let start = now - Duration::minutes(30);
        let empty = metrics.cdn_metrics(start, now).await.unwrap();
        assert_eq!((empty.requests, empty.cache_hit_rate), (None, None), "no data points yet");

        let datum = |distribution: &str, name: &str, value: f64, minutes_ago: i64| {
            let dimensions = [("DistributionId", distribution), ("Region", "Global")]
                .map(|(n, v)| Dimension::builder().name(n).value(v).build());
            MetricDatum::builder()
                .metric_name(name)
                .set_dimensions(Some(dimensions.to_vec()))
                .value(value)
                .timestamp(DateTime::from_secs((now - Duration::minutes(minutes_ago)).unix_timestamp()))
                .build()
        };
        let data = vec![
            datum(&id, "Requests", 120.0, 20),
            datum(&id, "Requests", 80.0, 2),
            datum(&id, "CacheHitRate", 90.0, 20),
            datum(&id, "CacheHitRate", 80.0, 2),
            datum(&id, "4xxErrorRate", 1.0, 2),
            datum(&id, "5xxErrorRate", 0.5, 2),
            datum("EOTHERDISTRIBUTION", "Requests", 999.0, 2),
            // Before the window.
            datum(&id, "Requests", 5000.0, 90),
        ];
        metrics
            .client()
            .put_metric_data()
            .namespace("AWS/CloudFront")
            .set_metric_data(Some(data))
            .send()
            .await
            .unwrap();

        let report = metrics.cdn_metrics(start, now + Duration::minutes(1)).await.unwrap();
        assert_eq!(report.distribution_id, id);
        assert_eq!(report.requests, Some(200.0));
        assert_eq!(report.cache_hit_rate, Some(85.0));
        assert_eq!((report.error_4xx_rate, report.error_5xx_rate), (Some(1.0), Some(0.5)));
        assert!(metrics.cdn_metrics(now, start).await.is_err(), "a window that ends before it starts");
    }

    mod cdn {
        use aws_sdk_cloudfront::types::{
            DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig, ViewerProtocolPolicy,
        };
        use phoenix_domain::ports::{CallerReference, Cdn, CdnError, CdnPath, Invalidation};
        use phoenix_storage::aws::{CdnSettings, CloudFrontCdn};
        use phoenix_storage::conformance::{self, SeenInvalidations};

        use super::{emulator, suffix};

        /// What the emulator's CloudFront holds for an invalidation of a distribution
        /// (`GetInvalidation`).
        struct Emulated {
            client: aws_sdk_cloudfront::Client,
            distribution: String,
        }

        #[async_trait::async_trait]
        impl SeenInvalidations for Emulated {
            async fn seen(&self, id: &str) -> Option<(String, Vec<String>)> {
                let output =
                    self.client.get_invalidation().distribution_id(&self.distribution).id(id).send().await.ok()?;
                let batch = output.invalidation()?.invalidation_batch()?;
                Some((batch.caller_reference().to_owned(), batch.paths()?.items().to_vec()))
            }
        }

        /// A distribution on the emulator (invalidations need one), with the bucket as its origin.
        async fn distribution(client: &aws_sdk_cloudfront::Client) -> String {
            let origin = Origin::builder()
                .id("derivatives")
                .domain_name("conformance.s3.us-east-1.amazonaws.com")
                .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
                .build()
                .expect("an origin");
            let config = DistributionConfig::builder()
                .caller_reference(suffix())
                .comment("conformance")
                .enabled(true)
                .origins(Origins::builder().quantity(1).items(origin).build().expect("origins"))
                .default_cache_behavior(
                    DefaultCacheBehavior::builder()
                        .target_origin_id("derivatives")
                        .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                        .build()
                        .expect("a cache behavior"),
                )
                .build()
                .expect("a distribution config");
            let created =
                client.create_distribution().distribution_config(config).send().await.expect("create a distribution");
            created.distribution().expect("the distribution").id().to_owned()
        }

        #[tokio::test]
        async fn cloudfront_cdn() {
            let config = emulator().await;
            let client = aws_sdk_cloudfront::Client::new(&config);
            let id = distribution(&client).await;
            let cdn = CloudFrontCdn::from_client(client.clone(), id.clone());
            let emulated = Emulated { client: client.clone(), distribution: id.clone() };
            conformance::cdn_suite(&cdn, &emulated).await;

            // Named by a parameter (the template's way): not written yet, the invalidation is
            // transient (retried, never dropped); once written, it goes to that distribution.
            let name = format!("/conformance-{}/cdn", suffix());
            let named = CloudFrontCdn::from_parameter(&config, name.clone());
            let early = Invalidation::new(
                CallerReference::parse(&format!("early-{}", suffix())).expect("a reference"),
                [CdnPath::parse("/g/early").expect("a path")],
            )
            .expect("an invalidation");
            match named.invalidate(&early).await {
                Err(e @ CdnError::Unavailable(_)) => assert!(e.is_transient()),
                other => panic!("an invalidation before the parameter exists must be Unavailable, got {other:?}"),
            }
            aws_sdk_ssm::Client::new(&config)
                .put_parameter()
                .name(&name)
                .value(format!(r#"{{"distribution_id":"{id}","domain":"d111111abcdef8.cloudfront.net"}}"#))
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .send()
                .await
                .expect("put the parameter");
            let later = named.invalidate(&early).await.expect("invalidate once the parameter exists");
            assert_eq!(emulated.seen(&later).await.map(|(_, paths)| paths), Some(vec!["/g/early".to_owned()]));

            // A distribution that does not exist is the deployment's problem: transient, so the
            // publisher retries while an operator fixes it, never dropped as a bad request.
            let missing = CloudFrontCdn::from_client(client, "E000000000000");
            let invalidation = Invalidation::new(
                CallerReference::parse(&format!("missing-{}", suffix())).expect("a reference"),
                [CdnPath::parse("/g/x").expect("a path")],
            )
            .expect("an invalidation");
            match missing.invalidate(&invalidation).await {
                Err(e @ CdnError::Unavailable(_)) => assert!(e.is_transient()),
                other => panic!("NoSuchDistribution must be Unavailable, got {other:?}"),
            }
        }

        /// `PHOENIX_CDN_PARAMETER`: the template's way of naming the distribution to the API.
        #[tokio::test]
        async fn cdn_settings_from_a_parameter() {
            let config = emulator().await;
            let ssm = aws_sdk_ssm::Client::new(&config);
            let name = format!("/conformance-{}/cdn", suffix());
            assert_eq!(
                CdnSettings::from_parameter(&ssm, &name).await.expect("a missing parameter is no CDN"),
                None,
                "a parameter not written yet (the stack still creating the distribution) is no CDN"
            );
            let put = |value: &'static str| {
                ssm.put_parameter()
                    .name(&name)
                    .value(value)
                    .r#type(aws_sdk_ssm::types::ParameterType::String)
                    .overwrite(true)
                    .send()
            };
            put(r#"{"distribution_id":"E2QWRUHEXAMPLE","domain":"D111111ABCDEF8.cloudfront.net"}"#)
                .await
                .expect("put the parameter");
            let settings = CdnSettings::from_parameter(&ssm, &name).await.expect("read").expect("settings");
            assert_eq!(settings.distribution_id, "E2QWRUHEXAMPLE");
            assert_eq!(settings.base_url(), "https://d111111abcdef8.cloudfront.net");
            for bad in [
                r#"{"distribution_id":"E2QWRUHEXAMPLE"}"#,
                r#"{"distribution_id":"E1","domain":"https://x.net/"}"#,
                "nope",
            ] {
                put(bad).await.expect("put the parameter");
                assert!(CdnSettings::from_parameter(&ssm, &name).await.is_err(), "{bad} is refused");
            }
        }

        /// `PHOENIX_SHARE_KEYS_PARAMETER`: the share links' keys as a SecureString.
        #[tokio::test]
        async fn share_keys_from_a_parameter() {
            use phoenix_storage::aws::share_keys_from_parameter;
            let config = emulator().await;
            let ssm = aws_sdk_ssm::Client::new(&config);
            let name = format!("/conformance-{}/share-keys", suffix());
            let missing = share_keys_from_parameter(&ssm, &name).await.expect("a missing parameter is no keys");
            assert!(missing.is_none(), "not created yet: share links are off");
            let put = |value: String| {
                ssm.put_parameter()
                    .name(&name)
                    .value(value)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .overwrite(true)
                    .send()
            };
            let ring = format!("k2:{},k1:{}", "B".repeat(44), "A".repeat(44));
            put(ring.clone()).await.expect("put the parameter");
            let keys = share_keys_from_parameter(&ssm, &name).await.expect("read").expect("keys");
            let expected = phoenix_domain::shares::ShareKeys::parse(&ring).expect("a valid ring");
            let link = phoenix_domain::ShareLinkId::new();
            assert_eq!(keys.sign(&link), expected.sign(&link), "the ring as written: the same signatures");
            put("k1:too-short".into()).await.expect("put the parameter");
            let refused = share_keys_from_parameter(&ssm, &name).await.expect_err("a malformed ring is refused");
            assert!(refused.to_string().contains(&name), "{refused}");
        }
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
    async fn local_share_link_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        conformance::share_link_store_suite(&local_metadata(&dir)).await;
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
    async fn local_gallery_store() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        conformance::gallery_store_suite(&local_metadata(&dir)).await;
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

    /// The recording CDN: the port's contract, CloudFront's idempotency on the reference, its
    /// refusal while busy, and the file that keeps both across restarts.
    mod cdn {
        use phoenix_domain::ports::{CallerReference, Cdn, CdnError, CdnPath, Invalidation};
        use phoenix_storage::conformance::{self, SeenInvalidations};
        use phoenix_storage::local::RecordingCdn;

        struct Recorded<'a>(&'a RecordingCdn);

        #[async_trait::async_trait]
        impl SeenInvalidations for Recorded<'_> {
            async fn seen(&self, id: &str) -> Option<(String, Vec<String>)> {
                let found = self.0.invalidations().into_iter().find(|i| i.id == id)?;
                Some((found.caller_reference, found.paths))
            }
        }

        fn invalidation(reference: &str, paths: &[&str]) -> Invalidation {
            Invalidation::new(
                CallerReference::parse(reference).expect("a reference"),
                paths.iter().map(|p| CdnPath::parse(p).expect("a path")),
            )
            .expect("an invalidation")
        }

        #[tokio::test]
        async fn local_cdn() {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let file = dir.path().join("data").join("cdn.jsonl");
            let cdn = RecordingCdn::open(&file).expect("open the recording CDN");
            conformance::cdn_suite(&cdn, &Recorded(&cdn)).await;
            assert_eq!(cdn.invalidations().len(), 2);

            // The same change set asked again (a redelivered message): the first invalidation.
            let first = invalidation("gallery-g1-v3", &["/g/summer", "/v1/public/galleries/g1"]);
            let id = cdn.invalidate(&first).await.expect("invalidate");
            assert_eq!(cdn.invalidate(&first).await.expect("again"), id, "the same reference, the same invalidation");
            assert_eq!(cdn.invalidations().len(), 3, "nothing is invalidated twice");
            match cdn.invalidate(&invalidation("gallery-g1-v3", &["/g/other"])).await {
                Err(CdnError::Invalid(_)) => {}
                other => panic!("a reference reused for other paths must be Invalid, got {other:?}"),
            }

            // Too many in progress: refused (transient, with a wait), then accepted.
            cdn.busy_for(2);
            let next = invalidation("gallery-g1-v4", &["/g/summer"]);
            for _ in 0..2 {
                match cdn.invalidate(&next).await {
                    Err(e @ CdnError::TooManyInProgress(_)) => assert!(e.is_transient() && e.retry_after().is_some()),
                    other => panic!("a busy CDN must answer TooManyInProgress, got {other:?}"),
                }
            }
            let accepted = cdn.invalidate(&next).await.expect("accepted once no longer busy");
            assert_eq!(cdn.invalidations().last().map(|i| i.id.clone()), Some(accepted));
            assert_eq!(cdn.paths().iter().filter(|p| *p == "/g/summer").count(), 2);

            // A restart reads the file back: the reference is still recognised, nothing is lost.
            let again = RecordingCdn::open(&file).expect("open again");
            assert_eq!(again.invalidations(), cdn.invalidations(), "the file holds every invalidation");
            assert_eq!(again.invalidate(&first).await.expect("after a restart"), id);
            assert_eq!(std::fs::read_to_string(&file).expect("read").lines().count(), 4);

            // In memory only (other crates' tests), the same behaviour.
            let memory = RecordingCdn::in_memory();
            conformance::cdn_suite(&memory, &Recorded(&memory)).await;
            assert!(memory.path().is_none());
        }
    }
}
