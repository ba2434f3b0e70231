use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::macros::datetime;

use super::*;

/// An in-memory [`ShareLinkStore`] (the port's rules; the adapters pass the conformance suite).
#[derive(Default)]
struct Links {
    links: Mutex<BTreeMap<ShareLinkId, ShareLink>>,
    accesses: Mutex<Vec<ShareAccess>>,
}

#[async_trait]
impl ShareLinkStore for Links {
    async fn create_link(&self, link: &ShareLink) -> StoreResult<()> {
        let mut links = self.links.lock().unwrap();
        if links.contains_key(&link.link_id) {
            return Err(StoreError::AlreadyExists);
        }
        links.insert(link.link_id, link.clone());
        Ok(())
    }
    async fn get_link(&self, id: &ShareLinkId) -> StoreResult<ShareLink> {
        self.links.lock().unwrap().get(id).cloned().ok_or(StoreError::NotFound)
    }
    async fn update_link(&self, link: &ShareLink) -> StoreResult<()> {
        let mut links = self.links.lock().unwrap();
        let stored = links.get(&link.link_id).ok_or(StoreError::NotFound)?;
        if stored.version + 1 != link.version {
            return Err(StoreError::VersionConflict { current: Some(stored.version) });
        }
        links.insert(link.link_id, link.clone());
        Ok(())
    }
    async fn list_links(
        &self,
        model: &ModelId,
        gallery: Option<&GalleryId>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<ShareLink>> {
        let after = cursor.map(|c| ShareLinkId::parse(&c).unwrap());
        let items: Vec<ShareLink> = self
            .links
            .lock()
            .unwrap()
            .values()
            .rev()
            .filter(|l| &l.model_id == model && gallery.is_none_or(|g| &l.gallery_id == g))
            .filter(|l| after.is_none_or(|a| l.link_id < a))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = items.len() > limit;
        let items: Vec<ShareLink> = items.into_iter().take(limit).collect();
        let next_cursor = more.then(|| items.last().unwrap().link_id.to_string());
        Ok(Page { items, next_cursor })
    }
    async fn record_access(&self, _: &ShareLink, access: &ShareAccess) -> StoreResult<()> {
        self.accesses.lock().unwrap().push(access.clone());
        Ok(())
    }
    async fn list_accesses(&self, id: &ShareLinkId, limit: usize, _: Option<String>) -> StoreResult<Page<ShareAccess>> {
        let items =
            self.accesses.lock().unwrap().iter().rev().filter(|a| &a.link_id == id).take(limit).cloned().collect();
        Ok(Page { items, next_cursor: None })
    }
}

const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

fn keys() -> ShareKeys {
    ShareKeys::parse(&format!("k2:{},k1:{}", "A".repeat(44), "B".repeat(44))).unwrap()
}

fn model() -> ModelId {
    ModelId::parse("model-a").unwrap()
}

fn gallery() -> GalleryId {
    GalleryId::parse("summer").unwrap()
}

fn request(days: i64) -> NewShareLink {
    NewShareLink {
        expires_at: NOW + Duration::days(days),
        recipient: Some("Casting, Ltd.".into()),
        allow_download: false,
    }
}

#[tokio::test]
async fn a_link_opens_while_active_and_ends_when_revoked_or_expired() {
    let (store, keys) = (Links::default(), keys());
    let (link, token) = create_link(&store, &keys, &model(), &gallery(), request(7), "owner", NOW).await.unwrap();
    assert_eq!(open_link(&store, &keys, &token, NOW).await.unwrap(), link);
    assert!(matches!(open_link(&store, &keys, &token, link.expires_at).await, Err(ShareError::Gone)));
    let revoked = revoke_link(&store, &model(), &link.link_id, "owner", NOW).await.unwrap();
    assert_eq!((revoked.revoked_at, revoked.version), (Some(NOW), 2));
    assert!(matches!(open_link(&store, &keys, &token, NOW).await, Err(ShareError::Gone)));
    // Revoking again changes nothing.
    assert_eq!(revoke_link(&store, &model(), &link.link_id, "someone", NOW).await.unwrap(), revoked);
}

#[tokio::test]
async fn tampered_foreign_and_unknown_tokens_say_nothing_exists() {
    let (store, keys) = (Links::default(), keys());
    let (link, token) = create_link(&store, &keys, &model(), &gallery(), request(7), "owner", NOW).await.unwrap();
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let other = ShareLinkId::new();
    let forged = token.replacen(&link.link_id.to_string(), &other.to_string(), 1);
    let foreign = ShareKeys::parse(&format!("k2:{}", "C".repeat(44))).unwrap().sign(&link.link_id);
    for bad in [String::from_utf8(flipped).unwrap(), forged, foreign, "x".into(), String::new(), format!("{token}.x")] {
        assert!(matches!(open_link(&store, &keys, &bad, NOW).await, Err(ShareError::NotFound)), "{bad:?}");
    }
    // A signed token for a link that does not exist is not found either.
    assert!(matches!(open_link(&store, &keys, &keys.sign(&other), NOW).await, Err(ShareError::NotFound)));
}

#[tokio::test]
async fn a_rotated_key_still_verifies_until_it_is_removed() {
    let store = Links::default();
    let old = ShareKeys::parse(&format!("k1:{}", "B".repeat(44))).unwrap();
    let (_, token) = create_link(&store, &old, &model(), &gallery(), request(7), "owner", NOW).await.unwrap();
    // k2 now signs; k1 still verifies.
    assert!(open_link(&store, &keys(), &token, NOW).await.is_ok());
    assert!(keys().sign(&ShareLinkId::new()).contains(".k2."));
    let without_k1 = ShareKeys::parse(&format!("k2:{}", "A".repeat(44))).unwrap();
    assert!(matches!(open_link(&store, &without_k1, &token, NOW).await, Err(ShareError::NotFound)));
}

#[tokio::test]
async fn requests_outside_the_rules_are_refused_with_their_field() {
    let (store, keys) = (Links::default(), keys());
    let mut cases = vec![(request(0), "expires_at"), (request(366), "expires_at"), (request(-1), "expires_at")];
    for recipient in [String::new(), "x".repeat(MAX_RECIPIENT_CHARS + 1), "a\u{7}b".into()] {
        cases.push((NewShareLink { recipient: Some(recipient), ..request(7) }, "recipient"));
    }
    for (req, field) in cases {
        match create_link(&store, &keys, &model(), &gallery(), req, "owner", NOW).await {
            Err(ShareError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
    assert!(store.links.lock().unwrap().is_empty());
    assert!(create_link(&store, &keys, &model(), &gallery(), request(365), "owner", NOW).await.is_ok());
}

#[tokio::test]
async fn another_models_link_is_not_found_and_revoking_a_model_ends_only_its_live_links() {
    let (store, keys) = (Links::default(), keys());
    let other = ModelId::parse("model-b").unwrap();
    let mut mine = Vec::new();
    for _ in 0..(*crate::ports::bounds::PAGE_SIZE.end() + 5) {
        mine.push(create_link(&store, &keys, &model(), &gallery(), request(7), "owner", NOW).await.unwrap().0);
    }
    let (theirs, _) = create_link(&store, &keys, &other, &gallery(), request(7), "owner", NOW).await.unwrap();
    assert!(matches!(get_link(&store, &other, &mine[0].link_id).await, Err(ShareError::NotFound)));
    assert!(matches!(revoke_link(&store, &other, &mine[0].link_id, "x", NOW).await, Err(ShareError::NotFound)));
    revoke_link(&store, &model(), &mine[1].link_id, "owner", NOW).await.unwrap();
    assert_eq!(revoke_model_links(&store, &model(), "admin", NOW).await.unwrap(), mine.len() as u64 - 1);
    for link in &mine {
        assert_eq!(store.get_link(&link.link_id).await.unwrap().state(NOW), LinkState::Revoked);
    }
    assert_eq!(store.get_link(&theirs.link_id).await.unwrap().state(NOW), LinkState::Active);
}

#[tokio::test]
async fn accesses_keep_a_keyed_hash_of_the_address_and_a_bounded_user_agent() {
    let (store, keys) = (Links::default(), keys());
    let (link, _) = create_link(&store, &keys, &model(), &gallery(), request(7), "owner", NOW).await.unwrap();
    let long = format!("Mozilla\u{0}{}", "x".repeat(2 * MAX_USER_AGENT_CHARS));
    let a = record_access(&store, &keys, &link, "203.0.113.9", Some(&long), NOW).await.unwrap();
    let b = record_access(&store, &keys, &link, "203.0.113.9", None, NOW).await.unwrap();
    let c = record_access(&store, &keys, &link, "198.51.100.1", None, NOW).await.unwrap();
    assert_eq!(a.client_hash, b.client_hash);
    assert_ne!(a.client_hash, c.client_hash);
    assert!(!a.client_hash.contains("203") && a.client_hash.len() == 32);
    let ua = a.user_agent.unwrap();
    assert!(ua.starts_with("Mozillax") && ua.chars().count() == MAX_USER_AGENT_CHARS);
    let page = list_accesses(&store, &model(), &link.link_id, 10, None).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(matches!(
        list_accesses(&store, &ModelId::parse("model-b").unwrap(), &link.link_id, 10, None).await,
        Err(ShareError::NotFound)
    ));
}

#[test]
fn key_rings_are_checked_and_never_shown() {
    assert_eq!(ShareKeys::parse("").unwrap_err(), KeyError::Empty);
    assert_eq!(ShareKeys::parse("nokey").unwrap_err(), KeyError::Malformed(1));
    assert_eq!(ShareKeys::parse("K1:AAAA").unwrap_err(), KeyError::Malformed(1));
    assert_eq!(ShareKeys::parse("k1:%%%").unwrap_err(), KeyError::NotBase64("k1".into()));
    assert_eq!(ShareKeys::parse("k1:AAAA").unwrap_err(), KeyError::TooShort("k1".into()));
    let key = "A".repeat(44);
    assert_eq!(ShareKeys::parse(&format!("k1:{key},k1:{key}")).unwrap_err(), KeyError::Duplicate("k1".into()));
    assert!(!format!("{:?}", keys()).contains(&key));
}
