//! Jobs, idempotency records and lane controls: the stores and switches background jobs need.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Page, StoreResult};
use crate::ids::{JobId, ModelId};
use crate::jobs::{Job, JobStatus, Lane};

/// Which jobs to list, newest first: a model's (optionally in one status), or every model's in
/// one status (admins, the reaper). At least one of `model` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobQuery {
    pub model: Option<ModelId>,
    pub status: Option<JobStatus>,
    /// At most this many (1..=100).
    pub limit: usize,
    pub cursor: Option<String>,
    /// Oldest first instead (the stats' oldest queued job, the reaper's sweep).
    pub oldest_first: bool,
}

impl JobQuery {
    /// The listing a cursor is bound to.
    pub fn listing(&self) -> String {
        format!(
            "jobs|{}|{}|{}",
            self.model.as_ref().map(ModelId::as_str).unwrap_or_default(),
            self.status.map(JobStatus::as_str).unwrap_or_default(),
            if self.oldest_first { "asc" } else { "desc" }
        )
    }

    pub fn matches(&self, job: &Job) -> bool {
        self.model.as_ref().is_none_or(|m| &job.model_id == m) && self.status.is_none_or(|s| job.status == s)
    }
}

/// Job records. Every write but `create_job` is conditional on the version read (callers bump
/// `version` before writing, as for media records): the version is the job's fencing token.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// `AlreadyExists` if a job with this id exists.
    async fn create_job(&self, job: &Job) -> StoreResult<()>;
    /// `NotFound` also for a job past its `expires_at`.
    async fn get_job(&self, id: &JobId) -> StoreResult<Job>;
    /// Replaces the job if the stored version is `job.version - 1`, else `VersionConflict`.
    async fn update_job(&self, job: &Job) -> StoreResult<()>;
    /// Writes a child that just ended (conditional, as `update_job`) and counts it in its
    /// parent's progress (`done`, and `failed` too when it failed), atomically: a child is
    /// counted exactly once, however often its message is delivered.
    async fn finish_child(&self, child: &Job, failed: bool) -> StoreResult<()>;
    /// Newest first (or oldest first); `Invalid` for a query with neither model nor status, a
    /// limit outside 1..=100 or a cursor of another listing.
    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<Page<Job>>;
    /// How many jobs are in `status`, every model's.
    async fn count_jobs(&self, status: JobStatus) -> StoreResult<u64>;
}

/// The state of one `Idempotency-Key`, scoped to the caller who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// `{caller}` and the key, as the store's key.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the canonical request body: the same key with another body is refused.
    pub request_hash: String,
    /// The id of what this key makes (a job, a batch), chosen before it is written, so a retry
    /// makes the same one.
    pub resource_id: String,
    /// `None` once the submission completed; while in flight, when its maker is presumed dead.
    pub in_flight_until: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    /// The store forgets the key after this (at least 24 hours after it was first used).
    pub expires_at: OffsetDateTime,
    pub version: u64,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Records a first use; `AlreadyExists` when the key is taken (and not expired).
    async fn create_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()>;
    /// The record, or `NotFound` (also past `expires_at`).
    async fn get_idempotency(&self, scope: &str, key: &str) -> StoreResult<IdempotencyRecord>;
    /// Replaces it if the stored version is `record.version - 1`, else `VersionConflict`.
    async fn update_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()>;
}

/// Pausing a lane: its messages stay queued and no worker takes them until it is resumed.
/// (In AWS, the lane's event source mapping is disabled; locally its drain stops receiving.)
#[async_trait]
pub trait LaneControl: Send + Sync {
    async fn set_paused(&self, lane: Lane, paused: bool) -> StoreResult<()>;
    async fn is_paused(&self, lane: Lane) -> StoreResult<bool>;
}
