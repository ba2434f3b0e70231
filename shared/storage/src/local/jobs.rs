//! [`JobStore`] and [`IdempotencyStore`] on the metadata store's SQLite database: one row per job
//! (the record as JSON, and the columns its listings need, in the orders of the DynamoDB table's
//! GSI1, GSI2 and GSI3), one row per idempotency key. Sharing the database with the media records
//! is what makes `finish_child` one transaction: the child and its parent's progress commit
//! together or not at all.

use async_trait::async_trait;
use phoenix_domain::JobId;
use phoenix_domain::jobs::{Job, JobStatus};
use phoenix_domain::ports::{
    IdempotencyRecord, IdempotencyStore, JobQuery, JobStore, Page, StoreError, StoreResult, cursor,
};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use super::metadata::LocalMetadataStore;
use super::sqlite::sql_err;
use crate::jobs::{StoredIdempotency, job_is_live, job_page_size, parent_of, previous_version};

/// Created on open, with the media tables (`CREATE … IF NOT EXISTS`, so older data folders gain
/// them). `expires_at` is unix seconds, as DynamoDB's TTL attribute.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    job_id     TEXT PRIMARY KEY,
    model_id   TEXT NOT NULL,
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs (model_id, job_id);
CREATE INDEX IF NOT EXISTS jobs_by_model_status ON jobs (model_id, status, job_id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, job_id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
";

pub(super) fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A job that cannot be encoded is a bug here, not a bad request.
pub(super) fn encode<T: serde::Serialize>(what: &str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::internal(anyhow::anyhow!("a {what} cannot be encoded: {e}")))
}

/// Stored data that does not decode is corrupt, which no retry mends: `Internal`.
pub(super) fn decode<T: serde::de::DeserializeOwned>(what: &str, doc: &str) -> StoreResult<T> {
    serde_json::from_str(doc).map_err(|e| StoreError::internal(anyhow::anyhow!("corrupt {what}: {e}")))
}

/// The live row's version and document, if any (an expired row counts as absent).
fn live_job(tx: &rusqlite::Connection, id: &str, now: i64) -> StoreResult<Option<(u64, String)>> {
    tx.prepare_cached("SELECT version, doc FROM jobs WHERE job_id = ?1 AND expires_at > ?2")
        .map_err(sql_err)?
        .query_row(params![id, now], |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?)))
        .optional()
        .map_err(sql_err)
}

/// `NotFound` unless a live row (its version and document) is stored at `expected`;
/// `VersionConflict` if at another version.
fn expect_version(live: Option<(u64, String)>, expected: u64) -> StoreResult<()> {
    match live {
        None => Err(StoreError::NotFound),
        Some((v, _)) if v != expected => Err(StoreError::VersionConflict { current: Some(v) }),
        Some(_) => Ok(()),
    }
}

/// A versioned record kept as one row (a job, an idempotency record).
pub(super) trait Row: Clone + Send + 'static {
    /// The live row with this record's key: its version and document (an expired row counts as
    /// absent, as DynamoDB's TTL would remove it eventually).
    fn live(&self, conn: &rusqlite::Connection, now: i64) -> StoreResult<Option<(u64, String)>>;
    /// Replaces (or inserts) the row.
    fn write(&self, tx: &Transaction<'_>) -> StoreResult<()>;
}

impl LocalMetadataStore {
    /// Inserts `row`; `AlreadyExists` if a live one has its key.
    pub(super) async fn create_row<R: Row>(&self, row: &R) -> StoreResult<()> {
        let row = row.clone();
        let now = now_secs();
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                if row.live(&tx, now)?.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                row.write(&tx)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }

    /// Replaces the live row stored at `expected` with `row` ([`expect_version`]).
    pub(super) async fn replace_row<R: Row>(&self, row: &R, expected: u64) -> StoreResult<()> {
        let row = row.clone();
        let now = now_secs();
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                expect_version(row.live(&tx, now)?, expected)?;
                row.write(&tx)?;
                tx.commit().map_err(sql_err)
            })
            .await
    }
}

impl Row for Job {
    fn live(&self, conn: &rusqlite::Connection, now: i64) -> StoreResult<Option<(u64, String)>> {
        live_job(conn, &self.job_id.to_string(), now)
    }

    fn write(&self, tx: &Transaction<'_>) -> StoreResult<()> {
        write_job(tx, self)
    }
}

impl Row for IdempotencyRecord {
    fn live(&self, conn: &rusqlite::Connection, now: i64) -> StoreResult<Option<(u64, String)>> {
        live_key(conn, &self.scope, &self.key, now)
    }

    fn write(&self, tx: &Transaction<'_>) -> StoreResult<()> {
        write_key(tx, self)
    }
}

/// Replaces (or inserts) the job's row.
fn write_job(tx: &Transaction<'_>, job: &Job) -> StoreResult<()> {
    let doc = encode("job", job)?;
    tx.execute(
        "INSERT OR REPLACE INTO jobs (job_id, model_id, status, version, expires_at, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            job.job_id.to_string(),
            job.model_id.as_str(),
            job.status.as_str(),
            job.version as i64,
            job.expires_at.unix_timestamp(),
            doc
        ],
    )
    .map_err(sql_err)
    .map(drop)
}

