//! [`ShareLinkStore`] on the media table. A link is read by its id alone (the token names it),
//! so it has a partition of its own, which also holds its access log:
//!
//! | item   | `PK`               | `SK`                        | holds                          |
//! |--------|--------------------|-----------------------------|--------------------------------|
//! | link   | `SHARE#{link_id}`  | `LINK`                      | the link, its GSI1/2 keys      |
//! | access | `SHARE#{link_id}`  | `ACCESS#{at_ms:013}#{ulid}` | one opening of the link        |
//!
//! | index | partition (`GSInPK`)                            | sort (`GSInSK`) | serves                    |
//! |-------|-------------------------------------------------|-----------------|---------------------------|
//! | GSI1  | `SHARES#MODEL#{model_id}#GALLERY#{gallery_id}`  | `{link_id}`     | a gallery's links         |
//! | GSI2  | `SHARES#MODEL#{model_id}`                       | `{link_id}`     | a model's links (revoking them all) |
//!
//! Link ids are lower-case ULIDs, so sort-key order is creation order. Every item carries
//! `expires_at_epoch` = the link's retention (its expiry plus 90 days), so a link and its log
//! expire together; past it they count as absent. A listing's cursor is its `LastEvaluatedKey`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use phoenix_domain::ports::{Page, ShareLinkStore, StoreError, StoreResult, bounds, cursor as envelope};
use phoenix_domain::shares::{ShareAccess, ShareLink};
use phoenix_domain::{GalleryId, ModelId, ShareLinkId};
use time::OffsetDateTime;

use super::DynamoMetadataStore;
use super::codec::{Item, n, s, table_key};
use super::cursor::page_of;
use super::jobs::StateOf;
use super::table::{GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, PK, SK, TTL_ATTRIBUTE};
use crate::aws::classify;
use crate::jobs::previous_version;
use crate::shares::{accesses_listing, links_listing};

const LINK_SK: &str = "LINK";
const ACCESS_PREFIX: &str = "ACCESS#";
/// Attributes of the layout, never part of a decoded link or access.
const STORAGE_ATTRIBUTES: [&str; 7] = [PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK, TTL_ATTRIBUTE];

fn link_pk(id: &ShareLinkId) -> String {
    format!("SHARE#{id}")
}

fn link_key(id: &ShareLinkId) -> Item {
    table_key(link_pk(id), LINK_SK.to_owned())
}

fn links_of_gallery(model: &ModelId, gallery: &GalleryId) -> String {
    format!("SHARES#MODEL#{}#GALLERY#{}", model.as_str(), gallery.as_str())
}

fn links_of_model(model: &ModelId) -> String {
    format!("SHARES#MODEL#{}", model.as_str())
}

fn link_item(link: &ShareLink) -> StoreResult<Item> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(link)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a share link cannot be encoded: {e}")))?;
    let id = link.link_id.to_string();
    item.extend(link_key(&link.link_id));
    item.insert(GSI1PK.to_owned(), s(links_of_gallery(&link.model_id, &link.gallery_id)));
    item.insert(GSI1SK.to_owned(), s(id.clone()));
    item.insert(GSI2PK.to_owned(), s(links_of_model(&link.model_id)));
    item.insert(GSI2SK.to_owned(), s(id));
    item.insert(TTL_ATTRIBUTE.to_owned(), n(link.retained_until().unix_timestamp()));
    Ok(item)
}

fn fields_of(item: &Item) -> Item {
    let mut fields = item.clone();
    for key in STORAGE_ATTRIBUTES {
        fields.remove(key);
    }
    fields
}

fn link_from_item(item: &Item) -> StoreResult<ShareLink> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(fields_of(item))
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a stored share link does not decode: {e}")))
}

fn access_from_item(item: &Item) -> StoreResult<ShareAccess> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(fields_of(item))
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a stored share access does not decode: {e}")))
}

fn link_state(item: &Item) -> StoreResult<(u64, OffsetDateTime)> {
    link_from_item(item).map(|link| (link.version, link.retained_until()))
}

fn link_is_live(link: &ShareLink, now: OffsetDateTime) -> bool {
    link.retained_until() > now
}

