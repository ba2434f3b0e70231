//! The contract of each port, as executable suites that every adapter (local and AWS) must pass.
//! Built for tests only (feature `conformance`).
//!
//! One suite per port, taking the adapter as the trait object it tests ([`object_store_suite`]
//! and [`presigner_suite`], [`media_store_suite`], [`fingerprint_store_suite`],
//! [`tombstone_store_suite`], [`job_store_suite`], [`idempotency_store_suite`], [`queue_suite`],
//! [`lane_control_suite`], [`event_bus_suite`], [`cdn_suite`], [`share_link_store_suite`]; [`metadata_store_suite`] runs the five metadata
//! ones), and panicking with a readable message on the first broken promise. A suite that needs
//! records to exist takes the media store as well, for fixtures and observations only. Ids and
//! keys are unique per run, so suites can share one store or one emulator; only [`queue_suite`]
//! needs queues of its own (it counts their messages), [`job_store_suite`] a store without jobs
//! (it counts them across models), and [`lane_control_suite`] lanes nobody else switches.

mod cdn;
mod galleries;
mod shares;

pub use cdn::{SeenInvalidations, cdn_suite};
pub use galleries::{gallery_store_suite, sample_gallery};
pub use shares::{sample_link, share_link_store_suite};

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use phoenix_domain::jobs::{
    AspectRatio, CropRect, FanOut, FaultPlan, FlipAxis, Job, JobAttempt, JobFailure, JobLease, JobResult, JobStatus,
    Lane, Operation, Progress, Target,
};
use phoenix_domain::media::{
    Claim, Credit, Derivative, FocalPoint, GalleryLink, GpsPosition, MAX_GALLERIES, MAX_TAGS, MediaMetadata, Review,
    ReviewDecision, Severity, SourceInfo, Violation,
};
use phoenix_domain::ports::bounds::{MAX_BATCH_GET, PAGE_SIZE};
use phoenix_domain::ports::{
    BusEvent, EventBus, Fingerprint, FingerprintStore, IdempotencyRecord, IdempotencyStore, JobQuery, JobStore,
    LaneControl, MediaQuery, MediaStore, MetadataStore, ObjectStore, Presigner, PutOptions, Queue, QueueName,
    QueueStats, StoreError, StoreResult, TombstoneStore, cursor,
};
use phoenix_domain::{
    Category, GalleryId, JobId, MediaId, MediaRecord, MediaStatus, ModelId, ObjectKey, Tag, WatermarkName, keys,
};
use time::OffsetDateTime;

/// A fresh, lower-case ULID string: unique per call.
fn run_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

fn key(raw: &str) -> ObjectKey {
    ObjectKey::parse(raw).unwrap_or_else(|e| panic!("test key {raw:?} is invalid: {e}"))
}

/// A media id whose ULID timestamp is `at`, so ids made for increasing instants sort in order.
fn media_id_at(at: OffsetDateTime) -> MediaId {
    let system_time = SystemTime::UNIX_EPOCH + Duration::from_nanos(at.unix_timestamp_nanos() as u64);
    let ulid = ulid::Ulid::from_datetime(system_time);
    MediaId::parse(&ulid.to_string().to_ascii_lowercase()).expect("a ULID is a media id")
}

/// A plausible record with every optional part filled in (except `expires_at`), for round trips.
pub fn sample_record(model: &ModelId, media: &MediaId, status: MediaStatus) -> MediaRecord {
    let now = OffsetDateTime::now_utc();
    MediaRecord {
        model_id: model.clone(),
        media_id: *media,
        status,
        filename: "holiday photo é.jpg".to_owned(),
        content_type: "image/jpeg".to_owned(),
        declared_bytes: 123_456,
        original_key: keys::original(model, media),
        created_at: now,
        updated_at: now,
        version: 1,
        expires_at: None,
        claim: Some(Claim {
            etag: "abc123".to_owned(),
            until: now + Duration::from_secs(300),
            holder: Some("message-1".to_owned()),
        }),
        upload_expires_at: Some(now + Duration::from_secs(900)),
        source: Some(SourceInfo {
            etag: "abc123".to_owned(),
            bytes: 123_456,
            format: "jpeg".to_owned(),
            width: 4000,
            height: 3000,
            orientation: 6,
            sha256: "ab".repeat(32),
            camera_make: Some("Canon".to_owned()),
            camera_model: None,
            captured_at: Some("2024:05:06 07:08:09".to_owned()),
            lens: Some("EF 85mm f/1.2L".to_owned()),
            artist: None,
            copyright: Some("© Agency".to_owned()),
            gps: Some(GpsPosition { latitude: 48.858_37, longitude: -2.294_48 }),
            placeholder: Some("1QcSHQRnh493V4dIh4eXh1h4kJUI".to_owned()),
            dominant_color: Some("#a0b0c0".to_owned()),
            phash: Some("c3a5e1f00f1e5a3c".to_owned()),
        }),
        derivatives: vec![Derivative {
            preset: "thumb".to_owned(),
            format: "webp".to_owned(),
            width: 400,
            height: 300,
            bytes: 9_876,
            key: ObjectKey::parse(&format!("derived/{model}/{media}/thumb.webp")).expect("valid key"),
            preset_version: 2,
            source_etag: "0123456789abcdef0123456789abcdef".to_owned(),
            operations: vec!["decode:jpeg:scale=1/2".to_owned(), "resize:lanczos3:800x600->400x300".to_owned()],
        }],
        rejection: None,
        focal_point: Some(FocalPoint { x: 0.25, y: 0.75 }),
        metadata: MediaMetadata {
            caption: Some("Backstage, «Paris» — 2027".to_owned()),
            alt_text: Some("A model in a red coat".to_owned()),
            category: Some(Category::parse("editorial").expect("valid category")),
            tags: Vec::new(),
            credits: vec![Credit { role: "photographer".to_owned(), name: "Ada Lovelace".to_owned() }],
            usage_rights_expires_at: Some(time::macros::datetime!(2030-01-01 00:00 UTC)),
        },
        galleries: Vec::new(),
        review: Some(Review {
            decision: ReviewDecision::Reject,
            reviewer: "reviewer-1".to_owned(),
            at: time::macros::datetime!(2026-11-24 10:00 UTC),
            note: Some("needs a release".to_owned()),
            violations: vec![Violation { code: "rights".to_owned(), severity: Severity::High, note: None }],
        }),
        history: Vec::new(),
        image_version: 1,
        image_source_key: None,
        watermark: None,
        version_origin: None,
        earlier_versions: Vec::new(),
        trashed: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Object store
// ---------------------------------------------------------------------------------------------

pub async fn object_store_suite(store: &dyn ObjectStore) {
    let run = run_id();
    let prefix = format!("conformance/{run}");

    // put / head / get round trip.
    let a = key(&format!("{prefix}/a.txt"));
    let body = Bytes::from_static(b"hello, conformance");
    let options =
        PutOptions { content_type: Some("text/plain".to_owned()), cache_control: Some("max-age=60".to_owned()) };
    let put = store.put(&a, body.clone(), options.clone()).await.expect("put");
    assert_eq!(put.key, a, "put returns the key it wrote");
    assert_eq!(put.size, body.len() as u64, "put reports the size written");
    assert!(!put.etag.is_empty(), "put returns an etag");
    assert!(!put.etag.contains('"'), "etags come without quotes, got {:?}", put.etag);
    assert_eq!(put.content_type.as_deref(), Some("text/plain"), "put reports the content type");

    let head = store.head(&a).await.expect("head after put");
    assert_eq!(head.size, body.len() as u64, "head reports the size");
    assert_eq!(head.etag, put.etag, "head reports the etag put returned");
    assert_eq!(head.content_type.as_deref(), Some("text/plain"), "head keeps the content type");
    assert_eq!(head.cache_control.as_deref(), Some("max-age=60"), "head keeps the cache control");

    let (info, got) = store.get(&a, 1024).await.expect("get after put");
    assert_eq!(got, body, "get returns the bytes put");
    assert_eq!(info.etag, put.etag, "get reports the etag put returned");
    assert_eq!(info.size, body.len() as u64, "get reports the size");
    assert_eq!(info.content_type.as_deref(), Some("text/plain"), "get keeps the content type");

    let again = store.put(&a, body.clone(), options.clone()).await.expect("second put");
    assert_eq!(again.etag, put.etag, "the etag is stable for the same bytes");
    let other =
        store.put(&a, Bytes::from_static(b"other bytes"), PutOptions::default()).await.expect("put of other bytes");
    assert_ne!(other.etag, put.etag, "other bytes give another etag");
    let (_, got) = store.get(&a, 1024).await.expect("get after overwrite");
    assert_eq!(&got[..], b"other bytes", "a put replaces the object");

    // Size limit on get.
    let exact = got.len() as u64;
    store.get(&a, exact).await.expect("get with max_bytes equal to the size succeeds");
    match store.get(&a, exact - 1).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("get over max_bytes must be Invalid, got {other:?}"),
    }

    // Missing objects.
    let missing = key(&format!("{prefix}/missing"));
    assert!(matches!(store.head(&missing).await, Err(StoreError::NotFound)), "head of a missing key is NotFound");
    assert!(matches!(store.get(&missing, 1024).await, Err(StoreError::NotFound)), "get of a missing key is NotFound");

    // Delete, idempotently.
    store.delete(&a).await.expect("delete");
    assert!(matches!(store.head(&a).await, Err(StoreError::NotFound)), "head after delete is NotFound");
    store.delete(&a).await.expect("deleting an absent key succeeds");
    store.delete(&missing).await.expect("deleting a never-written key succeeds");

    // List by prefix, paginated.
    let list_prefix = format!("{prefix}/list/");
    let mut expected = Vec::new();
    for name in ["e", "b", "d", "a", "c"] {
        let k = key(&format!("{list_prefix}{name}"));
        store.put(&k, Bytes::from(name.to_owned()), PutOptions::default()).await.expect("put for list");
        expected.push(k);
    }
    store
        .put(&key(&format!("{prefix}/listed-not/x")), Bytes::from_static(b"x"), PutOptions::default())
        .await
        .expect("put outside the listed prefix");
    expected.sort();
    let mut listed = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = store.list(&list_prefix, cursor.take(), 2).await.expect("list");
        assert!(page.keys.len() <= 2, "list returns at most `limit` keys, got {:?}", page.keys);
        sizes.push(page.keys.len());
        listed.extend(page.keys);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, expected, "list returns every key under the prefix, in order, once");
    assert_eq!(sizes, vec![2, 2, 1], "5 keys at 2 a page come in pages of 2, 2, 1");
    let empty = store.list(&format!("{prefix}/nothing-here/"), None, 10).await.expect("list of an empty prefix");
    assert!(empty.keys.is_empty() && empty.next.is_none(), "an empty prefix lists nothing: {empty:?}");

    presigner_suite(store, &prefix).await;
}

/// Presigned requests; `prefix` is a key prefix of this run. [`object_store_suite`] runs it.
pub async fn presigner_suite(store: &dyn Presigner, prefix: &str) {
    // Presigned requests.
    let upload = key(&format!("{prefix}/upload.jpg"));
    let before = OffsetDateTime::now_utc();
    let presigned =
        store.presign_put(&upload, "image/jpeg", 1234, Duration::from_secs(600)).await.expect("presign_put");
    assert_eq!(presigned.method, "PUT", "presign_put gives a PUT");
    assert!(presigned.url.contains(upload.as_str()), "the presigned URL {} names the key {upload}", presigned.url);
    let header =
        |name: &str| presigned.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    assert_eq!(
        header("Content-Type"),
        Some("image/jpeg"),
        "the presigned PUT binds the content type: {:?}",
        presigned.headers
    );
    assert_eq!(header("Content-Length"), Some("1234"), "the presigned PUT binds the length: {:?}", presigned.headers);
    let expiry = presigned.expires_at - before;
    assert!(
        expiry >= time::Duration::seconds(595) && expiry <= time::Duration::seconds(605),
        "the presigned PUT expires after expires_in, got {expiry}"
    );

    let presigned = store.presign_get(&upload, Duration::from_secs(60)).await.expect("presign_get");
    assert_eq!(presigned.method, "GET", "presign_get gives a GET");
    assert!(presigned.url.contains(upload.as_str()), "the presigned URL {} names the key {upload}", presigned.url);
    assert!(presigned.expires_at > before, "the presigned GET expires in the future");
}

// ---------------------------------------------------------------------------------------------
// Metadata: media, fingerprints, tombstones
// ---------------------------------------------------------------------------------------------

/// Every metadata port of one adapter: [`media_store_suite`], [`fingerprint_store_suite`],
/// [`tombstone_store_suite`], [`job_store_suite`] and [`idempotency_store_suite`]. The store must
/// hold no jobs yet.
pub async fn metadata_store_suite(store: &dyn MetadataStore) {
    media_store_suite(store).await;
    fingerprint_store_suite(store, store).await;
    tombstone_store_suite(store, store, store).await;
    trash_suite(store, store).await;
    job_store_suite(store).await;
    idempotency_store_suite(store).await;
}

async fn list_all(
    store: &dyn MediaStore,
    model: &ModelId,
    status: Option<MediaStatus>,
    limit: usize,
) -> Vec<MediaRecord> {
    list_query(store, model, &MediaQuery { status, ..MediaQuery::new(limit) }).await
}

