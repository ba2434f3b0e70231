//! The ports the domain talks to, one per aggregate or capability, so a use case (and its test
//! double) names only what it uses. Each has a `local` and an `aws` adapter in `phoenix-storage`,
//! and one conformance suite that both must pass. Limits both adapters honour and the cursor
//! envelope live here too ([`bounds`], [`cursor`]).

mod batches;
pub mod bounds;
pub mod cdn;
pub mod cursor;
mod events;
mod galleries;
mod jobs;
mod media;
pub mod metrics;
mod objects;
mod queue;
mod shares;

pub use batches::{BatchQuery, BatchStore, ItemWrite};
pub use cdn::{CallerReference, Cdn, CdnError, CdnPath, Invalidation};
pub use events::{BusEvent, EventBus};
pub use galleries::{GalleryStore, galleries_listing};
pub use jobs::{IdempotencyRecord, IdempotencyStore, JobQuery, JobStore, LaneControl};
pub use media::{
    Fingerprint, FingerprintStore, LibraryStore, ListIndex, MediaQuery, MediaStore, MetadataStore, Page, TombstoneStore,
};
pub use metrics::{CdnMetrics, CdnMetricsReport};
pub use objects::{ListPage, ObjectInfo, ObjectStore, PresignedRequest, Presigner, PutOptions};
pub use queue::{Queue, QueueName, QueueStats, ReceivedMessage};
pub use shares::ShareLinkStore;

/// Errors every port reports. Only `Unavailable` is transient (retry later); the rest are final.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("version conflict: the stored version is {current:?}")]
    VersionConflict { current: Option<u64> },
    /// The caller asked for something the store refuses: a bound exceeded, a foreign cursor, an
    /// unknown queue. The request must change; retrying it as it is fails again.
    #[error("invalid request to the store: {0}")]
    Invalid(String),
    /// A fault on our side that a retry will not cure: a record that cannot be encoded, stored
    /// data that cannot be read, a key that cannot be built. Logged, never shown to callers.
    #[error("internal store error: {0:#}")]
    Internal(#[source] anyhow::Error),
    #[error("store unavailable: {0:#}")]
    Unavailable(#[source] anyhow::Error),
}

impl StoreError {
    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(e.into())
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    /// Whether the same call may succeed later (the one thing queue consumers retry).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
