//! What both adapters of the job ports share: the checks a job listing and a conditional write
//! pass before any store is asked, and the stored form of an idempotency record (the domain's
//! type is not serde: how a record is kept is the adapters' business, so both keep it alike).

use phoenix_domain::JobId;
use phoenix_domain::jobs::Job;
use phoenix_domain::ports::{IdempotencyRecord, JobQuery, StoreError, StoreResult, bounds};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The page size of a job listing, after refusing a listing no index serves (neither model nor
/// status: that would be a scan).
pub(crate) fn job_page_size(query: &JobQuery) -> StoreResult<usize> {
    if query.model.is_none() && query.status.is_none() {
        return Err(StoreError::Invalid("a job listing names a model, a status or both".into()));
    }
    bounds::page_size(query.limit)
}

/// The version a conditional write expects: the written one minus one (writers bump first).
pub(crate) fn previous_version(version: u64) -> StoreResult<u64> {
    version.checked_sub(1).ok_or_else(|| StoreError::Invalid("a record's version starts at 1".into()))
}

/// The parent a child counts in; a job without one is not a child (the caller's mistake).
pub(crate) fn parent_of(child: &Job) -> StoreResult<JobId> {
    child.parent_id.ok_or_else(|| StoreError::Invalid(format!("job {} has no parent to count it", child.job_id)))
}

/// Past `expires_at` a job is absent, whatever the store still holds (TTL deletes lazily).
pub(crate) fn job_is_live(job: &Job, now: OffsetDateTime) -> bool {
    job.expires_at > now
}

/// An idempotency record as both adapters store it (JSON locally, one attribute per field in
/// DynamoDB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredIdempotency {
    pub(crate) scope: String,
    pub(crate) key: String,
    pub(crate) request_hash: String,
    /// What the key makes (a job or a batch). Stored as `job_id`: its name from when keys made
    /// only jobs, kept so that records written then still read.
    #[serde(rename = "job_id")]
    pub(crate) resource_id: String,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub(crate) in_flight_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) expires_at: OffsetDateTime,
    pub(crate) version: u64,
}

impl From<&IdempotencyRecord> for StoredIdempotency {
    fn from(r: &IdempotencyRecord) -> Self {
        Self {
            scope: r.scope.clone(),
            key: r.key.clone(),
            request_hash: r.request_hash.clone(),
            resource_id: r.resource_id.clone(),
            in_flight_until: r.in_flight_until,
            created_at: r.created_at,
            expires_at: r.expires_at,
            version: r.version,
        }
    }
}

impl From<StoredIdempotency> for IdempotencyRecord {
    fn from(s: StoredIdempotency) -> Self {
        Self {
            scope: s.scope,
            key: s.key,
            request_hash: s.request_hash,
            resource_id: s.resource_id,
            in_flight_until: s.in_flight_until,
            created_at: s.created_at,
            expires_at: s.expires_at,
            version: s.version,
        }
    }
}
