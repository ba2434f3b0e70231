//! The domain of phoenix4ge media: identifiers validated at the edge, the media record and its
//! lifecycle, typed limits, the ports (one per aggregate or capability), the object-key scheme,
//! the queue messages, and the use cases that run on them. Nothing here names AWS or a file system.

pub mod batches;
pub mod config;
pub mod galleries;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod keys;
pub mod library;
pub mod media;
pub mod messages;
pub mod ports;
pub mod shares;
pub mod watermarks;

pub use config::Limits;
pub use ids::{
    BatchId, Category, GalleryId, IdError, JobId, MediaId, ModelId, ObjectKey, ShareLinkId, Tag, WatermarkName,
};
pub use media::{
    Credit, Derivative, FocalPoint, GalleryLink, GpsPosition, HistoryEntry, MediaError, MediaMetadata, MediaRecord,
    MediaStatus, Rejection, Review, ReviewDecision, Severity, SourceInfo, Violation,
};
pub use messages::MediaCommand;
pub use ports::{
    FingerprintStore, LibraryStore, MediaStore, MetadataStore, ObjectStore, Presigner, Queue, QueueName, StoreError,
    StoreResult, TombstoneStore,
};