#[async_trait]
impl JobStore for LocalMetadataStore {
    async fn create_job(&self, job: &Job) -> StoreResult<()> {
        self.create_row(job).await
    }

    async fn get_job(&self, id: &JobId) -> StoreResult<Job> {
        let id = id.to_string();
        let now = now_secs();
        let row = self.db.run(move |conn| live_job(conn, &id, now)).await?;
        let job: Job = decode("job", &row.ok_or(StoreError::NotFound)?.1)?;
        // The column holds whole seconds; the record the instant.
        if !job_is_live(&job, OffsetDateTime::now_utc()) {
            return Err(StoreError::NotFound);
        }
        Ok(job)
    }

    async fn update_job(&self, job: &Job) -> StoreResult<()> {
        self.replace_row(job, previous_version(job.version)?).await
    }

    async fn finish_child(&self, child: &Job, failed: bool) -> StoreResult<()> {
        let parent_id = parent_of(child)?.to_string();
        let expected = previous_version(child.version)?;
        let child = child.clone();
        let now = now_secs();
        self.db
            .run(move |conn| {
                let tx = conn.transaction().map_err(sql_err)?;
                expect_version(child.live(&tx, now)?, expected)?;
                let (_, doc) = live_job(&tx, &parent_id, now)?.ok_or(StoreError::NotFound)?;
                let mut parent: Job = decode("job", &doc)?;
                let progress = parent.progress.get_or_insert_default();
                progress.done += 1;
                progress.failed += u64::from(failed);
                parent.version += 1;
                parent.updated_at = child.updated_at;
                write_job(&tx, &child)?;
                write_job(&tx, &parent)?;
                // Dropping an uncommitted transaction rolls it back: a refusal above writes nothing.
                tx.commit().map_err(sql_err)
            })
            .await
    }

    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<Page<Job>> {
        let limit = job_page_size(query)?;
        let listing = query.listing();
        // The position is the last job id of the previous page.
        let after: Option<JobId> = query.cursor.as_deref().map(|c| cursor::decode(c, &listing)).transpose()?;
        let mut sql = String::from("SELECT doc FROM jobs WHERE expires_at > ?");
        let mut values = vec![Value::Integer(now_secs())];
        if let Some(model) = &query.model {
            sql.push_str(" AND model_id = ?");
            values.push(Value::Text(model.as_str().to_owned()));
        }
        if let Some(status) = query.status {
            sql.push_str(" AND status = ?");
            values.push(Value::Text(status.as_str().to_owned()));
        }
        // Job ids are ULIDs: id order is submission order, as the DynamoDB indexes sort them.
        let (comparison, order) = if query.oldest_first { (">", "ASC") } else { ("<", "DESC") };
        if let Some(after) = after {
            sql.push_str(&format!(" AND job_id {comparison} ?"));
            values.push(Value::Text(after.to_string()));
        }
        sql.push_str(&format!(" ORDER BY job_id {order} LIMIT ?"));
        values.push(Value::Integer(limit as i64));
        self.page(sql, values, limit, &listing, |doc| decode("job", doc), |job: &Job| job.job_id).await
    }

    async fn count_jobs(&self, status: JobStatus) -> StoreResult<u64> {
        let now = now_secs();
        self.db
            .run(move |conn| {
                conn.prepare_cached("SELECT COUNT(*) FROM jobs WHERE status = ?1 AND expires_at > ?2")
                    .map_err(sql_err)?
                    .query_row(params![status.as_str(), now], |row| row.get::<_, i64>(0))
                    .map(|n| n as u64)
                    .map_err(sql_err)
            })
            .await
    }
}

/// The live record's version and document (an expired one counts as absent).
fn live_key(conn: &rusqlite::Connection, scope: &str, key: &str, now: i64) -> StoreResult<Option<(u64, String)>> {
    conn.prepare_cached("SELECT version, doc FROM idempotency_keys WHERE scope = ?1 AND key = ?2 AND expires_at > ?3")
        .map_err(sql_err)?
        .query_row(params![scope, key, now], |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?)))
        .optional()
        .map_err(sql_err)
}

fn write_key(tx: &Transaction<'_>, record: &IdempotencyRecord) -> StoreResult<()> {
    let doc = encode("idempotency record", &StoredIdempotency::from(record))?;
    tx.execute(
        "INSERT OR REPLACE INTO idempotency_keys (scope, key, version, expires_at, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![record.scope, record.key, record.version as i64, record.expires_at.unix_timestamp(), doc],
    )
    .map_err(sql_err)
    .map(drop)
}

#[async_trait]
impl IdempotencyStore for LocalMetadataStore {
    async fn create_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()> {
        self.create_row(record).await
    }

    async fn get_idempotency(&self, scope: &str, key: &str) -> StoreResult<IdempotencyRecord> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        let now = now_secs();
        let row = self.db.run(move |conn| live_key(conn, &scope, &key, now)).await?;
        let record: IdempotencyRecord =
            decode::<StoredIdempotency>("idempotency record", &row.ok_or(StoreError::NotFound)?.1)?.into();
        if record.expires_at <= OffsetDateTime::now_utc() {
            return Err(StoreError::NotFound);
        }
        Ok(record)
    }

    async fn update_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()> {
        self.replace_row(record, previous_version(record.version)?).await
    }
}
