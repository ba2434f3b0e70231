//! The publisher on the local adapters: coalescing, TooManyInProgress, idempotent redelivery,
//! malformed messages, galleries with nothing public.

use std::sync::Mutex;

use phoenix_domain::galleries::republish::Reason;
use phoenix_domain::galleries::{self, CreateGallery, Gallery, Operation, Visibility};
use phoenix_storage::local::{LocalMetadataStore, LocalObjectStore, LocalQueue, QueueSettings, RecordingCdn};

use super::*;

struct Setup {
    _dir: tempfile::TempDir,
    metadata: Arc<dyn MetadataStore>,
    objects: Arc<dyn ObjectStore>,
    queue: Arc<dyn Queue>,
    cdn: RecordingCdn,
    warmed: Arc<Mutex<Vec<String>>>,
    publisher: Publisher,
}

struct Recorder(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl Warmer for Recorder {
    async fn warm(&self, path: &str) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(path.to_owned());
        Ok(())
    }
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let metadata: Arc<dyn MetadataStore> = Arc::new(LocalMetadataStore::open(&dir.path().join("m.sqlite")).unwrap());
    let objects: Arc<dyn ObjectStore> =
        Arc::new(LocalObjectStore::open(&dir.path().join("objects"), "http://local".into(), b"k".to_vec()).unwrap());
    let settings = QueueSettings { max_receive: 5, dead_letter: Some(QueueName::PUBLISH_DLQ) };
    let queue: Arc<dyn Queue> = Arc::new(
        LocalQueue::open(
            &dir.path().join("q.sqlite"),
            vec![
                (QueueName::PUBLISH, settings),
                (QueueName::PUBLISH_DLQ, QueueSettings { max_receive: u32::MAX, dead_letter: None }),
            ],
        )
        .unwrap(),
    );
    let cdn = RecordingCdn::in_memory();
    let warmed = Arc::new(Mutex::new(Vec::new()));
    let ports = PublisherPorts {
        metadata: metadata.clone(),
        objects: objects.clone(),
        queue: queue.clone(),
        cdn: Arc::new(cdn.clone()),
        warmer: Some(Arc::new(Recorder(warmed.clone()))),
    };
    let publisher = build(PublisherConfig { media_base: "https://cdn.example".into() }, ports);
    Setup { _dir: dir, metadata, objects, queue, cdn, warmed, publisher }
}

impl Setup {
    fn ports(&self) -> GalleryPorts<'_> {
        GalleryPorts {
            galleries: self.metadata.as_ref(),
            media: self.metadata.as_ref(),
            objects: self.objects.as_ref(),
        }
    }

    async fn gallery(&self, slug: &str, visibility: Visibility, publish: bool) -> Gallery {
        let request = CreateGallery {
            title: "Summer".into(),
            slug: Slug::parse(slug).unwrap(),
            description: None,
            visibility,
            sections: vec![],
        };
        let g = galleries::create(self.metadata.as_ref(), &model(), request, OffsetDateTime::now_utc()).await.unwrap();
        if !publish {
            return g;
        }
        galleries::publish(self.ports(), &model(), &g.gallery_id, "u", "https://cdn.example", OffsetDateTime::now_utc())
            .await
            .unwrap()
    }

    async fn retitle(&self, g: &GalleryId, title: &str) {
        let current = self.metadata.get_gallery(g).await.unwrap();
        let op: Operation = serde_json::from_value(serde_json::json!({"op": "set_fields", "title": title})).unwrap();
        galleries::patch(self.ports(), &model(), g, current.version, vec![op], "u", OffsetDateTime::now_utc())
            .await
            .unwrap();
    }

    async fn current(&self, g: &GalleryId) -> u32 {
        self.metadata.get_gallery(g).await.unwrap().publication.map_or(0, |p| p.current)
    }

    async fn handle(&self, bodies: &[String]) -> Vec<(String, Result<(), Failure>)> {
        let messages = bodies
            .iter()
            .enumerate()
            .map(|(n, body)| {
                let delivery = Delivery { message_id: format!("m{n}"), receive_count: 1 };
                (self.publisher.decode(body).unwrap(), delivery)
            })
            .collect();
        let mut results: Vec<_> =
            self.publisher.handle_batch(messages, 10).await.into_iter().map(|(d, r)| (d.message_id, r)).collect();
        results.sort_by(|a, b| a.0.cmp(&b.0));
        results
    }
}

fn model() -> ModelId {
    ModelId::parse("m1").unwrap()
}