/// Every page of `query` (its `cursor` is ignored), checking each page's size.
async fn list_query(store: &dyn MediaStore, model: &ModelId, query: &MediaQuery) -> Vec<MediaRecord> {
    let limit = query.limit;
    let mut all = Vec::new();
    let mut cursor = None;
    for page_number in 0..200 {
        let query = MediaQuery { cursor: cursor.take(), ..query.clone() };
        let page = store.list_media(model, &query).await.expect("list_media");
        assert!(page.items.len() <= limit, "page {page_number} has {} items, over the limit {limit}", page.items.len());
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("list_media did not end after 200 pages");
}

fn ids(records: &[MediaRecord]) -> Vec<MediaId> {
    records.iter().map(|r| r.media_id).collect()
}

/// Records: create, read, versioned updates, listings with every filter, batch gets, and the
/// shared bounds ([`bounds`](phoenix_domain::ports::bounds)).
pub async fn media_store_suite(store: &dyn MediaStore) {
    let model = ModelId::parse(&format!("conf-{}", run_id())).expect("valid model id");

    // Create and read back.
    let media = MediaId::new();
    let mut record = sample_record(&model, &media, MediaStatus::Uploading);
    record.expires_at = Some(OffsetDateTime::now_utc() + Duration::from_secs(3600));
    store.create_media(&record).await.expect("create_media");
    let got = store.get_media(&model, &media).await.expect("get_media after create");
    assert_eq!(got, record, "get_media returns the record created, field for field");

    match store.create_media(&record).await {
        Err(StoreError::AlreadyExists) => {}
        other => panic!("creating the same ids twice must be AlreadyExists, got {other:?}"),
    }

    // Versioned updates.
    let mut updated = record.clone();
    updated.version = 2;
    updated.status = MediaStatus::PendingReview;
    updated.expires_at = None;
    updated.updated_at = OffsetDateTime::now_utc();
    updated.derivatives.clear();
    store.update_media(&updated).await.expect("update with the next version");
    let got = store.get_media(&model, &media).await.expect("get_media after update");
    assert_eq!(got, updated, "get_media returns the updated record");
    assert_eq!(got.version, 2, "the stored version is bumped");

    let mut stale = record.clone();
    stale.version = 2; // written against version 1, but the store is at 2 now
    stale.status = MediaStatus::Rejected;
    match store.update_media(&stale).await {
        Err(StoreError::VersionConflict { current: Some(2) }) => {}
        other => {
            panic!("a stale update must be VersionConflict {{ current: Some(2) }}, got {other:?}")
        }
    }
    let mut ahead = updated.clone();
    ahead.version = 5;
    match store.update_media(&ahead).await {
        Err(StoreError::VersionConflict { current: Some(2) }) => {}
        other => panic!("an update skipping versions must be VersionConflict {{ current: Some(2) }}, got {other:?}"),
    }
    assert_eq!(
        store.get_media(&model, &media).await.expect("get after conflicts"),
        updated,
        "failed updates change nothing"
    );

    let absent = sample_record(&model, &MediaId::new(), MediaStatus::Processing);
    let mut absent_update = absent.clone();
    absent_update.version = 2;
    match store.update_media(&absent_update).await {
        Err(StoreError::NotFound) => {}
        other => panic!("updating a missing record must be NotFound, got {other:?}"),
    }
    assert!(
        matches!(store.get_media(&model, &absent.media_id).await, Err(StoreError::NotFound)),
        "get of a missing record is NotFound"
    );

    // Listing: a second model, so the first model's records do not interfere.
    let model = ModelId::parse(&format!("conf-list-{}", run_id())).expect("valid model id");
    let base = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let mut created = Vec::new();
    for i in 0..7u64 {
        let at = base + Duration::from_secs(i * 10);
        let media = media_id_at(at);
        let status = if i % 2 == 0 { MediaStatus::Approved } else { MediaStatus::PendingReview };
        let mut record = sample_record(&model, &media, status);
        record.created_at = at;
        record.updated_at = at;
        store.create_media(&record).await.expect("create_media for listing");
        created.push(record);
    }
    // An abandoned upload, past its expiry: absent everywhere.
    let expired_at = base + Duration::from_secs(35);
    let expired_id = media_id_at(expired_at);
    let mut expired = sample_record(&model, &expired_id, MediaStatus::Uploading);
    expired.created_at = expired_at;
    expired.expires_at = Some(OffsetDateTime::now_utc() - Duration::from_secs(1));
    store.create_media(&expired).await.expect("create_media of an expired record");
    assert!(
        matches!(store.get_media(&model, &expired_id).await, Err(StoreError::NotFound)),
        "a record past expires_at is NotFound"
    );

    let newest_first: Vec<MediaId> = created.iter().rev().map(|r| r.media_id).collect();
    for limit in [1, 3, 100] {
        let listed = list_all(store, &model, None, limit).await;
        assert_eq!(
            ids(&listed),
            newest_first,
            "list_media (limit {limit}) returns every live record once, newest first"
        );
        let distinct: HashSet<MediaId> = listed.iter().map(|r| r.media_id).collect();
        assert_eq!(distinct.len(), listed.len(), "no record is listed twice");
    }
    assert_eq!(
        list_all(store, &model, None, 100).await,
        created.iter().rev().cloned().collect::<Vec<_>>(),
        "listed records are the records created"
    );

    let approved: Vec<MediaId> =
        created.iter().rev().filter(|r| r.status == MediaStatus::Approved).map(|r| r.media_id).collect();
    for limit in [1, 2, 100] {
        let listed = list_all(store, &model, Some(MediaStatus::Approved), limit).await;
        assert_eq!(
            ids(&listed),
            approved,
            "list_media of approved (limit {limit}) returns exactly those, newest first"
        );
    }
    let uploading = list_all(store, &model, Some(MediaStatus::Uploading), 10).await;
    assert!(uploading.is_empty(), "an expired record is not listed, got {:?}", ids(&uploading));
    let rejected = list_all(store, &model, Some(MediaStatus::Rejected), 10).await;
    assert!(rejected.is_empty(), "a status nobody has lists nothing");

    // A status change moves the record between the status listings.
    let mut moved = created[6].clone();
    moved.version += 1;
    moved.status = MediaStatus::Rejected;
    store.update_media(&moved).await.expect("update status");
    let approved_now = ids(&list_all(store, &model, Some(MediaStatus::Approved), 10).await);
    assert_eq!(approved_now, approved[1..].to_vec(), "an updated record leaves its old status listing");
    let rejected_now = ids(&list_all(store, &model, Some(MediaStatus::Rejected), 10).await);
    assert_eq!(rejected_now, vec![moved.media_id], "an updated record joins its new status listing");

    // A cursor that no listing returned.
    for bad in ["not a cursor", "!!!", "eyJmb28iOiJiYXIifQ"] {
        let query = MediaQuery { cursor: Some(bad.to_owned()), ..MediaQuery::new(2) };
        match store.list_media(&model, &query).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a bad cursor {bad:?} must be Invalid, got {other:?}"),
        }
    }

    library_queries(store).await;
    batch_gets(store).await;
    shared_bounds(store).await;
}

fn tag(raw: &str) -> Tag {
    Tag::parse(raw).expect("valid tag")
}

fn gallery(raw: &str) -> GalleryId {
    GalleryId::parse(raw).expect("valid gallery id")
}

/// Every filter, alone and combined, against [`MediaQuery::matches`] as the definition; and
/// index entries that follow the record through updates.
async fn library_queries(store: &dyn MediaStore) {
    let model = ModelId::parse(&format!("conf-lib-{}", run_id())).expect("valid model id");
    let base = OffsetDateTime::now_utc() - Duration::from_secs(7200);
    let categories = ["headshot", "runway", "editorial"];
    let mut created = Vec::new();
    for i in 0..9u64 {
        // Millisecond instants, as the upload use case makes them.
        let at = base + Duration::from_millis(i * 60_000 + 7);
        let media = media_id_at(at);
        let status = [MediaStatus::Approved, MediaStatus::PendingReview, MediaStatus::Rejected][i as usize % 3];
        let mut record = sample_record(&model, &media, status);
        record.created_at = at;
        record.updated_at = at;
        record.metadata.category = (i % 4 != 3).then(|| Category::parse(categories[i as usize % 3]).unwrap());
        record.metadata.tags = match i % 3 {
            0 => vec![tag("beach"), tag("summer")],
            1 => vec![tag("beach")],
            _ => Vec::new(),
        };
        record.galleries = match i % 2 {
            0 => vec![GalleryLink { gallery_id: gallery("g-main"), published: true }],
            _ => Vec::new(),
        };
        if i == 4 {
            record.galleries.push(GalleryLink { gallery_id: gallery("g-extra"), published: false });
        }
        store.create_media(&record).await.expect("create_media with tags and galleries");
        created.push(record);
    }

    let expect = |query: &MediaQuery, created: &[MediaRecord]| -> Vec<MediaId> {
        created.iter().rev().filter(|r| query.matches(r)).map(|r| r.media_id).collect()
    };
    let from = created[2].created_at;
    let before = created[7].created_at;
    let queries = [
        MediaQuery { tag: Some(tag("beach")), ..MediaQuery::new(2) },
        MediaQuery { tag: Some(tag("summer")), ..MediaQuery::new(1) },
        MediaQuery { tag: Some(tag("nobody")), ..MediaQuery::new(5) },
        MediaQuery { category: Some(Category::parse("runway").unwrap()), ..MediaQuery::new(1) },
        MediaQuery { gallery: Some(gallery("g-main")), ..MediaQuery::new(2) },
        MediaQuery { gallery: Some(gallery("g-extra")), ..MediaQuery::new(100) },
        MediaQuery { created_from: Some(from), ..MediaQuery::new(2) },
        MediaQuery { created_before: Some(before), ..MediaQuery::new(3) },
        MediaQuery { created_from: Some(from), created_before: Some(before), ..MediaQuery::new(100) },
        // An instant between two milliseconds: `from` rounds up, `before` stays exclusive.
        MediaQuery {
            created_from: Some(from - Duration::from_nanos(1)),
            created_before: Some(before + Duration::from_nanos(1)),
            ..MediaQuery::new(4)
        },
        MediaQuery { created_from: Some(before), created_before: Some(from), ..MediaQuery::new(4) },
        MediaQuery { status: Some(MediaStatus::Approved), created_from: Some(from), ..MediaQuery::new(1) },
        MediaQuery { status: Some(MediaStatus::Approved), tag: Some(tag("beach")), ..MediaQuery::new(1) },
        MediaQuery {
            category: Some(Category::parse("headshot").unwrap()),
            gallery: Some(gallery("g-main")),
            created_before: Some(before),
            ..MediaQuery::new(2)
        },
        MediaQuery {
            status: Some(MediaStatus::PendingReview),
            category: Some(Category::parse("runway").unwrap()),
            tag: Some(tag("beach")),
            ..MediaQuery::new(3)
        },
    ];
    for query in &queries {
        let listed = list_query(store, &model, query).await;
        assert_eq!(ids(&listed), expect(query, &created), "list_media of {query:?}: every match once, newest first");
        for record in &listed {
            let original = created.iter().find(|r| r.media_id == record.media_id).expect("a created record");
            assert_eq!(record, original, "a record listed through an index is the stored record");
        }
    }

    // A cursor belongs to its listing.
    let first = store
        .list_media(&model, &MediaQuery { tag: Some(tag("beach")), ..MediaQuery::new(1) })
        .await
        .expect("first page by tag");
    let cursor = first.next_cursor.expect("more than one beach photo");
    for other in [
        MediaQuery { tag: Some(tag("summer")), ..MediaQuery::new(1) },
        MediaQuery::new(1),
        MediaQuery { status: Some(MediaStatus::Approved), ..MediaQuery::new(1) },
        MediaQuery { tag: Some(tag("beach")), created_from: Some(from), ..MediaQuery::new(1) },
    ] {
        match store.list_media(&model, &MediaQuery { cursor: Some(cursor.clone()), ..other.clone() }).await {
            Err(StoreError::Invalid(_)) => {}
            got => panic!("a tag=beach cursor used for {other:?} must be Invalid, got {got:?}"),
        }
    }

    // Index entries follow the record: retag, recategorise, leave a gallery.
    let mut moved = created[0].clone();
    moved.version += 1;
    moved.metadata.tags = vec![tag("studio")];
    moved.metadata.category = Some(Category::parse("runway").unwrap());
    moved.galleries.clear();
    moved.status = MediaStatus::PendingReview;
    store.update_media(&moved).await.expect("update tags, category, galleries and status");
    created[0] = moved.clone();
    let beach = list_query(store, &model, &MediaQuery { tag: Some(tag("beach")), ..MediaQuery::new(100) }).await;
    assert!(!ids(&beach).contains(&moved.media_id), "a removed tag no longer lists the record");
    let studio = list_query(store, &model, &MediaQuery { tag: Some(tag("studio")), ..MediaQuery::new(100) }).await;
    assert_eq!(studio, vec![moved.clone()], "an added tag lists the record as it is now");
    for query in &queries {
        let listed = list_query(store, &model, query).await;
        assert_eq!(ids(&listed), expect(query, &created), "after the update, list_media of {query:?}");
    }
    // A conflicting update leaves the index entries alone.
    let mut stale = moved.clone();
    stale.metadata.tags = vec![tag("stale")];
    match store.update_media(&stale).await {
        Err(StoreError::VersionConflict { current: Some(v) }) if v == moved.version => {}
        other => panic!("a stale update must be VersionConflict, got {other:?}"),
    }
    let none = list_query(store, &model, &MediaQuery { tag: Some(tag("stale")), ..MediaQuery::new(10) }).await;
    assert!(none.is_empty(), "a failed update writes no index entry");
    // Later updates keep the copies in step.
    let mut again = moved.clone();
    again.version += 1;
    again.metadata.caption = Some("new caption".into());
    store.update_media(&again).await.expect("update the caption");
    let studio = list_query(store, &model, &MediaQuery { tag: Some(tag("studio")), ..MediaQuery::new(100) }).await;
    assert_eq!(studio, vec![again.clone()], "an index entry shows the latest version");
}

