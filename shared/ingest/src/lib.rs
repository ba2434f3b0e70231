//! The upload processor. SQS delivers S3 `ObjectCreated` notifications for `originals/`; each
//! record is handled on its own and only transient failures are reported back, so SQS retries
//! exactly those (and dead-letters them after the last attempt).

pub mod notification;
pub mod processor;

pub use notification::{Notification, ObjectCreated, parse_notification};
pub use processor::{Outcome, ProcessError, Processor, ProcessorConfig, SYSTEM_ACTOR, presets_from_env};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use phoenix_domain::ports::ReceivedMessage;

/// The `SqsEvent` Lambda's event source mapping would deliver for these received messages: how
/// the local server (and the emulator tests) hand a queue's batch to the same handler.
pub fn sqs_event(messages: &[ReceivedMessage]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for m in messages {
        let mut record = SqsMessage::default();
        record.message_id = Some(m.message_id.clone());
        record.receipt_handle = Some(m.receipt.clone());
        record.body = Some(m.body.clone());
        record.attributes.insert("ApproximateReceiveCount".into(), m.receive_count.to_string());
        record.event_source = Some("aws:sqs".into());
        event.records.push(record);
    }
    event
}
