//! [`BatchStore`] on the media table. A batch, its chunks and its item outcomes share one
//! partition (a batch is read by its id alone; its items in place order):
//!
//! | item    | `PK`               | `SK`              | holds                                          |
//! |---------|--------------------|-------------------|------------------------------------------------|
//! | batch   | `BATCH#{batch_id}` | `BATCH`           | the batch, its GSI1/2/3 keys                   |
//! | chunk   | `BATCH#{batch_id}` | `CHUNK#{n:05}`    | one chunk: its media ids, then its counts      |
//! | outcome | `BATCH#{batch_id}` | `ITEM#{seq:05}`   | one item's outcome and undo values             |
//!
//! | index | partition (`GSInPK`)                          | sort (`GSInSK`) | serves                            |
//! |-------|-----------------------------------------------|-----------------|-----------------------------------|
//! | GSI1  | `BATCHES#MODEL#{model_id}`                    | `{batch_id}`    | a model's batches, newest first   |
//! | GSI2  | `BATCHES#MODEL#{model_id}#STATUS#{status}`    | `{batch_id}`    | counts per model and status       |
//! | GSI3  | `BATCHES#STATUS#{status}`                     | `{batch_id}`    | counts per status; every model's batches (below) |
//!
//! Batch ids are lower-case ULIDs, so sort-key order is submission order. Every item carries
//! `expires_at_epoch` = the batch's `expires_at` (the TTL, 90 days), so a batch and everything it
//! holds expire together; past it they count as absent. Only the batch item has GSI keys.
//!
//! Listing every model's batches reads GSI3 without a scan: one Query per status (newest first,
//! `Limit` = the page size, below the cursor's batch id), merged by batch id. Each status
//! contributes its newest `limit`, so the merge's newest `limit` are exactly the listing's; the
//! cursor is the last batch id of the page (every listing's cursor is a batch id, and a page
//! resumes with `GSInSK < :after`).
//!
//! An item whose media record has index entries (before or after) is one TransactWriteItems:
//! the record's conditional update with its index entries (the actions `update_media` builds)
//! and the `Put` of its outcome, conditional on there being none. Any other item's record is one
//! conditional PutItem carrying the outcome as its batch mark, and the outcome follows
//! ([`super::marks`]). The stored media items (index keys, marks) come from one BatchGetItem per
//! group; the version condition guards them. A group's writes run one after another; a failed
//! condition on the outcome is `AlreadyExists`, on the record `VersionConflict` or `NotFound`
//! (from the cancellation reasons, as for media updates).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, Select, WriteRequest};
use phoenix_domain::batches::{Batch, BatchChunk, BatchItem, BatchStatus, ItemOutcome};
use phoenix_domain::ports::{
    BatchQuery, BatchStore, ItemWrite, Page, StoreError, StoreResult, bounds, cursor as envelope,
};
use phoenix_domain::{BatchId, MediaId, ModelId};
use time::OffsetDateTime;

use super::DynamoMetadataStore;
use super::client::{Outcome, built, cancelled, condition_failed};
use super::codec::{Item, media_items, media_key, n, s, stored_index_keys, table_key};
use super::conditions::{create_condition, marked_put_condition, raced};
use super::cursor::page_of;
use super::marks::{BATCH_MARK, Mark};
use super::table::{GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, GSI3, GSI3PK, GSI3SK, PK, SK, TTL_ATTRIBUTE};
use crate::aws::classify;
use crate::batches::{MAX_SEQ, batch_is_live, check_seq, items_listing};
use crate::jobs::previous_version;

const BATCH_SK: &str = "BATCH";
const CHUNK_PREFIX: &str = "CHUNK#";
const ITEM_PREFIX: &str = "ITEM#";
/// Attributes of the layout, never part of a decoded batch, chunk or outcome.
const STORAGE_ATTRIBUTES: [&str; 9] = [PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK, GSI3PK, GSI3SK, TTL_ATTRIBUTE];
/// BatchWriteItem takes 25 puts a call; unprocessed ones are retried with backoff.
const BATCH_WRITE_SIZE: usize = 25;
const BATCH_WRITE_ATTEMPTS: u32 = 5;
const BATCH_WRITE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

