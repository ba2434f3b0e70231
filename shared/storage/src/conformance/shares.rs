//! The [`ShareLinkStore`] contract.

use std::collections::BTreeSet;

use phoenix_domain::ports::{ShareLinkStore, StoreError};
use phoenix_domain::shares::{ShareAccess, ShareLink};
use phoenix_domain::{GalleryId, ModelId, ShareLinkId};
use time::{Duration, OffsetDateTime};

pub fn sample_link(model: &ModelId, gallery: &GalleryId) -> ShareLink {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    ShareLink {
        link_id: ShareLinkId::new(),
        model_id: model.clone(),
        gallery_id: gallery.clone(),
        created_by: "owner-1".into(),
        created_at: now,
        expires_at: now + Duration::days(7),
        recipient: Some("Casting, Ltd. — “Spring”".into()),
        allow_download: true,
        revoked_at: None,
        revoked_by: None,
        version: 1,
    }
}

async fn every_link(store: &dyn ShareLinkStore, model: &ModelId, gallery: Option<&GalleryId>) -> Vec<ShareLinkId> {
    let (mut out, mut cursor) = (Vec::new(), None);
    for _ in 0..100 {
        let page = store.list_links(model, gallery, 2, cursor).await.unwrap();
        assert!(page.items.len() <= 2);
        out.extend(page.items.iter().map(|l| l.link_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
    panic!("the listing never ended");
}

pub async fn share_link_store_suite(store: &dyn ShareLinkStore) {
    let suffix = ShareLinkId::new().to_string();
    let model = ModelId::parse(&format!("share-{}", &suffix[20..])).unwrap();
    let other = ModelId::parse(&format!("share-other-{}", &suffix[20..])).unwrap();
    let (summer, winter) = (GalleryId::parse("summer").unwrap(), GalleryId::parse("winter").unwrap());

    // Create, read back exactly, refuse a second create and a new link not at version 1.
    let first = sample_link(&model, &summer);
    store.create_link(&first).await.unwrap();
    assert_eq!(store.get_link(&first.link_id).await.unwrap(), first);
    assert!(matches!(store.create_link(&first).await, Err(StoreError::AlreadyExists)));
    let mut not_new = sample_link(&model, &summer);
    not_new.version = 2;
    assert!(matches!(store.create_link(&not_new).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.get_link(&ShareLinkId::new()).await, Err(StoreError::NotFound)));

    // Conditional updates: the next version only.
    let mut revoked = first.clone();
    revoked.revoked_at = Some(first.created_at + Duration::minutes(5));
    revoked.revoked_by = Some("owner-1".into());
    revoked.version = 2;
    store.update_link(&revoked).await.unwrap();
    assert_eq!(store.get_link(&first.link_id).await.unwrap(), revoked);
    assert!(matches!(store.update_link(&revoked).await, Err(StoreError::VersionConflict { current: Some(2) })));
    let mut absent = sample_link(&model, &summer);
    absent.version = 2;
    assert!(matches!(store.update_link(&absent).await, Err(StoreError::NotFound)));

    // Listings: newest first, per gallery and per model, in pages with cursors bound to them.
    let mut made = vec![first.link_id];
    for gallery in [&summer, &winter, &summer, &winter, &summer] {
        let link = sample_link(&model, gallery);
        store.create_link(&link).await.unwrap();
        made.push(link.link_id);
    }
    store.create_link(&sample_link(&other, &summer)).await.unwrap();
    let newest_first: Vec<ShareLinkId> = made.iter().rev().copied().collect();
    assert_eq!(every_link(store, &model, None).await, newest_first);
    let summer_links: Vec<ShareLinkId> =
        newest_first.iter().copied().filter(|id| [0, 1, 3, 5].iter().any(|i| made[*i] == *id)).collect();
    assert_eq!(every_link(store, &model, Some(&summer)).await, summer_links);
    assert_eq!(every_link(store, &other, None).await.len(), 1);
    let page = store.list_links(&model, None, 2, None).await.unwrap();
    let foreign = page.next_cursor.unwrap();
    for refused in [
        store.list_links(&model, Some(&summer), 2, Some(foreign.clone())).await,
        store.list_links(&other, None, 2, Some(foreign)).await,
        store.list_links(&model, None, 2, Some("not-a-cursor".into())).await,
        store.list_links(&model, None, 0, None).await,
    ] {
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
    }

    // Past its retention a link is absent everywhere.
    let mut old = sample_link(&model, &winter);
    old.created_at -= Duration::days(200);
    old.expires_at = old.created_at + Duration::days(7);
    store.create_link(&old).await.unwrap();
    assert!(matches!(store.get_link(&old.link_id).await, Err(StoreError::NotFound)));
    assert!(!every_link(store, &model, None).await.contains(&old.link_id));

    // Accesses: newest first, in pages; another link's stay apart; an access names its link.
    let link = store.get_link(&made[1]).await.unwrap();
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut recorded = Vec::new();
    for i in 0..5 {
        let access = ShareAccess {
            link_id: link.link_id,
            // Two in the same instant stay two.
            at: t0 + Duration::seconds(i64::from(i / 2 * 2)),
            user_agent: (i % 2 == 0).then(|| format!("agent {i}")),
            client_hash: format!("{i:032x}"),
        };
        store.record_access(&link, &access).await.unwrap();
        recorded.push(access);
    }
    let stranger = ShareAccess { link_id: first.link_id, ..recorded[0].clone() };
    assert!(matches!(store.record_access(&link, &stranger).await, Err(StoreError::Invalid(_))));
    store.record_access(&revoked, &stranger).await.unwrap();
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let page = store.list_accesses(&link.link_id, 2, cursor).await.unwrap();
        seen.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
    let hashes: BTreeSet<&str> = seen.iter().map(|a| a.client_hash.as_str()).collect();
    assert_eq!(hashes.len(), 5);
    assert_eq!(seen.iter().find(|a| a.client_hash == recorded[4].client_hash), Some(&recorded[4]));
    assert_eq!(store.list_accesses(&first.link_id, 10, None).await.unwrap().items, vec![stranger]);
    let foreign = store.list_accesses(&link.link_id, 2, None).await.unwrap().next_cursor.unwrap();
    assert!(matches!(store.list_accesses(&first.link_id, 2, Some(foreign)).await, Err(StoreError::Invalid(_))));
}
