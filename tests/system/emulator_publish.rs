//! Republish on change on the AWS adapters against the emulator (moto server, started by
//! `infra/test.sh`): a public gallery of processed photos published to S3; a caption edited and
//! the republish asked for through the publish queue (SQS, with the template's redrive policy)
//! several times, as the media use cases ask; the queue drained into the publisher as Lambda's
//! event source would deliver it. One new version, one CloudFront invalidation of the gallery's
//! paths, nothing left on the queue or its DLQ; a malformed message dead-lettered at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudfront::types::{
    DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig, ViewerProtocolPolicy,
};
use aws_sdk_sqs::types::QueueAttributeName;
use phoenix_consumer::DrainSettings;
use phoenix_domain::galleries::publish::{read_pointer, read_published};
use phoenix_domain::galleries::republish::{self, Reason};
use phoenix_domain::galleries::{CreateGallery, GalleryPorts, Operation, PublishedDocument, Slug, Visibility};
use phoenix_domain::keys::{self, DerivativeName};
use phoenix_domain::media::MediaRecord;
use phoenix_domain::ports::{MediaStore, Queue};
use phoenix_domain::{Derivative, GalleryId, MediaId, MediaStatus, ModelId, QueueName, SourceInfo};
use phoenix_publisher::{PublisherConfig, PublisherPorts};
use phoenix_storage::aws::{
    CloudFrontCdn, DynamoMetadataStore, S3ObjectStore, SqsQueue, create_table, load_sdk_config,
};
use serde_json::json;
use tokio::sync::watch;

use crate::helpers::queue_with_dead_letter;

/// What documents put before a derivative's key: the same for the person's publish and the
/// publisher's, so the republish changes only the caption.
const MEDIA_BASE: &str = "https://d111111abcdef8.cloudfront.net";
/// Times the edit asks for the republish (each one message): the publisher coalesces them.
const REQUESTS: usize = 3;

/// A processed, approved photo (4:3) with WebP and JPEG renditions of three widths.
fn processed(model: &ModelId, caption: &str, now: time::OffsetDateTime) -> MediaRecord {
    let media = MediaId::new();
    let mut r = MediaRecord::new_upload(model.clone(), media, "p.jpg".into(), "image/jpeg".into(), 10, now, None);
    r.created_at = media.created_at();
    r.status = MediaStatus::Approved;
    let sha256 = "ab".repeat(32);
    let source: SourceInfo = serde_json::from_value(json!({
        "etag": "e", "bytes": 10, "format": "jpeg", "width": 1600, "height": 1200, "orientation": 1, "sha256": sha256
    }))
    .unwrap();
    r.source = Some(source);
    r.metadata.caption = Some(caption.to_owned());
    for extension in ["webp", "jpeg"] {
        for width in [320, 640, 1280] {
            let preset = format!("w{width}");
            let name = DerivativeName {
                source_sha256: &sha256,
                preset: &preset,
                preset_version: 1,
                focal_point: None,
                watermark: None,
                extension,
            };
            r.derivatives.push(Derivative {
                preset: preset.clone(),
                preset_version: 1,
                format: extension.to_owned(),
                width,
                height: width * 3 / 4,
                bytes: 1,
                key: keys::derivative(model, &media, name).unwrap(),
                source_etag: "e".into(),
                operations: Vec::new(),
            });
        }
    }
    r
}

/// A distribution on the emulator (invalidations need one), with the bucket as its origin.
async fn distribution(client: &aws_sdk_cloudfront::Client, bucket: &str) -> String {
    let origin = Origin::builder()
        .id("derivatives")
        .domain_name(format!("{bucket}.s3.us-east-1.amazonaws.com"))
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()
        .unwrap();
    let config = DistributionConfig::builder()
        .caller_reference(bucket)
        .comment("emulator publish")
        .enabled(true)
        .origins(Origins::builder().quantity(1).items(origin).build().unwrap())
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("derivatives")
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let created = client.create_distribution().distribution_config(config).send().await.unwrap();
    created.distribution().unwrap().id().to_owned()
}

