//! The domain of phoenix4ge media: identifiers validated at the edge, the media record and its
//! lifecycle, typed limits, the three ports (object store, metadata store, queue) and the use cases
//! that run on them. Nothing here names AWS or a file system.

pub mod config;
pub mod ids;
pub mod media;
pub mod ports;
pub mod upload;

pub use config::Limits;
pub use ids::{IdError, MediaId, ModelId, ObjectKey};
pub use media::{Derivative, FocalPoint, GpsPosition, MediaRecord, MediaStatus, Rejection, SourceInfo};
pub use ports::{MetadataStore, ObjectStore, Queue, QueueName, StoreError, StoreResult};
