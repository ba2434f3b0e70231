//! [`MetadataStore`] on one DynamoDB table (single-table design). A model's items share the
//! partition `PK = MODEL#{model_id}`:
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
//! | `index_keys`       | SS   | the `SK`s of the record's tag and gallery entries; absent when it has none   |
//! | `version`          | N    | the record's version; writes are conditional on it                           |
//! | `expires_at_epoch` | N    | unix seconds of `expires_at`, only when set (the TTL); on the entries too    |
//!
//! plus every field of the record as its own attribute (`serde_dynamo`). `GSI1` (`GSI1PK`,
//! `GSI1SK`) and the sparse `GSI2` (`GSI2PK`, `GSI2SK`) project ALL.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use aws_smithy_types::error::operation::BuildError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use phoenix_domain::media::{MAX_GALLERIES, MAX_TAGS};
use phoenix_domain::ports::{Fingerprint, ListIndex, MediaQuery, MetadataStore, Page, StoreError, StoreResult};
use phoenix_domain::{Category, GalleryId, MediaId, MediaRecord, MediaStatus, ModelId, Tag};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use super::classify;

type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "PK";
pub(crate) const SK: &str = "SK";
pub(crate) const GSI1: &str = "GSI1";
pub(crate) const GSI1PK: &str = "GSI1PK";
pub(crate) const GSI1SK: &str = "GSI1SK";
pub(crate) const GSI2: &str = "GSI2";
pub(crate) const GSI2PK: &str = "GSI2PK";
pub(crate) const GSI2SK: &str = "GSI2SK";
pub(crate) const TTL_ATTRIBUTE: &str = "expires_at_epoch";
/// On a media item: the `SK`s of its index entries, so a write knows which copies to replace.
const INDEX_KEYS: &str = "index_keys";
const VERSION: &str = "version";
/// Attributes that only the storage layout needs: never part of a decoded record.
const STORAGE_ATTRIBUTES: [&str; 8] = [PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK, TTL_ATTRIBUTE, INDEX_KEYS];

const MEDIA_PREFIX: &str = "MEDIA#";
/// One item per model holds every fingerprint (one read gets them all); at ~50 bytes a media,
/// DynamoDB's 400 KB item limit allows about 8,000 fingerprinted media per model.
const FINGERPRINTS_SK: &str = "FINGERPRINTS";
const FINGERPRINT_PREFIX: &str = "ph_";

/// RFC 3339 in UTC with a fixed-width fraction, so that the strings sort as the instants do.
const SORTABLE_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

const MAX_PAGE: usize = 100;
/// BatchGetItem's limit.
const MAX_BATCH_GET: usize = 100;
/// BatchGetItem may leave keys unprocessed (throttling, 16 MB responses): retried this many
/// times in all, waiting `BATCH_BACKOFF` and doubling between attempts.
const BATCH_ATTEMPTS: u32 = 5;
const BATCH_BACKOFF: Duration = Duration::from_millis(50);

/// The cancellation reason DynamoDB gives an action whose condition failed.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

#[derive(Debug, Clone)]
pub struct DynamoMetadataStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// How a conditional write went: written, or refused by the media item's condition (with the
/// stored item when DynamoDB returned it).
enum Outcome {
    Written,
    Refused(Option<Item>),
}

impl DynamoMetadataStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(aws_sdk_dynamodb::Client::new(config), table)
    }

    pub fn from_client(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get_raw(&self, key: Item) -> StoreResult<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb GetItem", e))?;
        Ok(output.item)
    }

    async fn get_consistent(&self, model: &ModelId, media: &MediaId) -> StoreResult<Option<MediaRecord>> {
        self.get_raw(media_key(model, media)).await?.map(|item| from_item(&item)).transpose()
    }

    /// The items among `keys` (consistent reads) in one BatchGetItem, retrying unprocessed keys
    /// with backoff; `Unavailable` if some are still unprocessed after the last attempt.
    async fn batch_get(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        let mut pending = keys;
        let mut found = Vec::new();
        let mut delay = BATCH_BACKOFF;
        for attempt in 0..BATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            let request = built(KeysAndAttributes::builder().set_keys(Some(pending)).consistent_read(true).build())?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| classify("dynamodb BatchGetItem", e))?;
            found.extend(output.responses.and_then(|mut tables| tables.remove(&self.table)).unwrap_or_default());
            pending = output
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(found);
            }
        }
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "dynamodb BatchGetItem: {} keys still unprocessed after {BATCH_ATTEMPTS} attempts",
            pending.len()
        )))
    }

    /// One conditional PutItem; a failed condition returns the stored item (ALL_OLD) if any.
    async fn put_conditional(&self, item: Item, condition: Condition) -> StoreResult<Outcome> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(condition.names))
            .set_expression_attribute_values(Some(condition.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Outcome::Written),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Outcome::Refused(failed.item.clone()))
                }
                _ => Err(classify("dynamodb PutItem", e)),
            },
        }
    }

    /// One TransactWriteItems whose first action is the conditional write of the media item.
    /// Only that action's condition is reported as `Refused`; any other cancellation (a
    /// concurrent transaction, a guard on another item) is transient.
    async fn transact(&self, actions: Vec<TransactWriteItem>) -> StoreResult<Outcome> {
        let result = self.client.transact_write_items().set_transact_items(Some(actions)).send().await;
        let reasons = match result {
            Ok(_) => return Ok(Outcome::Written),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    cancelled.cancellation_reasons().to_vec()
                }
                _ => return Err(classify("dynamodb TransactWriteItems", e)),
            },
        };
        if let Some(first) = reasons.first()
            && first.code() == Some(CONDITION_FAILED)
        {
            return Ok(Outcome::Refused(first.item().cloned()));
        }
        let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("?")).collect();
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "dynamodb TransactWriteItems: cancelled ({}); retry",
            codes.join(", ")
        )))
    }

    /// Why a write conditional on the media item's `expected` version was refused, from the
    /// stored item (returned with the refusal, else read): `NotFound` or `VersionConflict`.
    /// `Ok` with the stored index keys when the stored item satisfies the version after all.
    async fn refusal(
        &self,
        stored: Option<Item>,
        model: &ModelId,
        media: &MediaId,
        expected: u64,
        now: OffsetDateTime,
    ) -> StoreResult<BTreeSet<String>> {
        // Without the old item (an emulator that ignores ReturnValuesOnConditionCheckFailure, or
        // no item at all), read it to tell a conflict from an absence.
        let stored = match stored {
            Some(item) => Some(item),
            None => self.get_raw(media_key(model, media)).await?,
        };
        check_stored(stored.as_ref(), expected, now).map(|(_, keys)| keys)
    }
}

