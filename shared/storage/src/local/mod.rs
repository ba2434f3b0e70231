//! The embedded default: objects as files on disk, metadata and queues in SQLite, all under one
//! data folder that survives restarts. Same ports, same semantics as the AWS adapters.

mod metadata;
mod objects;
mod queue;
mod sqlite;

pub use metadata::LocalMetadataStore;
pub use objects::{HeaderMismatch, LocalObjectStore, Notification, PresignError};
pub use queue::{LocalQueue, QueueSettings};