/// Batch gets: what exists and is live, whatever the model, in one call.
async fn batch_gets(store: &dyn MediaStore) {
    let model = ModelId::parse(&format!("conf-batch-{}", run_id())).expect("valid model id");
    let other_model = ModelId::parse(&format!("conf-batch-other-{}", run_id())).expect("valid model id");
    let mut records = Vec::new();
    for i in 0..3 {
        let media = MediaId::new();
        let mut record = sample_record(&model, &media, MediaStatus::Approved);
        record.metadata.tags = vec![tag("keep"), tag(&format!("t{i}"))];
        record.galleries = vec![GalleryLink { gallery_id: gallery("g1"), published: false }];
        store.create_media(&record).await.expect("create");
        records.push(record);
    }
    let elsewhere = sample_record(&other_model, &MediaId::new(), MediaStatus::Approved);
    store.create_media(&elsewhere).await.expect("create in another model");
    let mut expired = sample_record(&model, &MediaId::new(), MediaStatus::Uploading);
    expired.expires_at = Some(OffsetDateTime::now_utc() - Duration::from_secs(5));
    store.create_media(&expired).await.expect("create an expired record");

    // Batch get: what exists, whatever the model; nothing else.
    let missing = MediaId::new();
    let keys = vec![
        (model.clone(), records[0].media_id),
        (model.clone(), missing),
        (other_model.clone(), elsewhere.media_id),
        (model.clone(), records[2].media_id),
        (model.clone(), expired.media_id),
        (other_model.clone(), records[1].media_id),
    ];
    let mut found = store.batch_get_media(&keys).await.expect("batch_get_media");
    found.sort_by_key(|r| r.media_id);
    let mut wanted = vec![records[0].clone(), elsewhere.clone(), records[2].clone()];
    wanted.sort_by_key(|r| r.media_id);
    assert_eq!(found, wanted, "batch_get_media returns exactly the live records asked for");
    let many: Vec<(ModelId, MediaId)> = (0..MAX_BATCH_GET).map(|_| (model.clone(), MediaId::new())).collect();
    assert!(store.batch_get_media(&many).await.expect("a batch of 100").is_empty());
}

/// The trash: a trashed record (status `deleted`) is read as it is, listed by the trash's
/// listing only (not by the model's, nor by tag, gallery or category, which it leaves), found by
/// [`MediaStore::list_trash_due`] across models once its `purge_after` has passed (earliest
/// first), and back everywhere when restored. `tombstones` cleans up (a swept record leaves the
/// trash).
pub async fn trash_suite(store: &dyn MediaStore, tombstones: &dyn TombstoneStore) {
    let model = ModelId::parse(&format!("conf-trash-{}", run_id())).expect("valid model id");
    let other = ModelId::parse(&format!("conf-trash-other-{}", run_id())).expect("valid model id");
    let now = OffsetDateTime::now_utc();
    let base = now - Duration::from_secs(600);
    let mut records = Vec::new();
    for i in 0..4u64 {
        let at = base + Duration::from_secs(i * 10);
        let owner = if i == 3 { &other } else { &model };
        let mut record = sample_record(owner, &media_id_at(at), MediaStatus::Approved);
        record.created_at = at;
        record.metadata.tags = vec![tag("beach")];
        record.galleries = vec![GalleryLink { gallery_id: gallery("g1"), published: true }];
        store.create_media(&record).await.expect("create");
        records.push(record);
    }
    // 0: due first, 1: not due (a day of grace left), 2: kept, 3 (another model): due second.
    let trash = |record: &mut MediaRecord, deleted_ago: u64, grace: u64| {
        record
            .move_to_trash("conformance", now - Duration::from_secs(deleted_ago), Duration::from_secs(grace))
            .expect("move to the trash");
    };
    trash(&mut records[0], 120, 60);
    trash(&mut records[1], 60, 86_400);
    trash(&mut records[3], 30, 10);
    for i in [0, 1, 3] {
        store.update_media(&records[i]).await.expect("update into the trash");
    }

    let got = store.get_media(&model, &records[0].media_id).await.expect("get a trashed record");
    assert_eq!(got, records[0], "a trashed record reads as stored, status deleted with its trash");
    let keys: Vec<(ModelId, MediaId)> = records.iter().map(|r| (r.model_id.clone(), r.media_id)).collect();
    assert_eq!(store.batch_get_media(&keys).await.expect("batch get").len(), 4, "batch get returns the trash too");

    let kept = vec![records[2].media_id];
    assert_eq!(ids(&list_all(store, &model, None, 1).await), kept, "the model's listing leaves out the trash");
    for query in [
        MediaQuery { tag: Some(tag("beach")), ..MediaQuery::new(10) },
        MediaQuery { gallery: Some(gallery("g1")), ..MediaQuery::new(10) },
        MediaQuery { category: Some(Category::parse("editorial").expect("category")), ..MediaQuery::new(10) },
        MediaQuery { status: Some(MediaStatus::Approved), ..MediaQuery::new(10) },
    ] {
        assert_eq!(ids(&list_query(store, &model, &query).await), kept, "{query:?} leaves out the trash");
    }
    let in_trash = ids(&list_all(store, &model, Some(MediaStatus::Deleted), 1).await);
    assert_eq!(in_trash, vec![records[1].media_id, records[0].media_id], "the trash's listing, newest first");
    for query in [
        MediaQuery { status: Some(MediaStatus::Deleted), tag: Some(tag("beach")), ..MediaQuery::new(10) },
        MediaQuery {
            status: Some(MediaStatus::Deleted),
            category: Some(Category::parse("editorial").expect("category")),
            ..MediaQuery::new(10)
        },
    ] {
        match store.list_media(&model, &query).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("the trash by tag or category must be Invalid, got {other:?}"),
        }
    }

    // Due: across models, earliest purge_after first, only those whose time has come.
    let due = |records: Vec<MediaRecord>| -> Vec<MediaId> { records.iter().map(|r| r.media_id).collect() };
    let found = store.list_trash_due(now, 100).await.expect("list_trash_due");
    assert_eq!(due(found.clone()), vec![records[0].media_id, records[3].media_id], "due, earliest first");
    assert_eq!(found[0], records[0], "list_trash_due returns whole records");
    assert_eq!(due(store.list_trash_due(now, 1).await.expect("limit 1")), vec![records[0].media_id]);
    let before_any = now - Duration::from_secs(3600);
    assert!(store.list_trash_due(before_any, 10).await.expect("nothing due yet").is_empty());
    for limit in [0, PAGE_SIZE.end() + 1] {
        match store.list_trash_due(now, limit).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("list_trash_due with limit {limit} must be Invalid, got {other:?}"),
        }
    }

    // Restored: back in every listing, out of the trash.
    let mut restored = records[1].clone();
    restored.restore_from_trash("conformance", now).expect("restore");
    store.update_media(&restored).await.expect("update out of the trash");
    let later = now + Duration::from_secs(2 * 86_400);
    let found = due(store.list_trash_due(later, 100).await.expect("list_trash_due later"));
    assert_eq!(found, vec![records[0].media_id, records[3].media_id], "a restored record leaves the trash");
    let back = vec![records[2].media_id, restored.media_id];
    for query in [
        MediaQuery::new(10),
        MediaQuery { tag: Some(tag("beach")), ..MediaQuery::new(10) },
        MediaQuery { gallery: Some(gallery("g1")), ..MediaQuery::new(10) },
        MediaQuery { category: Some(Category::parse("editorial").expect("category")), ..MediaQuery::new(10) },
    ] {
        assert_eq!(ids(&list_query(store, &model, &query).await), back, "{query:?} lists the restored record");
    }

    // Swept: deleted with a tombstone, out of the trash.
    for i in [0, 3] {
        tombstones.delete_media(&records[i]).await.expect("delete a trashed record");
    }
    assert!(store.list_trash_due(later, 100).await.expect("list_trash_due after").is_empty());
    assert!(list_all(store, &model, Some(MediaStatus::Deleted), 10).await.is_empty());
}

/// The limits of [`bounds`](phoenix_domain::ports::bounds): every adapter refuses them alike,
/// with `Invalid`, and writes nothing.
async fn shared_bounds(store: &dyn MediaStore) {
    let model = ModelId::parse(&format!("conf-bounds-{}", run_id())).expect("valid model id");
    let record = sample_record(&model, &MediaId::new(), MediaStatus::Approved);
    store.create_media(&record).await.expect("create");

    // Page sizes.
    for limit in [*PAGE_SIZE.start() - 1, *PAGE_SIZE.end() + 1] {
        match store.list_media(&model, &MediaQuery::new(limit)).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a page of {limit} items must be Invalid, got {other:?}"),
        }
        // Even when the listing has nothing to read (an empty creation range).
        let now = OffsetDateTime::now_utc();
        let empty = MediaQuery { created_from: Some(now), created_before: Some(now), ..MediaQuery::new(limit) };
        match store.list_media(&model, &empty).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a page of {limit} items of an empty range must be Invalid, got {other:?}"),
        }
    }
    let page = store.list_media(&model, &MediaQuery::new(*PAGE_SIZE.end())).await.expect("a page of 100 items");
    assert_eq!(ids(&page.items), vec![record.media_id], "a page of 100 items lists the record");

    // Batch gets.
    let over: Vec<(ModelId, MediaId)> = (0..=MAX_BATCH_GET).map(|_| (model.clone(), MediaId::new())).collect();
    let repeated = vec![(model.clone(), record.media_id), (model.clone(), record.media_id)];
    for (what, keys) in [("101 keys", over.as_slice()), ("a repeated key", &repeated), ("no key", &[])] {
        match store.batch_get_media(keys).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a batch get of {what} must be Invalid, got {other:?}"),
        }
    }

    // Foreign cursors: well-formed envelopes of another listing, of another model.
    let other_model = ModelId::parse(&format!("conf-bounds-other-{}", run_id())).expect("valid model id");
    let approved = MediaQuery { status: Some(MediaStatus::Approved), ..MediaQuery::new(1) };
    let foreign = [
        cursor::encode(&approved.listing(&model), &"01jd0000000000000000000000").expect("a cursor"),
        cursor::encode(&MediaQuery::new(1).listing(&other_model), &"01jd0000000000000000000000").expect("a cursor"),
    ];
    for raw in &foreign {
        let now = OffsetDateTime::now_utc();
        let nothing = MediaQuery { created_from: Some(now), created_before: Some(now), ..MediaQuery::new(1) };
        for query in [MediaQuery::new(1), nothing] {
            let query = MediaQuery { cursor: Some(raw.clone()), ..query };
            match store.list_media(&model, &query).await {
                Err(StoreError::Invalid(_)) => {}
                other => panic!("a cursor of another listing must be Invalid for {query:?}, got {other:?}"),
            }
        }
    }
    store.create_media(&sample_record(&other_model, &MediaId::new(), MediaStatus::Approved)).await.expect("create");
    store.create_media(&sample_record(&other_model, &MediaId::new(), MediaStatus::Approved)).await.expect("create");
    let theirs = store.list_media(&other_model, &MediaQuery::new(1)).await.expect("list another model");
    let their_cursor = theirs.next_cursor.expect("two records, one a page");
    match store.list_media(&model, &MediaQuery { cursor: Some(their_cursor), ..MediaQuery::new(1) }).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("another model's cursor must be Invalid, got {other:?}"),
    }

    // Records too large for their index entries.
    let galleries: Vec<GalleryLink> =
        (0..=MAX_GALLERIES).map(|i| GalleryLink { gallery_id: gallery(&format!("g{i}")), published: false }).collect();
    let tags: Vec<Tag> = (0..=MAX_TAGS).map(|i| tag(&format!("t{i}"))).collect();
    let mut crowded = sample_record(&model, &MediaId::new(), MediaStatus::Approved);
    crowded.galleries = galleries.clone();
    match store.create_media(&crowded).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("creating a record in {} galleries must be Invalid, got {other:?}", galleries.len()),
    }
    assert!(
        matches!(store.get_media(&model, &crowded.media_id).await, Err(StoreError::NotFound)),
        "a refused create writes nothing"
    );
    let mut update = record.clone();
    update.version += 1;
    update.galleries = galleries;
    match store.update_media(&update).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("an update into too many galleries must be Invalid, got {other:?}"),
    }
    update.galleries.clear();
    update.metadata.tags = tags;
    match store.update_media(&update).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("an update to too many tags must be Invalid, got {other:?}"),
    }

    // Versions start at 1: an update of version 0 has no previous version.
    let mut zero = record.clone();
    zero.version = 0;
    match store.update_media(&zero).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("an update of version 0 must be Invalid, got {other:?}"),
    }
    assert_eq!(store.get_media(&model, &record.media_id).await.expect("get"), record, "refused updates change nothing");
}

/// Fingerprints: one per media and model, read with the record in one call. `media` only makes
/// the records they belong to.
pub async fn fingerprint_store_suite(store: &dyn FingerprintStore, media: &dyn MediaStore) {
    let model = ModelId::parse(&format!("conf-fp-{}", run_id())).expect("valid model id");
    let other_model = ModelId::parse(&format!("conf-fp-other-{}", run_id())).expect("valid model id");
    let mut records = Vec::new();
    for _ in 0..3 {
        let record = sample_record(&model, &MediaId::new(), MediaStatus::Approved);
        media.create_media(&record).await.expect("create");
        records.push(record);
    }
    let elsewhere = sample_record(&other_model, &MediaId::new(), MediaStatus::Approved);
    media.create_media(&elsewhere).await.expect("create in another model");

    for (record, phash) in records.iter().zip(["00000000000000ff", "00000000000000fe", "ffffffffffffffff"]) {
        let fingerprint = Fingerprint { media_id: record.media_id, phash: phash.to_owned() };
        store.put_fingerprint(&model, &fingerprint).await.expect("put_fingerprint");
        store.put_fingerprint(&model, &fingerprint).await.expect("put_fingerprint is idempotent");
    }
    let replaced = Fingerprint { media_id: records[2].media_id, phash: "0f0f0f0f0f0f0f0f".to_owned() };
    store.put_fingerprint(&model, &replaced).await.expect("replace a fingerprint");
    let (record, mut prints) =
        store.get_media_with_fingerprints(&model, &records[0].media_id).await.expect("get with fingerprints");
    assert_eq!(record, records[0]);
    prints.sort_by_key(|f| f.media_id);
    let mut expected_prints = vec![
        Fingerprint { media_id: records[0].media_id, phash: "00000000000000ff".into() },
        Fingerprint { media_id: records[1].media_id, phash: "00000000000000fe".into() },
        replaced.clone(),
    ];
    expected_prints.sort_by_key(|f| f.media_id);
    assert_eq!(prints, expected_prints, "every fingerprint of the model, the latest of each");
    let (_, other_prints) =
        store.get_media_with_fingerprints(&other_model, &elsewhere.media_id).await.expect("another model");
    assert!(other_prints.is_empty(), "fingerprints are per model");
    store.remove_fingerprint(&other_model, &elsewhere.media_id).await.expect("removing an absent fingerprint");
    let (_, still_none) =
        store.get_media_with_fingerprints(&other_model, &elsewhere.media_id).await.expect("another model");
    assert!(still_none.is_empty(), "removing an absent fingerprint creates nothing");
    let gone = Fingerprint { media_id: MediaId::new(), phash: "1234567890abcdef".to_owned() };
    store.put_fingerprint(&model, &gone).await.expect("put_fingerprint");
    store.remove_fingerprint(&model, &gone.media_id).await.expect("remove_fingerprint");
    store.remove_fingerprint(&model, &gone.media_id).await.expect("remove_fingerprint again");
    let (_, prints) = store.get_media_with_fingerprints(&model, &records[0].media_id).await.expect("get");
    assert_eq!(prints.len(), 3, "a removed fingerprint is gone, the others stay");
    assert!(matches!(store.get_media_with_fingerprints(&model, &MediaId::new()).await, Err(StoreError::NotFound)));
}

