//! The gallery store's contract: create (slug unique per deployment), read by id and by slug,
//! conditional update (a slug change frees the old slug and claims the new one atomically),
//! conditional delete (freeing the slug), and a model's galleries newest first with cursors.

use phoenix_domain::galleries::{
    Gallery, Publication, PublishedVersion, Section, SectionId, Slug, Visibility, new_gallery_id,
};
use phoenix_domain::ports::{GalleryStore, StoreError};
use phoenix_domain::{MediaId, ModelId};
use time::OffsetDateTime;

/// A unique suffix, so runs (and suites sharing a store) never collide on slugs or models.
fn unique() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

/// A gallery of `model` with `items` media in one section, at version 1.
pub fn sample_gallery(model: &ModelId, slug: &str, items: usize) -> Gallery {
    let now = OffsetDateTime::now_utc();
    let items: Vec<MediaId> = (0..items).map(|_| MediaId::new()).collect();
    Gallery {
        gallery_id: new_gallery_id(),
        model_id: model.clone(),
        title: "Summer — « été »".into(),
        slug: Slug::parse(slug).unwrap(),
        description: Some("Beach days\nand nights".into()),
        visibility: Visibility::Public,
        cover: items.first().copied(),
        sections: vec![
            Section { section_id: SectionId::parse("main").unwrap(), title: None, items },
            Section {
                section_id: SectionId::parse("backstage").unwrap(),
                title: Some("Backstage".into()),
                items: vec![],
            },
        ],
        version: 1,
        created_at: now,
        updated_at: now,
        publication: None,
        batch_marks: Vec::new(),
    }
}

