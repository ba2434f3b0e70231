//! [`JobStore`] and [`IdempotencyStore`] on the media table. A job is not a model's item (the
//! reaper and the stats look across models, and a job is read by its id alone), so each job has
//! a partition of its own and three GSIs list them:
//!
//! | item        | `PK`                           | `SK`          | holds                                 |
//! |-------------|--------------------------------|---------------|---------------------------------------|
//! | job         | `JOB#{job_id}`                 | `JOB`         | the job, its GSI1/2/3 keys            |
//! | idempotency | `IDEMPOTENCY#{scope}#{key}`    | `IDEMPOTENCY` | the record of one `Idempotency-Key`   |
//!
//! | index | partition (`GSInPK`)                        | sort (`GSInSK`) | serves                        |
//! |-------|---------------------------------------------|-----------------|-------------------------------|
//! | GSI1  | `JOBS#MODEL#{model_id}`                     | `{job_id}`      | a model's jobs                |
//! | GSI2  | `JOBS#MODEL#{model_id}#STATUS#{status}`     | `{job_id}`      | a model's jobs in one status  |
//! | GSI3  | `JOBS#STATUS#{status}`                      | `{job_id}`      | every model's jobs in a status (reaper, stats) |
//!
//! Job ids are lower-case ULIDs, so sort-key order is submission order. Both items carry
//! `expires_at_epoch` (the TTL) and `version`; their fields are attributes (`serde_dynamo`), as
//! for media records. The scope and key of an idempotency record are percent-encoded (`#` and
//! `%` at least), so no two (scope, key) pairs share a `PK`.
//!
//! `finish_child` is one TransactWriteItems: a Put of the child conditional on its version, and
//! an Update of the parent that adds to `progress.done` (and `progress.failed`) and bumps its
//! `version` and `updated_at`. A failed condition cancels both.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Select, TransactWriteItem, Update};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use phoenix_domain::jobs::{Job, JobStatus};
use phoenix_domain::ports::{
    IdempotencyRecord, IdempotencyStore, JobQuery, JobStore, Page, StoreError, StoreResult, cursor as envelope,
};
use phoenix_domain::{JobId, ModelId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::DynamoMetadataStore;
use super::client::{Outcome, built, cancelled, condition_failed};
use super::codec::{Item, n, s, table_key};
use super::conditions::{create_condition, raced, version_condition};
use super::cursor::page_of;
use super::table::{GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, GSI3, GSI3PK, GSI3SK, PK, SK, TTL_ATTRIBUTE};
use crate::aws::classify;
use crate::jobs::{StoredIdempotency, job_is_live, job_page_size, parent_of, previous_version};

const JOB_PREFIX: &str = "JOB#";
const JOB_SK: &str = "JOB";
const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";
/// Attributes of the layout, never part of a decoded record.
const STORAGE_ATTRIBUTES: [&str; 9] = [PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK, GSI3PK, GSI3SK, TTL_ATTRIBUTE];
/// A parent without progress yet has it initialised, then its child's write is tried again.
const FINISH_ATTEMPTS: usize = 3;

/// What a part of an idempotency `PK` may not contain as itself: `#` separates the parts, `%`
/// escapes (controls and non-ASCII are always encoded).
const KEY_PART: &AsciiSet = &CONTROLS.add(b'#').add(b'%');

fn job_pk(id: &JobId) -> String {
    format!("{JOB_PREFIX}{id}")
}

fn job_key(id: &JobId) -> Item {
    table_key(job_pk(id), JOB_SK.to_owned())
}

fn jobs_of_model(model: &ModelId) -> String {
    format!("JOBS#MODEL#{}", model.as_str())
}

fn jobs_of_model_in(model: &ModelId, status: JobStatus) -> String {
    format!("JOBS#MODEL#{}#STATUS#{}", model.as_str(), status.as_str())
}

fn jobs_in(status: JobStatus) -> String {
    format!("JOBS#STATUS#{}", status.as_str())
}

fn idempotency_key(scope: &str, key: &str) -> Item {
    let pk = format!("IDEMPOTENCY#{}#{}", utf8_percent_encode(scope, KEY_PART), utf8_percent_encode(key, KEY_PART));
    table_key(pk, IDEMPOTENCY_SK.to_owned())
}

/// The job item: its fields, its keys (table and the three GSIs), TTL and version.
fn job_item(job: &Job) -> StoreResult<Item> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(job)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a job cannot be encoded: {e}")))?;
    let id = job.job_id.to_string();
    item.extend(job_key(&job.job_id));
    item.insert(GSI1PK.to_owned(), s(jobs_of_model(&job.model_id)));
    item.insert(GSI1SK.to_owned(), s(id.clone()));
    item.insert(GSI2PK.to_owned(), s(jobs_of_model_in(&job.model_id, job.status)));
    item.insert(GSI2SK.to_owned(), s(id.clone()));
    item.insert(GSI3PK.to_owned(), s(jobs_in(job.status)));
    item.insert(GSI3SK.to_owned(), s(id));
    item.insert(TTL_ATTRIBUTE.to_owned(), n(job.expires_at.unix_timestamp()));
    item.insert("version".to_owned(), n(job.version));
    Ok(item)
}

