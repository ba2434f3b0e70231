//! [`MediaStore`], [`FingerprintStore`], [`TombstoneStore`], and the job and idempotency stores
//! (so [`MetadataStore`](phoenix_domain::ports::MetadataStore)) on one DynamoDB table
//! (single-table design), as [`TABLE`] defines it. A model's media items share the partition
//! `PK = MODEL#{model_id}`:
//!
//! | item          | `SK`                                          | holds                                         |
//! |---------------|-----------------------------------------------|-----------------------------------------------|
//! | media record  | `MEDIA#{media_id}`                            | the record, GSI1 (and GSI2) keys, `index_keys` |
//! | tag entry     | `TAG#{tag}#{created}#{media_id}`              | a full copy of the record, no GSI keys        |
//! | gallery entry | `GALLERY#{gallery_id}#{created}#{media_id}`   | a full copy of the record, no GSI keys        |
//! | fingerprints  | `FINGERPRINTS`                                | `ph_{media_id}` = 16-hex pHash, one per media |
//! | tombstone     | `TOMBSTONE#{media_id}`                        | the deleted record's fields                   |
//!
//! `{created}` is `created_at` as RFC 3339 UTC with a fixed 9-digit fraction
//! (`2026-11-24T09:15:02.114000000Z`), so string order is time order. Attributes:
//!
//! | attribute          | type | value                                                                        |
//! |--------------------|------|------------------------------------------------------------------------------|
//! | `PK`               | S    | `MODEL#{model_id}`                                                           |
//! | `SK`               | S    | as above                                                                     |
//! | `GSI1PK`           | S    | `MODEL#{model_id}#STATUS#{status}` (media records only)                      |
//! | `GSI1SK`           | S    | `{created}#{media_id}` (media records only)                                  |
//! | `GSI2PK`           | S    | `MODEL#{model_id}#CATEGORY#{category}` (media records with a category only)  |
//! | `GSI2SK`           | S    | `{created}#{media_id}` (media records with a category only)                  |
//! | `GSI3PK`           | S    | `TRASH` (trashed media records only)                                         |
//! | `GSI3SK`           | S    | `{purge_after}#{model_id}#{media_id}` (trashed media records only)           |
//! | `index_keys`       | SS   | the `SK`s of the record's tag and gallery entries; absent when it has none   |
//! | `version`          | N    | the record's version; writes are conditional on it                           |
//! | `expires_at_epoch` | N    | unix seconds of `expires_at`, only when set (the TTL); on the entries too    |
//!
//! plus every field of the record as its own attribute (`serde_dynamo`). `GSI1` (`GSI1PK`,
//! `GSI1SK`) and the sparse `GSI2` (`GSI2PK`, `GSI2SK`) and `GSI3` (`GSI3PK`, `GSI3SK`) project
//! ALL. A trashed record (status `deleted`) keeps its GSI1 keys (the trash's listing) but has no
//! GSI2 keys and no index entries, so no other listing sees it; it is in GSI3's `TRASH`
//! partition, which the trash sweep reads by `purge_after` across models.
//!
//! Reads never scan and cost one call: a record is one GetItem, a batch (or a record with its
//! model's fingerprints) one BatchGetItem, a listing one Query returning full records newest
//! first: by gallery or tag on the base table's entries, by category on GSI2, by status on GSI1,
//! else the base table's `MEDIA#` items (media ids are ULIDs). The creation range bounds the sort
//! key; the other filters go into a FilterExpression, so a page may be short.
//!
//! Writes keep the entries in step with the record: a record without entries (before and after)
//! is one conditional PutItem; otherwise one TransactWriteItems puts the record and its entries
//! and deletes the stale ones. A delete is one transaction too (record, entries, fingerprint,
//! tombstone).
//!
//! Jobs and idempotency records live in the same table, each in a partition of its own, listed
//! through GSI1, GSI2 and GSI3 ([`jobs`]).
//!
//! Batches, their chunks and their item outcomes share a partition per batch, listed through
//! GSI1, GSI2 and GSI3 ([`batches`]).
//!
//! Limits ([`bounds`]) and the cursor envelope ([`phoenix_domain::ports::cursor`]) are the
//! domain's, as for every metadata adapter. The parts: [`table`] (the table as data, and its
//! creation), [`codec`] (keys and items), [`query`] (which index serves a listing), [`cursor`]
//! (positions in the envelope), [`conditions`] (condition expressions and transaction actions),
//! [`client`] (calls, retries, errors), [`jobs`] (the job and idempotency stores).

