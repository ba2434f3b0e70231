//! What the job use cases report: the cases a caller can act on, each a variant.

use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A field of the request is wrong; `field` names it (`params.degrees`).
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// No such job (or not one the caller may see).
    #[error("{0}")]
    NotFound(String),
    /// The job's state does not allow this (cancel a running job, retry a succeeded one).
    #[error("{0}")]
    InvalidState(String),
    /// The same `Idempotency-Key` came with another body.
    #[error("this Idempotency-Key was used with a different request body; use a new key for a new request")]
    IdempotencyMismatch,
    /// A submission under the same key is still being made: retry shortly.
    #[error("a submission with this Idempotency-Key is still in progress; retry in a moment")]
    IdempotencyInFlight,
    /// The job changed while the request was applied.
    #[error("the job changed while this request was applied; read it again and retry")]
    Conflict,
    #[error(transparent)]
    Store(StoreError),
}

impl From<crate::idempotency::IdempotencyError> for JobError {
    fn from(e: crate::idempotency::IdempotencyError) -> Self {
        use crate::idempotency::IdempotencyError as E;
        match e {
            e @ E::Malformed => Self::invalid("Idempotency-Key", e.to_string()),
            E::Mismatch => Self::IdempotencyMismatch,
            E::InFlight => Self::IdempotencyInFlight,
            E::Store(e) => Self::Store(e),
        }
    }
}

impl JobError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_owned(), message: message.into() }
    }

    pub(crate) fn reading(job: &crate::ids::JobId) -> impl FnOnce(StoreError) -> Self + '_ {
        move |e| match e {
            StoreError::NotFound => Self::NotFound(format!("job {job} not found")),
            other => Self::Store(other),
        }
    }

    pub(crate) fn writing(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { .. } | StoreError::NotFound => Self::Conflict,
            other => Self::Store(other),
        }
    }
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