/// The job an item holds. One that does not decode is our fault, not the caller's: `Internal`.
fn job_from_item(item: &Item) -> StoreResult<Job> {
    let mut fields = item.clone();
    for key in STORAGE_ATTRIBUTES {
        fields.remove(key);
    }
    serde_dynamo::aws_sdk_dynamodb_1::from_item(fields)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a stored job does not decode: {e}")))
}

fn idempotency_item(record: &IdempotencyRecord) -> StoreResult<Item> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(StoredIdempotency::from(record))
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: an idempotency record cannot be encoded: {e}")))?;
    item.extend(idempotency_key(&record.scope, &record.key));
    item.insert(TTL_ATTRIBUTE.to_owned(), n(record.expires_at.unix_timestamp()));
    item.insert("version".to_owned(), n(record.version));
    Ok(item)
}

fn idempotency_from_item(item: &Item) -> StoreResult<IdempotencyRecord> {
    let mut fields = item.clone();
    for key in [PK, SK, TTL_ATTRIBUTE] {
        fields.remove(key);
    }
    serde_dynamo::aws_sdk_dynamodb_1::from_item::<StoredIdempotency>(fields).map(Into::into).map_err(|e| {
        StoreError::internal(anyhow::anyhow!("dynamodb: a stored idempotency record does not decode: {e}"))
    })
}

/// Past its expiry, or past it in the whole seconds the TTL attribute (so a condition) holds.
fn is_gone(expires_at: OffsetDateTime, now: OffsetDateTime) -> bool {
    expires_at <= now || expires_at.unix_timestamp() <= now.unix_timestamp()
}

/// Why a write conditional on `expected` (and on being live) was refused, from the stored item's
/// version and expiry: `NotFound`, `VersionConflict`, or a race (it allows the write now).
fn judge(stored: Option<(u64, OffsetDateTime)>, expected: u64, now: OffsetDateTime, op: &str) -> StoreError {
    match stored {
        None => StoreError::NotFound,
        Some((_, expires_at)) if is_gone(expires_at, now) => StoreError::NotFound,
        Some((version, _)) if version != expected => StoreError::VersionConflict { current: Some(version) },
        Some(_) => raced(op),
    }
}