/// Deletes: conditional on the version, atomic with the index entries and the fingerprint,
/// leaving a tombstone. `media` and `fingerprints` make the fixtures and observe the effects.
pub async fn tombstone_store_suite(
    store: &dyn TombstoneStore,
    media: &dyn MediaStore,
    fingerprints: &dyn FingerprintStore,
) {
    let model = ModelId::parse(&format!("conf-del-{}", run_id())).expect("valid model id");
    let mut records = Vec::new();
    for (i, phash) in ["00000000000000ff", "00000000000000fe", "ffffffffffffffff"].into_iter().enumerate() {
        let mut record = sample_record(&model, &MediaId::new(), MediaStatus::Approved);
        record.metadata.tags = vec![tag("keep"), tag(&format!("t{i}"))];
        record.galleries = vec![GalleryLink { gallery_id: gallery("g1"), published: false }];
        media.create_media(&record).await.expect("create");
        let fingerprint = Fingerprint { media_id: record.media_id, phash: phash.to_owned() };
        fingerprints.put_fingerprint(&model, &fingerprint).await.expect("put_fingerprint");
        records.push(record);
    }

    let victim = records[1].clone();
    let mut stale = victim.clone();
    stale.version += 3;
    match store.delete_media(&stale).await {
        Err(StoreError::VersionConflict { current: Some(v) }) if v == victim.version => {}
        other => panic!("deleting a version that is not stored must be VersionConflict, got {other:?}"),
    }
    assert_eq!(media.get_media(&model, &victim.media_id).await.expect("still there"), victim);
    assert_eq!(store.get_tombstone(&model, &victim.media_id).await.expect("get_tombstone"), None);

    store.delete_media(&victim).await.expect("delete_media");
    assert!(matches!(media.get_media(&model, &victim.media_id).await, Err(StoreError::NotFound)));
    assert!(media.batch_get_media(&[(model.clone(), victim.media_id)]).await.expect("batch get").is_empty());
    for query in [
        MediaQuery::new(100),
        MediaQuery { tag: Some(tag("keep")), ..MediaQuery::new(100) },
        MediaQuery { tag: Some(tag("t1")), ..MediaQuery::new(100) },
        MediaQuery { gallery: Some(gallery("g1")), ..MediaQuery::new(100) },
        MediaQuery { status: Some(MediaStatus::Approved), ..MediaQuery::new(100) },
        MediaQuery { category: Some(Category::parse("editorial").unwrap()), ..MediaQuery::new(100) },
    ] {
        let listed = ids(&list_query(media, &model, &query).await);
        let survivors: Vec<MediaId> = records
            .iter()
            .rev()
            .filter(|r| r.media_id != victim.media_id && query.matches(r))
            .map(|r| r.media_id)
            .collect();
        assert_eq!(listed, survivors, "a deleted media is not listed by {query:?}; the others still are");
    }
    let (_, prints) = fingerprints.get_media_with_fingerprints(&model, &records[0].media_id).await.expect("get");
    assert!(!prints.iter().any(|f| f.media_id == victim.media_id), "the fingerprint goes with the media");
    assert_eq!(prints.len(), 2);
    assert_eq!(
        store.get_tombstone(&model, &victim.media_id).await.expect("get_tombstone"),
        Some(victim.clone()),
        "the tombstone holds the deleted record"
    );
    match store.delete_media(&victim).await {
        Err(StoreError::NotFound) => {}
        other => panic!("deleting twice must be NotFound, got {other:?}"),
    }
    let mut revived = victim.clone();
    revived.version += 1;
    assert!(matches!(media.update_media(&revived).await, Err(StoreError::NotFound)), "a deleted media stays deleted");
    store.remove_tombstone(&model, &victim.media_id).await.expect("remove_tombstone");
    store.remove_tombstone(&model, &victim.media_id).await.expect("remove_tombstone again");
    assert_eq!(store.get_tombstone(&model, &victim.media_id).await.expect("get_tombstone"), None);

    // A model without fingerprints: deleting leaves none behind.
    let bare_model = ModelId::parse(&format!("conf-del-bare-{}", run_id())).expect("valid model id");
    let bare = sample_record(&bare_model, &MediaId::new(), MediaStatus::Approved);
    let kept = sample_record(&bare_model, &MediaId::new(), MediaStatus::Approved);
    media.create_media(&bare).await.expect("create");
    media.create_media(&kept).await.expect("create");
    store.delete_media(&bare).await.expect("delete in a model without fingerprints");
    let (_, none) = fingerprints.get_media_with_fingerprints(&bare_model, &kept.media_id).await.expect("get");
    assert!(none.is_empty(), "a delete creates no fingerprint");
    assert_eq!(store.get_tombstone(&bare_model, &bare.media_id).await.expect("get_tombstone"), Some(bare));
}

// ---------------------------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------------------------

const LONG: Duration = Duration::from_secs(30);
const NO_WAIT: Duration = Duration::ZERO;

/// `main` must redrive to `dlq` after 2 receives; both must start empty.
pub async fn queue_suite(q: &dyn Queue, main: &QueueName, dlq: &QueueName) {
    let run = run_id();
    assert_eq!(q.depth(main).await.expect("depth"), 0, "queue_suite needs an empty main queue");
    assert_eq!(q.depth(dlq).await.expect("depth"), 0, "queue_suite needs an empty dead-letter queue");
    let stats = |visible, in_flight, delayed| QueueStats { visible, in_flight, delayed };
    assert_eq!(q.stats(main).await.expect("stats"), stats(0, 0, 0), "an empty queue counts nothing");

    // Send, receive, delete.
    let before = OffsetDateTime::now_utc() - Duration::from_secs(5);
    let body = format!("{{\"run\":\"{run}\",\"n\":1}}");
    let id = q.send(main, &body, Duration::ZERO).await.expect("send");
    assert!(!id.is_empty(), "send returns a message id");
    assert_eq!(q.stats(main).await.expect("stats"), stats(1, 0, 0), "a sent message is visible");
    let got = q.receive(main, 10, LONG, Duration::from_secs(2)).await.expect("receive");
    assert_eq!(got.len(), 1, "one message sent, one received: {got:?}");
    let m = &got[0];
    assert_eq!(m.message_id, id, "the message id is the one send returned");
    assert_eq!(m.body, body, "the body arrives unchanged");
    assert_eq!(m.receive_count, 1, "a first delivery has receive_count 1");
    let after = OffsetDateTime::now_utc() + Duration::from_secs(5);
    assert!(m.sent_at >= before && m.sent_at <= after, "sent_at {} is when the message was sent", m.sent_at);
    assert_eq!(q.depth(main).await.expect("depth"), 1, "depth counts a message in flight");
    assert_eq!(q.stats(main).await.expect("stats"), stats(0, 1, 0), "a received message is in flight");
    assert!(q.receive(main, 10, LONG, NO_WAIT).await.expect("receive").is_empty(), "a received message is hidden");
    q.delete(main, &m.receipt).await.expect("delete");
    assert_eq!(q.depth(main).await.expect("depth"), 0, "a deleted message is gone");
    assert_eq!(q.stats(main).await.expect("stats"), stats(0, 0, 0), "a deleted message is not counted");

    // A visibility timeout hides, then redelivers.
    let body = format!("visibility-{run}");
    let id = q.send(main, &body, Duration::ZERO).await.expect("send");
    let got = q.receive(main, 1, Duration::from_secs(1), Duration::from_secs(2)).await.expect("receive");
    assert_eq!(got.len(), 1, "the message is received");
    assert!(
        q.receive(main, 10, LONG, NO_WAIT).await.expect("receive").is_empty(),
        "the message is hidden for its visibility timeout"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = q.receive(main, 10, LONG, Duration::from_secs(2)).await.expect("receive");
    assert_eq!(again.len(), 1, "the message comes back after its visibility timeout");
    assert_eq!(again[0].message_id, id, "the same message comes back");
    assert_eq!(again[0].body, body, "with the same body");
    assert_eq!(again[0].receive_count, 2, "receive_count counts deliveries");
    q.delete(main, &again[0].receipt).await.expect("delete the redelivered message");
    assert!(
        q.receive(main, 10, LONG, NO_WAIT).await.expect("receive").is_empty(),
        "a deleted message is never delivered again"
    );

    // change_visibility, and dead-lettering after 2 receives.
    let body = format!("poison-{run}");
    let id = q.send(main, &body, Duration::ZERO).await.expect("send");
    for n in 1..=2u32 {
        let got = q.receive(main, 10, LONG, Duration::from_secs(2)).await.expect("receive");
        assert_eq!(got.len(), 1, "receive {n} of the poison message delivers it");
        assert_eq!(got[0].receive_count, n, "receive {n} has receive_count {n}");
        q.change_visibility(main, &got[0].receipt, Duration::ZERO).await.expect("change_visibility to zero");
        // Visible again at once (a received message made visible is not delayed).
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(q.stats(main).await.expect("stats"), stats(1, 0, 0), "a message made visible again is visible");
    }
    let third = q.receive(main, 10, LONG, Duration::from_secs(1)).await.expect("receive");
    assert!(third.is_empty(), "a message received max-receive (2) times is not delivered a third time: {third:?}");
    let dead = q.receive(dlq, 10, LONG, Duration::from_secs(2)).await.expect("receive from dlq");
    assert_eq!(dead.len(), 1, "the message moved to the dead-letter queue");
    assert_eq!(dead[0].message_id, id, "the dead letter keeps its id");
    assert_eq!(dead[0].body, body, "the dead letter keeps its body");
    q.delete(dlq, &dead[0].receipt).await.expect("delete from dlq");
    assert_eq!(q.depth(main).await.expect("depth"), 0, "the dead letter left the main queue");
    assert_eq!(q.depth(dlq).await.expect("depth"), 0, "the dead letter was deleted");

    // A delay hides the message until it is over.
    let body = format!("delayed-{run}");
    q.send(main, &body, Duration::from_secs(2)).await.expect("send with delay");
    assert_eq!(q.stats(main).await.expect("stats"), stats(0, 0, 1), "a message sent with a delay is delayed");
    assert!(
        q.receive(main, 10, LONG, NO_WAIT).await.expect("receive").is_empty(),
        "a delayed message is hidden for its delay"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let got = q.receive(main, 10, LONG, Duration::from_secs(2)).await.expect("receive");
    assert_eq!(got.len(), 1, "a delayed message arrives after its delay");
    assert_eq!(got[0].body, body, "the delayed message arrives unchanged");
    q.delete(main, &got[0].receipt).await.expect("delete");

    // Depth counts visible and in-flight messages; `max` bounds a receive.
    for n in 0..3 {
        q.send(main, &format!("depth-{run}-{n}"), Duration::ZERO).await.expect("send");
    }
    assert_eq!(q.depth(main).await.expect("depth"), 3, "depth counts waiting messages");
    let one = q.receive(main, 1, LONG, Duration::from_secs(2)).await.expect("receive");
    assert_eq!(one.len(), 1, "receive returns at most `max` messages");
    assert_eq!(q.depth(main).await.expect("depth"), 3, "depth counts in-flight messages too");
    q.delete(main, &one[0].receipt).await.expect("delete");
    assert_eq!(q.depth(main).await.expect("depth"), 2, "depth drops on delete");
    let mut rest = Vec::new();
    for _ in 0..5 {
        rest.extend(q.receive(main, 10, LONG, Duration::from_secs(1)).await.expect("receive"));
        if rest.len() >= 2 {
            break;
        }
    }
    assert_eq!(rest.len(), 2, "the two remaining messages are delivered");
    let mut bodies: Vec<&str> = rest.iter().map(|m| m.body.as_str()).collect();
    bodies.push(&one[0].body);
    bodies.sort_unstable();
    let expected: Vec<String> = (0..3).map(|n| format!("depth-{run}-{n}")).collect();
    assert_eq!(bodies, expected, "every message is delivered exactly once");
    for m in &rest {
        q.delete(main, &m.receipt).await.expect("delete");
    }
    assert_eq!(q.depth(main).await.expect("depth"), 0, "all messages deleted");

    // A delay over SQS's maximum (15 minutes) is the caller's mistake; a queue the adapter was
    // not given is a wiring bug.
    match q.send(main, "too late", Duration::from_secs(15 * 60 + 1)).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("a delay over 15 minutes must be Invalid, got {other:?}"),
    }
    match q.send(&QueueName("conformance-unknown"), "lost", Duration::ZERO).await {
        Err(StoreError::Internal(_)) => {}
        other => panic!("sending to an unknown queue must be Internal, got {other:?}"),
    }
    assert_eq!(q.depth(main).await.expect("depth"), 0, "refused sends send nothing");
}

// ---------------------------------------------------------------------------------------------
// Jobs and idempotency records
// ---------------------------------------------------------------------------------------------

/// One of each operation (both kinds of crop, regenerate with and without presets), for round
/// trips: `Operation` is internally tagged by `op`, which every store must keep.
pub fn sample_operations() -> Vec<Operation> {
    vec![
        Operation::Crop { rect: Some(CropRect { x: 10, y: 20, width: 300, height: 400 }), aspect: None },
        Operation::Crop { rect: None, aspect: Some(AspectRatio { width: 4, height: 5 }) },
        Operation::Rotate { degrees: 270 },
        Operation::Flip { axis: FlipAxis::Vertical },
        Operation::Watermark { profile: WatermarkName::parse("agency-logo").expect("valid watermark name") },
        Operation::Regenerate { presets: vec!["thumb".to_owned(), "large".to_owned()] },
        Operation::Regenerate { presets: Vec::new() },
    ]
}

/// A plausible job with every optional part filled in: a parent (fanning out, with progress)
/// when `parent` is `None`, else that parent's child for one media (without progress).
pub fn sample_job(model: &ModelId, parent: Option<JobId>, status: JobStatus) -> Job {
    let now = OffsetDateTime::now_utc();
    let media = MediaId::new();
    let derivative = Derivative {
        preset: "thumb".to_owned(),
        format: "webp".to_owned(),
        width: 400,
        height: 500,
        bytes: 9_876,
        key: ObjectKey::parse(&format!("derived/{model}/{media}/thumb.webp")).expect("valid key"),
        preset_version: 3,
        source_etag: "0123456789abcdef0123456789abcdef".to_owned(),
        operations: vec!["crop:aspect=4:5".to_owned()],
    };
    Job {
        job_id: JobId::new(),
        parent_id: parent,
        model_id: model.clone(),
        operation: Operation::Regenerate { presets: vec!["thumb".to_owned()] },
        target: Target { model_id: model.clone(), media_id: parent.map(|_| media), stale: parent.is_none() },
        lane: Lane::Normal,
        status,
        submitted_by: "user-é-1".to_owned(),
        attempts: vec![
            JobAttempt {
                number: 1,
                started_at: now - Duration::from_secs(30),
                finished_at: Some(now - Duration::from_secs(20)),
                error: Some("store unavailable".to_owned()),
                retry_at: Some(now - Duration::from_secs(10)),
                backoff_cap_ms: Some(2_000),
            },
            JobAttempt {
                number: 2,
                started_at: now - Duration::from_secs(5),
                finished_at: None,
                error: None,
                retry_at: None,
                backoff_cap_ms: None,
            },
        ],
        max_attempts: 5,
        run_base: 0,
        lease: Some(JobLease { until: now + Duration::from_secs(60), holder: "message-1".to_owned() }),
        progress: parent.is_none().then_some(Progress { done: 0, failed: 0, total: 3 }),
        fan_out: parent.is_none().then(|| FanOut { cursor: Some("eyJhIjoxfQ".to_owned()), complete: true }),
        result: Some(JobResult {
            media_id: Some(media),
            image_version: Some(2),
            derivatives: vec![derivative],
            summary: "rebuilt thumb".to_owned(),
        }),
        error: Some(JobFailure { code: "internal".to_owned(), message: "«boom»".to_owned() }),
        fault: Some(FaultPlan { transient_failures: u32::MAX, permanent: false, stall_ms: 250 }),
        queued_at: now - Duration::from_secs(60),
        enqueued_at: now - Duration::from_secs(59),
        started_at: Some(now - Duration::from_secs(30)),
        finished_at: None,
        updated_at: now,
        version: 1,
        expires_at: now + Duration::from_secs(30 * 24 * 3600),
    }
}

/// Every page of `query` (its `cursor` is ignored), checking each page's size.
async fn list_all_jobs(store: &dyn JobStore, query: &JobQuery) -> Vec<Job> {
    let mut all = Vec::new();
    let mut cursor = None;
    for page_number in 0..200 {
        let page = store.list_jobs(&JobQuery { cursor: cursor.take(), ..query.clone() }).await.expect("list_jobs");
        assert!(
            page.items.len() <= query.limit,
            "page {page_number} has {} jobs, over the limit {}",
            page.items.len(),
            query.limit
        );
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("list_jobs did not end after 200 pages");
}

fn job_ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.job_id).collect()
}