fn batch_pk(id: &BatchId) -> String {
    format!("BATCH#{id}")
}

fn batch_key(id: &BatchId) -> Item {
    table_key(batch_pk(id), BATCH_SK.to_owned())
}

fn chunk_key(id: &BatchId, chunk: u32) -> Item {
    table_key(batch_pk(id), format!("{CHUNK_PREFIX}{chunk:05}"))
}

fn item_sk(seq: u32) -> String {
    format!("{ITEM_PREFIX}{seq:05}")
}

fn batches_of_model(model: &ModelId) -> String {
    format!("BATCHES#MODEL#{}", model.as_str())
}

fn batches_of_model_in(model: &ModelId, status: BatchStatus) -> String {
    format!("BATCHES#MODEL#{}#STATUS#{}", model.as_str(), status.as_str())
}

fn batches_in(status: BatchStatus) -> String {
    format!("BATCHES#STATUS#{}", status.as_str())
}

fn encode<T: serde::Serialize>(what: &str, value: &T) -> StoreResult<Item> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a {what} cannot be encoded: {e}")))
}

/// What an item holds. One that does not decode is our fault, not the caller's: `Internal`.
fn decode<T: serde::de::DeserializeOwned>(what: &str, item: &Item) -> StoreResult<T> {
    let mut fields = item.clone();
    for key in STORAGE_ATTRIBUTES {
        fields.remove(key);
    }
    serde_dynamo::aws_sdk_dynamodb_1::from_item(fields)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a stored {what} does not decode: {e}")))
}

/// The batch item: its fields, its keys (table and the three GSIs), TTL and version.
fn batch_item(batch: &Batch) -> StoreResult<Item> {
    let mut item = encode("batch", batch)?;
    let id = batch.batch_id.to_string();
    item.extend(batch_key(&batch.batch_id));
    item.insert(GSI1PK.to_owned(), s(batches_of_model(&batch.model_id)));
    item.insert(GSI1SK.to_owned(), s(id.clone()));
    item.insert(GSI2PK.to_owned(), s(batches_of_model_in(&batch.model_id, batch.status)));
    item.insert(GSI2SK.to_owned(), s(id.clone()));
    item.insert(GSI3PK.to_owned(), s(batches_in(batch.status)));
    item.insert(GSI3SK.to_owned(), s(id));
    item.insert(TTL_ATTRIBUTE.to_owned(), n(batch.expires_at.unix_timestamp()));
    item.insert("version".to_owned(), n(batch.version));
    Ok(item)
}

fn batch_from_item(item: &Item) -> StoreResult<Batch> {
    decode("batch", item)
}

fn batch_state(item: &Item) -> StoreResult<(u64, OffsetDateTime)> {
    batch_from_item(item).map(|batch| (batch.version, batch.expires_at))
}

fn chunk_item(chunk: &BatchChunk, expires: i64) -> StoreResult<Item> {
    let mut item = encode("batch chunk", chunk)?;
    item.extend(chunk_key(&chunk.batch_id, chunk.chunk));
    item.insert(TTL_ATTRIBUTE.to_owned(), n(expires));
    Ok(item)
}

pub(super) fn outcome_item(outcome: &BatchItem, expires: i64) -> StoreResult<Item> {
    let mut item = encode("batch item", outcome)?;
    item.insert(PK.to_owned(), s(batch_pk(&outcome.batch_id)));
    item.insert(SK.to_owned(), s(item_sk(outcome.seq)));
    item.insert(TTL_ATTRIBUTE.to_owned(), n(expires));
    Ok(item)
}

/// A stored chunk or outcome with its TTL (unix seconds): past it, it counts as absent.
struct Expiring<T> {
    value: T,
    expires: i64,
}

