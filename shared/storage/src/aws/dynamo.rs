//! [`MetadataStore`] on one DynamoDB table (single-table design).
//!
//! | attribute          | type | value                                                     |
//! |--------------------|------|-----------------------------------------------------------|
//! | `PK`               | S    | `MODEL#{model_id}`                                        |
//! | `SK`               | S    | `MEDIA#{media_id}`                                        |
//! | `GSI1PK`           | S    | `MODEL#{model_id}#STATUS#{status}`                        |
//! | `GSI1SK`           | S    | `{created_at, RFC 3339 UTC, 9 fraction digits}#{media_id}` |
//! | `version`          | N    | the record's version; writes are conditional on it        |
//! | `expires_at_epoch` | N    | unix seconds of `expires_at`, only when set (the TTL)     |
//!
//! plus every field of the record as its own attribute (`serde_dynamo`). Index `GSI1`
//! (`GSI1PK`, `GSI1SK`, projection ALL) lists a model's media of one status, newest first; the
//! base table lists all of a model's media newest first, because media ids are ULIDs.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use phoenix_domain::ports::{MediaQuery, MetadataStore, Page, StoreError, StoreResult};
use phoenix_domain::{MediaId, MediaRecord, MediaStatus, ModelId};
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
pub(crate) const TTL_ATTRIBUTE: &str = "expires_at_epoch";

/// RFC 3339 in UTC with a fixed-width fraction, so that the strings sort as the instants do.
const SORTABLE_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

const MAX_PAGE: usize = 100;

#[derive(Debug, Clone)]
pub struct DynamoMetadataStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
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

    async fn get_consistent(&self, model: &ModelId, media: &MediaId) -> StoreResult<Option<MediaRecord>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk(model)))
            .key(SK, s(sk(media)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb GetItem", e))?;
        output.item.map(|item| from_item(&item)).transpose()
    }
}

