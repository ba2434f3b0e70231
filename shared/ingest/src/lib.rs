//! The ingest queue's consumer: bucket notifications for uploaded originals and the API's media
//! commands (regenerate, purge) in, derivatives and metadata out. [`Processor`] is a
//! [`phoenix_consumer::MessageHandler`]: the Lambda and the local drain run it through the same
//! batch adapter, which reports failed messages back to SQS one by one.

mod config;
pub mod message;
pub mod notification;
mod processor;

pub use config::Config;
pub use message::{IngestMessage, MalformedMessage};
pub use notification::{Notification, ObjectCreated, parse_notification};
pub use processor::{Outcome, ProcessError, Processor, SYSTEM_ACTOR};

use std::sync::Arc;

use phoenix_domain::{LibraryStore, ObjectStore};

/// The processor, wired: what the Lambda's `main`, the local server and the tests all call.
pub fn build(config: Config, objects: Arc<dyn ObjectStore>, metadata: Arc<dyn LibraryStore>) -> Processor {
    Processor::new(config, objects, metadata)
}