fn expiry_of(item: &Item) -> i64 {
    match item.get(TTL_ATTRIBUTE) {
        Some(AttributeValue::N(raw)) => raw.parse().unwrap_or(i64::MAX),
        _ => i64::MAX,
    }
}

fn chunk_entry(item: &Item) -> StoreResult<Expiring<BatchChunk>> {
    Ok(Expiring { value: decode("batch chunk", item)?, expires: expiry_of(item) })
}

fn outcome_entry(item: &Item) -> StoreResult<Expiring<BatchItem>> {
    Ok(Expiring { value: decode("batch item", item)?, expires: expiry_of(item) })
}

fn live<T>(entry: &Expiring<T>, now: OffsetDateTime) -> bool {
    entry.expires > now.unix_timestamp()
}

/// The live values among `items` (a Query's), decoded.
fn live_values<T>(items: &[Item], entry: fn(&Item) -> StoreResult<Expiring<T>>) -> StoreResult<Vec<T>> {
    let now = OffsetDateTime::now_utc();
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        let decoded = entry(item)?;
        if live(&decoded, now) {
            values.push(decoded.value);
        }
    }
    Ok(values)
}

/// The `ExclusiveStartKey` of an item cursor this listing returned: exactly the table's keys,
/// of an outcome of this batch.
fn decode_item_cursor(raw: &str, listing: &str, id: &BatchId) -> StoreResult<Item> {
    let key: BTreeMap<String, String> = envelope::decode(raw, listing)?;
    let valid = key.len() == 2
        && key.get(PK) == Some(&batch_pk(id))
        && key.get(SK).is_some_and(|sk| sk.strip_prefix(ITEM_PREFIX).is_some_and(|n| n.parse::<u32>().is_ok()));
    if !valid {
        return Err(StoreError::Invalid("cursor is not one this listing returned".to_owned()));
    }
    Ok(key.into_iter().map(|(name, value)| (name, s(value))).collect())
}

/// One index partition of batches, newest first.
struct Partition {
    index: &'static str,
    name: &'static str,
    sort: &'static str,
    value: String,
}

/// What one partition's Query gave: its batches (live or not), and the batch id below which it
/// has not looked (`None` when it read to the end).
struct Slice {
    batches: Vec<Batch>,
    unread_below: Option<BatchId>,
}

