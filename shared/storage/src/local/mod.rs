//! The embedded default: objects as files on disk, metadata, jobs and queues in SQLite, all under
//! one data folder that survives restarts. Same ports, same semantics as the AWS adapters; the
//! event bus records what it is asked to publish (nobody subscribes on one machine), and the CDN
//! what it is asked to invalidate (there is none).

mod batches;
mod cdn;
mod events;
mod galleries;
mod jobs;
mod lanes;
mod metadata;
mod objects;
mod pointers;
mod queue;
mod shares;
mod sqlite;

pub use cdn::{RecordedInvalidation, RecordingCdn};
pub use events::RecordingEventBus;
pub use lanes::LocalLanes;
pub use metadata::LocalMetadataStore;
pub use objects::{HeaderMismatch, LocalObjectStore, Notification, PresignError};
pub use pointers::RememberedPointers;
pub use queue::{LocalQueue, QueueSettings};
