//! The upload processor. SQS delivers S3 `ObjectCreated` notifications for `originals/`; each
//! record is handled on its own and only transient failures are reported back, so SQS retries
//! exactly those (and dead-letters them after the last attempt).

pub mod notification;
pub mod processor;

pub use notification::{Notification, ObjectCreated, parse_notification};
pub use processor::{Outcome, ProcessError, Processor, ProcessorConfig, RegenerateCommand, presets_from_env};