impl DynamoMetadataStore {
    /// The batch's expiry (unix seconds) if it is live.
    async fn live_expiry(&self, id: &BatchId) -> StoreResult<Option<i64>> {
        match self.get_batch(id).await {
            Ok(batch) => Ok(Some(batch.expires_at.unix_timestamp())),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts `items` with BatchWriteItem, 25 a call, retrying unprocessed ones with backoff.
    async fn put_all(&self, items: Vec<Item>) -> StoreResult<()> {
        for group in items.chunks(BATCH_WRITE_SIZE) {
            let mut pending = group
                .iter()
                .map(|item| {
                    let put = built(PutRequest::builder().set_item(Some(item.clone())).build())?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let mut delay = BATCH_WRITE_BACKOFF;
            for attempt in 0..BATCH_WRITE_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| classify("dynamodb BatchWriteItem", e))?;
                pending =
                    output.unprocessed_items.and_then(|mut tables| tables.remove(&self.table)).unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(anyhow::anyhow!(
                    "dynamodb BatchWriteItem: {} items still unprocessed after {BATCH_WRITE_ATTEMPTS} attempts",
                    pending.len()
                )));
            }
        }
        Ok(())
    }

    /// Every item of a batch's partition whose `SK` is in `low..=high`, in order (consistent).
    async fn query_range(&self, id: &BatchId, low: String, high: String) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(batch_pk(id)))
                .expression_attribute_values(":low", s(low.clone()))
                .expression_attribute_values(":high", s(high.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("dynamodb Query", e))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// The stored media item of each write of a group (one BatchGetItem per 100), by media:
    /// its index keys and its batch mark are what the write must go with.
    async fn stored_items(&self, writes: &[ItemWrite]) -> StoreResult<HashMap<(ModelId, MediaId), Item>> {
        let mut wanted: Vec<(ModelId, MediaId)> =
            writes.iter().map(|w| (w.item.model_id.clone(), w.item.media_id)).collect();
        wanted.sort();
        wanted.dedup();
        let mut stored: HashMap<(ModelId, MediaId), Item> = HashMap::new();
        for part in wanted.chunks(bounds::MAX_BATCH_GET) {
            for item in self.batch_get(part.iter().map(|(model, media)| media_key(model, media)).collect()).await? {
                let record = super::codec::from_item(&item)?;
                stored.insert((record.model_id, record.media_id), item);
            }
        }
        Ok(stored)
    }

    /// One item's write, `stored` the media item as the group read it:
    /// - if the stored item carries this item's own mark, the item was applied by an earlier
    ///   delivery whose outcome was not written: it is settled, and `AlreadyExists`;
    /// - without a record, a conditional PutItem of the outcome;
    /// - with a record that has no index entries before or after, one PutItem of the record
    ///   carrying the outcome as its mark, then the outcome ([`super::marks`]);
    /// - otherwise one TransactWriteItems of the record's update and the outcome's `Put`.
    ///
    /// A record write first settles a mark the stored item carries (it would drop it).
    async fn write_one(&self, write: &ItemWrite, expires: i64, stored: Option<&Item>) -> StoreResult<()> {
        let now = OffsetDateTime::now_utc();
        let mark = stored.map(Mark::of).transpose()?.flatten();
        if let Some(mark) = mark.as_ref().filter(|mark| mark.is_of(&write.item)) {
            self.settle(mark).await?;
            return Err(StoreError::AlreadyExists);
        }
        let outcome = outcome_item(&write.item, expires)?;
        let Some(record) = &write.record else {
            return self.create_item(outcome).await;
        };
        if let Some(mark) = &mark {
            self.settle(mark).await?;
        }
        let expected = bounds::previous_version(record)?;
        let stored_keys = stored.map(stored_index_keys).unwrap_or_default();
        let (mut main, copies) = media_items(record)?;
        if copies.is_empty() && stored_keys.is_empty() {
            main.insert(BATCH_MARK.to_owned(), Mark { item: write.item.clone(), expires }.value()?);
            return match self.put_conditional(main, marked_put_condition(expected, now)).await? {
                Outcome::Written => {
                    #[cfg(feature = "conformance")]
                    self.faults.after_marked_put()?;
                    // Another delivery may have settled the mark already: the same outcome.
                    match self.create_item(outcome).await {
                        Ok(()) | Err(StoreError::AlreadyExists) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                Outcome::Refused(returned) => {
                    self.refusal(returned, &record.model_id, &record.media_id, expected, now).await?;
                    Err(raced("PutItem"))
                }
            };
        }
        let mut actions = self.update_actions(record, (main, copies), &stored_keys, expected, now)?;
        actions.push(self.put_action(outcome, Some(create_condition(now)))?);
        let Some(reasons) = self.transact_reasons(actions).await? else {
            return Ok(());
        };
        // The outcome exists (a redelivered chunk): whatever the record's state, nothing is written.
        if condition_failed(reasons.last()) {
            return Err(StoreError::AlreadyExists);
        }
        if condition_failed(reasons.first()) {
            let returned = reasons[0].item().cloned();
            self.refusal(returned, &record.model_id, &record.media_id, expected, now).await?;
            return Err(raced("TransactWriteItems"));
        }
        Err(cancelled(&reasons))
    }

    /// One item's write after its checks: its place, its record's bounds, its batch's expiry
    /// and the stored media item (the group's reads, whose failures each write reports).
    async fn write_checked(
        &self,
        write: &ItemWrite,
        expiry: &StoreResult<Option<i64>>,
        stored: &StoreResult<HashMap<(ModelId, MediaId), Item>>,
    ) -> StoreResult<()> {
        check_seq(write.item.seq)?;
        if let Some(record) = &write.record {
            bounds::record(record)?;
        }
        let expires = match expiry {
            Ok(Some(expires)) => *expires,
            Ok(None) => return Err(StoreError::NotFound),
            Err(e) => return Err(StoreError::unavailable(anyhow::anyhow!("reading the batch: {e}"))),
        };
        let item = match stored {
            Ok(items) => items.get(&(write.item.model_id.clone(), write.item.media_id)),
            Err(e) => return Err(StoreError::unavailable(anyhow::anyhow!("reading the records: {e}"))),
        };
        self.write_one(write, expires, item).await
    }

    /// A page of one partition's batches, newest first, below `after`.
    async fn batches_slice(&self, partition: &Partition, after: Option<BatchId>, limit: usize) -> StoreResult<Slice> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(partition.index)
            .expression_attribute_names("#pk", partition.name)
            .expression_attribute_values(":pk", s(partition.value.clone()))
            .scan_index_forward(false)
            .limit(limit as i32);
        request = match after {
            Some(after) => request
                .key_condition_expression("#pk = :pk AND #sk < :after")
                .expression_attribute_names("#sk", partition.sort)
                .expression_attribute_values(":after", s(after.to_string())),
            None => request.key_condition_expression("#pk = :pk"),
        };
        let output = request.send().await.map_err(|e| classify("dynamodb Query", e))?;
        let batches = output.items().iter().map(batch_from_item).collect::<StoreResult<Vec<_>>>()?;
        let unread_below = match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => match key.get(partition.sort) {
                Some(AttributeValue::S(id)) => Some(BatchId::parse(id).map_err(|e| {
                    StoreError::internal(anyhow::anyhow!("dynamodb Query: a batch key {id:?} is not a batch id: {e}"))
                })?),
                _ => {
                    return Err(StoreError::internal(anyhow::anyhow!(
                        "dynamodb Query: no {} in LastEvaluatedKey",
                        partition.sort
                    )));
                }
            },
            _ => None,
        };
        Ok(Slice { batches, unread_below })
    }

    /// Counts (Select=COUNT, following every page) the live batches of one index partition.
    async fn count_partition(&self, index: &str, name: &str, value: String) -> StoreResult<u64> {
        let now = OffsetDateTime::now_utc();
        let mut total = 0u64;
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .select(Select::Count)
                .key_condition_expression("#pk = :pk")
                .filter_expression("#ttl > :now")
                .expression_attribute_names("#pk", name)
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":pk", s(value.clone()))
                .expression_attribute_values(":now", n(now.unix_timestamp()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("dynamodb Query", e))?;
            total += u64::try_from(output.count()).unwrap_or_default();
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }
}

/// The page of a listing merged from `slices` (each a partition's newest first): the newest
/// `limit` of what is known in order, and a cursor after the last of them when more may follow.
fn merge(slices: Vec<Slice>, limit: usize, listing: &str) -> StoreResult<Page<Batch>> {
    // Below the highest id some partition has not read past, the merge's order is unknown.
    let floor = slices.iter().filter_map(|slice| slice.unread_below).max();
    let mut all: Vec<Batch> = slices.into_iter().flat_map(|slice| slice.batches).collect();
    all.sort_by_key(|batch| std::cmp::Reverse(batch.batch_id));
    let known = all.iter().take_while(|batch| floor.is_none_or(|floor| batch.batch_id >= floor)).count();
    let more = floor.is_some() || all.len() > limit;
    all.truncate(known.min(limit));
    let next_cursor = match all.last() {
        Some(last) if more => Some(envelope::encode(listing, &last.batch_id)?),
        _ => None,
    };
    let now = OffsetDateTime::now_utc();
    all.retain(|batch| batch_is_live(batch, now));
    Ok(Page { items: all, next_cursor })
}

#[async_trait]
impl BatchStore for DynamoMetadataStore {
    async fn create_batch(&self, batch: &Batch, chunks: &[BatchChunk]) -> StoreResult<()> {
        let expires = batch.expires_at.unix_timestamp();
        let chunk_items = chunks.iter().map(|chunk| chunk_item(chunk, expires)).collect::<StoreResult<Vec<_>>>()?;
        self.create_item(batch_item(batch)?).await?;
        self.put_all(chunk_items).await
    }