/// The invalidations of `distribution` whose caller reference names `gallery`: (reference,
/// sorted paths), read back with ListInvalidations and GetInvalidation.
async fn invalidations_of(
    client: &aws_sdk_cloudfront::Client,
    distribution: &str,
    gallery: &GalleryId,
) -> Vec<(String, Vec<String>)> {
    let list = client.list_invalidations().distribution_id(distribution).send().await.unwrap();
    let mut found = Vec::new();
    for summary in list.invalidation_list().map(|l| l.items()).unwrap_or_default() {
        let output = client.get_invalidation().distribution_id(distribution).id(summary.id()).send().await.unwrap();
        let batch = output.invalidation().unwrap().invalidation_batch().unwrap();
        if batch.caller_reference().contains(gallery.as_str()) {
            let mut paths = batch.paths().unwrap().items().to_vec();
            paths.sort();
            found.push((batch.caller_reference().to_owned(), paths));
        }
    }
    found
}

/// (visible, in flight) messages of a queue.
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let count = |name| attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Waits (at most `within`) for a queue to hold nothing, visible or in flight.
async fn until_empty(sqs: &aws_sdk_sqs::Client, url: &str, what: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let d = depth(sqs, url).await;
        if d == (0, 0) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} still holds (visible, in flight) {d:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republish_through_the_queue_on_the_emulator() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "emulator-backed tests need AWS_ENDPOINT_URL: run them with infra/test.sh, which starts moto server"
    );
    let started = std::time::Instant::now();
    let sdk = load_sdk_config().await;
    let suffix = ulid::Ulid::new().to_string().to_ascii_lowercase();

    let table = format!("publish-{suffix}");
    create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    let metadata = Arc::new(DynamoMetadataStore::new(&sdk, table));
    let bucket = format!("publish-{suffix}");
    let path_style = std::env::var("PHOENIX_S3_FORCE_PATH_STYLE").map_or(true, |v| v != "false");
    let objects = Arc::new(S3ObjectStore::new(&sdk, bucket.clone(), path_style));
    objects.client().create_bucket().bucket(&bucket).send().await.unwrap();
    let cloudfront = aws_sdk_cloudfront::Client::new(&sdk);
    let distribution_id = distribution(&cloudfront, &bucket).await;
    let cdn = Arc::new(CloudFrontCdn::new(&sdk, distribution_id.clone()));

    // The publish queue and its DLQ, with the template's redrive policy.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (url, dlq) =
        queue_with_dead_letter(&sqs, &format!("publish-{suffix}"), &format!("publish-dlq-{suffix}"), 10).await;
    let queue = Arc::new(SqsQueue::new(
        &sdk,
        HashMap::from([(QueueName::PUBLISH, url.clone()), (QueueName::PUBLISH_DLQ, dlq.clone())]),
    ));

    // Processed, approved photos, straight into the store.
    let model = ModelId::parse("model-aws-publish").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut media = Vec::new();
    for i in 0..3 {
        let record = processed(&model, &format!("Before {i}"), now);
        metadata.create_media(&record).await.unwrap();
        media.push(record.media_id);
    }

    // A public gallery of them, published by a person.
    let ports = GalleryPorts { galleries: metadata.as_ref(), media: metadata.as_ref(), objects: objects.as_ref() };
    let slug = Slug::parse(&format!("summer-{suffix}")).unwrap();
    let request = CreateGallery {
        title: "Summer".into(),
        slug: slug.clone(),
        description: None,
        visibility: Visibility::Public,
        sections: vec![],
    };
    let gallery = phoenix_domain::galleries::create(metadata.as_ref(), &model, request, now).await.unwrap();
    let id = gallery.gallery_id.clone();
    let insert = Operation::InsertItems { media_ids: media.clone(), section_id: None, position: None };
    phoenix_domain::galleries::patch(ports, &model, &id, gallery.version, vec![insert], "model-1", now).await.unwrap();
    phoenix_domain::galleries::publish(ports, &model, &id, "model-1", MEDIA_BASE, now).await.unwrap();
    let (pointer, body) = read_published(objects.as_ref(), &id).await.unwrap().expect("published");
    assert_eq!(pointer.version, 1);
    let first: PublishedDocument = serde_json::from_slice(&body).unwrap();
    assert_eq!(first.item_count, 3);
    let item = &first.sections[0].items[0];
    assert_eq!(
        item.sources.iter().map(|s| (s.format.as_str(), s.srcset.len())).collect::<Vec<_>>(),
        vec![("webp", 3), ("jpeg", 3)],
        "srcsets per format from the width renditions"
    );
    assert!(item.fallback.url.starts_with(MEDIA_BASE), "{:?}", item.fallback);

    // A caption edited (the record as the patch left it, with its gallery link), and the
    // republish asked for as the media use cases ask, several times.
    let edited = media[1];
    let mut record = metadata.get_media(&model, &edited).await.unwrap();
    assert!(record.gallery_ids().any(|g| g == &id), "the patch linked the media to the gallery");
    record.metadata.caption = Some("After the edit".into());
    record.version += 1;
    record.updated_at = time::OffsetDateTime::now_utc();
    metadata.update_media(&record).await.unwrap();
    for _ in 0..REQUESTS {
        assert_eq!(republish::request_for(queue.as_ref(), &model, [&id], Reason::Edit).await, 1);
    }

    // The publisher on the publish queue, as the batch worker's Lambda runs it: batches of 10.
    let publisher = Arc::new(phoenix_publisher::build(
        PublisherConfig { media_base: MEDIA_BASE.into() },
        PublisherPorts {
            metadata: metadata.clone(),
            objects: objects.clone(),
            queue: queue.clone(),
            cdn: cdn.clone(),
            warmer: None,
        },
    ));
    let (stop, stopped) = watch::channel(false);
    let drain = DrainSettings { visibility: Duration::from_secs(120), ..DrainSettings::default() };
    let draining = tokio::spawn(phoenix_consumer::drain(queue.clone(), QueueName::PUBLISH, publisher, drain, stopped));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let pointer = loop {
        let pointer = read_pointer(objects.as_ref(), &id).await.unwrap().expect("a pointer");
        if pointer.version > 1 {
            break pointer;
        }
        assert!(tokio::time::Instant::now() < deadline, "the gallery was not republished: {pointer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    until_empty(&sqs, &url, "the publish queue", Duration::from_secs(10)).await;
    until_empty(&sqs, &dlq, "the publish DLQ", Duration::from_secs(1)).await;

    // One new version, whatever the number of requests.
    assert_eq!(pointer.version, 2, "the pointer advanced exactly once");
    let stored = phoenix_domain::galleries::get(metadata.as_ref(), &model, &id).await.unwrap();
    let publication = stored.publication.expect("published");
    assert_eq!((publication.current, publication.latest), (2, 2));
    assert_eq!(
        publication.history.iter().map(|v| v.by.as_str()).collect::<Vec<_>>(),
        ["model-1", republish::PUBLISHER_ACTOR]
    );
    let (read, body) = read_published(objects.as_ref(), &id).await.unwrap().expect("published");
    assert_eq!(read, pointer);
    let document: PublishedDocument = serde_json::from_slice(&body).unwrap();
    assert_eq!(document.version, 2);
    let captions: Vec<(MediaId, Option<&str>)> =
        document.sections[0].items.iter().map(|i| (i.media_id, i.caption.as_deref())).collect();
    assert_eq!(
        captions,
        vec![(media[0], Some("Before 0")), (edited, Some("After the edit")), (media[2], Some("Before 2"))]
    );

    // One invalidation of the gallery's paths, in CloudFront.
    let invalidations = invalidations_of(&cloudfront, &distribution_id, &id).await;
    let mut want = vec![format!("/g/{slug}"), format!("/v1/public/galleries/{id}")];
    want.sort();
    assert_eq!(invalidations.len(), 1, "the {REQUESTS} requests coalesce into one invalidation: {invalidations:?}");
    assert_eq!(invalidations[0].1, want);
    assert!(invalidations[0].0.starts_with(&format!("gallery-{id}-v2-")), "{invalidations:?}");

    // A body that is no publish message: moved to the DLQ at its first receive, by the publisher
    // (a new message there: not the redrive's move after ten receives).
    let malformed = r#"{"v":1,"gallery_id":"nope"}"#;
    let sent = queue.send(&QueueName::PUBLISH, malformed, Duration::ZERO).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let parked = loop {
        let received =
            sqs.receive_message().queue_url(&dlq).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
        if let Some(m) = received.messages.unwrap_or_default().into_iter().next() {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "the malformed message did not reach the DLQ");
    };
    assert_eq!(parked.body(), Some(malformed));
    assert_ne!(parked.message_id(), Some(sent.as_str()), "moved by the publisher, not by the redrive");
    sqs.delete_message().queue_url(&dlq).receipt_handle(parked.receipt_handle().unwrap()).send().await.unwrap();
    until_empty(&sqs, &url, "the publish queue", Duration::from_secs(2)).await;
    until_empty(&sqs, &dlq, "the publish DLQ", Duration::from_secs(1)).await;

    let _ = stop.send(true);
    draining.await.unwrap();
    assert_eq!(invalidations_of(&cloudfront, &distribution_id, &id).await.len(), 1, "nothing invalidated since");
    println!("republish through the queue on the emulator: {:.1} s", started.elapsed().as_secs_f64());
}