/// Creates the table with its indexes and TTL, as the template does (on-demand billing).
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    let string_attribute =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
    let key =
        |name: &str, key_type: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(key_type).build();
    let index = |name: &str, hash: &str, range: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash)?)
            .key_schema(key(range, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?)
        .attribute_definitions(string_attribute(GSI1PK)?)
        .attribute_definitions(string_attribute(GSI1SK)?)
        .attribute_definitions(string_attribute(GSI2PK)?)
        .attribute_definitions(string_attribute(GSI2SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(index(GSI1, GSI1PK, GSI1SK)?)
        .global_secondary_indexes(index(GSI2, GSI2PK, GSI2SK)?)
        .send()
        .await?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().attribute_name(TTL_ATTRIBUTE).enabled(true).build()?,
        )
        .send()
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Keys and items
// ---------------------------------------------------------------------------------------------

fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A request this module builds misses a required field: a bug here, not a bad request.
fn built<T>(result: Result<T, BuildError>) -> StoreResult<T> {
    result.map_err(|e| StoreError::Unavailable(anyhow::anyhow!("dynamodb: a request cannot be built: {e}")))
}

fn pk(model: &ModelId) -> String {
    format!("MODEL#{}", model.as_str())
}

fn media_sk(media: &MediaId) -> String {
    format!("{MEDIA_PREFIX}{media}")
}

fn tombstone_sk(media: &MediaId) -> String {
    format!("TOMBSTONE#{media}")
}

fn fingerprint_attribute(media: &MediaId) -> String {
    format!("{FINGERPRINT_PREFIX}{media}")
}

fn table_key(pk: String, sk: String) -> Item {
    [(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))].into()
}

fn media_key(model: &ModelId, media: &MediaId) -> Item {
    table_key(pk(model), media_sk(media))
}

fn fingerprints_key(model: &ModelId) -> Item {
    table_key(pk(model), FINGERPRINTS_SK.to_owned())
}

fn gsi1pk(model: &ModelId, status: MediaStatus) -> String {
    format!("MODEL#{}#STATUS#{}", model.as_str(), status.as_str())
}

fn gsi2pk(model: &ModelId, category: &Category) -> String {
    format!("MODEL#{}#CATEGORY#{}", model.as_str(), category.as_str())
}

fn tag_prefix(tag: &Tag) -> String {
    format!("TAG#{}#", tag.as_str())
}

fn gallery_prefix(gallery: &GalleryId) -> String {
    format!("GALLERY#{}#", gallery.as_str())
}

/// `{created}#{media_id}`: the sort key of GSI1, GSI2 and (after their prefix) of index entries.
fn created_key(record: &MediaRecord) -> StoreResult<String> {
    let created = record
        .created_at
        .to_offset(time::UtcOffset::UTC)
        .format(SORTABLE_UTC)
        .map_err(|e| StoreError::Invalid(format!("created_at cannot be formatted: {e}")))?;
    Ok(format!("{created}#{}", record.media_id))
}

/// The `SK`s of a record's index entries: one per distinct tag and gallery.
fn index_keys(record: &MediaRecord) -> StoreResult<BTreeSet<String>> {
    let created = created_key(record)?;
    let tags = record.metadata.tags.iter().map(|tag| format!("{}{created}", tag_prefix(tag)));
    let galleries = record.gallery_ids().map(|gallery| format!("{}{created}", gallery_prefix(gallery)));
    Ok(tags.chain(galleries).collect())
}

fn check_bounds(record: &MediaRecord) -> StoreResult<()> {
    if record.metadata.tags.len() > MAX_TAGS || record.galleries.len() > MAX_GALLERIES {
        return Err(StoreError::Invalid(format!("a media has at most {MAX_TAGS} tags and {MAX_GALLERIES} galleries")));
    }
    Ok(())
}

/// The record's fields, each its own attribute, and nothing of the layout.
fn record_fields(record: &MediaRecord) -> StoreResult<Item> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(record)
        .map_err(|e| StoreError::Invalid(format!("the record cannot be stored: {e}")))?;
    item.insert(VERSION.to_owned(), n(record.version));
    Ok(item)
}