mod batches;
mod client;
mod codec;
mod conditions;
mod cursor;
mod galleries;
mod jobs;
mod marks;
mod query;
mod shares;
mod table;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use phoenix_domain::ports::{
    Fingerprint, FingerprintStore, MediaQuery, MediaStore, Page, StoreError, StoreResult, TombstoneStore, bounds,
};
use phoenix_domain::{MediaId, MediaRecord, ModelId};
use time::OffsetDateTime;

use self::client::Outcome;
use self::codec::{
    FINGERPRINTS_SK, Item, TRASH_PARTITION, decode_fingerprints, fingerprint_attribute, fingerprints_key, from_item,
    media_items, media_key, media_sk, pk, s, sort_key_of, sortable, table_key, tombstone_item, tombstone_key,
};
use self::conditions::{check_stored, create_condition, marked_put_condition, raced, version_condition};
use self::cursor::{check_cursor, decode_cursor, page_of};
use self::query::{filter_expression, plan};
pub use self::table::{IndexSpec, KeySpec, TABLE, TableSpec, create_table};
use super::classify;

#[derive(Debug, Clone)]
pub struct DynamoMetadataStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Test-only crash points (the conformance feature builds them; production never has one).
    #[cfg(feature = "conformance")]
    faults: marks::Faults,
}