fn message(g: &GalleryId, reason: Reason) -> String {
    RepublishMessage::new(model(), g.clone(), reason).to_json()
}

fn all_ok(results: &[(String, Result<(), Failure>)]) -> bool {
    results.iter().all(|(_, r)| r.is_ok())
}

#[tokio::test]
async fn messages_for_one_gallery_coalesce_into_one_publish_and_one_invalidation() {
    let s = setup();
    let (a, b) =
        (s.gallery("alpha", Visibility::Public, true).await, s.gallery("beta", Visibility::Public, true).await);
    s.retitle(&a.gallery_id, "Summer, again").await;
    let bodies = [
        message(&a.gallery_id, Reason::Edit),
        message(&a.gallery_id, Reason::Review),
        message(&a.gallery_id, Reason::Batch),
        message(&b.gallery_id, Reason::Edit),
    ];
    let results = s.handle(&bodies).await;
    assert_eq!(results.len(), 4, "one result per message");
    assert!(all_ok(&results), "{results:?}");
    assert_eq!(s.current(&a.gallery_id).await, 2, "one publish for three messages");
    assert_eq!(s.current(&b.gallery_id).await, 1, "b's document did not change: not published again");
    let invalidations = s.cdn.invalidations();
    assert_eq!(invalidations.len(), 2, "one invalidation per gallery: {invalidations:?}");
    let of_a = invalidations.iter().find(|i| i.caller_reference.contains(a.gallery_id.as_str())).unwrap();
    let mut expected = vec!["/g/alpha".to_owned(), format!("/v1/public/galleries/{}", a.gallery_id)];
    expected.sort();
    assert_eq!(of_a.paths, expected);
    assert!(of_a.caller_reference.starts_with(&format!("gallery-{}-v2-", a.gallery_id)));
    // Warming: only the gallery that was published again, both of its paths.
    assert_eq!(*s.warmed.lock().unwrap(), [format!("/v1/public/galleries/{}", a.gallery_id), "/g/alpha".into()]);
}

#[tokio::test]
async fn a_persons_publish_is_invalidated_and_warmed_not_published_again() {
    let s = setup();
    let a = s.gallery("alpha", Visibility::Public, true).await;
    let hidden = s.gallery("hidden", Visibility::Private, true).await;
    let results =
        s.handle(&[message(&a.gallery_id, Reason::Published), message(&hidden.gallery_id, Reason::Published)]).await;
    assert!(all_ok(&results), "{results:?}");
    assert_eq!(s.current(&a.gallery_id).await, 1, "the person's version stands");
    assert_eq!(s.cdn.invalidations().len(), 2);
    // The first visitor of the new version gets a hit; a private gallery is never requested.
    assert_eq!(*s.warmed.lock().unwrap(), [format!("/v1/public/galleries/{}", a.gallery_id), "/g/alpha".into()]);
}

#[tokio::test]
async fn a_redelivery_publishes_nothing_and_asks_for_the_same_invalidation() {
    let s = setup();
    let a = s.gallery("alpha", Visibility::Public, true).await;
    s.retitle(&a.gallery_id, "New title").await;
    let bodies = [message(&a.gallery_id, Reason::Gallery)];
    assert!(all_ok(&s.handle(&bodies).await));
    let first = s.cdn.invalidations();
    assert!(all_ok(&s.handle(&bodies).await));
    assert_eq!(s.current(&a.gallery_id).await, 2, "no new version for a redelivery");
    assert_eq!(s.cdn.invalidations(), first, "the same caller reference: nothing invalidated twice");
}

#[tokio::test]
async fn too_many_invalidations_in_progress_sends_the_messages_back_later() {
    let s = setup();
    let a = s.gallery("alpha", Visibility::Public, true).await;
    s.retitle(&a.gallery_id, "Busy").await;
    s.cdn.busy_for(1);
    let bodies = [message(&a.gallery_id, Reason::Edit), message(&a.gallery_id, Reason::Edit)];
    let results = s.handle(&bodies).await;
    for (_, result) in &results {
        match result {
            Err(Failure::Later { after, .. }) => assert_eq!(*after, phoenix_domain::ports::cdn::BUSY_RETRY_AFTER),
            other => panic!("not retried later: {other:?}"),
        }
    }
    assert!(s.cdn.invalidations().is_empty());
    // The retry: published already (version 2), so only the invalidation is asked for.
    assert!(all_ok(&s.handle(&bodies).await));
    assert_eq!(s.current(&a.gallery_id).await, 2);
    assert_eq!(s.cdn.invalidations().len(), 1);
}

