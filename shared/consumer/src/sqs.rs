//! The SQS side: a batch in, partial batch failures out; the Lambda loop around it.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{LambdaEvent, service_fn};
use phoenix_domain::ports::ReceivedMessage;
use tracing::{error, warn};

use crate::{Delivery, Failure, MessageHandler};

/// Gives a message reported as [`Failure::Later`] its wait in SQS: its visibility is changed to
/// that time (Lambda's event source mapping would otherwise make it visible again only after the
/// queue's visibility timeout). Queues are matched by name: the last part of the record's
/// `eventSourceArn` is the last part of the queue's URL.
#[derive(Clone)]
pub struct Retimer {
    queue: std::sync::Arc<dyn phoenix_domain::ports::Queue>,
    /// (the SQS queue's own name, the logical queue the adapter knows it by).
    names: Vec<(String, phoenix_domain::ports::QueueName)>,
}

impl Retimer {
    /// `urls` maps logical queues to their SQS URLs (as the queue adapter was configured).
    pub fn new(
        queue: std::sync::Arc<dyn phoenix_domain::ports::Queue>,
        urls: &[(phoenix_domain::ports::QueueName, String)],
    ) -> Self {
        let names =
            urls.iter().filter_map(|(name, url)| Some((url.rsplit('/').next()?.to_owned(), name.clone()))).collect();
        Self { queue, names }
    }

    async fn retime(&self, record: &SqsMessage, after: std::time::Duration) {
        let arn_name = record.event_source_arn.as_deref().and_then(|arn| arn.rsplit(':').next()).unwrap_or_default();
        let (Some((_, name)), Some(receipt)) =
            (self.names.iter().find(|(n, _)| n == arn_name), record.receipt_handle.as_deref())
        else {
            warn!(queue = arn_name, "no queue to retime a message on: it comes back after the visibility timeout");
            return;
        };
        if let Err(e) = self.queue.change_visibility(name, receipt, after).await {
            warn!(error = %e, "could not set a failed message's retry time: it comes back after the visibility timeout");
        }
    }
}

/// As [`handle_sqs_batch`], then gives each message that failed with a known wait
/// ([`Failure::Later`]) that wait, through `retimer`.
pub async fn handle_sqs_batch_retimed<H: MessageHandler>(
    handler: &H,
    event: SqsEvent,
    concurrency: usize,
    retimer: &Retimer,
) -> SqsBatchResponse {
    let records = event.records.clone();
    let failed = failed_messages(handler, event, concurrency).await;
    for (id, after) in &failed {
        if let (Some(after), Some(record)) = (after, records.iter().find(|r| r.message_id.as_deref() == Some(id))) {
            retimer.retime(record, *after).await;
        }
    }
    batch_response(failed)
}

fn batch_response(failed: Vec<(String, Option<std::time::Duration>)>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|(id, _)| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Handles an SQS batch: each record decoded and handled on its own, up to `concurrency` at once
/// (at least one), each in a `message` span carrying its id. The response names only the
/// messages that failed (the function's event source mapping must have
/// `ReportBatchItemFailures`), so one bad record never fails its neighbours.
///
/// Both kinds of [`Failure`] are reported: SQS delivers the message again either way, and its
/// redrive policy moves it to the dead-letter queue after `maxReceiveCount` receives — which is
/// where a permanent failure (an undecodable body included) ends, for inspection. Permanent
/// failures are logged at error level, transient ones at warn.
pub async fn handle_sqs_batch<H: MessageHandler>(handler: &H, event: SqsEvent, concurrency: usize) -> SqsBatchResponse {
    batch_response(failed_messages(handler, event, concurrency).await)
}

/// The messages of `event` that failed, each with the time before which it cannot succeed when
/// the handler knows one ([`Failure::Later`]); what [`handle_sqs_batch`] reports, in detail.
/// Each record is decoded on its own; the decoded ones go to the handler's
/// [`MessageHandler::handle_batch`] together (by default: each handled on its own, `concurrency`
/// at once).
pub(crate) async fn failed_messages<H: MessageHandler>(
    handler: &H,
    event: SqsEvent,
    concurrency: usize,
) -> Vec<(String, Option<std::time::Duration>)> {
    let mut failed = Vec::new();
    let mut decoded = Vec::with_capacity(event.records.len());
    for record in event.records {
        let delivery = Delivery {
            message_id: record.message_id.clone().unwrap_or_default(),
            receive_count: record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1),
        };
        // A body that does not decode never will, whatever the handler calls it.
        match handler.decode(record.body.as_deref().unwrap_or_default()) {
            Ok(message) => decoded.push((message, delivery)),
            Err(Failure::Transient(e) | Failure::Permanent(e) | Failure::Later { reason: e, .. }) => {
                failed.extend(report(delivery, Err(Failure::Permanent(e.context("undecodable message")))));
            }
        }
    }
    if !decoded.is_empty() {
        for (delivery, result) in handler.handle_batch(decoded, concurrency.max(1)).await {
            failed.extend(report(delivery, result));
        }
    }
    failed
}

