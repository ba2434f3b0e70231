use super::*;
use crate::galleries::fakes::{Fakes as GalleryFakes, approved, gallery};
use crate::galleries::{Publication, PublishedVersion, Visibility, publish};
use crate::library::{MediaPatch, ReviewRequest};
use crate::media::fakes::{Fakes as MediaFakes, processed_record};
use crate::media::{GalleryLink, MediaStatus, ReviewDecision, Violation};

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

fn gid(raw: &str) -> GalleryId {
    GalleryId::parse(raw).unwrap()
}

fn linked(galleries: &[(&str, bool)]) -> MediaRecord {
    let mut record = processed_record();
    record.status = MediaStatus::Approved;
    record.galleries =
        galleries.iter().map(|(g, published)| GalleryLink { gallery_id: gid(g), published: *published }).collect();
    record
}

/// The publish messages a fake queue was sent, read back.
fn sent(fakes: &MediaFakes) -> Vec<RepublishMessage> {
    fakes.sent.lock().unwrap().iter().filter_map(|(body, _)| RepublishMessage::parse(body).ok()).collect()
}

#[test]
fn the_message_has_one_documented_shape() {
    let m = RepublishMessage::new(ModelId::parse("demo-model").unwrap(), gid("summer"), Reason::Edit);
    assert_eq!(m.to_json(), r#"{"v":1,"model_id":"demo-model","gallery_id":"summer","reason":"edit"}"#);
    assert_eq!(RepublishMessage::parse(&m.to_json()).unwrap(), m);
    let renamed = r#"{"v":1,"model_id":"m","gallery_id":"g1","reason":"gallery","previous_slug":"old-name"}"#;
    assert_eq!(RepublishMessage::parse(renamed).unwrap().previous_slug.unwrap().as_str(), "old-name");
    for bad in [
        "",
        "[]",
        r#"{"v":2,"model_id":"m","gallery_id":"g1","reason":"edit"}"#,
        r#"{"v":1,"model_id":"m","gallery_id":"g1","reason":"whim"}"#,
        r#"{"v":1,"model_id":"m","gallery_id":"g1","reason":"edit","extra":1}"#,
        r#"{"v":1,"model_id":"m","reason":"edit"}"#,
        r#"{"v":1,"model_id":"M M","gallery_id":"g1","reason":"edit"}"#,
    ] {
        assert!(RepublishMessage::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn an_edit_asks_each_linked_gallery_once_and_an_unlinked_media_asks_none() {
    let record = linked(&[("g1", true), ("g2", false)]);
    let fakes = MediaFakes::holding(record.clone());
    let caption = MediaPatch { caption: Some(Some("new".into())), ..MediaPatch::default() };
    let now = OffsetDateTime::now_utc();
    run(crate::media::edit(&fakes, &fakes, &record.model_id, &record.media_id, 1, caption, "u", now)).unwrap();
    let messages = sent(&fakes);
    assert_eq!(messages.iter().map(|m| m.gallery_id.as_str()).collect::<Vec<_>>(), ["g1", "g2"]);
    assert!(messages.iter().all(|m| m.reason == Reason::Edit && m.model_id == record.model_id));

    // Nothing changed: nothing asked.
    let same = MediaPatch { caption: Some(Some("new".into())), ..MediaPatch::default() };
    run(crate::media::edit(&fakes, &fakes, &record.model_id, &record.media_id, 2, same, "u", now)).unwrap();
    assert_eq!(sent(&fakes).len(), 2);

    let lonely = linked(&[]);
    let fakes = MediaFakes::holding(lonely.clone());
    let caption = MediaPatch { caption: Some(Some("x".into())), ..MediaPatch::default() };
    run(crate::media::edit(&fakes, &fakes, &lonely.model_id, &lonely.media_id, 1, caption, "u", now)).unwrap();
    assert!(fakes.sent.lock().unwrap().is_empty());
}

#[test]
fn a_rejection_asks_the_galleries_it_was_withdrawn_from() {
    let record = linked(&[("shown", true), ("draft", false)]);
    let fakes = MediaFakes::holding(record.clone());
    let reject = ReviewRequest {
        decision: ReviewDecision::Reject,
        violations: vec![
            serde_json::from_value::<Violation>(serde_json::json!({"code": "no_release", "severity": "high"})).unwrap(),
        ],
        note: None,
    };
    let now = OffsetDateTime::now_utc();
    let (after, outcome) =
        run(crate::media::review(&fakes, &fakes, &record.model_id, &record.media_id, None, reject, "boss", now))
            .unwrap();
    assert_eq!(outcome.withdrawn_from, [gid("shown")]);
    assert_eq!(
        after.galleries,
        [
            GalleryLink { gallery_id: gid("shown"), published: false },
            GalleryLink { gallery_id: gid("draft"), published: false }
        ],
        "still a member, no longer shown"
    );
    let asked: Vec<_> = sent(&fakes).into_iter().map(|m| (m.gallery_id, m.reason)).collect();
    assert_eq!(asked, [(gid("draft"), Reason::Review), (gid("shown"), Reason::Review)]);

    // A change of mind: approving it again asks the same galleries, which show it again.
    fakes.sent.lock().unwrap().clear();
    let approve = ReviewRequest { decision: ReviewDecision::Approve, violations: vec![], note: None };
    let (_, outcome) =
        run(crate::media::review(&fakes, &fakes, &record.model_id, &record.media_id, None, approve, "boss", now))
            .unwrap();
    assert!(outcome.withdrawn_from.is_empty());
    let asked: Vec<_> = sent(&fakes).into_iter().map(|m| (m.gallery_id, m.reason)).collect();
    assert_eq!(asked, [(gid("draft"), Reason::Review), (gid("shown"), Reason::Review)]);
}

#[test]
fn delete_and_restore_ask_the_galleries_and_a_queue_outage_keeps_the_change() {
    let record = linked(&[("g1", true)]);
    let fakes = MediaFakes::holding(record.clone());
    let (model, media, now) = (&record.model_id, &record.media_id, OffsetDateTime::now_utc());
    let grace = Duration::from_secs(3600);
    run(crate::media::delete(&fakes, &fakes, model, media, None, "a", now, grace)).unwrap();
    run(crate::media::restore(&fakes, &fakes, model, media, None, "a", now)).unwrap();
    let reasons: Vec<_> = sent(&fakes).into_iter().map(|m| (m.gallery_id, m.reason)).collect();
    assert_eq!(reasons, [(gid("g1"), Reason::Delete), (gid("g1"), Reason::Restore)]);

    let down = MediaFakes { queue_down: true, ..MediaFakes::holding(record.clone()) };
    let trashed = run(crate::media::delete(&down, &down, model, media, None, "a", now, grace)).unwrap();
    assert!(trashed.is_trashed(), "the delete stands");
}

#[test]
fn request_for_sends_one_message_per_distinct_gallery() {
    let fakes = MediaFakes::default();
    let model = ModelId::parse("m1").unwrap();
    let ids = [gid("a"), gid("b"), gid("a")];
    assert_eq!(run(request_for(&fakes, &model, &ids, Reason::Batch)), 2);
    assert_eq!(sent(&fakes).len(), 2);
}

#[test]
fn a_gallery_change_asks_only_when_it_was_published_and_names_the_old_slug() {
    let fakes = MediaFakes::default();
    let draft = gallery();
    assert!(!run(request_after_gallery_change(&fakes, &draft, Some(&draft), Reason::Gallery)));
    let mut published = gallery();
    published.publication = Some(Publication {
        current: 1,
        latest: 1,
        history: vec![PublishedVersion {
            version: 1,
            at: OffsetDateTime::now_utc(),
            by: "u".into(),
            items: 0,
            sha256: String::new(),
            rights_expire_at: None,
        }],
    });
    let mut renamed = published.clone();
    renamed.slug = Slug::parse("autumn").unwrap();
    assert!(run(request_after_gallery_change(&fakes, &published, Some(&published), Reason::Gallery)));
    assert!(run(request_after_gallery_change(&fakes, &published, Some(&renamed), Reason::Gallery)));
    assert!(run(request_after_gallery_change(&fakes, &published, None, Reason::Gallery)));
    let slugs: Vec<_> = sent(&fakes).into_iter().map(|m| m.previous_slug.map(|s| s.to_string())).collect();
    assert_eq!(slugs, [None, Some("summer".into()), Some("summer".into())]);
}

#[test]
fn refresh_publishes_only_a_changed_document_with_a_stable_reference() {
    let fakes = GalleryFakes::default();
    let a = fakes.add(approved());
    let mut g = gallery();
    g.visibility = Visibility::Public;
    g.sections[0].items.push(a);
    let id = g.gallery_id.clone();
    run(crate::ports::GalleryStore::create_gallery(&fakes, &g)).unwrap();
    let model = ModelId::parse("m1").unwrap();
    let now = OffsetDateTime::now_utc();
    let none = BTreeSet::new();

    // Never published: nothing.
    assert_eq!(run(refresh(fakes.ports(), &model, &id, &none, true, "", now)).unwrap(), Refresh::Nothing);
    run(publish(fakes.ports(), &model, &id, "u", "", now)).unwrap();

    // Unchanged: no new version; the same reference twice.
    let first = run(refresh(fakes.ports(), &model, &id, &none, true, "", now)).unwrap();
    let again = run(refresh(fakes.ports(), &model, &id, &none, true, "", now)).unwrap();
    let (Refresh::Invalidate { invalidation: one, published: None, .. }, Refresh::Invalidate { invalidation: two, .. }) =
        (&first, &again)
    else {
        panic!("{first:?}")
    };
    assert_eq!(one, two);
    let paths: Vec<_> = one.paths().iter().map(|p| p.as_str().to_owned()).collect();
    assert_eq!(paths, ["/g/summer".to_owned(), format!("/v1/public/galleries/{id}")]);

    // A caption the document shows changed: version 2, and a new reference.
    fakes.edit(&a, |r| r.metadata.caption = Some("Golden hour".into()));
    let changed = run(refresh(fakes.ports(), &model, &id, &none, true, "", now)).unwrap();
    let Refresh::Invalidate { invalidation, published: Some(2), .. } = &changed else { panic!("{changed:?}") };
    assert_ne!(invalidation.reference(), one.reference());
    assert_eq!(fakes.gallery(&id).publication.unwrap().current, 2);

    // `Published` (a person's publish or rollback): invalidated, never published again.
    fakes.edit(&a, |r| r.metadata.caption = Some("Blue hour".into()));
    let only = run(refresh(fakes.ports(), &model, &id, &none, false, "", now)).unwrap();
    assert!(matches!(only, Refresh::Invalidate { published: None, .. }), "{only:?}");
    assert_eq!(fakes.gallery(&id).publication.unwrap().current, 2);
}
