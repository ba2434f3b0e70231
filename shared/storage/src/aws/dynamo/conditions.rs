//! Condition expressions, transaction actions, and what a refused condition means (absent,
//! another version, or a race).

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use phoenix_domain::ports::{StoreError, StoreResult};
use phoenix_domain::{MediaId, MediaRecord, ModelId};
use time::OffsetDateTime;

use super::DynamoMetadataStore;
use super::client::built;
use super::codec::stored_index_keys;
use super::codec::{
    INDEX_KEYS, Item, VERSION, fingerprint_attribute, fingerprints_key, from_item, index_keys, media_key, n, pk,
    table_key,
};
use super::marks::BATCH_MARK;
use super::table::{PK, TTL_ATTRIBUTE};

/// A condition expression with its names and values, for PutItem and transaction actions alike.
pub(super) struct Condition {
    pub(super) expression: &'static str,
    pub(super) names: HashMap<String, String>,
    pub(super) values: Item,
}

/// A record past its expiry is absent (TTL deletes lazily): it may be replaced.
pub(super) fn create_condition(now: OffsetDateTime) -> Condition {
    Condition {
        expression: "attribute_not_exists(#pk) OR #ttl <= :now",
        names: [("#pk".to_owned(), PK.to_owned()), ("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned())].into(),
        values: [(":now".to_owned(), n(now.unix_timestamp()))].into(),
    }
}

/// The stored record is live and at `expected`; with `unindexed`, it also has no index entries
/// (the single-PutItem update would leave them stale otherwise) and no batch mark (the blind
/// PutItem would drop it unsettled: see [`super::marks`]).
pub(super) fn version_condition(expected: u64, now: OffsetDateTime, unindexed: bool) -> Condition {
    let mut names: HashMap<String, String> =
        [("#version".to_owned(), VERSION.to_owned()), ("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned())].into();
    let expression = if unindexed {
        names.insert("#index_keys".to_owned(), INDEX_KEYS.to_owned());
        names.insert("#mark".to_owned(), BATCH_MARK.to_owned());
        "#version = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now) AND attribute_not_exists(#index_keys) \
         AND attribute_not_exists(#mark)"
    } else {
        "#version = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now)"
    };
    Condition {
        expression,
        names,
        values: [(":expected".to_owned(), n(expected)), (":now".to_owned(), n(now.unix_timestamp()))].into(),
    }
}

/// A batch item's single PutItem: the stored record is live, at `expected` and without index
/// entries. A mark it carries was settled by the writer, which read it at that version.
pub(super) fn marked_put_condition(expected: u64, now: OffsetDateTime) -> Condition {
    Condition {
        expression: "#version = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now) \
                     AND attribute_not_exists(#index_keys)",
        names: [
            ("#version".to_owned(), VERSION.to_owned()),
            ("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned()),
            ("#index_keys".to_owned(), INDEX_KEYS.to_owned()),
        ]
        .into(),
        values: [(":expected".to_owned(), n(expected)), (":now".to_owned(), n(now.unix_timestamp()))].into(),
    }
}

/// Gone for a conditional write: past `expires_at`, or past it in the whole seconds that the
/// TTL attribute (and so the write's condition) holds.
fn is_gone(record: &MediaRecord, now: OffsetDateTime) -> bool {
    record.is_expired(now) || record.expires_at.is_some_and(|t| t.unix_timestamp() <= now.unix_timestamp())
}

/// Judges a stored media item against the version a write expects: `NotFound` if absent or
/// gone, `VersionConflict` if another version is stored, else the record and its index keys.
pub(super) fn check_stored(
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
pub(super) fn raced(op: &str) -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("dynamodb {op}: refused, but the stored item allows it now; retry"))
}

impl DynamoMetadataStore {
    pub(super) fn put_action(&self, item: Item, condition: Option<Condition>) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(condition) = condition {
            put = put
                .condition_expression(condition.expression)
                .set_expression_attribute_names(Some(condition.names))
                .set_expression_attribute_values((!condition.values.is_empty()).then_some(condition.values))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        }
        Ok(TransactWriteItem::builder().put(built(put.build())?).build())
    }

    pub(super) fn delete_action(&self, key: Item, condition: Option<Condition>) -> StoreResult<TransactWriteItem> {
        let mut delete = Delete::builder().table_name(&self.table).set_key(Some(key));
        if let Some(condition) = condition {
            delete = delete
                .condition_expression(condition.expression)
                .set_expression_attribute_names(Some(condition.names))
                .set_expression_attribute_values((!condition.values.is_empty()).then_some(condition.values))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        }
        Ok(TransactWriteItem::builder().delete(built(delete.build())?).build())
    }

    /// The action that removes a media's fingerprint within a transaction. An UpdateItem on an
    /// absent item would create it, empty: when there is no fingerprint item, check that none
    /// appeared instead (fingerprint items are never deleted, so one that exists keeps existing).
    pub(super) fn fingerprint_removal_action(
        &self,
        model: &ModelId,
        media: &MediaId,
        fingerprints_exist: bool,
    ) -> StoreResult<TransactWriteItem> {
        if fingerprints_exist {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(fingerprints_key(model)))
                .update_expression("REMOVE #a")
                .expression_attribute_names("#a", fingerprint_attribute(media));
            Ok(TransactWriteItem::builder().update(built(update.build())?).build())
        } else {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(fingerprints_key(model)))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK);
            Ok(TransactWriteItem::builder().condition_check(built(check.build())?).build())
        }
    }

    /// The actions of a record's conditional update (as `update_media`'s transaction, and a batch
    /// item's with its outcome): `Put` of the record (`main`) conditional on `expected` and live,
    /// `Put` of each of its entries (`copies`), `Delete` of each stored entry (`stored_keys`) it no
    /// longer wants. The version condition also guards `stored_keys`: any write since they were
    /// read changed the version.
    pub(super) fn update_actions(
        &self,
        record: &MediaRecord,
        (main, copies): (Item, Vec<Item>),
        stored_keys: &BTreeSet<String>,
        expected: u64,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        let wanted = index_keys(record)?;
        let mut actions = vec![self.put_action(main, Some(version_condition(expected, now, false)))?];
        for copy in copies {
            actions.push(self.put_action(copy, None)?);
        }
        for stale in stored_keys.difference(&wanted) {
            actions.push(self.delete_action(table_key(pk(&record.model_id), stale.clone()), None)?);
        }
        Ok(actions)
    }

    /// Why a write conditional on the media item's `expected` version was refused, from the
    /// stored item (returned with the refusal, else read): `NotFound` or `VersionConflict`.
    /// `Ok` with the stored index keys when the stored item satisfies the version after all.
    pub(super) async fn refusal(
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