/// How one job listing reads: the index, its partition, and its key attributes (those of a
/// `LastEvaluatedKey`, sorted).
struct JobPlan {
    index: &'static str,
    partition: &'static str,
    sort: &'static str,
    value: String,
    key_attributes: [&'static str; 4],
}

fn job_plan(query: &JobQuery) -> Option<JobPlan> {
    let (index, partition, sort, value) = match (&query.model, query.status) {
        (Some(model), Some(status)) => (GSI2, GSI2PK, GSI2SK, jobs_of_model_in(model, status)),
        (Some(model), None) => (GSI1, GSI1PK, GSI1SK, jobs_of_model(model)),
        (None, Some(status)) => (GSI3, GSI3PK, GSI3SK, jobs_in(status)),
        (None, None) => return None,
    };
    Some(JobPlan { index, partition, sort, value, key_attributes: [partition, sort, PK, SK] })
}

/// The `ExclusiveStartKey` of a cursor this listing returned: exactly the index's and the
/// table's key attributes, of one job item in the listing's partition.
fn decode_job_cursor(raw: &str, listing: &str, plan: &JobPlan) -> StoreResult<Item> {
    let key: BTreeMap<String, String> = envelope::decode(raw, listing)?;
    let invalid = || StoreError::Invalid("cursor is not one this listing returned".to_owned());
    let mut expected_names = plan.key_attributes;
    expected_names.sort_unstable();
    if !key.keys().map(String::as_str).eq(expected_names) {
        return Err(invalid());
    }
    let id = key.get(plan.sort).and_then(|id| JobId::parse(id).ok()).ok_or_else(invalid)?;
    let valid = key.get(plan.partition) == Some(&plan.value)
        && key.get(PK) == Some(&job_pk(&id))
        && key.get(SK).map(String::as_str) == Some(JOB_SK);
    if !valid {
        return Err(invalid());
    }
    Ok(key.into_iter().map(|(name, value)| (name, s(value))).collect())
}

/// A stored job's version and expiry.
fn job_state(item: &Item) -> StoreResult<(u64, OffsetDateTime)> {
    job_from_item(item).map(|job| (job.version, job.expires_at))
}

/// A stored idempotency record's version and expiry.
fn idempotency_state(item: &Item) -> StoreResult<(u64, OffsetDateTime)> {
    idempotency_from_item(item).map(|record| (record.version, record.expires_at))
}

/// How a stored item's version and expiry are read.
pub(super) type StateOf = fn(&Item) -> StoreResult<(u64, OffsetDateTime)>;

impl DynamoMetadataStore {
    /// Writes a new item; `AlreadyExists` if a live one holds its key.
    pub(super) async fn create_item(&self, item: Item) -> StoreResult<()> {
        match self.put_conditional(item, create_condition(OffsetDateTime::now_utc())).await? {
            Outcome::Written => Ok(()),
            Outcome::Refused(_) => Err(StoreError::AlreadyExists),
        }
    }

    /// The item at `key`, decoded, if it is still live; otherwise `NotFound`.
    pub(super) async fn get_live<T>(
        &self,
        key: Item,
        decode: fn(&Item) -> StoreResult<T>,
        live: fn(&T, OffsetDateTime) -> bool,
    ) -> StoreResult<T> {
        match self.get_raw(key).await?.map(|item| decode(&item)).transpose()? {
            Some(value) if live(&value, OffsetDateTime::now_utc()) => Ok(value),
            _ => Err(StoreError::NotFound),
        }
    }

    /// The version and expiry of the item at `key`, read consistently (`None` if absent).
    async fn state_at(&self, key: Item, state: StateOf) -> StoreResult<Option<(u64, OffsetDateTime)>> {
        self.get_raw(key).await?.as_ref().map(state).transpose()
    }

    /// The version and expiry a refused write is judged against: the item returned with the
    /// refusal, or else the one at `key`, read again.
    async fn refused_state(
        &self,
        returned: Option<&Item>,
        key: Item,
        state: StateOf,
    ) -> StoreResult<Option<(u64, OffsetDateTime)>> {
        match returned {
            Some(item) => state(item).map(Some),
            None => self.state_at(key, state).await,
        }
    }

    /// Replaces the item at `key` if it is live at version `expected`; a refusal is judged
    /// ([`judge`]) against what is stored.
    pub(super) async fn replace_item(&self, item: Item, key: Item, expected: u64, state: StateOf) -> StoreResult<()> {
        let now = OffsetDateTime::now_utc();
        match self.put_conditional(item, version_condition(expected, now, false)).await? {
            Outcome::Written => Ok(()),
            Outcome::Refused(stored) => {
                Err(judge(self.refused_state(stored.as_ref(), key, state).await?, expected, now, "PutItem"))
            }
        }
    }

