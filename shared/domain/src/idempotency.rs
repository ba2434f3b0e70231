//! `Idempotency-Key` for submissions that make a resource (a job, a batch): the same key and
//! body answer the resource the first use made; another body is refused; a submission still in
//! flight says so; one whose maker died midway is taken over once its claim lapses, and finishes
//! the resource the key already names (its id is chosen before anything is written, so a retry
//! after a crash never makes a second). Keys live [`RETENTION`], scoped to the caller and the kind
//! of resource.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::ports::{IdempotencyRecord, IdempotencyStore, StoreError};

/// Keys live at least this long (then a reused key makes a new resource).
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// A submission still in flight after this is presumed dead, and a retry under its key finishes it.
pub const IN_FLIGHT: Duration = Duration::from_secs(30);
/// The longest key accepted.
pub const KEY_MAX: usize = 255;

/// What a key can be refused for.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("Idempotency-Key must be 1 to {KEY_MAX} visible ASCII characters")]
    Malformed,
    /// The same key came with another body.
    #[error("this Idempotency-Key was used with a different request body; use a new key for a new request")]
    Mismatch,
    /// The first submission under the key has not finished (and has not yet lapsed).
    #[error("a submission with this Idempotency-Key is still in progress; retry in a moment")]
    InFlight,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An `Idempotency-Key` with the caller it belongs to and the request it was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    scope: String,
    key: String,
    request_hash: String,
}

impl IdempotencyKey {
    /// `scope` names the caller (and, where one caller makes several kinds of resource, the
    /// kind), so two scopes' keys never collide; the hash is of the request as understood
    /// (canonical JSON), so formatting differences are the same body.
    pub fn new(scope: String, key: &str, request: &impl Serialize) -> Result<Self, IdempotencyError> {
        if key.is_empty() || key.len() > KEY_MAX || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(IdempotencyError::Malformed);
        }
        use sha2::Digest;
        let canonical = serde_json::to_vec(request).map_err(StoreError::internal)?;
        let request_hash = sha2::Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { scope, key: key.to_owned(), request_hash })
    }
}

/// What a key says about a submission.
#[derive(Debug)]
pub enum Claim {
    /// Make (or, when a dead submission already began it, finish) the resource
    /// [`Claimed::resource_id`], then [`complete`] the claim.
    Submit(Claimed),
    /// The key's submission completed: answer its resource.
    Replay(String),
}

/// A key held for one submission.
#[derive(Debug)]
pub struct Claimed {
    record: IdempotencyRecord,
}

impl Claimed {
    /// The id of the resource the key makes.
    pub fn resource_id(&self) -> &str {
        &self.record.resource_id
    }
}

