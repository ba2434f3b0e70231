//! The domain of phoenix4ge media: identifiers validated at the edge, the media record and its
//! lifecycle, typed limits, the three ports (object store, metadata store, queue) and the use cases
//! that run on them. Nothing here names AWS or a file system.

pub mod config;
pub mod ids;
pub mod library;
pub mod media;
pub mod ports;
pub mod upload;

pub use config::Limits;
pub use ids::{Category, GalleryId, IdError, MediaId, ModelId, ObjectKey, Tag};
pub use media::{
    Credit, Derivative, FocalPoint, GalleryLink, GpsPosition, HistoryEntry, MediaMetadata, MediaRecord, MediaStatus,
    Rejection, Review, ReviewDecision, Severity, SourceInfo, Violation,
};
pub use ports::{MetadataStore, ObjectStore, Queue, QueueName, StoreError, StoreResult};