pub async fn gallery_store_suite(store: &dyn GalleryStore) {
    let run = unique();
    let model = ModelId::parse(&format!("gm-{run}")).unwrap();
    let other_model = ModelId::parse(&format!("go-{run}")).unwrap();

    // Create, read by id and by slug; the biggest gallery round-trips intact.
    let big = sample_gallery(&model, &format!("big-{run}"), phoenix_domain::galleries::MAX_ITEMS);
    store.create_gallery(&big).await.expect("create a gallery of 2,000 items");
    assert_eq!(store.get_gallery(&big.gallery_id).await.unwrap(), big, "a gallery reads back as written");
    assert_eq!(store.gallery_id_by_slug(&big.slug).await.unwrap(), big.gallery_id);
    assert!(matches!(store.get_gallery(&new_gallery_id()).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.gallery_id_by_slug(&Slug::parse(&format!("none-{run}")).unwrap()).await,
        Err(StoreError::NotFound)
    ));

    // The slug is unique across models; the id too.
    let mut clash = sample_gallery(&other_model, &format!("big-{run}"), 1);
    assert!(matches!(store.create_gallery(&clash).await, Err(StoreError::AlreadyExists)), "a taken slug");
    clash.slug = Slug::parse(&format!("clash-{run}")).unwrap();
    let mut same_id = clash.clone();
    same_id.gallery_id = big.gallery_id.clone();
    assert!(matches!(store.create_gallery(&same_id).await, Err(StoreError::AlreadyExists)), "a taken id");
    assert!(matches!(store.gallery_id_by_slug(&clash.slug).await, Err(StoreError::NotFound)), "nothing half-made");
    store.create_gallery(&clash).await.unwrap();

    // Updates are conditional on the version read.
    let mut next = big.clone();
    next.version = 2;
    next.title = "Renamed".into();
    next.sections[0].items.reverse();
    store.update_gallery(&next, &big.slug).await.unwrap();
    assert_eq!(store.get_gallery(&big.gallery_id).await.unwrap(), next);
    match store.update_gallery(&next, &big.slug).await {
        Err(StoreError::VersionConflict { current: Some(2) }) => {}
        other => panic!("a stale update must conflict with version 2, got {other:?}"),
    }
    let mut ghost = sample_gallery(&model, &format!("ghost-{run}"), 0);
    ghost.version = 2;
    assert!(matches!(store.update_gallery(&ghost, &ghost.slug).await, Err(StoreError::NotFound)));

    // A slug change frees the old slug and claims the new one; a taken slug changes nothing.
    let mut taken = next.clone();
    taken.version = 3;
    taken.slug = clash.slug.clone();
    assert!(matches!(store.update_gallery(&taken, &next.slug).await, Err(StoreError::AlreadyExists)));
    assert_eq!(store.get_gallery(&big.gallery_id).await.unwrap(), next, "a refused slug change writes nothing");
    let mut moved = next.clone();
    moved.version = 3;
    moved.slug = Slug::parse(&format!("moved-{run}")).unwrap();
    store.update_gallery(&moved, &next.slug).await.unwrap();
    assert_eq!(store.gallery_id_by_slug(&moved.slug).await.unwrap(), big.gallery_id);
    assert!(matches!(store.gallery_id_by_slug(&big.slug).await, Err(StoreError::NotFound)), "the old slug is free");
    let reuse = sample_gallery(&other_model, big.slug.as_str(), 0);
    store.create_gallery(&reuse).await.expect("a freed slug can be taken");

    // Listing: a model's galleries only, newest first, in pages.
    let mut made = vec![big.gallery_id.clone()];
    for i in 0..4 {
        let g = sample_gallery(&model, &format!("list-{i}-{run}"), 1);
        store.create_gallery(&g).await.unwrap();
        made.push(g.gallery_id);
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_galleries(&model, 2, cursor).await.unwrap();
        assert!(page.items.len() <= 2);
        assert!(page.items.iter().all(|g| g.model_id == model), "only the model's galleries");
        seen.extend(page.items.into_iter().map(|g| g.gallery_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, made, "newest first, each once");
    assert!(matches!(store.list_galleries(&model, 0, None).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.list_galleries(&model, 101, None).await, Err(StoreError::Invalid(_))));
    let foreign = store.list_galleries(&other_model, 1, None).await.unwrap().next_cursor.expect("two galleries");
    assert!(
        matches!(store.list_galleries(&model, 2, Some(foreign)).await, Err(StoreError::Invalid(_))),
        "a cursor of another listing"
    );

    // Deletes are conditional on the version and free the slug.
    assert!(matches!(store.delete_gallery(&next).await, Err(StoreError::VersionConflict { current: Some(3) })));
    store.delete_gallery(&moved).await.unwrap();
    assert!(matches!(store.get_gallery(&big.gallery_id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.gallery_id_by_slug(&moved.slug).await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_gallery(&moved).await, Err(StoreError::NotFound)));

    rights_due(store, &model, &run).await;
}

/// `gallery` published once, its version showing media whose rights expire at `due`.
fn published(mut gallery: Gallery, due: Option<OffsetDateTime>) -> Gallery {
    let at = OffsetDateTime::now_utc();
    let version =
        PublishedVersion { version: 1, at, by: "u".into(), items: 1, sha256: "00".into(), rights_expire_at: due };
    gallery.publication = Some(Publication { current: 1, latest: 1, history: vec![version] });
    gallery
}

/// The rights index: galleries whose current version has a due date at or before `now`, of every
/// model, earliest first; a write that clears or moves the date, and a delete, take them out.
async fn rights_due(store: &dyn GalleryStore, model: &ModelId, run: &str) {
    use time::macros::datetime;
    let base = datetime!(1990-01-01 00:00 UTC);
    let ours = |found: Vec<Gallery>, mine: &[&Gallery]| -> Vec<phoenix_domain::GalleryId> {
        found.into_iter().map(|g| g.gallery_id).filter(|id| mine.iter().any(|m| &m.gallery_id == id)).collect()
    };
    let later = published(sample_gallery(model, &format!("due-a-{run}"), 1), Some(base + time::Duration::hours(1)));
    let first = published(sample_gallery(model, &format!("due-b-{run}"), 1), Some(base));
    let future = published(sample_gallery(model, &format!("due-c-{run}"), 1), Some(base + time::Duration::days(10)));
    let never = published(sample_gallery(model, &format!("due-d-{run}"), 1), None);
    let mine = [&later, &first, &future, &never];
    for g in mine {
        store.create_gallery(g).await.unwrap();
    }
    let now = base + time::Duration::hours(2);
    let due = store.galleries_due(now, 100).await.unwrap();
    assert!(due.iter().all(|g| g.rights_due_at().is_some_and(|d| d <= now)), "only galleries due");
    assert_eq!(ours(due, &mine), vec![first.gallery_id.clone(), later.gallery_id.clone()], "earliest first");
    let full = store.galleries_due(now, 100).await.unwrap().into_iter().find(|g| g.gallery_id == first.gallery_id);
    assert_eq!(full.as_ref(), Some(&first), "the gallery whole");
    assert!(matches!(store.galleries_due(now, 0).await, Err(StoreError::Invalid(_))));

    // Republished without the expired media: the next due date, or none.
    let mut moved = published(later.clone(), Some(base + time::Duration::days(20)));
    moved.version = 2;
    store.update_gallery(&moved, &later.slug).await.unwrap();
    let mut cleared = published(first.clone(), None);
    cleared.version = 2;
    store.update_gallery(&cleared, &first.slug).await.unwrap();
    assert!(ours(store.galleries_due(now, 100).await.unwrap(), &mine).is_empty());
    let much_later = base + time::Duration::days(30);
    assert_eq!(
        ours(store.galleries_due(much_later, 100).await.unwrap(), &mine),
        vec![future.gallery_id.clone(), later.gallery_id.clone()]
    );
    store.delete_gallery(&future).await.unwrap();
    assert_eq!(ours(store.galleries_due(much_later, 100).await.unwrap(), &mine), vec![later.gallery_id.clone()]);
    for g in [&moved, &cleared, &never] {
        store.delete_gallery(g).await.unwrap();
    }
}