/// Retries a write that a concurrent writer made transient (DynamoDB cancels one of two
/// transactions on the same item).
async fn retrying<F, Fut>(mut write: F) -> StoreResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<()>>,
{
    for _ in 0..20 {
        match write().await {
            Err(StoreError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other,
        }
    }
    write().await
}

/// Jobs: create, read, versioned updates, children counted in their parent exactly once and
/// atomically, listings by model, model and status, and status across models, and counts. The
/// store must hold no jobs yet (counts and status listings span every model).
pub async fn job_store_suite(store: &dyn JobStore) {
    for status in JobStatus::ALL {
        assert_eq!(
            store.count_jobs(status).await.expect("count_jobs"),
            0,
            "job_store_suite needs a store without jobs"
        );
    }
    // What the store must hold, as the listings and counts below expect it.
    let mut live: BTreeMap<JobId, Job> = BTreeMap::new();
    let model = ModelId::parse(&format!("conf-jobs-{}", run_id())).expect("valid model id");
    let other_model = ModelId::parse(&format!("conf-jobs-other-{}", run_id())).expect("valid model id");

    // Create and read back, every operation.
    for operation in sample_operations() {
        let mut job = sample_job(&model, None, JobStatus::Queued);
        job.operation = operation;
        store.create_job(&job).await.expect("create_job");
        assert_eq!(
            store.get_job(&job.job_id).await.expect("get_job after create"),
            job,
            "get_job returns the job created, field for field"
        );
        live.insert(job.job_id, job);
    }
    let first = live.values().next().cloned().expect("a job");
    let mut again = first.clone();
    again.status = JobStatus::Running;
    match store.create_job(&again).await {
        Err(StoreError::AlreadyExists) => {}
        other => panic!("creating a job id twice must be AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get_job(&first.job_id).await.expect("get_job"), first, "a refused create changes nothing");
    assert!(
        matches!(store.get_job(&JobId::new()).await, Err(StoreError::NotFound)),
        "get of a missing job is NotFound"
    );

    // Past its expiry a job is absent (TTL deletes lazily).
    let mut expired = sample_job(&model, None, JobStatus::Queued);
    expired.expires_at = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    store.create_job(&expired).await.expect("create an expired job");
    assert!(
        matches!(store.get_job(&expired.job_id).await, Err(StoreError::NotFound)),
        "a job past expires_at is NotFound"
    );
    let mut stale_expired = expired.clone();
    stale_expired.version = 2;
    assert!(
        matches!(store.update_job(&stale_expired).await, Err(StoreError::NotFound)),
        "an expired job cannot be updated"
    );

    // Versioned updates; a status change moves the job between listings (checked at the end).
    let mut updated = first.clone();
    updated.version = 2;
    updated.status = JobStatus::Running;
    updated.updated_at = OffsetDateTime::now_utc();
    updated.attempts.truncate(1);
    updated.error = None;
    store.update_job(&updated).await.expect("update_job with the next version");
    assert_eq!(
        store.get_job(&first.job_id).await.expect("get_job after update"),
        updated,
        "get_job returns the update"
    );
    live.insert(updated.job_id, updated.clone());
    for (what, version) in [("a stale update", 2), ("an update skipping versions", 5)] {
        let mut bad = updated.clone();
        bad.version = version;
        bad.status = JobStatus::Cancelled;
        match store.update_job(&bad).await {
            Err(StoreError::VersionConflict { current: Some(2) }) => {}
            other => panic!("{what} must be VersionConflict {{ current: Some(2) }}, got {other:?}"),
        }
    }
    let mut zero = updated.clone();
    zero.version = 0;
    assert!(matches!(store.update_job(&zero).await, Err(StoreError::Invalid(_))), "a job's version starts at 1");
    let mut absent = sample_job(&model, None, JobStatus::Queued);
    absent.version = 2;
    assert!(matches!(store.update_job(&absent).await, Err(StoreError::NotFound)), "updating a missing job is NotFound");
    assert_eq!(store.get_job(&first.job_id).await.expect("get_job"), updated, "refused updates change nothing");

    finish_children(store, &model, &mut live).await;

    // Another model's jobs, in several statuses, for the listings.
    for status in [JobStatus::Queued, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Queued] {
        let job = sample_job(&other_model, None, status);
        store.create_job(&job).await.expect("create_job in another model");
        live.insert(job.job_id, job);
    }
    job_listings(store, &[model, other_model], &live).await;
}

/// `finish_child`: the child's conditional write and its parent's count commit together or not
/// at all; a child is counted once, however often it is finished.
async fn finish_children(store: &dyn JobStore, model: &ModelId, live: &mut BTreeMap<JobId, Job>) {
    let parent = sample_job(model, None, JobStatus::Running);
    store.create_job(&parent).await.expect("create a parent");
    let mut children = Vec::new();
    for _ in 0..8 {
        let child = sample_job(model, Some(parent.job_id), JobStatus::Running);
        store.create_job(&child).await.expect("create a child");
        children.push(child);
    }
    let ended = |child: &Job, status: JobStatus| {
        let mut ended = child.clone();
        ended.version += 1;
        ended.status = status;
        ended.finished_at = Some(OffsetDateTime::now_utc());
        ended.updated_at = OffsetDateTime::now_utc();
        ended.lease = None;
        ended
    };
    let mut expected_parent = parent.clone();
    let count = |expected: &mut Job, child: &Job, failed: bool| {
        let progress = expected.progress.get_or_insert_default();
        progress.done += 1;
        progress.failed += u64::from(failed);
        expected.version += 1;
        expected.updated_at = child.updated_at;
    };

    // A success, then a failure.
    let done = ended(&children[0], JobStatus::Succeeded);
    store.finish_child(&done, false).await.expect("finish_child");
    count(&mut expected_parent, &done, false);
    assert_eq!(store.get_job(&done.job_id).await.expect("get the child"), done, "the child is written");
    assert_eq!(
        store.get_job(&parent.job_id).await.expect("get the parent"),
        expected_parent,
        "the parent counts the child in progress.done, with a new version and updated_at, nothing else"
    );
    let failed = ended(&children[1], JobStatus::Failed);
    store.finish_child(&failed, true).await.expect("finish_child of a failed child");
    count(&mut expected_parent, &failed, true);
    let stored = store.get_job(&parent.job_id).await.expect("get the parent");
    assert_eq!(stored, expected_parent, "a failed child counts in done and failed");
    assert_eq!(stored.progress, Some(Progress { done: 2, failed: 1, total: 3 }));

    // The same child again (a redelivered message): refused, and counted once.
    match store.finish_child(&done, false).await {
        Err(StoreError::VersionConflict { current: Some(v) }) if v == done.version => {}
        other => panic!("finishing a child twice must be VersionConflict, got {other:?}"),
    }
    let mut skipping = ended(&children[2], JobStatus::Succeeded);
    skipping.version += 3;
    match store.finish_child(&skipping, false).await {
        Err(StoreError::VersionConflict { current: Some(1) }) => {}
        other => panic!("a child written against another version must be VersionConflict, got {other:?}"),
    }
    assert_eq!(store.get_job(&children[2].job_id).await.expect("get"), children[2], "a refused child is not written");
    let mut ghost = sample_job(model, Some(parent.job_id), JobStatus::Succeeded);
    ghost.version = 2;
    assert!(
        matches!(store.finish_child(&ghost, false).await, Err(StoreError::NotFound)),
        "a missing child is NotFound"
    );
    assert_eq!(store.get_job(&parent.job_id).await.expect("get the parent"), expected_parent, "refusals count nothing");

    // A child of a parent that is gone: NotFound, and the child is not written either.
    let orphan = sample_job(model, Some(JobId::new()), JobStatus::Running);
    store.create_job(&orphan).await.expect("create an orphan");
    let orphan_done = ended(&orphan, JobStatus::Succeeded);
    assert!(
        matches!(store.finish_child(&orphan_done, false).await, Err(StoreError::NotFound)),
        "a missing parent is NotFound"
    );
    assert_eq!(store.get_job(&orphan.job_id).await.expect("get"), orphan, "nothing is written without the parent");
    live.insert(orphan.job_id, orphan.clone());
    // A job without a parent is not a child.
    let mut not_a_child = ended(&orphan, JobStatus::Succeeded);
    not_a_child.parent_id = None;
    assert!(
        matches!(store.finish_child(&not_a_child, false).await, Err(StoreError::Invalid(_))),
        "a job without parent_id is Invalid"
    );

    // A parent whose progress was never initialised gets one.
    let mut bare = sample_job(model, None, JobStatus::Running);
    bare.progress = None;
    store.create_job(&bare).await.expect("create a parent without progress");
    let bare_child = sample_job(model, Some(bare.job_id), JobStatus::Running);
    store.create_job(&bare_child).await.expect("create its child");
    let bare_done = ended(&bare_child, JobStatus::Succeeded);
    store.finish_child(&bare_done, true).await.expect("finish_child into a parent without progress");
    let bare_now = store.get_job(&bare.job_id).await.expect("get the parent");
    assert_eq!(bare_now.progress, Some(Progress { done: 1, failed: 1, total: 0 }), "progress starts at zero");
    assert!(bare_now.version > bare.version, "the parent's version moves");
    assert_eq!(bare_now.updated_at, bare_done.updated_at, "the parent's updated_at is the child's");
    live.insert(bare_now.job_id, bare_now);
    live.insert(bare_done.job_id, bare_done);

    // The other siblings, one after the other.
    let rest: Vec<Job> = children[2..6].iter().map(|c| ended(c, JobStatus::Succeeded)).collect();
    for (n, child) in rest.iter().enumerate() {
        store.finish_child(child, n == 2).await.expect("finish_child");
    }
    let stored = store.get_job(&parent.job_id).await.expect("get the parent");
    assert_eq!(stored.progress, Some(Progress { done: 6, failed: 2, total: 3 }), "every sibling counted once");
    assert_eq!(stored.version, expected_parent.version + 4, "each count bumps the version");
    live.insert(stored.job_id, stored);
    for child in [done, failed].into_iter().chain(rest).chain(children[6..].iter().cloned()) {
        live.insert(child.job_id, child);
    }
}

/// Siblings finishing at the same moment are each counted once (a transient refusal is retried,
/// as their messages would be). Not for moto: it applies concurrent updates of one item without
/// isolation, so it loses increments that DynamoDB's transactions serialize.
pub async fn concurrent_children_suite(store: &dyn JobStore) {
    let model = ModelId::parse(&format!("conf-jobs-race-{}", run_id())).expect("valid model id");
    let mut parent = sample_job(&model, None, JobStatus::Running);
    parent.progress = Some(Progress { done: 0, failed: 0, total: 6 });
    store.create_job(&parent).await.expect("create a parent");
    let mut ended = Vec::new();
    for _ in 0..6 {
        let child = sample_job(&model, Some(parent.job_id), JobStatus::Running);
        store.create_job(&child).await.expect("create a child");
        let mut done = child;
        done.version += 1;
        done.status = JobStatus::Succeeded;
        ended.push(done);
    }
    let ended = &ended;
    let finish = |n: usize| retrying(move || store.finish_child(&ended[n], n.is_multiple_of(3)));
    let results = tokio::join!(finish(0), finish(1), finish(2), finish(3), finish(4), finish(5));
    for (n, result) in [results.0, results.1, results.2, results.3, results.4, results.5].into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("concurrent finish_child {n}: {e}"));
    }
    let stored = store.get_job(&parent.job_id).await.expect("get the parent");
    assert_eq!(stored.progress, Some(Progress { done: 6, failed: 2, total: 6 }), "every sibling counted once");
    assert_eq!(stored.version, parent.version + 6, "each count bumps the version once");
}

/// Listings and counts against what the store must hold (`live`), for every index and order.
async fn job_listings(store: &dyn JobStore, models: &[ModelId], live: &BTreeMap<JobId, Job>) {
    let mut queries = Vec::new();
    for oldest_first in [false, true] {
        for model in models {
            queries.push(JobQuery { model: Some(model.clone()), oldest_first, ..JobQuery::default() });
            for status in [JobStatus::Queued, JobStatus::Running, JobStatus::Cancelled] {
                queries.push(JobQuery {
                    model: Some(model.clone()),
                    status: Some(status),
                    oldest_first,
                    ..JobQuery::default()
                });
            }
        }
        for status in JobStatus::ALL {
            queries.push(JobQuery { status: Some(status), oldest_first, ..JobQuery::default() });
        }
    }
    for query in &queries {
        let mut expected: Vec<JobId> = live.values().filter(|j| query.matches(j)).map(|j| j.job_id).collect();
        if !query.oldest_first {
            expected.reverse();
        }
        for limit in [1, 2, 100] {
            let query = JobQuery { limit, ..query.clone() };
            let listed = list_all_jobs(store, &query).await;
            assert_eq!(job_ids(&listed), expected, "list_jobs of {query:?}: every live match once, in id order");
            for job in &listed {
                assert_eq!(job, &live[&job.job_id], "a listed job is the stored job");
            }
        }
    }
    for status in JobStatus::ALL {
        let expected = live.values().filter(|j| j.status == status).count() as u64;
        assert_eq!(
            store.count_jobs(status).await.expect("count_jobs"),
            expected,
            "count_jobs({status:?}) counts every model's live jobs"
        );
    }

    // Refusals: no index, page sizes, cursors of other listings.
    match store.list_jobs(&JobQuery { limit: 10, ..JobQuery::default() }).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("a job listing without model or status must be Invalid, got {other:?}"),
    }
    let by_model = JobQuery { model: Some(models[0].clone()), limit: 1, ..JobQuery::default() };
    for limit in [*PAGE_SIZE.start() - 1, *PAGE_SIZE.end() + 1] {
        match store.list_jobs(&JobQuery { limit, ..by_model.clone() }).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a page of {limit} jobs must be Invalid, got {other:?}"),
        }
    }
    let page = store.list_jobs(&by_model).await.expect("list_jobs");
    let cursor = page.next_cursor.expect("more than one job in the model");
    let others = [
        JobQuery { model: Some(models[1].clone()), ..by_model.clone() },
        JobQuery { oldest_first: true, ..by_model.clone() },
        JobQuery { status: Some(JobStatus::Queued), ..by_model.clone() },
        JobQuery { model: None, status: Some(JobStatus::Queued), ..by_model.clone() },
    ];
    for other in others {
        match store.list_jobs(&JobQuery { cursor: Some(cursor.clone()), ..other.clone() }).await {
            Err(StoreError::Invalid(_)) => {}
            got => panic!("a cursor of {by_model:?} used for {other:?} must be Invalid, got {got:?}"),
        }
    }
    let foreign =
        cursor::encode(&JobQuery { model: Some(models[1].clone()), ..by_model.clone() }.listing(), &JobId::new())
            .expect("a cursor");
    let garbage = ["not a cursor", "!!!", "eyJmb28iOiJiYXIifQ", foreign.as_str()];
    for bad in garbage {
        match store.list_jobs(&JobQuery { cursor: Some(bad.to_owned()), ..by_model.clone() }).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a cursor {bad:?} this listing did not return must be Invalid, got {other:?}"),
        }
    }
}