/// The `ExclusiveStartKey` of a cursor `listing` returned: exactly the attributes `names`, the
/// partition's value where given, and the table key `key_of` builds from them.
fn start_key(
    raw: &str,
    listing: &str,
    names: &[&str],
    fixed: &[(&str, &str)],
    valid: impl Fn(&BTreeMap<String, String>) -> bool,
) -> StoreResult<Item> {
    let key: BTreeMap<String, String> = envelope::decode(raw, listing)?;
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort_unstable();
    let ok = key.keys().map(String::as_str).eq(expected)
        && fixed.iter().all(|(name, value)| key.get(*name).map(String::as_str) == Some(*value))
        && valid(&key);
    if !ok {
        return Err(StoreError::Invalid("cursor is not one this listing returned".to_owned()));
    }
    Ok(key.into_iter().map(|(name, value)| (name, s(value))).collect())
}

#[async_trait]
impl ShareLinkStore for DynamoMetadataStore {
    async fn create_link(&self, link: &ShareLink) -> StoreResult<()> {
        if link.version != 1 {
            return Err(StoreError::Invalid(format!("a new link has version 1, not {}", link.version)));
        }
        self.create_item(link_item(link)?).await
    }

    async fn get_link(&self, id: &ShareLinkId) -> StoreResult<ShareLink> {
        self.get_live(link_key(id), link_from_item, link_is_live).await
    }

    async fn update_link(&self, link: &ShareLink) -> StoreResult<()> {
        let expected = previous_version(link.version)?;
        self.replace_item(link_item(link)?, link_key(&link.link_id), expected, link_state as StateOf).await
    }

    async fn list_links(
        &self,
        model: &ModelId,
        gallery: Option<&GalleryId>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<ShareLink>> {
        let limit = bounds::page_size(limit)?;
        let listing = links_listing(model, gallery);
        let (index, partition, sort, value) = match gallery {
            Some(gallery) => (GSI1, GSI1PK, GSI1SK, links_of_gallery(model, gallery)),
            None => (GSI2, GSI2PK, GSI2SK, links_of_model(model)),
        };
        let start = cursor
            .as_deref()
            .map(|raw| {
                start_key(raw, &listing, &[partition, sort, PK, SK], &[(partition, &value), (SK, LINK_SK)], |key| {
                    key.get(sort)
                        .and_then(|id| ShareLinkId::parse(id).ok())
                        .is_some_and(|id| key.get(PK) == Some(&link_pk(&id)))
                })
            })
            .transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", partition)
            .expression_attribute_values(":pk", s(value))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("dynamodb Query", e))?;
        page_of(&output, &listing, link_from_item, link_is_live)
    }

    async fn record_access(&self, link: &ShareLink, access: &ShareAccess) -> StoreResult<()> {
        if access.link_id != link.link_id {
            return Err(StoreError::Invalid("an access belongs to the link it is recorded with".into()));
        }
        let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(access)
            .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a share access cannot be encoded: {e}")))?;
        let at_ms = access.at.unix_timestamp_nanos() / 1_000_000;
        // The ULID keeps two accesses in one millisecond apart (and in order).
        let sort = format!("{ACCESS_PREFIX}{at_ms:013}#{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        item.extend(table_key(link_pk(&link.link_id), sort));
        item.insert(TTL_ATTRIBUTE.to_owned(), n(link.retained_until().unix_timestamp()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("dynamodb PutItem", e))
    }

    async fn list_accesses(
        &self,
        id: &ShareLinkId,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<ShareAccess>> {
        let limit = bounds::page_size(limit)?;
        let listing = accesses_listing(id);
        let pk = link_pk(id);
        let start = cursor
            .as_deref()
            .map(|raw| {
                start_key(raw, &listing, &[PK, SK], &[(PK, &pk)], |key| {
                    key.get(SK).is_some_and(|sort| sort.starts_with(ACCESS_PREFIX))
                })
            })
            .transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(ACCESS_PREFIX.to_owned()))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("dynamodb Query", e))?;
        // An access lives as long as its link: the item's TTL is the link's retention.
        let page = page_of(
            &output,
            &listing,
            |item| Ok((access_from_item(item)?, ttl_of(item))),
            |(_, ttl), now| ttl.is_none_or(|t| t > now.unix_timestamp()),
        )?;
        Ok(Page { items: page.items.into_iter().map(|(access, _)| access).collect(), next_cursor: page.next_cursor })
    }
}

fn ttl_of(item: &Item) -> Option<i64> {
    match item.get(TTL_ATTRIBUTE) {
        Some(aws_sdk_dynamodb::types::AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}