impl DynamoMetadataStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(aws_sdk_dynamodb::Client::new(config), table)
    }

    pub fn from_client(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            #[cfg(feature = "conformance")]
            faults: marks::Faults::default(),
        }
    }

    /// Test only: the next `n` batch items written with a mark stop between the record and
    /// the outcome, as a crash there would (the write reports `Unavailable`).
    #[cfg(feature = "conformance")]
    pub fn crash_after_marked_puts(&self, n: usize) {
        self.faults.arm(n);
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

#[async_trait]
impl MediaStore for DynamoMetadataStore {
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()> {
        bounds::record(record)?;
        let (main, copies) = media_items(record)?;
        let condition = create_condition(OffsetDateTime::now_utc());
        let outcome = if copies.is_empty() {
            self.put_conditional(main, condition).await?
        } else {
            let mut actions = vec![self.put_action(main, Some(condition))?];
            for copy in copies {
                actions.push(self.put_action(copy, None)?);
            }
            self.transact(actions).await?
        };
        match outcome {
            Outcome::Written => Ok(()),
            Outcome::Refused(_) => Err(StoreError::AlreadyExists),
        }
    }

    async fn get_media(&self, model: &ModelId, media: &MediaId) -> StoreResult<MediaRecord> {
        let record = self.get_raw(media_key(model, media)).await?.map(|item| from_item(&item)).transpose()?;
        match record {
            Some(record) if !record.is_expired(OffsetDateTime::now_utc()) => Ok(record),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn batch_get_media(&self, keys: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>> {
        bounds::batch_keys(keys)?;
        let items = self.batch_get(keys.iter().map(|(model, media)| media_key(model, media)).collect()).await?;
        let now = OffsetDateTime::now_utc();
        let mut records = Vec::with_capacity(items.len());
        for item in &items {
            let record = from_item(item)?;
            if !record.is_expired(now) {
                records.push(record);
            }
        }
        Ok(records)
    }

    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()> {
        bounds::record(record)?;
        let expected = bounds::previous_version(record)?;
        let (model, media) = (&record.model_id, &record.media_id);
        let (main, copies) = media_items(record)?;
        let now = OffsetDateTime::now_utc();

        // Fast path, for records without index entries before and after (nor a batch mark):
        // one PutItem. A mark is settled and the write tried once more.
        let stored_keys = if copies.is_empty() {
            // Once a mark is settled, the write may replace it (the version guards which mark).
            let mut condition = version_condition(expected, now, true);
            let mut settled = false;
            loop {
                match self.put_conditional(main.clone(), condition).await? {
                    Outcome::Written => return Ok(()),
                    Outcome::Refused(stored) => {
                        // Without the old item (an emulator that ignores
                        // ReturnValuesOnConditionCheckFailure), read it.
                        let stored = match stored {
                            Some(item) => Some(item),
                            None => self.get_raw(media_key(model, media)).await?,
                        };
                        if !settled && self.settle_stored(stored.as_ref()).await? {
                            settled = true;
                            condition = marked_put_condition(expected, now);
                            continue;
                        }
                        let keys = self.refusal(stored, model, media, expected, now).await?;
                        if keys.is_empty() {
                            return Err(raced("PutItem"));
                        }
                        // The stored record has index entries: they must go with this write.
                        break keys;
                    }
                }
            }
        } else {
            let stored = self.get_raw(media_key(model, media)).await?;
            let keys = check_stored(stored.as_ref(), expected, now)?.1;
            // This write drops the mark it read (the version condition guards it): settle it.
            self.settle_stored(stored.as_ref()).await?;
            keys
        };

        // Slow path: the record, its current entries and the removal of the stale ones, at once.
        // The version condition also guards the stored index keys read above: any write since
        // changed the version.
        let actions = self.update_actions(record, (main, copies), &stored_keys, expected, now)?;
        match self.transact(actions).await? {
            Outcome::Written => Ok(()),
            Outcome::Refused(stored) => {
                self.refusal(stored, model, media, expected, now).await?;
                Err(raced("TransactWriteItems"))
            }
        }
    }

    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        let limit = bounds::page_size(query.limit)?;
        query.check()?;
        let listing = query.listing(model);
        let Some(range) = query.created_ms_range() else {
            // Nothing to read, but a cursor of another listing is refused all the same.
            if let Some(cursor) = &query.cursor {
                check_cursor(cursor, &listing)?;
            }
            return Ok(Page { items: Vec::new(), next_cursor: None });
        };
        let plan = plan(model, query, range);
        let start = query.cursor.as_deref().map(|cursor| decode_cursor(cursor, &listing, model, &plan)).transpose()?;

        let (partition, partition_value) = plan.partition.clone();
        let (sort, low, high) = plan.sort.clone();
        let mut names: HashMap<String, String> =
            [("#pk".to_owned(), partition.to_owned()), ("#sk".to_owned(), sort.to_owned())].into();
        let mut values: Item =
            [(":pk".to_owned(), s(partition_value)), (":low".to_owned(), s(low)), (":high".to_owned(), s(high))].into();
        let filter = filter_expression(query, &mut names, &mut values)?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(plan.index.map(str::to_owned))
            // Base-table listings read what was just written; GSIs cannot be read consistently.
            .consistent_read(plan.index.is_none())
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
            .set_filter_expression(filter)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("dynamodb Query", e))?;
        page_of(&output, &listing, from_item, |record, now| !record.is_expired(now))
    }

    async fn list_trash_due(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<MediaRecord>> {
        let limit = bounds::page_size(limit)?;
        // Every key of an instant at or before `now` sorts at or below `{now}#~` (model ids and
        // media ids are below `~`).
        let high = format!("{}#~", sortable(now)?);
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(table::GSI3)
            .key_condition_expression("#pk = :pk AND #sk <= :high")
            .expression_attribute_names("#pk", table::GSI3PK)
            .expression_attribute_names("#sk", table::GSI3SK)
            .expression_attribute_values(":pk", s(TRASH_PARTITION.to_owned()))
            .expression_attribute_values(":high", s(high))
            .scan_index_forward(true)
            .limit(limit as i32)
            .send()
            .await
            .map_err(|e| classify("dynamodb Query", e))?;
        output.items().iter().map(from_item).collect()
    }
}

#[async_trait]
impl FingerprintStore for DynamoMetadataStore {
    async fn get_media_with_fingerprints(
        &self,
        model: &ModelId,
        media: &MediaId,
    ) -> StoreResult<(MediaRecord, Vec<Fingerprint>)> {
        let items = self.batch_get(vec![media_key(model, media), fingerprints_key(model)]).await?;
        let wanted = media_sk(media);
        let mut record = None;
        let mut fingerprints = Vec::new();
        for item in &items {
            match sort_key_of(item) {
                Some(sk) if sk == wanted => record = Some(from_item(item)?),
                Some(FINGERPRINTS_SK) => fingerprints = decode_fingerprints(item),
                _ => {}
            }
        }
        match record {
            Some(record) if !record.is_expired(OffsetDateTime::now_utc()) => Ok((record, fingerprints)),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn put_fingerprint(&self, model: &ModelId, fingerprint: &Fingerprint) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(fingerprints_key(model)))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", fingerprint_attribute(&fingerprint.media_id))
            .expression_attribute_values(":v", s(fingerprint.phash.clone()))
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("dynamodb UpdateItem", e))
    }

    async fn remove_fingerprint(&self, model: &ModelId, media: &MediaId) -> StoreResult<()> {
        // Conditional on the item, so that removing from a model without fingerprints does not
        // create an empty item.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(fingerprints_key(model)))
            .update_expression("REMOVE #a")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#a", fingerprint_attribute(media))
            .expression_attribute_names("#pk", table::PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(classify("dynamodb UpdateItem", e)),
        }
    }
}

#[async_trait]
impl TombstoneStore for DynamoMetadataStore {
    async fn delete_media(&self, record: &MediaRecord) -> StoreResult<()> {
        let (model, media) = (&record.model_id, &record.media_id);
        let now = OffsetDateTime::now_utc();
        // The stored item names the index entries to delete (the caller's copy of the record
        // could differ), and whether the model's fingerprint item exists yet.
        let items = self.batch_get(vec![media_key(model, media), fingerprints_key(model)]).await?;
        let wanted = media_sk(media);
        let stored = items.iter().find(|item| sort_key_of(item) == Some(wanted.as_str()));
        let fingerprints_exist = items.iter().any(|item| sort_key_of(item) == Some(FINGERPRINTS_SK));
        let (stored_record, stored_keys) = check_stored(stored, record.version, now)?;
        // The record goes with the mark it carries (the version condition guards it): settle it.
        self.settle_stored(stored).await?;

        let mut actions =
            vec![self.delete_action(media_key(model, media), Some(version_condition(record.version, now, false)))?];
        for entry in &stored_keys {
            actions.push(self.delete_action(table_key(pk(model), entry.clone()), None)?);
        }
        actions.push(self.fingerprint_removal_action(model, media, fingerprints_exist)?);
        actions.push(self.put_action(tombstone_item(&stored_record)?, None)?);

        match self.transact(actions).await? {
            Outcome::Written => Ok(()),
            Outcome::Refused(stored) => {
                self.refusal(stored, model, media, record.version, now).await?;
                Err(raced("TransactWriteItems"))
            }
        }
    }

    async fn get_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<Option<MediaRecord>> {
        self.get_raw(tombstone_key(model, media)).await?.map(|item| from_item(&item)).transpose()
    }

    async fn remove_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(tombstone_key(model, media)))
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("dynamodb DeleteItem", e))
    }
}