/// The media item and its index entries (full copies in the same partition, without GSI keys so
/// that status and category listings never see them, with the TTL so that they expire with it).
fn media_items(record: &MediaRecord) -> StoreResult<(Item, Vec<Item>)> {
    let fields = record_fields(record)?;
    let created = created_key(record)?;
    let entries = index_keys(record)?;
    let partition = pk(&record.model_id);
    let ttl = record.expires_at.map(|t| n(t.unix_timestamp()));

    let copies = entries
        .iter()
        .map(|entry| {
            let mut copy = fields.clone();
            copy.insert(PK.to_owned(), s(partition.clone()));
            copy.insert(SK.to_owned(), s(entry.clone()));
            if let Some(ttl) = &ttl {
                copy.insert(TTL_ATTRIBUTE.to_owned(), ttl.clone());
            }
            copy
        })
        .collect();

    let mut main = fields;
    main.insert(PK.to_owned(), s(partition));
    main.insert(SK.to_owned(), s(media_sk(&record.media_id)));
    main.insert(GSI1PK.to_owned(), s(gsi1pk(&record.model_id, record.status)));
    main.insert(GSI1SK.to_owned(), s(created.clone()));
    if let Some(category) = &record.metadata.category {
        main.insert(GSI2PK.to_owned(), s(gsi2pk(&record.model_id, category)));
        main.insert(GSI2SK.to_owned(), s(created));
    }
    if let Some(ttl) = ttl {
        main.insert(TTL_ATTRIBUTE.to_owned(), ttl);
    }
    // A string set cannot be empty: no entries, no attribute (the update's fast path relies on it).
    if !entries.is_empty() {
        main.insert(INDEX_KEYS.to_owned(), AttributeValue::Ss(entries.into_iter().collect()));
    }
    Ok((main, copies))
}

fn from_item(item: &Item) -> StoreResult<MediaRecord> {
    let mut fields = item.clone();
    for key in STORAGE_ATTRIBUTES {
        fields.remove(key);
    }
    serde_dynamo::aws_sdk_dynamodb_1::from_item(fields)
        .map_err(|e| StoreError::Unavailable(anyhow::anyhow!("dynamodb: a stored media record does not decode: {e}")))
}

/// The `SK`s a stored media item names as its index entries.
fn stored_index_keys(item: &Item) -> BTreeSet<String> {
    match item.get(INDEX_KEYS) {
        Some(AttributeValue::Ss(keys)) => keys.iter().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

fn sort_key_of(item: &Item) -> Option<&str> {
    match item.get(SK) {
        Some(AttributeValue::S(sk)) => Some(sk),
        _ => None,
    }
}

/// Gone for a conditional write: past `expires_at`, or past it in the whole seconds that the
/// TTL attribute (and so the write's condition) holds.
fn is_gone(record: &MediaRecord, now: OffsetDateTime) -> bool {
    record.is_expired(now) || record.expires_at.is_some_and(|t| t.unix_timestamp() <= now.unix_timestamp())
}

/// Judges a stored media item against the version a write expects: `NotFound` if absent or
/// gone, `VersionConflict` if another version is stored, else the record and its index keys.
fn check_stored(
    stored: Option<&Item>,
    expected: u64,
    now: OffsetDateTime,
) -> StoreResult<(MediaRecord, BTreeSet<String>)> {
    let Some(item) = stored else {
        return Err(StoreError::NotFound);
    };
    let record = from_item(item)?;
    if is_gone(&record, now) {
        return Err(StoreError::NotFound);
    }
    if record.version != expected {
        return Err(StoreError::VersionConflict { current: Some(record.version) });
    }
    Ok((record, stored_index_keys(item)))
}

/// A refusal that the stored item does not explain: it changed in between (or back); retrying
/// reads it afresh.
fn raced(op: &str) -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("dynamodb {op}: refused, but the stored item allows it now; retry"))
}

// ---------------------------------------------------------------------------------------------
// Conditions and transaction actions
// ---------------------------------------------------------------------------------------------

/// A condition expression with its names and values, for PutItem and transaction actions alike.
struct Condition {
    expression: &'static str,
    names: HashMap<String, String>,
    values: Item,
}