#[tokio::test]
async fn malformed_messages_go_to_the_dead_letter_queue_at_once() {
    let s = setup();
    let a = s.gallery("alpha", Visibility::Public, true).await;
    let wrong_version = message(&a.gallery_id, Reason::Edit).replace("\"v\":1", "\"v\":2");
    let unknown_field = message(&a.gallery_id, Reason::Edit).replace("\"v\":1", "\"v\":1,\"extra\":true");
    let bodies = ["not json".to_owned(), wrong_version, unknown_field, message(&a.gallery_id, Reason::Edit)];
    let results = s.handle(&bodies).await;
    assert!(all_ok(&results), "acknowledged, not retried: {results:?}");
    assert_eq!(s.queue.depth(&QueueName::PUBLISH_DLQ).await.unwrap(), 3);
    let dead = s.queue.receive(&QueueName::PUBLISH_DLQ, 10, Duration::from_secs(30), Duration::ZERO).await.unwrap();
    assert!(dead.iter().any(|m| m.body == "not json"));
}

#[tokio::test]
async fn unpublished_private_renamed_and_deleted_galleries() {
    let s = setup();
    // Never published: nothing to do.
    let draft = s.gallery("draft", Visibility::Public, false).await;
    assert!(all_ok(&s.handle(&[message(&draft.gallery_id, Reason::Edit)]).await));
    assert!(s.cdn.invalidations().is_empty());
    assert_eq!(s.current(&draft.gallery_id).await, 0, "not published by a republish request");

    // Published, then made private: not published again, but the CDN drops its copies.
    let hidden = s.gallery("hidden", Visibility::Public, true).await;
    let current = s.metadata.get_gallery(&hidden.gallery_id).await.unwrap();
    let op: Operation =
        serde_json::from_value(serde_json::json!({"op": "set_fields", "visibility": "private"})).unwrap();
    galleries::patch(
        s.ports(),
        &model(),
        &hidden.gallery_id,
        current.version,
        vec![op],
        "u",
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert!(all_ok(&s.handle(&[message(&hidden.gallery_id, Reason::Gallery)]).await));
    assert_eq!(s.current(&hidden.gallery_id).await, 1);
    assert_eq!(s.cdn.invalidations().len(), 1);

    // Renamed: the old page is invalidated with the new one.
    let renamed = s.gallery("old-name", Visibility::Public, true).await;
    let current = s.metadata.get_gallery(&renamed.gallery_id).await.unwrap();
    let op: Operation = serde_json::from_value(serde_json::json!({"op": "set_fields", "slug": "new-name"})).unwrap();
    galleries::patch(
        s.ports(),
        &model(),
        &renamed.gallery_id,
        current.version,
        vec![op],
        "u",
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let mut m = RepublishMessage::new(model(), renamed.gallery_id.clone(), Reason::Gallery);
    m.previous_slug = Some(Slug::parse("old-name").unwrap());
    assert!(all_ok(&s.handle(&[m.to_json()]).await));
    let last = s.cdn.invalidations().pop().unwrap();
    assert!(last.paths.contains(&"/g/old-name".to_owned()) && last.paths.contains(&"/g/new-name".to_owned()));
    assert_eq!(s.current(&renamed.gallery_id).await, 2, "the slug is in the document");

    // Deleted, with its slug named: its paths go; without one there is nothing to do.
    let gone = s.gallery("gone", Visibility::Public, true).await;
    let stored = s.metadata.get_gallery(&gone.gallery_id).await.unwrap();
    galleries::delete(s.ports(), &model(), &gone.gallery_id, Some(stored.version), "u", OffsetDateTime::now_utc())
        .await
        .unwrap();
    let before = s.cdn.invalidations().len();
    assert!(all_ok(&s.handle(&[message(&gone.gallery_id, Reason::Gallery)]).await));
    assert_eq!(s.cdn.invalidations().len(), before);
    let mut m = RepublishMessage::new(model(), gone.gallery_id.clone(), Reason::Gallery);
    m.previous_slug = Some(Slug::parse("gone").unwrap());
    assert!(all_ok(&s.handle(&[m.to_json()]).await));
    let last = s.cdn.invalidations().pop().unwrap();
    assert_eq!(last.paths, ["/g/gone".to_owned(), format!("/v1/public/galleries/{}", gone.gallery_id)]);
}