    /// The Update that counts a child in its parent: progress, version, `updated_at`. Its
    /// condition is that the parent is live and has a progress to add to.
    fn count_in_parent(
        &self,
        parent: &JobId,
        failed: bool,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<TransactWriteItem> {
        let updated_at = at.format(&Rfc3339).map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: {e}")))?;
        let names: HashMap<String, String> = [
            ("#progress", "progress"),
            ("#done", "done"),
            ("#failed", "failed"),
            ("#version", "version"),
            ("#updated_at", "updated_at"),
            ("#ttl", TTL_ATTRIBUTE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let values: Item = [
            (":one".to_owned(), n(1)),
            (":failed".to_owned(), n(u64::from(failed))),
            (":updated_at".to_owned(), s(updated_at)),
            (":now".to_owned(), n(now.unix_timestamp())),
        ]
        .into();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(job_key(parent)))
            .update_expression(
                "SET #progress.#done = #progress.#done + :one, #progress.#failed = #progress.#failed + :failed, \
                 #version = #version + :one, #updated_at = :updated_at",
            )
            .condition_expression("attribute_exists(#progress) AND #ttl > :now")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        Ok(TransactWriteItem::builder().update(built(update.build())?).build())
    }

    /// Gives a live parent without progress a zero one, so that a child can be counted in it.
    /// Another writer may have done it first: either way it has one afterwards. Returns `false`
    /// when the parent is absent or gone.
    async fn initialise_progress(&self, parent: &JobId, now: OffsetDateTime) -> StoreResult<bool> {
        let zero: Item =
            [("done", 0u64), ("failed", 0), ("total", 0)].into_iter().map(|(k, v)| (k.to_owned(), n(v))).collect();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(job_key(parent)))
            .update_expression("SET #progress = :zero")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#progress) AND #ttl > :now")
            .expression_attribute_names("#progress", "progress")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":zero", AttributeValue::M(zero))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                let stored = self.state_at(job_key(parent), job_state).await?;
                Ok(stored.is_some_and(|(_, expires_at)| !is_gone(expires_at, now)))
            }
            Err(e) => Err(classify("dynamodb UpdateItem", e)),
        }
    }
}

#[async_trait]
impl JobStore for DynamoMetadataStore {
    async fn create_job(&self, job: &Job) -> StoreResult<()> {
        self.create_item(job_item(job)?).await
    }

    async fn get_job(&self, id: &JobId) -> StoreResult<Job> {
        self.get_live(job_key(id), job_from_item, job_is_live).await
    }

    async fn update_job(&self, job: &Job) -> StoreResult<()> {
        let expected = previous_version(job.version)?;
        self.replace_item(job_item(job)?, job_key(&job.job_id), expected, job_state).await
    }

    async fn finish_child(&self, child: &Job, failed: bool) -> StoreResult<()> {
        let parent = parent_of(child)?;
        let expected = previous_version(child.version)?;
        let item = job_item(child)?;
        for _ in 0..FINISH_ATTEMPTS {
            let now = OffsetDateTime::now_utc();
            let actions = vec![
                self.put_action(item.clone(), Some(version_condition(expected, now, false)))?,
                self.count_in_parent(&parent, failed, child.updated_at, now)?,
            ];
            let Some(reasons) = self.transact_reasons(actions).await? else {
                return Ok(());
            };
            if condition_failed(reasons.first()) {
                let stored = self.refused_state(reasons[0].item(), job_key(&child.job_id), job_state).await?;
                return Err(judge(stored, expected, now, "TransactWriteItems"));
            }
            if !condition_failed(reasons.get(1)) {
                return Err(cancelled(&reasons));
            }
            // The parent is absent, gone, or has no progress yet (initialised, then try again).
            if !self.initialise_progress(&parent, now).await? {
                return Err(StoreError::NotFound);
            }
        }
        Err(raced("TransactWriteItems"))
    }

    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<Page<Job>> {
        let limit = job_page_size(query)?;
        let plan =
            job_plan(query).ok_or_else(|| StoreError::Invalid("a job listing names a model or a status".into()))?;
        let listing = query.listing();
        let start = query.cursor.as_deref().map(|raw| decode_job_cursor(raw, &listing, &plan)).transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(plan.index)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", plan.partition)
            .expression_attribute_values(":pk", s(plan.value.clone()))
            .scan_index_forward(query.oldest_first)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("dynamodb Query", e))?;
        page_of(&output, &listing, job_from_item, job_is_live)
    }

    async fn count_jobs(&self, status: JobStatus) -> StoreResult<u64> {
        let now = OffsetDateTime::now_utc();
        let mut total = 0u64;
        let mut start = None;
        // One Query of GSI3 counting (Select=COUNT), page after page: each reads up to 1 MB.
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI3)
                .select(Select::Count)
                .key_condition_expression("#pk = :pk")
                .filter_expression("#ttl > :now")
                .expression_attribute_names("#pk", GSI3PK)
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":pk", s(jobs_in(status)))
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