    async fn get_batch(&self, id: &BatchId) -> StoreResult<Batch> {
        self.get_live(batch_key(id), batch_from_item, batch_is_live).await
    }

    async fn update_batch(&self, batch: &Batch) -> StoreResult<()> {
        let expected = previous_version(batch.version)?;
        self.replace_item(batch_item(batch)?, batch_key(&batch.batch_id), expected, batch_state).await
    }

    async fn get_chunk(&self, id: &BatchId, chunk: u32) -> StoreResult<BatchChunk> {
        self.get_live(chunk_key(id, chunk), chunk_entry, live).await.map(|entry| entry.value)
    }

    async fn put_chunk_counts(&self, chunk: &BatchChunk) -> StoreResult<()> {
        let now = OffsetDateTime::now_utc();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(chunk_key(&chunk.batch_id, chunk.chunk)))
            .condition_expression("attribute_exists(#pk) AND #ttl > :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#counts", "counts")
            .expression_attribute_values(":now", n(now.unix_timestamp()));
        request = match &chunk.counts {
            Some(counts) => {
                let value = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(counts)
                    .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: counts cannot be encoded: {e}")))?;
                request.update_expression("SET #counts = :counts").expression_attribute_values(":counts", value)
            }
            None => request.update_expression("REMOVE #counts"),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(classify("dynamodb UpdateItem", e)),
        }
    }