/// Creates the table with its index and TTL, as the template does (on-demand billing).
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    let string_attribute =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
    let key =
        |name: &str, key_type: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(key_type).build();
    let index = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1PK, KeyType::Hash)?)
        .key_schema(key(GSI1SK, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?)
        .attribute_definitions(string_attribute(GSI1PK)?)
        .attribute_definitions(string_attribute(GSI1SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(index)
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

fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

fn pk(model: &ModelId) -> String {
    format!("MODEL#{}", model.as_str())
}

fn sk(media: &MediaId) -> String {
    format!("MEDIA#{media}")
}

fn gsi1pk(model: &ModelId, status: MediaStatus) -> String {
    format!("MODEL#{}#STATUS#{}", model.as_str(), status.as_str())
}

fn gsi1sk(record: &MediaRecord) -> StoreResult<String> {
    let created = record
        .created_at
        .to_offset(time::UtcOffset::UTC)
        .format(SORTABLE_UTC)
        .map_err(|e| StoreError::Invalid(format!("created_at cannot be formatted: {e}")))?;
    Ok(format!("{created}#{}", record.media_id))
}

fn to_item(record: &MediaRecord) -> StoreResult<Item> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(record)
        .map_err(|e| StoreError::Invalid(format!("the record cannot be stored: {e}")))?;
    item.insert(PK.to_owned(), s(pk(&record.model_id)));
    item.insert(SK.to_owned(), s(sk(&record.media_id)));
    item.insert(GSI1PK.to_owned(), s(gsi1pk(&record.model_id, record.status)));
    item.insert(GSI1SK.to_owned(), s(gsi1sk(record)?));
    item.insert("version".to_owned(), AttributeValue::N(record.version.to_string()));
    if let Some(expires_at) = record.expires_at {
        item.insert(TTL_ATTRIBUTE.to_owned(), AttributeValue::N(expires_at.unix_timestamp().to_string()));
    }
    Ok(item)
}

fn from_item(item: &Item) -> StoreResult<MediaRecord> {
    let mut fields = item.clone();
    for key in [PK, SK, GSI1PK, GSI1SK, TTL_ATTRIBUTE] {
        fields.remove(key);
    }
    serde_dynamo::aws_sdk_dynamodb_1::from_item(fields)
        .map_err(|e| StoreError::Unavailable(anyhow::anyhow!("dynamodb: a stored media record does not decode: {e}")))
}

/// The opaque cursor: URL-safe base64 of the `LastEvaluatedKey` as a JSON map of strings.
fn encode_cursor(key: &Item) -> StoreResult<String> {
    let mut plain = BTreeMap::new();
    for (name, value) in key {
        match value {
            AttributeValue::S(text) => {
                plain.insert(name.as_str(), text.as_str());
            }
            _ => {
                return Err(StoreError::Unavailable(anyhow::anyhow!(
                    "dynamodb Query: LastEvaluatedKey attribute {name} is not a string"
                )));
            }
        }
    }
    let json = serde_json::to_vec(&plain).map_err(StoreError::unavailable)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn decode_cursor(cursor: &str, model: &ModelId, status: Option<MediaStatus>) -> StoreResult<Item> {
    let invalid = || StoreError::Invalid("cursor is not one this listing returned".to_owned());
    let json = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).map_err(|_| invalid())?;
    let plain: BTreeMap<String, String> = serde_json::from_slice(&json).map_err(|_| invalid())?;
    let expected: &[&str] = if status.is_some() { &[GSI1PK, GSI1SK, PK, SK] } else { &[PK, SK] };
    let mut names: Vec<&str> = plain.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected_sorted = expected.to_vec();
    expected_sorted.sort_unstable();
    if names != expected_sorted || plain.get(PK) != Some(&pk(model)) || !plain[SK].starts_with("MEDIA#") {
        return Err(invalid());
    }
    if let Some(status) = status
        && plain.get(GSI1PK) != Some(&gsi1pk(model, status))
    {
        return Err(invalid());
    }
    Ok(plain.into_iter().map(|(name, value)| (name, s(value))).collect())
}

#[async_trait]
impl MetadataStore for DynamoMetadataStore {
    async fn create_media(&self, record: &MediaRecord) -> StoreResult<()> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        // A record past its expiry is absent (TTL deletes lazily): it may be replaced.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)?))
            .condition_expression("attribute_not_exists(#pk) OR #ttl <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Err(StoreError::AlreadyExists)
            }
            Err(e) => Err(classify("dynamodb PutItem", e)),
        }
    }

    async fn get_media(&self, model: &ModelId, media: &MediaId) -> StoreResult<MediaRecord> {
        match self.get_consistent(model, media).await? {
            Some(record) if !record.is_expired(OffsetDateTime::now_utc()) => Ok(record),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn update_media(&self, record: &MediaRecord) -> StoreResult<()> {
        let expected = record
            .version
            .checked_sub(1)
            .ok_or_else(|| StoreError::Invalid("an updated record's version must be at least 1".to_owned()))?;
        let now = OffsetDateTime::now_utc();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)?))
            .condition_expression("#version = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now)")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.unix_timestamp().to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(failed) => failed.item,
                    _ => None,
                }
            }
            Err(e) => return Err(classify("dynamodb PutItem", e)),
        };
        // Without the old item (an emulator that ignores ReturnValuesOnConditionCheckFailure, or
        // no item at all), read it to tell a conflict from an absence.
        let old = match old {
            Some(item) => Some(from_item(&item)?),
            None => self.get_consistent(&record.model_id, &record.media_id).await?,
        };
        match old {
            None => Err(StoreError::NotFound),
            Some(old)
                if old.is_expired(now)
                    || old.expires_at.is_some_and(|t| t.unix_timestamp() <= now.unix_timestamp()) =>
            {
                Err(StoreError::NotFound)
            }
            Some(old) => Err(StoreError::VersionConflict { current: Some(old.version) }),
        }
    }

    async fn list_media(&self, model: &ModelId, query: &MediaQuery) -> StoreResult<Page<MediaRecord>> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let start = query.cursor.as_deref().map(|cursor| decode_cursor(cursor, model, query.status)).transpose()?;
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start);
        let request = match query.status {
            None => request
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :media)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk(model)))
                .expression_attribute_values(":media", s("MEDIA#".to_owned()))
                .consistent_read(true),
            Some(status) => request
                .index_name(GSI1)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", GSI1PK)
                .expression_attribute_values(":pk", s(gsi1pk(model, status))),
        };
        let output = request.send().await.map_err(|e| classify("dynamodb Query", e))?;
        let now = OffsetDateTime::now_utc();
        let mut items = Vec::with_capacity(output.items().len());
        for item in output.items() {
            let record = from_item(item)?;
            if !record.is_expired(now) {
                items.push(record);
            }
        }
        let next_cursor = match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => Some(encode_cursor(key)?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_have_a_fixed_width_and_sort_as_instants() {
        let model = ModelId::parse("m1").unwrap();
        let media = MediaId::new();
        let mut record = crate::conformance::sample_record(&model, &media, MediaStatus::Approved);
        record.created_at = time::macros::datetime!(2024-05-06 07:08:09 UTC);
        let whole = gsi1sk(&record).unwrap();
        assert_eq!(whole, format!("2024-05-06T07:08:09.000000000Z#{media}"));
        record.created_at = time::macros::datetime!(2024-05-06 07:08:09.5 UTC);
        assert!(gsi1sk(&record).unwrap() > whole);
    }

    #[test]
    fn items_carry_keys_version_and_ttl() {
        let model = ModelId::parse("m1").unwrap();
        let media = MediaId::new();
        let mut record = crate::conformance::sample_record(&model, &media, MediaStatus::Uploading);
        record.expires_at = Some(time::macros::datetime!(2030-01-01 00:00 UTC));
        record.version = 7;
        let item = to_item(&record).unwrap();
        assert_eq!(item[PK], s("MODEL#m1".to_owned()));
        assert_eq!(item[SK], s(format!("MEDIA#{media}")));
        assert_eq!(item[GSI1PK], s("MODEL#m1#STATUS#uploading".to_owned()));
        assert_eq!(item["version"], AttributeValue::N("7".to_owned()));
        assert_eq!(item[TTL_ATTRIBUTE], AttributeValue::N("1893456000".to_owned()));
        assert_eq!(from_item(&item).unwrap(), record);
        record.expires_at = None;
        assert!(!to_item(&record).unwrap().contains_key(TTL_ATTRIBUTE));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let model = ModelId::parse("m1").unwrap();
        let key: Item = [(PK.to_owned(), s(pk(&model))), (SK.to_owned(), s("MEDIA#x".to_owned()))].into();
        let cursor = encode_cursor(&key).unwrap();
        assert_eq!(decode_cursor(&cursor, &model, None).unwrap(), key);
        let other = ModelId::parse("m2").unwrap();
        assert!(matches!(decode_cursor(&cursor, &other, None), Err(StoreError::Invalid(_))));
        assert!(matches!(decode_cursor(&cursor, &model, Some(MediaStatus::Approved)), Err(StoreError::Invalid(_))));
        assert!(matches!(decode_cursor("!!", &model, None), Err(StoreError::Invalid(_))));
    }
}
