//! Queues: send with a delay; receive, settle and re-time messages with SQS semantics.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;

/// A logical queue name (`ingest`, `jobs-high`, ...); adapters map it to a real queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(pub &'static str);

impl QueueName {
    pub const INGEST: QueueName = QueueName("ingest");
    pub const INGEST_DLQ: QueueName = QueueName("ingest-dlq");
    pub const JOBS_HIGH: QueueName = QueueName("jobs-high");
    pub const JOBS_HIGH_DLQ: QueueName = QueueName("jobs-high-dlq");
    pub const JOBS_NORMAL: QueueName = QueueName("jobs-normal");
    pub const JOBS_NORMAL_DLQ: QueueName = QueueName("jobs-normal-dlq");
    pub const BATCHES: QueueName = QueueName("batches");
    pub const BATCHES_DLQ: QueueName = QueueName("batches-dlq");
    /// Galleries to republish (and whose CDN paths to invalidate) because something they show changed.
    pub const PUBLISH: QueueName = QueueName("publish");
    pub const PUBLISH_DLQ: QueueName = QueueName("publish-dlq");
}

/// A queue's approximate counts, as SQS reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Waiting to be received.
    pub visible: u64,
    /// Received and not yet deleted (being worked on, or hidden by a backoff).
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
    pub sent_at: OffsetDateTime,
}

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, queue: &QueueName, body: &str, delay: Duration) -> StoreResult<String>;
    /// Up to `max` visible messages, each hidden for `visibility` from now. Messages received more
    /// than the queue's max-receive count move to its dead-letter queue instead.
    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>>;
    /// Acknowledges a message: it is never delivered again.
    async fn delete(&self, queue: &QueueName, receipt: &str) -> StoreResult<()>;
    /// Makes a received message visible again after `visibility` (zero: at once).
    async fn change_visibility(&self, queue: &QueueName, receipt: &str, visibility: Duration) -> StoreResult<()>;
    /// Approximate number of messages waiting (visible and in flight).
    async fn depth(&self, queue: &QueueName) -> StoreResult<u64>;
    /// Approximate visible, in-flight and delayed counts.
    async fn stats(&self, queue: &QueueName) -> StoreResult<QueueStats>;
}
