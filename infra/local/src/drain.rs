//! Delivers a local queue to a handler the way Lambda's SQS event source does: batches of up to
//! ten as an `SqsEvent`, successes deleted, reported failures left to become visible again
//! (sooner than the visibility timeout, with backoff) until the dead-letter queue takes them.

use std::sync::Arc;
use std::time::Duration;

use phoenix_domain::{Queue, QueueName};
use phoenix_ingest::Processor;
use tokio::sync::watch;

pub async fn drain(
    queue: Arc<dyn Queue>,
    name: QueueName,
    processor: Arc<Processor>,
    visibility: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let received = tokio::select! {
            r = queue.receive(&name, 10, visibility, Duration::from_secs(1)) => r,
            _ = stop.changed() => return,
        };
        let messages = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, queue = name.0, "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let response = processor.handle_batch(phoenix_ingest::sqs_event(&messages)).await;
        for m in &messages {
            let failed = response.batch_item_failures.iter().any(|f| f.item_identifier == m.message_id);
            let result = if failed {
                let backoff = Duration::from_secs(1u64 << m.receive_count.min(6));
                queue.change_visibility(&name, &m.receipt, backoff).await
            } else {
                queue.delete(&name, &m.receipt).await
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, message_id = %m.message_id, "could not settle a message");
            }
        }
    }
}
