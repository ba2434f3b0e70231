//! One shape for every queue consumer: a [`MessageHandler`] decodes and handles one message body;
//! [`handle_sqs_batch`] turns it into an SQS batch handler with partial batch failures,
//! [`run_lambda`] serves it as a Lambda function, and [`drain`] delivers a local queue to it the
//! way Lambda's event source mapping does.

mod drain;
mod sqs;

pub use drain::{DEFAULT_BATCH_SIZE, DrainSettings, PauseSwitch, drain};
pub use sqs::{Retimer, handle_sqs_batch, handle_sqs_batch_retimed, run_lambda, run_lambda_retimed, sqs_event};

use async_trait::async_trait;

/// Why a message was not handled. Either way the message is reported as failed and SQS delivers
/// it again, until its redrive policy moves it to the dead-letter queue; the kind decides how
/// loudly it is logged (and tells whoever reads the log whether a retry may help).
#[derive(Debug)]
pub enum Failure {
    /// The same message may succeed later (a store was unavailable, another writer raced us).
    Transient(anyhow::Error),
    /// Retrying the message as it is fails again: it cannot be decoded, or handling it hit a
    /// fault that needs a person. It ends in the dead-letter queue for inspection.
    Permanent(anyhow::Error),
    /// Transient, and known not to succeed before `after` has passed (another delivery holds a
    /// lease that long, or a backoff chose it). The local drain hides the message exactly that
    /// long; in AWS, a consumer with a [`Retimer`] changes the message's visibility to it, and
    /// one without leaves it to the queue's visibility timeout.
    Later { after: std::time::Duration, reason: anyhow::Error },
}

impl Failure {
    pub fn transient(e: impl Into<anyhow::Error>) -> Self {
        Self::Transient(e.into())
    }

    pub fn permanent(e: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(e.into())
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::Later { .. })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient(e) => write!(f, "transient: {e:#}"),
            Self::Permanent(e) => write!(f, "permanent: {e:#}"),
            Self::Later { after, reason } => write!(f, "transient, not before {}s: {reason:#}", after.as_secs()),
        }
    }
}

impl std::error::Error for Failure {}

/// Which delivery of a message this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    /// How many times the message has been received, this time included (1 when unknown).
    pub receive_count: u32,
}

/// One queue's consumer: how to read a message body and what to do with it. Handlers see one
/// message at a time; batching, concurrency and settling are the adapters' business.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    type Message: Send;

    /// Reads a message body. A body that does not decode never will: its failure is permanent.
    fn decode(&self, body: &str) -> Result<Self::Message, Failure>;

    async fn handle(&self, message: Self::Message, delivery: &Delivery) -> Result<(), Failure>;

    /// Handles the decoded messages of one batch and returns one result per message. By
    /// default each is handled on its own ([`MessageHandler::handle`]), up to `concurrency` at
    /// once, each in a `message` span carrying its id. A handler whose messages coalesce
    /// (several asking for the same piece of work) overrides it to do that work once.
    async fn handle_batch(
        &self,
        messages: Vec<(Self::Message, Delivery)>,
        concurrency: usize,
    ) -> Vec<(Delivery, Result<(), Failure>)> {
        use futures::StreamExt;
        use tracing::Instrument;
        futures::stream::iter(messages)
            .map(|(message, delivery)| async move {
                let span = message_span(&delivery);
                let result = self.handle(message, &delivery).instrument(span).await;
                (delivery, result)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await
    }
}

/// The span a message is handled and reported in.
pub fn message_span(delivery: &Delivery) -> tracing::Span {
    tracing::info_span!("message", message_id = %delivery.message_id, receive_count = delivery.receive_count)
}