#[async_trait]
impl IdempotencyStore for DynamoMetadataStore {
    async fn create_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()> {
        self.create_item(idempotency_item(record)?).await
    }

    async fn get_idempotency(&self, scope: &str, key: &str) -> StoreResult<IdempotencyRecord> {
        self.get_live(idempotency_key(scope, key), idempotency_from_item, |record, now| record.expires_at > now).await
    }

    async fn update_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()> {
        let expected = previous_version(record.version)?;
        let key = idempotency_key(&record.scope, &record.key);
        self.replace_item(idempotency_item(record)?, key, expected, idempotency_state).await
    }
}

#[cfg(test)]
mod tests {
    use phoenix_domain::jobs::Lane;

    use super::super::cursor::encode_cursor;
    use super::*;

    fn sample() -> Job {
        crate::conformance::sample_job(&ModelId::parse("m1").unwrap(), None, JobStatus::Running)
    }

    #[test]
    fn job_items_carry_every_key_and_round_trip() {
        let job = sample();
        let id = job.job_id.to_string();
        let item = job_item(&job).unwrap();
        assert_eq!(item[PK], s(format!("JOB#{id}")));
        assert_eq!(item[SK], s("JOB".to_owned()));
        assert_eq!(item[GSI1PK], s("JOBS#MODEL#m1".to_owned()));
        assert_eq!(item[GSI2PK], s("JOBS#MODEL#m1#STATUS#running".to_owned()));
        assert_eq!(item[GSI3PK], s("JOBS#STATUS#running".to_owned()));
        for sort in [GSI1SK, GSI2SK, GSI3SK] {
            assert_eq!(item[sort], s(id.clone()), "{sort} is the job id");
        }
        assert_eq!(item[TTL_ATTRIBUTE], n(job.expires_at.unix_timestamp()));
        assert_eq!(item["version"], n(job.version));
        assert_eq!(job_from_item(&item).unwrap(), job);
    }

    /// `Operation` is internally tagged (`op`) and refuses unknown fields: every variant must
    /// come back from DynamoDB's attribute form as it went in.
    #[test]
    fn every_operation_round_trips_through_serde_dynamo() {
        for operation in crate::conformance::sample_operations() {
            let mut job = sample();
            job.lane = Lane::High;
            job.operation = operation.clone();
            let item = job_item(&job).unwrap();
            let AttributeValue::M(stored) = &item["operation"] else { panic!("an operation is a map: {item:?}") };
            assert_eq!(stored["op"], s(operation.name().to_owned()), "tagged by op");
            assert_eq!(job_from_item(&item).unwrap().operation, operation);
        }
    }

    #[test]
    fn idempotency_keys_cannot_be_confused() {
        let pk = |scope: &str, key: &str| idempotency_key(scope, key)[PK].clone();
        assert_ne!(pk("a#b", "c"), pk("a", "b#c"));
        assert_ne!(pk("a%23b", "c"), pk("a#b", "c"));
        assert_eq!(pk("user-1", "key-1"), s("IDEMPOTENCY#user-1#key-1".to_owned()));
    }

    #[test]
    fn job_cursors_belong_to_their_listing() {
        let model = ModelId::parse("m1").unwrap();
        let query = JobQuery { model: Some(model.clone()), limit: 1, ..JobQuery::default() };
        let plan = job_plan(&query).unwrap();
        let id = JobId::new();
        let key: Item = [
            (GSI1PK.to_owned(), s(jobs_of_model(&model))),
            (GSI1SK.to_owned(), s(id.to_string())),
            (PK.to_owned(), s(job_pk(&id))),
            (SK.to_owned(), s(JOB_SK.to_owned())),
        ]
        .into();
        let raw = encode_cursor(&query.listing(), &key).unwrap();
        assert_eq!(decode_job_cursor(&raw, &query.listing(), &plan).unwrap(), key);
        let other = JobQuery { status: Some(JobStatus::Queued), ..query.clone() };
        assert!(matches!(decode_job_cursor(&raw, &other.listing(), &plan), Err(StoreError::Invalid(_))));
        let mut forged = key.clone();
        forged.insert(PK.to_owned(), s(job_pk(&JobId::new())));
        let raw = encode_cursor(&query.listing(), &forged).unwrap();
        assert!(matches!(decode_job_cursor(&raw, &query.listing(), &plan), Err(StoreError::Invalid(_))));
    }
}
