//! [`GalleryStore`] on the media table. A gallery is one item (its sections and items as lists:
//! 2,000 media ids are ~60 KB, far below DynamoDB's 400 KB), and its slug a second item that
//! makes the slug unique per deployment:
//!
//! | item    | `PK`                   | `SK`      | holds                                  |
//! |---------|------------------------|-----------|----------------------------------------|
//! | gallery | `GALLERY#{gallery_id}` | `GALLERY` | the gallery, its GSI1 keys, `version`  |
//! | slug    | `SLUG#{slug}`          | `SLUG`    | `gallery_id`                           |
//!
//! | index | partition (`GSI1PK`)          | sort (`GSI1SK`) | serves                              |
//! |-------|-------------------------------|-----------------|-------------------------------------|
//! | GSI1  | `GALLERIES#MODEL#{model_id}`  | `{gallery_id}`  | a model's galleries, newest first   |
//! | GSI3  | `RIGHTS_DUE` (sparse)         | `{due}#{gallery_id}` | galleries whose current version shows a media whose usage rights expire at `due`: the rights sweep |
//!
//! Gallery ids are lower-case ULIDs, so sort-key order is creation order. Writes that touch the
//! slug are one TransactWriteItems: a create puts both items (each only if absent); an update
//! that changes the slug puts the gallery (conditional on its version), deletes the old slug item
//! (only if it names this gallery) and puts the new one (only if absent); a delete removes both.
//! An update that keeps the slug is one conditional PutItem.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use phoenix_domain::galleries::{Gallery, Slug};
use phoenix_domain::ports::{
    GalleryStore, Page, StoreError, StoreResult, bounds, cursor as envelope, galleries_listing,
};
use phoenix_domain::{GalleryId, ModelId};
use time::OffsetDateTime;

use super::DynamoMetadataStore;
use super::client::{Outcome, cancelled, condition_failed};
use super::codec::{Item, n, s, sortable, table_key};
use super::conditions::{Condition, raced};
use super::table::{GSI1, GSI1PK, GSI1SK, GSI3, GSI3PK, GSI3SK, PK, SK};
use crate::aws::classify;

const GALLERY_SK: &str = "GALLERY";
const SLUG_SK: &str = "SLUG";
const GALLERY_ID: &str = "gallery_id";
/// Attributes of the layout, never part of a decoded gallery.
const STORAGE_ATTRIBUTES: [&str; 6] = [PK, SK, GSI1PK, GSI1SK, GSI3PK, GSI3SK];
/// The `GSI3PK` of galleries with a usage-rights due date (apart from the trash's and the jobs'
/// partitions of GSI3).
const RIGHTS_DUE_PARTITION: &str = "RIGHTS_DUE";

fn gallery_key(id: &GalleryId) -> Item {
    table_key(format!("GALLERY#{id}"), GALLERY_SK.to_owned())
}

fn slug_key(slug: &Slug) -> Item {
    table_key(format!("SLUG#{slug}"), SLUG_SK.to_owned())
}

fn galleries_of(model: &ModelId) -> String {
    format!("GALLERIES#MODEL#{model}")
}

fn gallery_item(gallery: &Gallery) -> StoreResult<Item> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(gallery)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a gallery cannot be encoded: {e}")))?;
    item.extend(gallery_key(&gallery.gallery_id));
    item.insert(GSI1PK.to_owned(), s(galleries_of(&gallery.model_id)));
    item.insert(GSI1SK.to_owned(), s(gallery.gallery_id.to_string()));
    item.insert("version".to_owned(), n(gallery.version));
    if let Some(due) = gallery.rights_due_at() {
        item.insert(GSI3PK.to_owned(), s(RIGHTS_DUE_PARTITION.to_owned()));
        item.insert(GSI3SK.to_owned(), s(format!("{}#{}", sortable(due)?, gallery.gallery_id)));
    }
    Ok(item)
}

fn slug_item(gallery: &Gallery) -> Item {
    let mut item = slug_key(&gallery.slug);
    item.insert(GALLERY_ID.to_owned(), s(gallery.gallery_id.to_string()));
    item
}

fn from_item(item: &Item) -> StoreResult<Gallery> {
    let mut fields = item.clone();
    for key in STORAGE_ATTRIBUTES {
        fields.remove(key);
    }
    serde_dynamo::aws_sdk_dynamodb_1::from_item(fields)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a stored gallery does not decode: {e}")))
}

fn absent() -> Condition {
    Condition {
        expression: "attribute_not_exists(#pk)",
        names: [("#pk".to_owned(), PK.to_owned())].into(),
        values: Item::new(),
    }
}

fn at_version(version: u64) -> Condition {
    Condition {
        expression: "#version = :expected",
        names: [("#version".to_owned(), "version".to_owned())].into(),
        values: [(":expected".to_owned(), n(version))].into(),
    }
}

fn naming(id: &GalleryId) -> Condition {
    Condition {
        expression: "#gallery = :gallery",
        names: [("#gallery".to_owned(), GALLERY_ID.to_owned())].into(),
        values: [(":gallery".to_owned(), s(id.to_string()))].into(),
    }
}

impl DynamoMetadataStore {
    /// Why a write conditional on the gallery at `expected` was refused: `NotFound` or
    /// `VersionConflict` from the stored item (read when the refusal did not return it).
    async fn gallery_refusal(&self, stored: Option<Item>, id: &GalleryId, expected: u64) -> StoreError {
        let stored = match stored {
            Some(item) => Some(item),
            None => match self.get_raw(gallery_key(id)).await {
                Ok(item) => item,
                Err(e) => return e,
            },
        };
        match stored.as_ref().map(from_item) {
            None => StoreError::NotFound,
            Some(Err(e)) => e,
            Some(Ok(g)) if g.version != expected => StoreError::VersionConflict { current: Some(g.version) },
            Some(Ok(_)) => raced("gallery write"),
        }
    }
}