fn idempotency_record(scope: &str, key: &str) -> IdempotencyRecord {
    let now = OffsetDateTime::now_utc();
    IdempotencyRecord {
        scope: scope.to_owned(),
        key: key.to_owned(),
        request_hash: "ab".repeat(32),
        resource_id: JobId::new().to_string(),
        in_flight_until: Some(now + Duration::from_secs(30)),
        created_at: now,
        expires_at: now + Duration::from_secs(24 * 3600),
        version: 1,
    }
}

/// Idempotency records: one per (scope, key), whatever characters either holds; conditional
/// updates; absent once expired.
pub async fn idempotency_store_suite(store: &dyn IdempotencyStore) {
    let run = run_id();
    let scope = format!("user-{run}");
    let record = idempotency_record(&scope, "key-1");
    store.create_idempotency(&record).await.expect("create_idempotency");
    assert_eq!(store.get_idempotency(&scope, "key-1").await.expect("get_idempotency"), record, "the record as created");
    let mut other_body = idempotency_record(&scope, "key-1");
    other_body.request_hash = "cd".repeat(32);
    match store.create_idempotency(&other_body).await {
        Err(StoreError::AlreadyExists) => {}
        other => panic!("a key in use must be AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get_idempotency(&scope, "key-1").await.expect("get"), record, "a refused create changes nothing");
    assert!(
        matches!(store.get_idempotency(&scope, "key-2").await, Err(StoreError::NotFound)),
        "an unused key is NotFound"
    );
    assert!(
        matches!(store.get_idempotency(&format!("other-{run}"), "key-1").await, Err(StoreError::NotFound)),
        "keys are scoped to their caller"
    );

    // Separators and escapes in scope and key never make two records one.
    let tricky = [
        (format!("{scope}#a"), "b".to_owned()),
        (scope.clone(), "a#b".to_owned()),
        (format!("{scope}%23a"), "b".to_owned()),
        (scope.clone(), "a%23b".to_owned()),
        (scope.clone(), "~!\"$&'()*+,-./:;<=>?@[\\]^_`{|}".to_owned()),
    ];
    let mut made = Vec::new();
    for (s, k) in &tricky {
        let r = idempotency_record(s, k);
        store.create_idempotency(&r).await.unwrap_or_else(|e| panic!("create_idempotency({s:?}, {k:?}): {e}"));
        made.push(r);
    }
    for r in &made {
        assert_eq!(
            store.get_idempotency(&r.scope, &r.key).await.expect("get"),
            *r,
            "({:?}, {:?}) is its own record",
            r.scope,
            r.key
        );
    }

    // Conditional updates.
    let mut done = record.clone();
    done.version = 2;
    done.in_flight_until = None;
    store.update_idempotency(&done).await.expect("update_idempotency");
    assert_eq!(store.get_idempotency(&scope, "key-1").await.expect("get"), done, "the update is stored");
    for (what, version) in [("a stale update", 2), ("an update skipping versions", 4)] {
        let mut bad = done.clone();
        bad.version = version;
        bad.in_flight_until = Some(OffsetDateTime::now_utc());
        match store.update_idempotency(&bad).await {
            Err(StoreError::VersionConflict { current: Some(2) }) => {}
            other => panic!("{what} must be VersionConflict {{ current: Some(2) }}, got {other:?}"),
        }
    }
    let mut zero = done.clone();
    zero.version = 0;
    assert!(matches!(store.update_idempotency(&zero).await, Err(StoreError::Invalid(_))), "versions start at 1");
    let mut missing = idempotency_record(&scope, "never-made");
    missing.version = 2;
    assert!(
        matches!(store.update_idempotency(&missing).await, Err(StoreError::NotFound)),
        "updating a missing key is NotFound"
    );
    assert_eq!(store.get_idempotency(&scope, "key-1").await.expect("get"), done, "refused updates change nothing");

    // Past its expiry a key is forgotten: absent, and free for a new first use.
    let mut old = idempotency_record(&scope, "expired");
    old.expires_at = OffsetDateTime::now_utc() - Duration::from_secs(60);
    store.create_idempotency(&old).await.expect("create an expired record");
    assert!(
        matches!(store.get_idempotency(&scope, "expired").await, Err(StoreError::NotFound)),
        "an expired key is NotFound"
    );
    let mut old_update = old.clone();
    old_update.version = 2;
    assert!(
        matches!(store.update_idempotency(&old_update).await, Err(StoreError::NotFound)),
        "an expired key cannot be updated"
    );
    let fresh = idempotency_record(&scope, "expired");
    store.create_idempotency(&fresh).await.expect("an expired key is free again");
    assert_eq!(store.get_idempotency(&scope, "expired").await.expect("get"), fresh);
}

// ---------------------------------------------------------------------------------------------
// Lane controls
// ---------------------------------------------------------------------------------------------

async fn paused(lanes: &dyn LaneControl) -> (bool, bool) {
    (
        lanes.is_paused(Lane::High).await.expect("is_paused(high)"),
        lanes.is_paused(Lane::Normal).await.expect("is_paused(normal)"),
    )
}

/// Pausing and resuming each lane, alone and idempotently. Both lanes must start running; the
/// suite leaves them running.
pub async fn lane_control_suite(lanes: &dyn LaneControl) {
    assert_eq!(paused(lanes).await, (false, false), "lane_control_suite needs both lanes running");
    lanes.set_paused(Lane::High, true).await.expect("pause high");
    assert_eq!(paused(lanes).await, (true, false), "pausing one lane pauses only it");
    lanes.set_paused(Lane::High, true).await.expect("pause high again");
    assert_eq!(paused(lanes).await, (true, false), "pausing a paused lane keeps it paused");
    lanes.set_paused(Lane::Normal, true).await.expect("pause normal");
    lanes.set_paused(Lane::High, false).await.expect("resume high");
    assert_eq!(paused(lanes).await, (false, true), "resuming one lane resumes only it");
    lanes.set_paused(Lane::Normal, false).await.expect("resume normal");
    lanes.set_paused(Lane::Normal, false).await.expect("resume normal again");
    assert_eq!(paused(lanes).await, (false, false), "resuming a running lane keeps it running");
}

// ---------------------------------------------------------------------------------------------
// Event bus
// ---------------------------------------------------------------------------------------------

/// What listeners received from a bus: each event in EventBridge's envelope (`source`,
/// `detail-type`, `detail`, `time`) as a rule's target (an SQS queue) or the local file holds it.
#[async_trait]
pub trait DeliveredEvents: Send + Sync {
    /// Events delivered since the suite began, waiting a few seconds for at least `want`.
    async fn delivered(&self, want: usize) -> Vec<serde_json::Value>;
}

/// An envelope's `time`: RFC 3339 as EventBridge writes it, or seconds since the epoch (moto
/// passes on the request's number).
fn envelope_time(value: &serde_json::Value) -> Option<OffsetDateTime> {
    match value {
        serde_json::Value::String(text) => {
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
        }
        serde_json::Value::Number(secs) => {
            OffsetDateTime::from_unix_timestamp_nanos((secs.as_f64()? * 1e9) as i128).ok()
        }
        _ => None,
    }
}

/// Published events reach listeners with their source, detail type, detail and time.
pub async fn event_bus_suite(bus: &dyn EventBus, listeners: &dyn DeliveredEvents) {
    let run = run_id();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("a whole second");
    let mut published = Vec::new();
    for (n, kind) in ["job.queued", "job.started", "job.succeeded"].into_iter().enumerate() {
        let event = BusEvent {
            source: "phoenix.jobs",
            detail_type: kind.to_owned(),
            detail: serde_json::json!({
                "event_id": format!("{run}-{n}"),
                "schema_version": 1,
                "kind": kind.trim_start_matches("job."),
                "result": { "summary": "rebuilt «thumb», large", "image_version": n },
                "tags": ["a", "b"],
            }),
            time: now - Duration::from_secs(n as u64),
        };
        bus.publish(&event).await.unwrap_or_else(|e| panic!("publish {kind}: {e}"));
        published.push(event);
    }
    let delivered = listeners.delivered(published.len()).await;
    let ours: Vec<&serde_json::Value> =
        delivered.iter().filter(|e| e["detail"]["event_id"].as_str().is_some_and(|id| id.starts_with(&run))).collect();
    assert_eq!(ours.len(), published.len(), "every event is delivered once: {delivered:?}");
    for event in &published {
        let got = ours
            .iter()
            .find(|e| e["detail"]["event_id"] == event.detail["event_id"])
            .unwrap_or_else(|| panic!("{} was not delivered: {ours:?}", event.detail_type));
        assert_eq!(got["source"], "phoenix.jobs", "the source arrives: {got}");
        assert_eq!(got["detail-type"], event.detail_type.as_str(), "the detail type arrives: {got}");
        assert_eq!(got["detail"], event.detail, "the detail arrives unchanged");
        let time = envelope_time(&got["time"]).unwrap_or_else(|| panic!("the envelope has a time: {got}"));
        assert!(
            (time - event.time).abs() < time::Duration::seconds(1),
            "the event's time arrives: {time} vs {}",
            event.time
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

use phoenix_domain::BatchId;
use phoenix_domain::batches::{
    BATCH_RETENTION, Batch, BatchChunk, BatchItem, BatchOperation, BatchStatus, CHUNK_SIZE, ItemOutcome, OutcomeCounts,
    UndoValues,
};
use phoenix_domain::ports::{BatchQuery, BatchStore, ItemWrite};

/// One of each batch operation, for round trips: `BatchOperation` is internally tagged by `op`
/// and refuses unknown fields, which every store must keep.
pub fn sample_batch_operations() -> Vec<BatchOperation> {
    vec![
        BatchOperation::Approve { note: Some("all good".to_owned()) },
        BatchOperation::Reject {
            violations: vec![Violation { code: "rights".to_owned(), severity: Severity::High, note: None }],
            note: None,
        },
        BatchOperation::Categorize { category: Some(Category::parse("runway").expect("valid category")) },
        BatchOperation::Categorize { category: None },
        BatchOperation::Tag { add: vec![tag("summer")], remove: vec![tag("winter"), tag("spring")] },
        BatchOperation::AddToGallery { gallery_id: gallery("G-1") },
        BatchOperation::RemoveFromGallery { gallery_id: gallery("G-2") },
        BatchOperation::SetUsageRights { expires_at: Some(time::macros::datetime!(2031-02-03 04:05:06.789 UTC)) },
        BatchOperation::SetUsageRights { expires_at: None },
        BatchOperation::Delete,
        BatchOperation::Restore,
        BatchOperation::Rollback { of: BatchId::new() },
    ]
}

/// A plausible batch of 150 items (two chunks) in `status`, live for the retention period.
pub fn sample_batch(model: &ModelId, status: BatchStatus) -> Batch {
    let now = OffsetDateTime::now_utc();
    Batch {
        batch_id: BatchId::new(),
        model_id: model.clone(),
        operation: BatchOperation::Tag { add: vec![tag("batch-added")], remove: Vec::new() },
        status,
        dry_run: false,
        total: 150,
        chunks: 2,
        chunks_done: 0,
        counts: OutcomeCounts::default(),
        submitted_by: "user-1".to_owned(),
        submitted_as_admin: false,
        rollback_of: None,
        rolled_back_by: None,
        queued_at: now,
        started_at: status.is_active().then_some(now),
        finished_at: None,
        updated_at: now,
        version: 1,
        expires_at: now + BATCH_RETENTION,
    }
}

/// The chunks of a batch of `total` fresh media ids (with origin places, as a rollback's).
pub fn sample_chunks(batch: &Batch, total: usize) -> Vec<BatchChunk> {
    let ids: Vec<MediaId> = (0..total).map(|_| MediaId::new()).collect();
    ids.chunks(CHUNK_SIZE)
        .enumerate()
        .map(|(n, part)| BatchChunk {
            batch_id: batch.batch_id,
            chunk: n as u32,
            media_ids: part.to_vec(),
            origin_seqs: (0..part.len() as u32).map(|i| 1000 + n as u32 * 100 + i).collect(),
            counts: None,
        })
        .collect()
}

/// Item `seq`'s outcome; an applied one with its undo values and written version.
pub fn sample_outcome(batch: &Batch, seq: u32, outcome: ItemOutcome) -> BatchItem {
    let applied = outcome == ItemOutcome::Applied;
    BatchItem {
        batch_id: batch.batch_id,
        seq,
        model_id: batch.model_id.clone(),
        media_id: MediaId::new(),
        outcome,
        message: (!applied).then(|| format!("skipped «{seq}»")),
        before: applied.then(|| UndoValues {
            status: MediaStatus::PendingReview,
            review: None,
            category: Some(Category::parse("editorial").expect("valid category")),
            tags: vec![tag("before")],
            usage_rights_expires_at: Some(time::macros::datetime!(2030-01-01 00:00 UTC)),
            trashed: None,
            gallery: None,
        }),
        written_version: applied.then_some(2),
        predicted: seq % 7 == 3,
        galleries: match applied {
            true => vec![GalleryId::parse("g-sample").expect("valid gallery id")],
            false => vec![],
        },
        at: OffsetDateTime::now_utc(),
    }
}

/// Every page of a batch's items (optionally of one outcome), checking each page's size.
async fn list_all_items(
    store: &dyn BatchStore,
    id: &BatchId,
    outcome: Option<ItemOutcome>,
    limit: usize,
) -> Vec<BatchItem> {
    let mut all = Vec::new();
    let mut cursor = None;
    for page_number in 0..500 {
        let page = store.list_items(id, outcome, limit, cursor.take()).await.expect("list_items");
        assert!(page.items.len() <= limit, "page {page_number} has {} items, over the limit {limit}", page.items.len());
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("list_items did not end after 500 pages");
}

/// Every page of `query` (its `cursor` is ignored), checking each page's size.
async fn list_all_batches(store: &dyn BatchStore, query: &BatchQuery) -> Vec<Batch> {
    let mut all = Vec::new();
    let mut cursor = None;
    for page_number in 0..500 {
        let page =
            store.list_batches(&BatchQuery { cursor: cursor.take(), ..query.clone() }).await.expect("list_batches");
        assert!(page.items.len() <= query.limit, "page {page_number} has {} batches", page.items.len());
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("list_batches did not end after 500 pages");
}

fn seqs(items: &[BatchItem]) -> Vec<u32> {
    items.iter().map(|i| i.seq).collect()
}

/// Batches: create (with their chunks), read, versioned updates, chunk counts, item writes that
/// commit a record's change and its outcome together or not at all, item listings and ranges,
/// batch listings (a model's, every model's) newest first, counts, and expiry. `media` makes
/// and observes the records the items change. Counts across models are compared before and
/// after, so other suites may share the store.
pub async fn batch_store_suite(store: &dyn BatchStore, media: &dyn MediaStore) {
    let mut before = BTreeMap::new();
    for status in BatchStatus::ALL {
        before.insert(status, store.count_batches(None, status).await.expect("count_batches"));
    }
    let model = ModelId::parse(&format!("conf-batches-{}", run_id())).expect("valid model id");
    let other_model = ModelId::parse(&format!("conf-batches-other-{}", run_id())).expect("valid model id");
    // What the store must hold, as the listings and counts below expect it.
    let mut live: BTreeMap<BatchId, Batch> = BTreeMap::new();

    // Create and read back, every operation.
    for operation in sample_batch_operations() {
        let mut batch = sample_batch(&model, BatchStatus::Queued);
        batch.operation = operation;
        store.create_batch(&batch, &sample_chunks(&batch, 3)).await.expect("create_batch");
        assert_eq!(store.get_batch(&batch.batch_id).await.expect("get_batch"), batch, "the batch as created");
        live.insert(batch.batch_id, batch);
    }
    let first = live.values().next().cloned().expect("a batch");
    let first_chunks = store.list_chunks(&first.batch_id).await.expect("list_chunks");
    let mut again = first.clone();
    again.status = BatchStatus::Running;
    match store.create_batch(&again, &sample_chunks(&again, 5)).await {
        Err(StoreError::AlreadyExists) => {}
        other => panic!("creating a batch id twice must be AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get_batch(&first.batch_id).await.expect("get_batch"), first, "a refused create changes nothing");
    assert_eq!(store.list_chunks(&first.batch_id).await.expect("list_chunks"), first_chunks, "nor its chunks");
    assert!(matches!(store.get_batch(&BatchId::new()).await, Err(StoreError::NotFound)), "a missing batch");

    // Chunks: the snapshot round trips; counts are recorded (idempotently) and change nothing else.
    let batch = sample_batch(&model, BatchStatus::Running);
    let chunks = sample_chunks(&batch, 150);
    store.create_batch(&batch, &chunks).await.expect("create_batch with chunks");
    live.insert(batch.batch_id, batch.clone());
    assert_eq!(store.get_chunk(&batch.batch_id, 1).await.expect("get_chunk"), chunks[1], "chunk 1 as created");
    assert_eq!(store.list_chunks(&batch.batch_id).await.expect("list_chunks"), chunks, "every chunk, in order");
    assert!(matches!(store.get_chunk(&batch.batch_id, 2).await, Err(StoreError::NotFound)), "no chunk 2");
    let mut counted = chunks[0].clone();
    counted.counts = Some(OutcomeCounts { applied: 97, skipped_conflict: 1, failed: 2, ..OutcomeCounts::default() });
    for _ in 0..2 {
        store.put_chunk_counts(&counted).await.expect("put_chunk_counts");
    }
    let mut altered = counted.clone();
    altered.media_ids.truncate(3);
    store.put_chunk_counts(&altered).await.expect("put_chunk_counts with another snapshot");
    assert_eq!(store.get_chunk(&batch.batch_id, 0).await.expect("get_chunk"), counted, "only the counts change");
    assert_eq!(
        store.list_chunks(&batch.batch_id).await.expect("list_chunks"),
        vec![counted.clone(), chunks[1].clone()],
        "the listing shows the counts"
    );
    for (what, mut missing) in [("chunk", counted.clone()), ("batch", counted.clone())] {
        if what == "chunk" {
            missing.chunk = 7;
        } else {
            missing.batch_id = BatchId::new();
        }
        match store.put_chunk_counts(&missing).await {
            Err(StoreError::NotFound) => {}
            other => panic!("counts of a missing {what} must be NotFound, got {other:?}"),
        }
    }
    assert!(matches!(store.get_chunk(&batch.batch_id, 7).await, Err(StoreError::NotFound)), "none was created");

    // Versioned updates; a status change moves the batch between listings and counts.
    let mut updated = batch.clone();
    updated.version = 2;
    updated.status = BatchStatus::CompletedWithErrors;
    updated.chunks_done = 1;
    updated.counts = counted.counts.expect("counts");
    updated.finished_at = Some(OffsetDateTime::now_utc());
    store.update_batch(&updated).await.expect("update_batch with the next version");
    assert_eq!(store.get_batch(&batch.batch_id).await.expect("get_batch"), updated, "get_batch returns the update");
    live.insert(updated.batch_id, updated.clone());
    for (what, version) in [("a stale update", 2), ("an update skipping versions", 5)] {
        let mut bad = updated.clone();
        bad.version = version;
        bad.status = BatchStatus::Cancelled;
        match store.update_batch(&bad).await {
            Err(StoreError::VersionConflict { current: Some(2) }) => {}
            other => panic!("{what} must be VersionConflict {{ current: Some(2) }}, got {other:?}"),
        }
    }
    let mut zero = updated.clone();
    zero.version = 0;
    assert!(matches!(store.update_batch(&zero).await, Err(StoreError::Invalid(_))), "a version starts at 1");
    let mut absent = sample_batch(&model, BatchStatus::Queued);
    absent.version = 2;
    assert!(matches!(store.update_batch(&absent).await, Err(StoreError::NotFound)), "updating a missing batch");
    assert_eq!(store.get_batch(&batch.batch_id).await.expect("get_batch"), updated, "refusals change nothing");

    item_writes(store, media, &batch).await;
    item_listings(store, &batch).await;

    // Expired: absent everywhere, and it takes no items.
    let mut expired = sample_batch(&model, BatchStatus::Running);
    expired.expires_at = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    store.create_batch(&expired, &sample_chunks(&expired, 10)).await.expect("create an expired batch");
    assert!(matches!(store.get_batch(&expired.batch_id).await, Err(StoreError::NotFound)), "an expired batch");
    assert!(matches!(store.get_chunk(&expired.batch_id, 0).await, Err(StoreError::NotFound)), "its chunks");
    assert!(store.list_chunks(&expired.batch_id).await.expect("list_chunks").is_empty(), "no chunks listed");
    let mut stale_expired = expired.clone();
    stale_expired.version = 2;
    assert!(matches!(store.update_batch(&stale_expired).await, Err(StoreError::NotFound)), "it cannot be updated");
    let write = ItemWrite { record: None, item: sample_outcome(&expired, 0, ItemOutcome::Failed) };
    assert!(
        matches!(store.write_items(&[write]).await.as_slice(), [Err(StoreError::NotFound)]),
        "an expired batch takes no items"
    );
    let unknown = sample_batch(&model, BatchStatus::Running);
    let write = ItemWrite { record: None, item: sample_outcome(&unknown, 0, ItemOutcome::Failed) };
    assert!(
        matches!(store.write_items(&[write]).await.as_slice(), [Err(StoreError::NotFound)]),
        "a missing batch takes no items"
    );
    assert!(matches!(store.get_item(&unknown.batch_id, 0).await, Err(StoreError::NotFound)), "nothing was written");

    // Another model's batches, in several statuses, for the listings.
    for status in [BatchStatus::Completed, BatchStatus::Failed, BatchStatus::Queued, BatchStatus::RolledBack] {
        let batch = sample_batch(&other_model, status);
        store.create_batch(&batch, &sample_chunks(&batch, 1)).await.expect("create_batch in another model");
        live.insert(batch.batch_id, batch);
    }
    batch_listings(store, &[model, other_model], &live, &before).await;
}

/// `write_items`: each write's record change (with its index entries) and outcome commit together
/// or not at all; a stale record writes neither; an outcome is written once; neighbours are
/// unaffected.
async fn item_writes(store: &dyn BatchStore, media: &dyn MediaStore, batch: &Batch) {
    let model = &batch.model_id;
    let mut records = Vec::new();
    for with_tag in [true, false, false] {
        let mut record = sample_record(model, &MediaId::new(), MediaStatus::Approved);
        if with_tag {
            record.metadata.tags = vec![tag("before")];
            record.galleries = vec![GalleryLink { gallery_id: gallery("G-1"), published: false }];
        }
        media.create_media(&record).await.expect("create_media");
        records.push(record);
    }
    let [tagged, plain, stale] = <[MediaRecord; 3]>::try_from(records).expect("three records");
    let gone = sample_record(model, &MediaId::new(), MediaStatus::Approved);
    let changed = |record: &MediaRecord, to: &str| {
        let mut next = record.clone();
        next.version += 1;
        next.metadata.tags = vec![tag(to)];
        next.galleries.clear();
        next
    };
    let outcome = |seq: u32, outcome: ItemOutcome, record: &MediaRecord| BatchItem {
        media_id: record.media_id,
        ..sample_outcome(batch, seq, outcome)
    };
    let mut skipping = changed(&stale, "after");
    skipping.version = 3;
    let writes = vec![
        ItemWrite { record: Some(changed(&tagged, "after")), item: outcome(0, ItemOutcome::Applied, &tagged) },
        ItemWrite { record: Some(skipping), item: outcome(1, ItemOutcome::Applied, &stale) },
        ItemWrite { record: None, item: outcome(2, ItemOutcome::SkippedNotAllowed, &plain) },
        ItemWrite { record: Some(changed(&gone, "after")), item: outcome(3, ItemOutcome::Applied, &gone) },
        ItemWrite { record: Some(changed(&plain, "after")), item: outcome(4, ItemOutcome::Applied, &plain) },
    ];
    let results = store.write_items(&writes).await;
    assert_eq!(results.len(), writes.len(), "one result per write");
    assert!(results[0].is_ok(), "a change with its outcome: {:?}", results[0]);
    assert!(
        matches!(results[1], Err(StoreError::VersionConflict { current: Some(1) })),
        "a stale record is VersionConflict with the stored version, got {:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "an outcome alone: {:?}", results[2]);
    assert!(matches!(results[3], Err(StoreError::NotFound)), "a missing record is NotFound, got {:?}", results[3]);
    assert!(results[4].is_ok(), "a neighbour of refused writes: {:?}", results[4]);

    let id = &batch.batch_id;
    for (seq, write) in [(0, &writes[0]), (2, &writes[2]), (4, &writes[4])] {
        assert_eq!(&store.get_item(id, seq).await.expect("get_item"), &write.item, "outcome {seq} as written");
    }
    for seq in [1, 3] {
        assert!(
            matches!(store.get_item(id, seq).await, Err(StoreError::NotFound)),
            "no outcome {seq} without its record"
        );
    }
    assert_eq!(media.get_media(model, &tagged.media_id).await.expect("get_media"), changed(&tagged, "after"));
    assert_eq!(media.get_media(model, &plain.media_id).await.expect("get_media"), changed(&plain, "after"));
    assert_eq!(
        media.get_media(model, &stale.media_id).await.expect("get_media"),
        stale,
        "a refused write changes nothing"
    );
    assert!(matches!(media.get_media(model, &gone.media_id).await, Err(StoreError::NotFound)), "nor creates a record");
    // The index entries moved with the record, in the same write.
    let listed = |query: MediaQuery| async move { ids(&list_query(media, model, &query).await) };
    let mut after = vec![tagged.media_id, plain.media_id];
    after.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(
        listed(MediaQuery { tag: Some(tag("after")), ..MediaQuery::new(10) }).await,
        after,
        "the new tag's entries"
    );
    assert!(
        listed(MediaQuery { tag: Some(tag("before")), ..MediaQuery::new(10) }).await.is_empty(),
        "the old tag's gone"
    );
    assert!(
        listed(MediaQuery { gallery: Some(gallery("G-1")), ..MediaQuery::new(10) }).await.is_empty(),
        "and the gallery's"
    );

    // An outcome is written once: a second write (the record stale or fresh) writes nothing.
    let mut fresh = changed(&changed(&tagged, "after"), "again");
    fresh.version = 3;
    let seconds = vec![
        writes[0].clone(),
        ItemWrite { record: Some(fresh), item: outcome(0, ItemOutcome::SkippedConflict, &tagged) },
        ItemWrite { record: None, item: outcome(2, ItemOutcome::Failed, &plain) },
        // The retry of the conflict: the record at its version now.
        ItemWrite { record: Some(changed(&stale, "after")), item: outcome(1, ItemOutcome::Applied, &stale) },
    ];
    let results = store.write_items(&seconds).await;
    for (n, result) in results.iter().take(3).enumerate() {
        assert!(
            matches!(result, Err(StoreError::AlreadyExists)),
            "second write {n} must be AlreadyExists, got {result:?}"
        );
    }
    assert!(results[3].is_ok(), "the retried item: {:?}", results[3]);
    assert_eq!(store.get_item(id, 0).await.expect("get_item"), writes[0].item, "the first outcome stays");
    assert_eq!(store.get_item(id, 2).await.expect("get_item"), writes[2].item, "the first outcome stays");
    assert_eq!(store.get_item(id, 1).await.expect("get_item"), seconds[3].item, "the retry's outcome");
    assert_eq!(
        media.get_media(model, &tagged.media_id).await.expect("get_media"),
        changed(&tagged, "after"),
        "a refused outcome takes its record's change with it"
    );
    assert_eq!(media.get_media(model, &stale.media_id).await.expect("get_media"), changed(&stale, "after"));

    // Refused before any write: places past the bound, records past theirs, version 0.
    let mut zero = changed(&plain, "x");
    zero.version = 0;
    let mut crowded = changed(&plain, "x");
    crowded.metadata.tags = (0..=MAX_TAGS).map(|i| tag(&format!("t{i}"))).collect();
    let bad = vec![
        ItemWrite { record: None, item: outcome(100_000, ItemOutcome::Failed, &plain) },
        ItemWrite { record: Some(zero), item: outcome(5, ItemOutcome::Applied, &plain) },
        ItemWrite { record: Some(crowded), item: outcome(6, ItemOutcome::Applied, &plain) },
    ];
    for (n, result) in store.write_items(&bad).await.iter().enumerate() {
        assert!(matches!(result, Err(StoreError::Invalid(_))), "bad write {n} must be Invalid, got {result:?}");
    }
    assert!(store.get_items(id, 5, 7).await.expect("get_items").is_empty(), "and writes nothing");
    assert!(store.write_items(&[]).await.is_empty(), "no writes, no results");
}

/// `list_items` (all, by outcome, paged) and `get_items` ranges. Items 0, 1, 2 and 4 exist
/// (from [`item_writes`]); this adds 100..150 (the second chunk), one outcome after another.
async fn item_listings(store: &dyn BatchStore, batch: &Batch) {
    let id = &batch.batch_id;
    let writes: Vec<ItemWrite> = (100..150u32)
        .map(|seq| ItemWrite {
            record: None,
            item: sample_outcome(batch, seq, ItemOutcome::ALL[seq as usize % ItemOutcome::ALL.len()]),
        })
        .collect();
    for result in store.write_items(&writes).await {
        result.expect("write an outcome");
    }
    let stored: Vec<BatchItem> = store.get_items(id, 0, 1000).await.expect("get_items");
    let expected: Vec<u32> = [0, 1, 2, 4].into_iter().chain(100..150).collect();
    assert_eq!(seqs(&stored), expected, "get_items: every item in the range, in place order");
    assert_eq!(&stored[4..], writes.iter().map(|w| w.item.clone()).collect::<Vec<_>>().as_slice(), "as written");
    assert_eq!(seqs(&store.get_items(id, 100, 110).await.expect("get_items")), (100..110).collect::<Vec<_>>());
    assert_eq!(seqs(&store.get_items(id, 2, 101).await.expect("get_items")), [2, 4, 100], "from inclusive, to not");
    assert_eq!(seqs(&store.get_items(id, 149, u32::MAX).await.expect("get_items")), [149]);
    assert!(store.get_items(id, 5, 5).await.expect("get_items").is_empty(), "an empty range");
    assert!(store.get_items(id, 7, 3).await.expect("get_items").is_empty(), "a reversed range");
    assert!(store.get_items(&BatchId::new(), 0, 100).await.expect("get_items").is_empty(), "another batch's");

    for limit in [1, 7, 100] {
        let all = list_all_items(store, id, None, limit).await;
        assert_eq!(seqs(&all), expected, "list_items (limit {limit}): every item once, in order");
        assert_eq!(all, stored, "a listed item is the stored item");
        for outcome in ItemOutcome::ALL {
            let wanted: Vec<u32> = stored.iter().filter(|i| i.outcome == outcome).map(|i| i.seq).collect();
            let listed = list_all_items(store, id, Some(outcome), limit).await;
            assert_eq!(seqs(&listed), wanted, "list_items of {outcome:?} (limit {limit})");
        }
    }
    let empty = store.list_items(&BatchId::new(), None, 10, None).await.expect("list_items of another batch");
    assert!(empty.items.is_empty() && empty.next_cursor.is_none(), "another batch has no items");

    for limit in [*PAGE_SIZE.start() - 1, *PAGE_SIZE.end() + 1] {
        match store.list_items(id, None, limit, None).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a page of {limit} items must be Invalid, got {other:?}"),
        }
    }
    let page = store.list_items(id, Some(ItemOutcome::Applied), 1, None).await.expect("list_items");
    let cursor = page.next_cursor.expect("more than one applied item");
    for (other_id, outcome) in
        [(*id, None), (*id, Some(ItemOutcome::Failed)), (BatchId::new(), Some(ItemOutcome::Applied))]
    {
        match store.list_items(&other_id, outcome, 1, Some(cursor.clone())).await {
            Err(StoreError::Invalid(_)) => {}
            got => panic!("a cursor of another item listing must be Invalid, got {got:?}"),
        }
    }
    for bad in ["not a cursor", "!!!", "eyJmb28iOiJiYXIifQ"] {
        match store.list_items(id, None, 10, Some(bad.to_owned())).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a cursor {bad:?} this listing did not return must be Invalid, got {other:?}"),
        }
    }
    item_revisions(store, batch, &stored).await;
}

/// An applied outcome revised (once, from the outcome it has) shows everywhere; anything else is
/// refused and changes nothing.
async fn item_revisions(store: &dyn BatchStore, batch: &Batch, stored: &[BatchItem]) {
    let id = &batch.batch_id;
    let applied = stored.iter().find(|i| i.outcome == ItemOutcome::Applied).expect("an applied item").clone();
    let revised = BatchItem {
        outcome: ItemOutcome::SkippedInvalidState,
        message: Some("the gallery filled up meanwhile".into()),
        before: None,
        written_version: None,
        galleries: vec![],
        ..applied.clone()
    };
    store.revise_item(&revised, ItemOutcome::Applied).await.expect("revise_item");
    assert_eq!(store.get_item(id, applied.seq).await.expect("get_item"), revised, "the revised outcome");
    let listed = list_all_items(store, id, Some(ItemOutcome::SkippedInvalidState), 100).await;
    assert!(listed.contains(&revised), "listed under its new outcome");
    let listed = list_all_items(store, id, Some(ItemOutcome::Applied), 100).await;
    assert!(!listed.iter().any(|i| i.seq == applied.seq), "and no longer under the old one");
    match store.revise_item(&applied, ItemOutcome::Applied).await {
        Err(StoreError::VersionConflict { .. }) => {}
        other => panic!("revising from an outcome the item no longer has must be VersionConflict, got {other:?}"),
    }
    assert_eq!(store.get_item(id, applied.seq).await.expect("get_item"), revised, "a refusal changes nothing");
    let absent = BatchItem { seq: 99, ..revised.clone() };
    match store.revise_item(&absent, ItemOutcome::Applied).await {
        Err(StoreError::NotFound) => {}
        other => panic!("revising an item without an outcome must be NotFound, got {other:?}"),
    }
    assert!(matches!(store.get_item(id, 99).await, Err(StoreError::NotFound)), "none was made");
}

/// Listings (a model's, every model's: newest first) and counts against what the store must
/// hold (`live`); counts across models against `before` plus ours.
async fn batch_listings(
    store: &dyn BatchStore,
    models: &[ModelId],
    live: &BTreeMap<BatchId, Batch>,
    before: &BTreeMap<BatchStatus, u64>,
) {
    for model in models {
        let expected: Vec<BatchId> = live.values().rev().filter(|b| &b.model_id == model).map(|b| b.batch_id).collect();
        for limit in [1, 2, 100] {
            let query = BatchQuery { model: Some(model.clone()), limit, cursor: None };
            let listed = list_all_batches(store, &query).await;
            assert_eq!(
                listed.iter().map(|b| b.batch_id).collect::<Vec<_>>(),
                expected,
                "a model's batches, newest first"
            );
            for batch in &listed {
                assert_eq!(batch, &live[&batch.batch_id], "a listed batch is the stored batch");
            }
        }
        for status in BatchStatus::ALL {
            let wanted = live.values().filter(|b| &b.model_id == model && b.status == status).count() as u64;
            assert_eq!(
                store.count_batches(Some(model), status).await.expect("count_batches"),
                wanted,
                "{model:?} {status:?}"
            );
        }
    }
    let expected: Vec<BatchId> = live.keys().rev().copied().collect();
    for limit in [1, 3, 100] {
        let listed = list_all_batches(store, &BatchQuery { model: None, limit, cursor: None }).await;
        let all: Vec<BatchId> = listed.iter().map(|b| b.batch_id).collect();
        assert!(all.windows(2).all(|w| w[0] > w[1]), "every model's batches, newest first, each once");
        let ours: Vec<BatchId> = all.into_iter().filter(|id| live.contains_key(id)).collect();
        assert_eq!(ours, expected, "every model's batches (limit {limit})");
    }
    for status in BatchStatus::ALL {
        let ours = live.values().filter(|b| b.status == status).count() as u64;
        assert_eq!(
            store.count_batches(None, status).await.expect("count_batches"),
            before[&status] + ours,
            "count_batches(None, {status:?}) counts every model's live batches"
        );
    }

    let by_model = BatchQuery { model: Some(models[0].clone()), limit: 1, cursor: None };
    for limit in [*PAGE_SIZE.start() - 1, *PAGE_SIZE.end() + 1] {
        match store.list_batches(&BatchQuery { limit, ..by_model.clone() }).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a page of {limit} batches must be Invalid, got {other:?}"),
        }
    }
    let cursor = store.list_batches(&by_model).await.expect("list_batches").next_cursor.expect("more than one batch");
    for other in [
        BatchQuery { model: Some(models[1].clone()), ..by_model.clone() },
        BatchQuery { model: None, ..by_model.clone() },
    ] {
        match store.list_batches(&BatchQuery { cursor: Some(cursor.clone()), ..other.clone() }).await {
            Err(StoreError::Invalid(_)) => {}
            got => panic!("a cursor of {by_model:?} used for {other:?} must be Invalid, got {got:?}"),
        }
    }
    for bad in ["not a cursor", "!!!", "eyJmb28iOiJiYXIifQ"] {
        match store.list_batches(&BatchQuery { cursor: Some(bad.to_owned()), ..by_model.clone() }).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a cursor {bad:?} this listing did not return must be Invalid, got {other:?}"),
        }
    }
}