/// Takes `key` for a new submission whose resource will be `new_id`, or says what it was used for.
pub async fn claim(
    store: &dyn IdempotencyStore,
    key: &IdempotencyKey,
    new_id: String,
    now: OffsetDateTime,
) -> Result<Claim, IdempotencyError> {
    let fresh = IdempotencyRecord {
        scope: key.scope.clone(),
        key: key.key.clone(),
        request_hash: key.request_hash.clone(),
        resource_id: new_id,
        in_flight_until: Some(now + IN_FLIGHT),
        created_at: now,
        expires_at: now + RETENTION,
        version: 1,
    };
    match store.create_idempotency(&fresh).await {
        Ok(()) => return Ok(Claim::Submit(Claimed { record: fresh })),
        Err(StoreError::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    let existing = store.get_idempotency(&key.scope, &key.key).await?;
    if existing.request_hash != key.request_hash {
        return Err(IdempotencyError::Mismatch);
    }
    match existing.in_flight_until {
        None => Ok(Claim::Replay(existing.resource_id)),
        Some(until) if until > now => Err(IdempotencyError::InFlight),
        // Its maker died (or was refused) mid-submission: take it over (one taker wins the write).
        Some(_) => {
            let mut taken = existing;
            taken.in_flight_until = Some(now + IN_FLIGHT);
            taken.version += 1;
            store.update_idempotency(&taken).await.map_err(|e| match e {
                StoreError::VersionConflict { .. } => IdempotencyError::InFlight,
                other => other.into(),
            })?;
            Ok(Claim::Submit(Claimed { record: taken }))
        }
    }
}

/// The submission under the key is done: later uses replay its resource.
pub async fn complete(store: &dyn IdempotencyStore, claimed: Claimed) -> Result<(), StoreError> {
    let mut record = claimed.record;
    record.in_flight_until = None;
    record.version += 1;
    store.update_idempotency(&record).await
}

/// The submission was refused (a limit, a bad filter): the claim lapses now, so the same request
/// may be sent again under the key at once (and is decided again) instead of waiting out the
/// claim. Best effort: if this write fails, the claim lapses on its own.
pub async fn release(store: &dyn IdempotencyStore, claimed: Claimed, now: OffsetDateTime) {
    let mut record = claimed.record;
    record.in_flight_until = Some(now - time::Duration::SECOND);
    record.version += 1;
    if let Err(e) = store.update_idempotency(&record).await {
        tracing::warn!(error = %e, "an idempotency key could not be released; its claim lapses on its own");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::fakes::MemJobs;

    fn key(scope: &str, body: &str) -> IdempotencyKey {
        IdempotencyKey::new(scope.into(), "k-1", &serde_json::json!({"body": body})).unwrap()
    }

    async fn submit(store: &MemJobs, key: &IdempotencyKey, now: OffsetDateTime) -> Result<Claim, IdempotencyError> {
        claim(store, key, crate::ids::JobId::new().to_string(), now).await
    }

    #[tokio::test]
    async fn a_key_names_one_resource_and_refuses_another_body() {
        let (store, now) = (MemJobs::default(), OffsetDateTime::now_utc());
        for bad in ["", "with space", &"k".repeat(KEY_MAX + 1), "é"] {
            let refused = IdempotencyKey::new("u1".into(), bad, &1);
            assert!(matches!(refused, Err(IdempotencyError::Malformed)), "{bad:?}");
        }
        let Claim::Submit(first) = submit(&store, &key("u1", "a"), now).await.unwrap() else { panic!("fresh") };
        let made = first.resource_id().to_owned();
        assert!(matches!(submit(&store, &key("u1", "a"), now).await, Err(IdempotencyError::InFlight)));
        complete(&store, first).await.unwrap();
        assert!(matches!(submit(&store, &key("u1", "a"), now).await, Ok(Claim::Replay(id)) if id == made));
        assert!(matches!(submit(&store, &key("u1", "b"), now).await, Err(IdempotencyError::Mismatch)));
        // Another scope's same key is another key.
        assert!(matches!(submit(&store, &key("batches|u1", "a"), now).await, Ok(Claim::Submit(_))));
    }

    #[tokio::test]
    async fn a_claim_that_lapsed_or_was_released_is_taken_over_with_its_resource() {
        let (store, now) = (MemJobs::default(), OffsetDateTime::now_utc());
        let Claim::Submit(dead) = submit(&store, &key("u1", "a"), now).await.unwrap() else { panic!("fresh") };
        let made = dead.resource_id().to_owned();
        let later = now + IN_FLIGHT + Duration::from_secs(1);
        let Claim::Submit(taken) = submit(&store, &key("u1", "a"), later).await.unwrap() else { panic!("taken over") };
        assert_eq!(taken.resource_id(), made, "the key's resource, not a second one");
        // The first maker's late completion loses: the taker holds the key now.
        assert!(matches!(complete(&store, dead).await, Err(StoreError::VersionConflict { .. })));
        release(&store, taken, later).await;
        let Claim::Submit(again) = submit(&store, &key("u1", "a"), later).await.unwrap() else { panic!("released") };
        assert_eq!(again.resource_id(), made);
    }
}