#[async_trait]
impl GalleryStore for DynamoMetadataStore {
    async fn create_gallery(&self, gallery: &Gallery) -> StoreResult<()> {
        let actions = vec![
            self.put_action(gallery_item(gallery)?, Some(absent()))?,
            self.put_action(slug_item(gallery), Some(absent()))?,
        ];
        match self.transact_reasons(actions).await? {
            None => Ok(()),
            Some(reasons) if reasons.iter().any(|r| condition_failed(Some(r))) => Err(StoreError::AlreadyExists),
            Some(reasons) => Err(cancelled(&reasons)),
        }
    }

    async fn get_gallery(&self, id: &GalleryId) -> StoreResult<Gallery> {
        let item = self.get_raw(gallery_key(id)).await?.ok_or(StoreError::NotFound)?;
        from_item(&item)
    }

    async fn gallery_id_by_slug(&self, slug: &Slug) -> StoreResult<GalleryId> {
        let item = self.get_raw(slug_key(slug)).await?.ok_or(StoreError::NotFound)?;
        match item.get(GALLERY_ID) {
            Some(AttributeValue::S(id)) => GalleryId::parse(id)
                .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a slug names a bad gallery id: {e}"))),
            _ => Err(StoreError::internal(anyhow::anyhow!("dynamodb: slug item {slug} names no gallery"))),
        }
    }

    async fn update_gallery(&self, gallery: &Gallery, previous_slug: &Slug) -> StoreResult<()> {
        let expected = gallery
            .version
            .checked_sub(1)
            .ok_or_else(|| StoreError::Invalid("a gallery's version starts at 1".into()))?;
        let item = gallery_item(gallery)?;
        let id = &gallery.gallery_id;
        if &gallery.slug == previous_slug {
            return match self.put_conditional(item, exists_at(expected)).await? {
                Outcome::Written => Ok(()),
                Outcome::Refused(stored) => Err(self.gallery_refusal(stored, id, expected).await),
            };
        }
        let actions = vec![
            self.put_action(item, Some(exists_at(expected)))?,
            self.delete_action(slug_key(previous_slug), Some(naming(id)))?,
            self.put_action(slug_item(gallery), Some(absent()))?,
        ];
        let Some(reasons) = self.transact_reasons(actions).await? else { return Ok(()) };
        if condition_failed(reasons.first()) {
            return Err(self.gallery_refusal(reasons[0].item().cloned(), id, expected).await);
        }
        if condition_failed(reasons.get(2)) {
            return Err(StoreError::AlreadyExists);
        }
        Err(cancelled(&reasons))
    }

    async fn delete_gallery(&self, gallery: &Gallery) -> StoreResult<()> {
        let id = &gallery.gallery_id;
        let actions = vec![
            self.delete_action(gallery_key(id), Some(exists_at(gallery.version)))?,
            self.delete_action(slug_key(&gallery.slug), Some(naming(id)))?,
        ];
        let Some(reasons) = self.transact_reasons(actions).await? else { return Ok(()) };
        if condition_failed(reasons.first()) {
            return Err(self.gallery_refusal(reasons[0].item().cloned(), id, gallery.version).await);
        }
        Err(cancelled(&reasons))
    }

    async fn list_galleries(
        &self,
        model: &ModelId,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<Gallery>> {
        let limit = bounds::page_size(limit)?;
        let listing = galleries_listing(model);
        let after = match cursor {
            Some(raw) => {
                let id: String = envelope::decode(&raw, &listing)?;
                Some(
                    GalleryId::parse(&id)
                        .map_err(|_| StoreError::Invalid("cursor is not one this listing returned".into()))?,
                )
            }
            None => None,
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .expression_attribute_names("#pk", GSI1PK)
            .expression_attribute_values(":pk", s(galleries_of(model)));
        query = match &after {
            Some(id) => query
                .key_condition_expression("#pk = :pk AND #sk < :after")
                .expression_attribute_names("#sk", GSI1SK)
                .expression_attribute_values(":after", s(id.to_string())),
            None => query.key_condition_expression("#pk = :pk"),
        };
        let output = query.send().await.map_err(|e| classify("dynamodb Query", e))?;
        let items = output.items().iter().map(from_item).collect::<StoreResult<Vec<Gallery>>>()?;
        let more = output.last_evaluated_key().is_some_and(|k| !k.is_empty());
        let next_cursor = match items.last() {
            Some(last) if more => Some(envelope::encode(&listing, &last.gallery_id.to_string())?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    async fn galleries_due(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<Gallery>> {
        let limit = bounds::page_size(limit)?;
        // Every key of an instant at or before `now` sorts at or below `{now}#~`.
        let high = format!("{}#~", sortable(now)?);
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI3)
            .key_condition_expression("#pk = :pk AND #sk <= :high")
            .expression_attribute_names("#pk", GSI3PK)
            .expression_attribute_names("#sk", GSI3SK)
            .expression_attribute_values(":pk", s(RIGHTS_DUE_PARTITION.to_owned()))
            .expression_attribute_values(":high", s(high))
            .scan_index_forward(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| classify("dynamodb Query", e))?;
        output.items().iter().map(from_item).collect()
    }
}

/// The gallery exists at `version`.
fn exists_at(version: u64) -> Condition {
    let mut condition = at_version(version);
    condition.expression = "attribute_exists(#pk) AND #version = :expected";
    condition.names.insert("#pk".to_owned(), PK.to_owned());
    condition
}