/// Logs a message's result in its `message` span; `Some((message_id, not before))` when it failed.
fn report(delivery: Delivery, result: Result<(), Failure>) -> Option<(String, Option<std::time::Duration>)> {
    let span = crate::message_span(&delivery);
    let _entered = span.enter();
    match result {
        Ok(()) => None,
        Err(Failure::Transient(e)) => {
            warn!(error = format!("{e:#}"), "transient failure: the message will be delivered again");
            Some((delivery.message_id, None))
        }
        Err(Failure::Later { after, reason }) => {
            warn!(
                error = format!("{reason:#}"),
                after_secs = after.as_secs(),
                "not yet: the message will come back later"
            );
            Some((delivery.message_id, Some(after)))
        }
        Err(Failure::Permanent(e)) => {
            error!(
                error = format!("{e:#}"),
                "permanent failure: the message will be redelivered until the dead-letter queue takes it"
            );
            Some((delivery.message_id, None))
        }
    }
}

/// The `SqsEvent` Lambda's event source mapping would deliver for these received messages: how
/// the local drain (and the emulator tests) hand a queue's batch to the same handler.
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

/// Serves `handler` as an SQS-triggered Lambda function until the runtime stops: every batch goes
/// through [`handle_sqs_batch`] with `concurrency`. Whatever the handler needs is built before,
/// once, and reused by every invocation.
pub async fn run_lambda<H: MessageHandler>(handler: H, concurrency: usize) -> Result<(), lambda_runtime::Error> {
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(handle_sqs_batch(handler, event.payload, concurrency).await)
    }))
    .await
}

/// As [`run_lambda`], giving failed messages their wait through `retimer`
/// ([`handle_sqs_batch_retimed`]).
pub async fn run_lambda_retimed<H: MessageHandler>(
    handler: H,
    concurrency: usize,
    retimer: Retimer,
) -> Result<(), lambda_runtime::Error> {
    let (handler, retimer) = (&handler, &retimer);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            handle_sqs_batch_retimed(handler, event.payload, concurrency, retimer).await,
        )
    }))
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;

    /// Bodies name their fate: `ok`, `transient`, `permanent`; anything else does not decode.
    #[derive(Default)]
    struct Fake {
        handled: Mutex<Vec<(String, u32)>>,
    }

    enum Fate {
        Ok,
        Transient,
        Permanent,
    }

    #[async_trait]
    impl MessageHandler for Fake {
        type Message = (String, Fate);

        fn decode(&self, body: &str) -> Result<Self::Message, Failure> {
            let fate = match body {
                "ok" => Fate::Ok,
                "transient" => Fate::Transient,
                "permanent" => Fate::Permanent,
                other => return Err(Failure::permanent(anyhow::anyhow!("unknown body {other:?}"))),
            };
            Ok((body.to_owned(), fate))
        }

        async fn handle(&self, (body, fate): Self::Message, delivery: &Delivery) -> Result<(), Failure> {
            self.handled.lock().unwrap().push((body, delivery.receive_count));
            match fate {
                Fate::Ok => Ok(()),
                Fate::Transient => Err(Failure::transient(anyhow::anyhow!("try again"))),
                Fate::Permanent => Err(Failure::permanent(anyhow::anyhow!("never"))),
            }
        }
    }

    fn event(records: &[(&str, &str)]) -> SqsEvent {
        let mut event = SqsEvent::default();
        for (id, body) in records {
            let mut m = SqsMessage::default();
            m.message_id = Some((*id).to_owned());
            m.body = Some((*body).to_owned());
            event.records.push(m);
        }
        event
    }

    #[tokio::test]
    async fn exactly_the_failed_messages_are_reported() {
        let handler = Fake::default();
        let batch = event(&[("t", "transient"), ("p", "permanent"), ("u", "{not ours"), ("k", "ok")]);
        let response = handle_sqs_batch(&handler, batch, 3).await;
        let mut failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        failed.sort_unstable();
        assert_eq!(failed, ["p", "t", "u"]);
        // Every decodable message was handled, once, as a first delivery.
        let mut handled = handler.handled.into_inner().unwrap();
        handled.sort_unstable();
        assert_eq!(handled, [("ok".into(), 1), ("permanent".into(), 1), ("transient".into(), 1)]);
    }

    #[tokio::test]
    async fn received_messages_become_the_event_lambda_would_deliver() {
        let received = ReceivedMessage {
            message_id: "m1".into(),
            receipt: "r1".into(),
            body: "ok".into(),
            receive_count: 3,
            sent_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let event = sqs_event(&[received]);
        let handler = Fake::default();
        assert!(handle_sqs_batch(&handler, event, 0).await.batch_item_failures.is_empty());
        assert_eq!(handler.handled.into_inner().unwrap(), [("ok".into(), 3)]);
    }
}
