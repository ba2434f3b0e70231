//! Call plumbing: single reads, BatchGetItem with retries of its unprocessed keys, conditional
//! writes and transactions, and the mapping of their failures onto the port's errors.

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, KeysAndAttributes, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_smithy_types::error::operation::BuildError;
use phoenix_domain::ports::{StoreError, StoreResult};

use super::DynamoMetadataStore;
use super::codec::Item;
use super::conditions::Condition;
use crate::aws::classify;

/// BatchGetItem may leave keys unprocessed (throttling, 16 MB responses): retried this many
/// times in all, waiting `BATCH_BACKOFF` and doubling between attempts.
const BATCH_ATTEMPTS: u32 = 5;
const BATCH_BACKOFF: Duration = Duration::from_millis(50);

/// The cancellation reason DynamoDB gives an action whose condition failed.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// How a conditional write went: written, or refused by the media item's condition (with the
/// stored item when DynamoDB returned it).
pub(super) enum Outcome {
    Written,
    Refused(Option<Item>),
}

/// A request this module builds misses a required field: a bug here, not a bad request.
pub(super) fn built<T>(result: Result<T, BuildError>) -> StoreResult<T> {
    result.map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a request cannot be built: {e}")))
}

impl DynamoMetadataStore {
    /// One item by its key, read consistently.
    pub(super) async fn get_raw(&self, key: Item) -> StoreResult<Option<Item>> {
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

    /// The items among `keys` (consistent reads) in one BatchGetItem, retrying unprocessed keys
    /// with backoff; `Unavailable` if some are still unprocessed after the last attempt.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
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
    pub(super) async fn put_conditional(&self, item: Item, condition: Condition) -> StoreResult<Outcome> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(condition.names))
            .set_expression_attribute_values((!condition.values.is_empty()).then_some(condition.values))
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
    pub(super) async fn transact(&self, actions: Vec<TransactWriteItem>) -> StoreResult<Outcome> {
        let Some(reasons) = self.transact_reasons(actions).await? else {
            return Ok(Outcome::Written);
        };
        if let Some(first) = reasons.first()
            && first.code() == Some(CONDITION_FAILED)
        {
            return Ok(Outcome::Refused(first.item().cloned()));
        }
        Err(cancelled(&reasons))
    }

    /// One TransactWriteItems: `None` when written, else why each action was cancelled (in the
    /// order of the actions; `None` for those that were not at fault).
    pub(super) async fn transact_reasons(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> StoreResult<Option<Vec<CancellationReason>>> {
        let result = self.client.transact_write_items().set_transact_items(Some(actions)).send().await;
        match result {
            Ok(_) => Ok(None),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    Ok(Some(cancelled.cancellation_reasons().to_vec()))
                }
                _ => Err(classify("dynamodb TransactWriteItems", e)),
            },
        }
    }
}

/// Whether the action of `reason` was refused by its own condition.
pub(super) fn condition_failed(reason: Option<&CancellationReason>) -> bool {
    reason.and_then(CancellationReason::code) == Some(CONDITION_FAILED)
}

/// A cancellation no condition explains (a concurrent transaction on one of the items): transient.
pub(super) fn cancelled(reasons: &[CancellationReason]) -> StoreError {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("?")).collect();
    StoreError::Unavailable(anyhow::anyhow!("dynamodb TransactWriteItems: cancelled ({}); retry", codes.join(", ")))
}
