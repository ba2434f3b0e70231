//! `Idempotency-Key` for batch submissions, with the rules and the store `POST /v1/jobs` uses:
//! the same key and body answer the same batch, another body is refused, a submission still in
//! flight says so, and one that died midway is taken over once its claim lapses. The record's
//! `job_id` names the batch (both ids are ULIDs; converted through their string form).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName};
use phoenix_domain::ports::{IdempotencyRecord, IdempotencyStore};
use phoenix_domain::{BatchId, JobId, StoreError};
use phoenix_http::ApiError;
use serde::Serialize;
use sha2::Digest;
use time::OffsetDateTime;

use crate::error::BatchApiError;

/// The request header that makes a submission idempotent.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header that says a submission was answered from its `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Keys live at least this long (then a reused key makes a new batch), as for jobs.
const RETENTION: Duration = phoenix_domain::jobs::IDEMPOTENCY_RETENTION;
/// A submission still in flight after this is presumed dead, and a retry under its key finishes it.
const IN_FLIGHT: Duration = Duration::from_secs(30);
/// The longest key accepted.
const KEY_MAX: usize = 255;

/// A key with the caller it belongs to and the request it was sent with.
pub struct Key {
    scope: String,
    key: String,
    request_hash: String,
}

impl Key {
    /// The key of the request's headers, if it has one. Scoped to the caller, in a namespace of
    /// its own (a caller's job keys and batch keys never collide); the hash is of the request as
    /// understood, so formatting differences are the same body.
    pub fn from_headers(headers: &HeaderMap, caller: &str, request: &impl Serialize) -> Result<Option<Self>, ApiError> {
        let Some(raw) = headers.get(&IDEMPOTENCY_KEY) else { return Ok(None) };
        let refused = || ApiError::InvalidField {
            field: "Idempotency-Key".into(),
            message: format!("Idempotency-Key must be 1 to {KEY_MAX} visible ASCII characters"),
        };
        let key = raw.to_str().map_err(|_| refused())?;
        if key.is_empty() || key.len() > KEY_MAX || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(refused());
        }
        let canonical = serde_json::to_vec(request).map_err(|e| ApiError::Unexpected(e.into()))?;
        Ok(Some(Self {
            scope: format!("batches|{caller}"),
            key: key.to_owned(),
            request_hash: hex::encode(sha2::Sha256::digest(&canonical)),
        }))
    }
}

/// What a key says about a submission.
pub enum Claim {
    /// Submit (or finish) the batch `record` names, then [`complete`] the record.
    Submit(IdempotencyRecord, BatchId),
    /// The key's submission completed: answer its batch.
    Replay(BatchId),
}

pub fn batch_of(record: &IdempotencyRecord) -> Result<BatchId, ApiError> {
    BatchId::parse(&record.job_id.to_string())
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("an idempotency record names no batch: {e}")))
}

/// Takes the key for a new submission, or says what it was used for.
pub async fn claim(store: &dyn IdempotencyStore, key: &Key, now: OffsetDateTime) -> Result<Claim, BatchApiError> {
    let id = BatchId::new();
    let fresh = IdempotencyRecord {
        scope: key.scope.clone(),
        key: key.key.clone(),
        request_hash: key.request_hash.clone(),
        job_id: JobId::parse(&id.to_string()).map_err(|e| ApiError::Unexpected(e.into()))?,
        in_flight_until: Some(now + IN_FLIGHT),
        created_at: now,
        expires_at: now + RETENTION,
        version: 1,
    };
    match store.create_idempotency(&fresh).await {
        Ok(()) => return Ok(Claim::Submit(fresh, id)),
        Err(StoreError::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    let existing = store.get_idempotency(&key.scope, &key.key).await?;
    if existing.request_hash != key.request_hash {
        return Err(BatchApiError::IdempotencyKeyReused);
    }
    let id = batch_of(&existing)?;
    match existing.in_flight_until {
        None => Ok(Claim::Replay(id)),
        Some(until) if until > now => Err(BatchApiError::IdempotencyInFlight),
        // Its maker died (or was refused) mid-submission: take it over (one taker wins the write).
        Some(_) => {
            let mut taken = existing;
            taken.in_flight_until = Some(now + IN_FLIGHT);
            taken.version += 1;
            store.update_idempotency(&taken).await.map_err(|e| match e {
                StoreError::VersionConflict { .. } => BatchApiError::IdempotencyInFlight,
                other => other.into(),
            })?;
            Ok(Claim::Submit(taken, id))
        }
    }
}

/// The submission under the key is done: later uses replay its batch.
pub async fn complete(store: &dyn IdempotencyStore, mut record: IdempotencyRecord) -> Result<(), BatchApiError> {
    record.in_flight_until = None;
    record.version += 1;
    Ok(store.update_idempotency(&record).await?)
}

/// The submission was refused (a limit, a bad filter): the key's claim lapses now, so the same
/// request may be sent again under it at once (and is decided again) instead of waiting out the
/// claim. Best effort: if this write fails, the claim lapses on its own.
pub async fn release(store: &dyn IdempotencyStore, mut record: IdempotencyRecord, now: OffsetDateTime) {
    record.in_flight_until = Some(now - time::Duration::SECOND);
    record.version += 1;
    if let Err(e) = store.update_idempotency(&record).await {
        tracing::warn!(error = %e, "an idempotency key could not be released; its claim lapses on its own");
    }
}