/// A record past its expiry is absent (TTL deletes lazily): it may be replaced.
fn create_condition(now: OffsetDateTime) -> Condition {
    Condition {
        expression: "attribute_not_exists(#pk) OR #ttl <= :now",
        names: [("#pk".to_owned(), PK.to_owned()), ("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned())].into(),
        values: [(":now".to_owned(), n(now.unix_timestamp()))].into(),
    }
}

/// The stored record is live and at `expected`; with `unindexed`, it also has no index entries
/// (the single-PutItem update would leave them stale otherwise).
fn version_condition(expected: u64, now: OffsetDateTime, unindexed: bool) -> Condition {
    let mut names: HashMap<String, String> =
        [("#version".to_owned(), VERSION.to_owned()), ("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned())].into();
    let expression = if unindexed {
        names.insert("#index_keys".to_owned(), INDEX_KEYS.to_owned());
        "#version = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now) AND attribute_not_exists(#index_keys)"
    } else {
        "#version = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now)"
    };
    Condition {
        expression,
        names,
        values: [(":expected".to_owned(), n(expected)), (":now".to_owned(), n(now.unix_timestamp()))].into(),
    }
}

impl DynamoMetadataStore {
    fn put_action(&self, item: Item, condition: Option<Condition>) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(condition) = condition {
            put = put
                .condition_expression(condition.expression)
                .set_expression_attribute_names(Some(condition.names))
                .set_expression_attribute_values(Some(condition.values))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        }
        Ok(TransactWriteItem::builder().put(built(put.build())?).build())
    }

    fn delete_action(&self, key: Item, condition: Option<Condition>) -> StoreResult<TransactWriteItem> {
        let mut delete = Delete::builder().table_name(&self.table).set_key(Some(key));
        if let Some(condition) = condition {
            delete = delete
                .condition_expression(condition.expression)
                .set_expression_attribute_names(Some(condition.names))
                .set_expression_attribute_values(Some(condition.values))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        }
        Ok(TransactWriteItem::builder().delete(built(delete.build())?).build())
    }
}

// ---------------------------------------------------------------------------------------------
// Listings
// ---------------------------------------------------------------------------------------------

/// The last millisecond whose instants the sortable format can write (9999-12-31T23:59:59.999Z).
const MAX_SORTABLE_MS: u64 = 253_402_300_799_999;

/// The lowest `{created}#{id}` key of a record created in millisecond `ms` or later.
fn created_lower(ms: u64) -> String {
    if ms == 0 {
        // Everything, records from before the epoch too (`matches` counts them as ms 0); not
        // empty, because a key condition's value cannot be.
        return "0".to_owned();
    }
    match sortable_ms(ms, 0) {
        Some(created) if ms <= MAX_SORTABLE_MS => created,
        // Past year 9999: above every key (no record is created then).
        _ => "~".to_owned(),
    }
}

/// A string above every `{created}#{id}` key of a record created in millisecond `ms` or
/// earlier, whatever its sub-millisecond part: `matches` truncates `created_at` to the ms.
fn created_upper(ms: u64) -> String {
    match sortable_ms(ms, 999_999) {
        // Media ids are lower-case alphanumerics, all below `~`.
        Some(created) if ms <= MAX_SORTABLE_MS => format!("{created}#~"),
        _ => "~".to_owned(),
    }
}

fn sortable_ms(ms: u64, extra_nanos: i128) -> Option<String> {
    let nanos = i128::from(ms) * 1_000_000 + extra_nanos;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?.format(SORTABLE_UTC).ok()
}

/// How one listing reads: one Query of one index, an inclusive slice of one partition's sort key.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    index: Option<&'static str>,
    /// Exactly the attributes of the index's `LastEvaluatedKey` (its keys and the table's), sorted.
    key_attributes: &'static [&'static str],
    partition: (&'static str, String),
    sort: (&'static str, String, String),
}

const TABLE_KEYS: &[&str] = &[PK, SK];
const GSI1_KEYS: &[&str] = &[GSI1PK, GSI1SK, PK, SK];
const GSI2_KEYS: &[&str] = &[GSI2PK, GSI2SK, PK, SK];

/// The index `query.index()` names, sliced to the creation range `low..=high` (unix ms).
fn plan(model: &ModelId, query: &MediaQuery, (low, high): (u64, u64)) -> Plan {
    let base = |prefix: String| Plan {
        index: None,
        key_attributes: TABLE_KEYS,
        partition: (PK, pk(model)),
        sort: (SK, format!("{prefix}{}", created_lower(low)), format!("{prefix}{}", created_upper(high))),
    };
    match (query.index(), &query.gallery, &query.tag, &query.category, query.status) {
        (ListIndex::Gallery, Some(gallery), ..) => base(gallery_prefix(gallery)),
        (ListIndex::Tag, _, Some(tag), ..) => base(tag_prefix(tag)),
        (ListIndex::Category, _, _, Some(category), _) => Plan {
            index: Some(GSI2),
            key_attributes: GSI2_KEYS,
            partition: (GSI2PK, gsi2pk(model, category)),
            sort: (GSI2SK, created_lower(low), created_upper(high)),
        },
        (ListIndex::Status, .., Some(status)) => Plan {
            index: Some(GSI1),
            key_attributes: GSI1_KEYS,
            partition: (GSI1PK, gsi1pk(model, status)),
            sort: (GSI1SK, created_lower(low), created_upper(high)),
        },
        // Media ids are ULIDs: an id range is a creation range.
        _ => Plan {
            index: None,
            key_attributes: TABLE_KEYS,
            partition: (PK, pk(model)),
            sort: (SK, media_sk(&MediaId::first_of_ms(low)), media_sk(&MediaId::last_of_ms(high.min((1 << 48) - 1)))),
        },
    }
}

/// The FilterExpression for the filters the chosen index does not cover, adding its names and
/// values.
fn filter_expression(
    query: &MediaQuery,
    names: &mut HashMap<String, String>,
    values: &mut Item,
) -> StoreResult<Option<String>> {
    let index = query.index();
    let mut clauses = Vec::new();
    if let Some(status) = query.status
        && index != ListIndex::Status
    {
        names.insert("#status".to_owned(), "status".to_owned());
        values.insert(":status".to_owned(), s(status.as_str().to_owned()));
        clauses.push("#status = :status");
    }
    if let Some(category) = &query.category
        && index != ListIndex::Category
    {
        names.insert("#metadata".to_owned(), "metadata".to_owned());
        names.insert("#category".to_owned(), "category".to_owned());
        values.insert(":category".to_owned(), s(category.as_str().to_owned()));
        clauses.push("#metadata.#category = :category");
    }
    if let Some(tag) = &query.tag
        && index != ListIndex::Tag
    {
        names.insert("#metadata".to_owned(), "metadata".to_owned());
        names.insert("#tags".to_owned(), "tags".to_owned());
        values.insert(":tag".to_owned(), s(tag.as_str().to_owned()));
        clauses.push("contains(#metadata.#tags, :tag)");
    }
    // A gallery always picks the gallery index (it is the most selective filter), so no item
    // carries an attribute to filter galleries by. Refuse rather than list too much, should
    // that order ever change.
    if query.gallery.is_some() && index != ListIndex::Gallery {
        return Err(StoreError::Invalid("a gallery filter needs the gallery index".to_owned()));
    }
    Ok((!clauses.is_empty()).then(|| clauses.join(" AND ")))
}

/// What a cursor holds: the listing it belongs to and the `LastEvaluatedKey` to resume after.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    listing: String,
    key: BTreeMap<String, String>,
}

/// The opaque cursor: URL-safe base64 of JSON, every key attribute a string.
fn encode_cursor(listing: &str, key: &Item) -> StoreResult<String> {
    let mut plain = BTreeMap::new();
    for (name, value) in key {
        match value {
            AttributeValue::S(text) => {
                plain.insert(name.clone(), text.clone());
            }
            _ => {
                return Err(StoreError::Unavailable(anyhow::anyhow!(
                    "dynamodb Query: LastEvaluatedKey attribute {name} is not a string"
                )));
            }
        }
    }
    let json =
        serde_json::to_vec(&Cursor { listing: listing.to_owned(), key: plain }).map_err(StoreError::unavailable)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// The `ExclusiveStartKey` of a cursor this listing returned. Cursors are not signed, so
/// besides the listing they must name exactly the plan's key attributes, in this model's
/// partition and inside the listing's slice.
fn decode_cursor(raw: &str, listing: &str, model: &ModelId, plan: &Plan) -> StoreResult<Item> {
    let invalid = || StoreError::Invalid("cursor is not one this listing returned".to_owned());
    let json = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&json).map_err(|_| invalid())?;
    let key = cursor.key;
    let (partition, partition_value) = &plan.partition;
    let (sort, low, high) = &plan.sort;
    let valid = cursor.listing == listing
        && key.keys().map(String::as_str).eq(plan.key_attributes.iter().copied())
        && key.get(PK) == Some(&pk(model))
        && key.get(*partition) == Some(partition_value)
        && key.get(*sort).is_some_and(|value| low <= value && value <= high)
        && (plan.index.is_none() || key.get(SK).is_some_and(|sk| sk.starts_with(MEDIA_PREFIX)));
    if !valid {
        return Err(invalid());
    }
    Ok(key.into_iter().map(|(name, value)| (name, s(value))).collect())
}

// ---------------------------------------------------------------------------------------------
// The port
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl MetadataStore for DynamoMetadataStore {
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()> {
        check_bounds(record)?;
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
        match self.get_consistent(model, media).await? {
            Some(record) if !record.is_expired(OffsetDateTime::now_utc()) => Ok(record),
            _ => Err(StoreError::NotFound),
        }
    }

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

    async fn batch_get_media(&self, keys: &[(ModelId, MediaId)]) -> StoreResult<Vec<MediaRecord>> {
        if keys.len() > MAX_BATCH_GET {
            return Err(StoreError::Invalid(format!("at most {MAX_BATCH_GET} keys a batch")));
        }
        // BatchGetItem refuses repeated keys; the port asks for none, but one costs nothing here.
        let distinct: BTreeSet<(String, String)> =
            keys.iter().map(|(model, media)| (pk(model), media_sk(media))).collect();
        if distinct.is_empty() {
            return Ok(Vec::new());
        }
        let items = self.batch_get(distinct.into_iter().map(|(pk, sk)| table_key(pk, sk)).collect()).await?;
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
        check_bounds(record)?;
        let expected = record
            .version
            .checked_sub(1)
            .ok_or_else(|| StoreError::Invalid("an updated record's version must be at least 1".to_owned()))?;
        let (model, media) = (&record.model_id, &record.media_id);
        let (main, copies) = media_items(record)?;
        let now = OffsetDateTime::now_utc();

        // Fast path, for records without index entries before and after: one PutItem.
        let stored_keys = if copies.is_empty() {
            match self.put_conditional(main.clone(), version_condition(expected, now, true)).await? {
                Outcome::Written => return Ok(()),
                Outcome::Refused(stored) => {
                    let keys = self.refusal(stored, model, media, expected, now).await?;
                    if keys.is_empty() {
                        return Err(raced("PutItem"));
                    }
                    // The stored record has index entries: they must go with this write.
                    keys
                }
            }
        } else {
            let stored = self.get_raw(media_key(model, media)).await?;
            check_stored(stored.as_ref(), expected, now)?.1
        };

        // Slow path: the record, its current entries and the removal of the stale ones, at once.
        // The version condition also guards the stored index keys read above: any write since
        // changed the version.
        let wanted = index_keys(record)?;
        let mut actions = vec![self.put_action(main, Some(version_condition(expected, now, false)))?];
        for copy in copies {
            actions.push(self.put_action(copy, None)?);
        }
        for stale in stored_keys.difference(&wanted) {
            actions.push(self.delete_action(table_key(pk(model), stale.clone()), None)?);
        }
        match self.transact(actions).await? {
            Outcome::Written => Ok(()),
            Outcome::Refused(stored) => {
                self.refusal(stored, model, media, expected, now).await?;
                Err(raced("TransactWriteItems"))
            }
        }
    }

    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        let Some(range) = query.created_ms_range() else {
            return Ok(Page { items: Vec::new(), next_cursor: None });
        };
        let listing = query.listing(model);
        let plan = plan(model, query, range);
        let start = query.cursor.as_deref().map(|cursor| decode_cursor(cursor, &listing, model, &plan)).transpose()?;
        let limit = query.limit.clamp(1, MAX_PAGE);

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
        let now = OffsetDateTime::now_utc();
        let mut items = Vec::with_capacity(output.items().len());
        for item in output.items() {
            let record = from_item(item)?;
            if !record.is_expired(now) {
                items.push(record);
            }
        }
        // Limit counts items before the filter, so a page may be short (even empty) and still
        // have a next page.
        let next_cursor = match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => Some(encode_cursor(&listing, key)?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

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

        let mut actions =
            vec![self.delete_action(media_key(model, media), Some(version_condition(record.version, now, false)))?];
        for entry in &stored_keys {
            actions.push(self.delete_action(table_key(pk(model), entry.clone()), None)?);
        }
        // An UpdateItem on an absent item would create it, empty: when there is no fingerprint
        // item, check that none appeared instead (fingerprint items are never deleted, so one
        // that exists keeps existing).
        if fingerprints_exist {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(fingerprints_key(model)))
                .update_expression("REMOVE #a")
                .expression_attribute_names("#a", fingerprint_attribute(media));
            actions.push(TransactWriteItem::builder().update(built(update.build())?).build());
        } else {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(fingerprints_key(model)))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK);
            actions.push(TransactWriteItem::builder().condition_check(built(check.build())?).build());
        }
        let mut tombstone = record_fields(&stored_record)?;
        tombstone.insert(PK.to_owned(), s(pk(model)));
        tombstone.insert(SK.to_owned(), s(tombstone_sk(media)));
        actions.push(self.put_action(tombstone, None)?);

        match self.transact(actions).await? {
            Outcome::Written => Ok(()),
            Outcome::Refused(stored) => {
                self.refusal(stored, model, media, record.version, now).await?;
                Err(raced("TransactWriteItems"))
            }
        }
    }

    async fn get_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<Option<MediaRecord>> {
        self.get_raw(table_key(pk(model), tombstone_sk(media))).await?.map(|item| from_item(&item)).transpose()
    }

    async fn remove_tombstone(&self, model: &ModelId, media: &MediaId) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(table_key(pk(model), tombstone_sk(media))))
            .send()
            .await
            .map(drop)
            .map_err(|e| classify("dynamodb DeleteItem", e))
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
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(classify("dynamodb UpdateItem", e)),
        }
    }
}