    async fn list_chunks(&self, id: &BatchId) -> StoreResult<Vec<BatchChunk>> {
        let items = self.query_range(id, format!("{CHUNK_PREFIX}0"), format!("{CHUNK_PREFIX}~")).await?;
        live_values(&items, chunk_entry)
    }

    async fn get_items(&self, id: &BatchId, from: u32, to: u32) -> StoreResult<Vec<BatchItem>> {
        let to = to.min(MAX_SEQ + 1);
        if from >= to {
            return Ok(Vec::new());
        }
        let items = self.query_range(id, item_sk(from), item_sk(to - 1)).await?;
        live_values(&items, outcome_entry)
    }

    async fn get_item(&self, id: &BatchId, seq: u32) -> StoreResult<BatchItem> {
        check_seq(seq)?;
        let key = table_key(batch_pk(id), item_sk(seq));
        self.get_live(key, outcome_entry, live).await.map(|entry| entry.value)
    }

    async fn write_items(&self, writes: &[ItemWrite]) -> Vec<StoreResult<()>> {
        // Each batch's expiry (the items' TTL), read once; a batch that is gone takes no items.
        let mut expiries: HashMap<BatchId, StoreResult<Option<i64>>> = HashMap::new();
        for write in writes {
            if let std::collections::hash_map::Entry::Vacant(slot) = expiries.entry(write.item.batch_id) {
                slot.insert(self.live_expiry(&write.item.batch_id).await);
            }
        }
        let stored = self.stored_items(writes).await;
        // One after another: a group is one chunk, and chunks are applied in parallel by their
        // own deliveries. (Concurrent transactions on one table would also break moto, which
        // rolls a cancelled transaction back by restoring a copy of the whole table.)
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            results.push(self.write_checked(write, &expiries[&write.item.batch_id], &stored).await);
        }
        results
    }

    async fn revise_item(&self, item: &BatchItem, from: ItemOutcome) -> StoreResult<()> {
        check_seq(item.seq)?;
        let Some(expires) = self.live_expiry(&item.batch_id).await? else { return Err(StoreError::NotFound) };
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(outcome_item(item, expires)?))
            .condition_expression("attribute_exists(#pk) AND #outcome = :from")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_values(":from", s(from.as_str().to_owned()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                match self.get_item(&item.batch_id, item.seq).await {
                    Ok(_) => Err(StoreError::VersionConflict { current: None }),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(classify("dynamodb PutItem", e)),
        }
    }

    async fn list_items(
        &self,
        id: &BatchId,
        outcome: Option<ItemOutcome>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<BatchItem>> {
        let limit = bounds::page_size(limit)?;
        let listing = items_listing(id, outcome);
        let start = cursor.as_deref().map(|raw| decode_item_cursor(raw, &listing, id)).transpose()?;
        let mut names: HashMap<String, String> = [("#pk", PK), ("#sk", SK), ("#ttl", TTL_ATTRIBUTE)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut values: Item = [
            (":pk".to_owned(), s(batch_pk(id))),
            (":prefix".to_owned(), s(ITEM_PREFIX.to_owned())),
            (":now".to_owned(), n(OffsetDateTime::now_utc().unix_timestamp())),
        ]
        .into();
        let mut filter = String::from("#ttl > :now");
        if let Some(outcome) = outcome {
            names.insert("#outcome".to_owned(), "outcome".to_owned());
            values.insert(":outcome".to_owned(), s(outcome.as_str().to_owned()));
            filter.push_str(" AND #outcome = :outcome");
        }
        // `Limit` counts items before the filter: a page may be short, with a cursor to follow.
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .filter_expression(filter)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("dynamodb Query", e))?;
        page_of(&output, &listing, |item| decode("batch item", item), |_, _| true)
    }

    async fn list_batches(&self, query: &BatchQuery) -> StoreResult<Page<Batch>> {
        let limit = bounds::page_size(query.limit)?;
        let listing = query.listing();
        let after: Option<BatchId> = query.cursor.as_deref().map(|raw| envelope::decode(raw, &listing)).transpose()?;
        let partitions: Vec<Partition> = match &query.model {
            Some(model) => vec![Partition { index: GSI1, name: GSI1PK, sort: GSI1SK, value: batches_of_model(model) }],
            None => BatchStatus::ALL
                .into_iter()
                .map(|status| Partition { index: GSI3, name: GSI3PK, sort: GSI3SK, value: batches_in(status) })
                .collect(),
        };
        let slices = futures::future::try_join_all(
            partitions.iter().map(|partition| self.batches_slice(partition, after, limit)),
        )
        .await?;
        merge(slices, limit, &listing)
    }

    async fn count_batches(&self, model: Option<&ModelId>, status: BatchStatus) -> StoreResult<u64> {
        match model {
            Some(model) => self.count_partition(GSI2, GSI2PK, batches_of_model_in(model, status)).await,
            None => self.count_partition(GSI3, GSI3PK, batches_in(status)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cursor::encode_cursor;
    use super::*;

    fn sample() -> Batch {
        crate::conformance::sample_batch(&ModelId::parse("m1").unwrap(), BatchStatus::Running)
    }

    #[test]
    fn batch_items_carry_every_key_and_round_trip() {
        let batch = sample();
        let id = batch.batch_id.to_string();
        let item = batch_item(&batch).unwrap();
        assert_eq!(item[PK], s(format!("BATCH#{id}")));
        assert_eq!(item[SK], s("BATCH".to_owned()));
        assert_eq!(item[GSI1PK], s("BATCHES#MODEL#m1".to_owned()));
        assert_eq!(item[GSI2PK], s("BATCHES#MODEL#m1#STATUS#running".to_owned()));
        assert_eq!(item[GSI3PK], s("BATCHES#STATUS#running".to_owned()));
        for sort in [GSI1SK, GSI2SK, GSI3SK] {
            assert_eq!(item[sort], s(id.clone()), "{sort} is the batch id");
        }
        assert_eq!(item[TTL_ATTRIBUTE], n(batch.expires_at.unix_timestamp()));
        assert_eq!(batch_from_item(&item).unwrap(), batch);
    }

    #[test]
    fn chunks_and_outcomes_sort_by_place_and_expire_with_the_batch() {
        let batch = sample();
        let expires = batch.expires_at.unix_timestamp();
        let chunk = crate::conformance::sample_chunks(&batch, 150).remove(1);
        let item = chunk_item(&chunk, expires).unwrap();
        assert_eq!(item[SK], s("CHUNK#00001".to_owned()));
        assert_eq!(item[TTL_ATTRIBUTE], n(expires));
        assert!(!item.contains_key(GSI1PK), "only the batch is listed");
        assert_eq!(chunk_entry(&item).unwrap().value, chunk);
        let outcome = crate::conformance::sample_outcome(&batch, 42, ItemOutcome::Applied);
        let item = outcome_item(&outcome, expires).unwrap();
        assert_eq!(item[SK], s("ITEM#00042".to_owned()));
        assert!(item_sk(9) < item_sk(10) && item_sk(10) < item_sk(MAX_SEQ));
        let entry = outcome_entry(&item).unwrap();
        assert_eq!((entry.value, entry.expires), (outcome, expires));
    }

    #[test]
    fn item_cursors_belong_to_their_batch() {
        let id = BatchId::new();
        let listing = items_listing(&id, None);
        let key = table_key(batch_pk(&id), item_sk(7));
        let raw = encode_cursor(&listing, &key).unwrap();
        assert_eq!(decode_item_cursor(&raw, &listing, &id).unwrap(), key);
        let other = BatchId::new();
        assert!(matches!(decode_item_cursor(&raw, &items_listing(&other, None), &other), Err(StoreError::Invalid(_))));
        let forged = encode_cursor(&listing, &table_key(batch_pk(&other), item_sk(7))).unwrap();
        assert!(matches!(decode_item_cursor(&forged, &listing, &id), Err(StoreError::Invalid(_))));
        let chunk = encode_cursor(&listing, &chunk_key(&id, 1)).unwrap();
        assert!(matches!(decode_item_cursor(&chunk, &listing, &id), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn a_merge_keeps_only_what_every_partition_has_read_past() {
        let model = ModelId::parse("m1").unwrap();
        let mut made: Vec<Batch> =
            (0..6).map(|_| crate::conformance::sample_batch(&model, BatchStatus::Completed)).collect();
        made.sort_by_key(|b| b.batch_id);
        let ids = |page: &Page<Batch>| page.items.iter().map(|b| b.batch_id).collect::<Vec<_>>();
        // Two partitions read to the end: the newest `limit`, and a cursor if more are known.
        let slices = vec![
            Slice { batches: vec![made[5].clone(), made[2].clone()], unread_below: None },
            Slice { batches: vec![made[4].clone(), made[3].clone()], unread_below: None },
        ];
        let page = merge(slices, 3, "l").unwrap();
        assert_eq!(ids(&page), [made[5].batch_id, made[4].batch_id, made[3].batch_id]);
        assert_eq!(envelope::decode::<BatchId>(page.next_cursor.as_deref().unwrap(), "l").unwrap(), made[3].batch_id);
        // A partition that stopped at made[4]: nothing below it is certain yet.
        let slices = vec![
            Slice { batches: vec![made[5].clone(), made[4].clone()], unread_below: Some(made[4].batch_id) },
            Slice { batches: vec![made[3].clone()], unread_below: None },
        ];
        let page = merge(slices, 3, "l").unwrap();
        assert_eq!(ids(&page), [made[5].batch_id, made[4].batch_id]);
        assert!(page.next_cursor.is_some());
        let page = merge(vec![Slice { batches: vec![made[1].clone()], unread_below: None }], 3, "l").unwrap();
        assert_eq!((ids(&page), page.next_cursor), (vec![made[1].batch_id], None));
    }
}