/// The fingerprints an item of the model holds (`ph_{media_id}` = pHash); others are ignored.
fn decode_fingerprints(item: &Item) -> Vec<Fingerprint> {
    item.iter()
        .filter_map(|(name, value)| {
            let media_id = MediaId::parse(name.strip_prefix(FINGERPRINT_PREFIX)?).ok()?;
            let AttributeValue::S(phash) = value else { return None };
            Some(Fingerprint { media_id, phash: phash.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use phoenix_domain::media::GalleryLink;

    use super::*;

    fn sample(status: MediaStatus) -> MediaRecord {
        let model = ModelId::parse("m1").unwrap();
        crate::conformance::sample_record(&model, &MediaId::new(), status)
    }

    #[test]
    fn sort_keys_have_a_fixed_width_and_sort_as_instants() {
        let mut record = sample(MediaStatus::Approved);
        record.created_at = time::macros::datetime!(2024-05-06 07:08:09 UTC);
        let whole = created_key(&record).unwrap();
        assert_eq!(whole, format!("2024-05-06T07:08:09.000000000Z#{}", record.media_id));
        record.created_at = time::macros::datetime!(2024-05-06 07:08:09.5 UTC);
        assert!(created_key(&record).unwrap() > whole);
    }

    #[test]
    fn items_carry_keys_version_and_ttl() {
        let mut record = sample(MediaStatus::Uploading);
        let media = record.media_id;
        record.expires_at = Some(time::macros::datetime!(2030-01-01 00:00 UTC));
        record.version = 7;
        let (item, copies) = media_items(&record).unwrap();
        assert!(copies.is_empty());
        assert_eq!(item[PK], s("MODEL#m1".to_owned()));
        assert_eq!(item[SK], s(format!("MEDIA#{media}")));
        assert_eq!(item[GSI1PK], s("MODEL#m1#STATUS#uploading".to_owned()));
        assert_eq!(item[GSI1SK], s(created_key(&record).unwrap()));
        assert_eq!(item[GSI2PK], s("MODEL#m1#CATEGORY#editorial".to_owned()));
        assert_eq!(item[GSI2SK], item[GSI1SK]);
        assert_eq!(item["version"], AttributeValue::N("7".to_owned()));
        assert_eq!(item[TTL_ATTRIBUTE], AttributeValue::N("1893456000".to_owned()));
        assert!(!item.contains_key(INDEX_KEYS), "no index entries, no index_keys");
        assert_eq!(from_item(&item).unwrap(), record);

        record.expires_at = None;
        record.metadata.category = None;
        let (item, _) = media_items(&record).unwrap();
        assert!(!item.contains_key(TTL_ATTRIBUTE));
        assert!(!item.contains_key(GSI2PK) && !item.contains_key(GSI2SK), "GSI2 is sparse");
        assert_eq!(from_item(&item).unwrap(), record);
    }

    #[test]
    fn index_entries_are_copies_without_gsi_keys() {
        let mut record = sample(MediaStatus::Approved);
        record.created_at = time::macros::datetime!(2024-05-06 07:08:09.123 UTC);
        record.expires_at = Some(time::macros::datetime!(2030-01-01 00:00 UTC));
        record.metadata.tags = vec![Tag::parse("beach").unwrap(), Tag::parse("summer").unwrap()];
        let gallery = GalleryId::parse("G-1").unwrap();
        record.galleries = vec![
            GalleryLink { gallery_id: gallery.clone(), published: true },
            GalleryLink { gallery_id: gallery, published: false },
        ];
        let created = format!("2024-05-06T07:08:09.123000000Z#{}", record.media_id);
        let (item, copies) = media_items(&record).unwrap();
        let expected: BTreeSet<String> =
            [format!("GALLERY#G-1#{created}"), format!("TAG#beach#{created}"), format!("TAG#summer#{created}")].into();
        assert_eq!(stored_index_keys(&item), expected, "one entry per distinct tag and gallery");
        let copy_keys: BTreeSet<String> = copies.iter().filter_map(|c| sort_key_of(c).map(str::to_owned)).collect();
        assert_eq!(copy_keys, expected);
        for copy in &copies {
            assert_eq!(copy[PK], s("MODEL#m1".to_owned()));
            for absent in [GSI1PK, GSI1SK, GSI2PK, GSI2SK, INDEX_KEYS] {
                assert!(!copy.contains_key(absent), "a copy has no {absent}");
            }
            assert_eq!(copy[TTL_ATTRIBUTE], item[TTL_ATTRIBUTE], "a copy expires with its record");
            assert_eq!(from_item(copy).unwrap(), record);
        }
        assert_eq!(from_item(&item).unwrap(), record);
        record.metadata.tags = (0..=MAX_TAGS).map(|i| Tag::parse(&format!("t{i}")).unwrap()).collect();
        assert!(matches!(check_bounds(&record), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn creation_bounds_cover_whole_milliseconds() {
        let ms = 1_714_979_289_123; // 2024-05-06T07:08:09.123Z
        assert_eq!(created_lower(ms), "2024-05-06T07:08:09.123000000Z");
        assert_eq!(created_upper(ms), "2024-05-06T07:08:09.123999999Z#~");
        let media = MediaId::new().to_string();
        let last_ns = format!("2024-05-06T07:08:09.123999999Z#{media}");
        let next_ms = format!("2024-05-06T07:08:09.124000000Z#{media}");
        let first_ns = format!("2024-05-06T07:08:09.123000000Z#{media}");
        assert!(created_lower(ms) <= first_ns && first_ns <= created_upper(ms));
        assert!(last_ns <= created_upper(ms), "the whole last millisecond is in range");
        assert!(next_ms > created_upper(ms) && next_ms >= created_lower(ms + 1));
        assert_eq!(created_lower(0), "0");
        assert_eq!(created_upper((1 << 48) - 1), "~");
        assert!("1969-12-31T23:59:59.999000000Z#x" > created_lower(0).as_str());
    }

    #[test]
    fn the_query_picks_its_index() {
        let model = ModelId::parse("m1").unwrap();
        let range = (5, 9);
        let mut query = MediaQuery {
            status: Some(MediaStatus::Approved),
            category: Some(Category::parse("runway").unwrap()),
            tag: Some(Tag::parse("beach").unwrap()),
            gallery: Some(GalleryId::parse("g1").unwrap()),
            ..MediaQuery::new(10)
        };
        let gallery = plan(&model, &query, range);
        assert_eq!((gallery.index, gallery.partition.1.as_str()), (None, "MODEL#m1"));
        assert!(gallery.sort.1.starts_with("GALLERY#g1#1970-01-01T00:00:00.005"));
        query.gallery = None;
        assert!(plan(&model, &query, range).sort.1.starts_with("TAG#beach#"));
        query.tag = None;
        let category = plan(&model, &query, range);
        assert_eq!((category.index, category.partition.1.as_str()), (Some(GSI2), "MODEL#m1#CATEGORY#runway"));
        query.category = None;
        let status = plan(&model, &query, range);
        assert_eq!((status.index, status.partition.1.as_str()), (Some(GSI1), "MODEL#m1#STATUS#approved"));
        query.status = None;
        let all = plan(&model, &query, range);
        assert_eq!(all.index, None);
        assert_eq!(all.sort.1, media_sk(&MediaId::first_of_ms(5)));
        assert_eq!(all.sort.2, media_sk(&MediaId::last_of_ms(9)));

        let query = MediaQuery {
            status: Some(MediaStatus::Approved),
            category: Some(Category::parse("runway").unwrap()),
            gallery: Some(GalleryId::parse("g1").unwrap()),
            ..MediaQuery::new(10)
        };
        let (mut names, mut values) = (HashMap::new(), HashMap::new());
        let filter = filter_expression(&query, &mut names, &mut values).unwrap();
        assert_eq!(filter.as_deref(), Some("#status = :status AND #metadata.#category = :category"));
        assert_eq!(values[":category"], s("runway".to_owned()));
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let model = ModelId::parse("m1").unwrap();
        let query = MediaQuery { tag: Some(Tag::parse("beach").unwrap()), ..MediaQuery::new(1) };
        let range = query.created_ms_range().unwrap();
        let listing = query.listing(&model);
        let tag_plan = plan(&model, &query, range);
        let position = format!("TAG#beach#2024-05-06T07:08:09.123000000Z#{}", MediaId::new());
        let key = table_key(pk(&model), position);
        let cursor = encode_cursor(&listing, &key).unwrap();
        assert_eq!(decode_cursor(&cursor, &listing, &model, &tag_plan).unwrap(), key);

        // Another listing, another model, another index.
        let other_query = MediaQuery { tag: Some(Tag::parse("summer").unwrap()), ..MediaQuery::new(1) };
        let other_plan = plan(&model, &other_query, range);
        let other_listing = other_query.listing(&model);
        assert!(matches!(decode_cursor(&cursor, &other_listing, &model, &other_plan), Err(StoreError::Invalid(_))));
        let other_model = ModelId::parse("m2").unwrap();
        let moved = plan(&other_model, &query, range);
        assert!(matches!(decode_cursor(&cursor, &listing, &other_model, &moved), Err(StoreError::Invalid(_))));
        let status = MediaQuery { status: Some(MediaStatus::Approved), ..MediaQuery::new(1) };
        let status_plan = plan(&model, &status, range);
        assert!(matches!(decode_cursor(&cursor, &listing, &model, &status_plan), Err(StoreError::Invalid(_))));

        // The right listing, but a key that is not one of its positions.
        let forged = |key: Item| encode_cursor(&listing, &key).unwrap();
        let outside = forged(table_key(pk(&model), "TAG#summer#2024#x".to_owned()));
        assert!(matches!(decode_cursor(&outside, &listing, &model, &tag_plan), Err(StoreError::Invalid(_))));
        let elsewhere = forged(table_key(pk(&other_model), "TAG#beach#2024#x".to_owned()));
        assert!(matches!(decode_cursor(&elsewhere, &listing, &model, &tag_plan), Err(StoreError::Invalid(_))));
        let mut extra = table_key(pk(&model), "TAG#beach#2024#x".to_owned());
        extra.insert(GSI1PK.to_owned(), s("x".to_owned()));
        assert!(matches!(decode_cursor(&forged(extra), &listing, &model, &tag_plan), Err(StoreError::Invalid(_))));

        // A status cursor holds the GSI's keys and the table's.
        let status_listing = status.listing(&model);
        let mut gsi_key = media_key(&model, &MediaId::new());
        gsi_key.insert(GSI1PK.to_owned(), s(gsi1pk(&model, MediaStatus::Approved)));
        gsi_key.insert(GSI1SK.to_owned(), s("2024-05-06T07:08:09.123000000Z#x".to_owned()));
        let gsi_cursor = encode_cursor(&status_listing, &gsi_key).unwrap();
        assert_eq!(decode_cursor(&gsi_cursor, &status_listing, &model, &status_plan).unwrap(), gsi_key);

        for garbage in ["!!", "not a cursor", "eyJmb28iOiJiYXIifQ", ""] {
            assert!(matches!(decode_cursor(garbage, &listing, &model, &tag_plan), Err(StoreError::Invalid(_))));
        }
    }

    #[test]
    fn fingerprints_decode_from_their_attributes() {
        let media = MediaId::new();
        let item: Item = [
            (PK.to_owned(), s("MODEL#m1".to_owned())),
            (SK.to_owned(), s(FINGERPRINTS_SK.to_owned())),
            (fingerprint_attribute(&media), s("00000000000000ff".to_owned())),
            ("ph_not-an-id".to_owned(), s("ffffffffffffffff".to_owned())),
        ]
        .into();
        assert_eq!(decode_fingerprints(&item), vec![Fingerprint { media_id: media, phash: "00000000000000ff".into() }]);
    }
}
