//! The local runtime: delivers a queue to a handler the way Lambda's SQS event source does.

use std::sync::Arc;
use std::time::Duration;

use phoenix_domain::ports::{Queue, QueueName};
use tokio::sync::watch;

use crate::sqs::failed_messages;
use crate::{MessageHandler, sqs_event};

/// The most messages SQS hands over in one receive (and Lambda's default batch size).
pub const DEFAULT_BATCH_SIZE: usize = 10;

/// How a queue is drained.
#[derive(Debug, Clone)]
pub struct DrainSettings {
    /// How long a received message stays hidden while its batch is handled.
    pub visibility: Duration,
    /// Messages received (and handed over as one `SqsEvent`) at a time, 1 to 10.
    pub batch_size: usize,
    /// Messages of one batch handled at once.
    pub concurrency: usize,
    /// Batches handled at once, as Lambda runs several invocations of one event source (its
    /// `MaximumConcurrency`): a slow batch never holds up the next receive while a slot is free.
    pub in_flight: usize,
    /// Asked before each receive: while it answers true the queue is left alone (a paused
    /// lane keeps its messages).
    pub paused: Option<Arc<dyn PauseSwitch>>,
}

/// Whether a drain should hold off receiving (a paused lane).
#[async_trait::async_trait]
pub trait PauseSwitch: Send + Sync {
    async fn is_paused(&self) -> bool;
}

impl std::fmt::Debug for dyn PauseSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PauseSwitch")
    }
}

impl PartialEq for DrainSettings {
    fn eq(&self, other: &Self) -> bool {
        (self.visibility, self.batch_size, self.concurrency, self.in_flight, self.paused.is_some())
            == (other.visibility, other.batch_size, other.concurrency, other.in_flight, other.paused.is_some())
    }
}

impl Eq for DrainSettings {}

impl Default for DrainSettings {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(120),
            batch_size: DEFAULT_BATCH_SIZE,
            concurrency: 1,
            in_flight: 1,
            paused: None,
        }
    }
}

/// Drains `name` into `handler` until `stop` turns true: batches of up to `batch_size` delivered
/// as an `SqsEvent` through [`handle_sqs_batch`], successes deleted, reported failures made
/// visible again sooner than the visibility timeout, with backoff (2 s on the first receive,
/// doubling to at most 64 s; a [`crate::Failure::Later`] waits exactly its time), until the
/// queue's redrive moves them to its dead-letter queue.
pub async fn drain<H: MessageHandler + 'static>(
    queue: Arc<dyn Queue>,
    name: QueueName,
    handler: Arc<H>,
    settings: DrainSettings,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.in_flight.max(1)));
    let mut batches = tokio::task::JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        // A free slot first: at most `in_flight` batches are being handled.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the drain never closes its slots"),
            _ = stop.changed() => break,
        };
        while batches.try_join_next().is_some() {}
        if let Some(switch) = &settings.paused
            && switch.is_paused().await
        {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                _ = stop.changed() => break,
            }
        }
        let received = tokio::select! {
            r = queue.receive(&name, settings.batch_size, settings.visibility, Duration::from_secs(1)) => r,
            _ = stop.changed() => break,
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
        // Paused while this receive waited: the messages go back untouched (but for their
        // receive count, as a receive that lost a race in SQS does).
        if let Some(switch) = &settings.paused
            && switch.is_paused().await
        {
            for m in &messages {
                if let Err(e) = queue.change_visibility(&name, &m.receipt, Duration::ZERO).await {
                    tracing::warn!(error = %e, message_id = %m.message_id, "could not release a message");
                }
            }
            continue;
        }
        let (queue, name, handler, concurrency) = (queue.clone(), name.clone(), handler.clone(), settings.concurrency);
        batches.spawn(async move {
            settle(queue.as_ref(), &name, handler.as_ref(), &messages, concurrency).await;
            drop(slot);
        });
    }
    // Stopping: the batches being handled finish (their messages are settled), none is started.
    while batches.join_next().await.is_some() {}
}

/// Hands one received batch to the handler as an `SqsEvent` and settles each message.
async fn settle<H: MessageHandler>(
    queue: &dyn Queue,
    name: &QueueName,
    handler: &H,
    messages: &[phoenix_domain::ports::ReceivedMessage],
    concurrency: usize,
) {
    let failed = failed_messages(handler, sqs_event(messages), concurrency).await;
    for m in messages {
        let result = match failed.iter().find(|(id, _)| *id == m.message_id) {
            Some((_, not_before)) => {
                // A message that cannot succeed before some time (a lease another delivery
                // holds, a backoff its handler drew) waits exactly that long, so it does not
                // spend its receives meanwhile; others back off by their receive count.
                let backoff = Duration::from_secs(1u64 << m.receive_count.min(6));
                queue.change_visibility(name, &m.receipt, not_before.unwrap_or(backoff)).await
            }
            None => queue.delete(name, &m.receipt).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, message_id = %m.message_id, "could not settle a message");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use phoenix_storage::local::{LocalQueue, QueueSettings};

    use super::*;
    use crate::{Delivery, Failure};

    /// Fails `flaky` on its first delivery; handles everything else.
    #[derive(Default)]
    struct FlakyOnce {
        handled: Mutex<Vec<(String, u32)>>,
    }

    #[async_trait]
    impl MessageHandler for FlakyOnce {
        type Message = String;

        fn decode(&self, body: &str) -> Result<String, Failure> {
            Ok(body.to_owned())
        }

        async fn handle(&self, body: String, delivery: &Delivery) -> Result<(), Failure> {
            let fail = body == "flaky" && delivery.receive_count == 1;
            self.handled.lock().unwrap().push((body, delivery.receive_count));
            if fail { Err(Failure::transient(anyhow::anyhow!("not yet"))) } else { Ok(()) }
        }
    }

    #[tokio::test]
    async fn successes_are_deleted_and_failures_delivered_again() {
        let dir = tempfile::tempdir().unwrap();
        let (name, dlq) = (QueueName("work"), QueueName("work-dlq"));
        let queue: Arc<dyn Queue> = Arc::new(
            LocalQueue::open(
                &dir.path().join("q.sqlite"),
                vec![
                    (name.clone(), QueueSettings { max_receive: 5, dead_letter: Some(dlq.clone()) }),
                    (dlq.clone(), QueueSettings { max_receive: u32::MAX, dead_letter: None }),
                ],
            )
            .unwrap(),
        );
        for body in ["ok", "flaky"] {
            queue.send(&name, body, Duration::ZERO).await.unwrap();
        }
        let handler = Arc::new(FlakyOnce::default());
        let (stop_tx, stop) = watch::channel(false);
        let settings = DrainSettings { concurrency: 2, ..DrainSettings::default() };
        let task = tokio::spawn(drain(queue.clone(), name.clone(), handler.clone(), settings, stop));

        // The failure comes back after its backoff (2 s) instead of the visibility timeout.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while queue.depth(&name).await.unwrap() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "still queued: {:?}", handler.handled.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the drain stops").unwrap();

        let mut handled = handler.handled.lock().unwrap().clone();
        handled.sort_unstable();
        assert_eq!(
            handled,
            [("flaky".into(), 1), ("flaky".into(), 2), ("ok".into(), 1)],
            "the success is not redelivered"
        );
        assert_eq!(queue.depth(&dlq).await.unwrap(), 0);
    }

    /// Fails its first delivery with a known time before which it cannot succeed.
    struct BusyOnce;

    #[async_trait]
    impl MessageHandler for BusyOnce {
        type Message = String;

        fn decode(&self, body: &str) -> Result<String, Failure> {
            Ok(body.to_owned())
        }

        async fn handle(&self, _: String, delivery: &Delivery) -> Result<(), Failure> {
            if delivery.receive_count == 1 {
                Err(Failure::Later { after: Duration::from_secs(30), reason: anyhow::anyhow!("leased elsewhere") })
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn a_message_that_cannot_succeed_yet_waits_its_time_not_the_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let name = QueueName("work");
        let queue: Arc<dyn Queue> = Arc::new(
            LocalQueue::open(
                &dir.path().join("q.sqlite"),
                vec![(name.clone(), QueueSettings { max_receive: 5, dead_letter: None })],
            )
            .unwrap(),
        );
        queue.send(&name, "m", Duration::ZERO).await.unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(drain(queue.clone(), name.clone(), Arc::new(BusyOnce), DrainSettings::default(), stop));
        // Past the first backoff (2 s), the message is still hidden: it waits the 30 s it was given.
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the drain stops").unwrap();
        assert_eq!(queue.depth(&name).await.unwrap(), 1, "not acknowledged");
        let visible = queue.receive(&name, 10, Duration::from_secs(1), Duration::ZERO).await.unwrap();
        assert!(visible.is_empty(), "came back after the backoff instead of its time: {visible:?}");
    }

    /// Records the order in which messages finish; `slow` takes two seconds.
    #[derive(Default)]
    struct SlowAndFast {
        finished: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl MessageHandler for SlowAndFast {
        type Message = String;

        fn decode(&self, body: &str) -> Result<String, Failure> {
            Ok(body.to_owned())
        }

        async fn handle(&self, body: String, _: &Delivery) -> Result<(), Failure> {
            if body == "slow" {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            self.finished.lock().unwrap().push(body);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_slow_batch_does_not_hold_up_the_next_while_a_slot_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let name = QueueName("work");
        let queue: Arc<dyn Queue> = Arc::new(
            LocalQueue::open(
                &dir.path().join("q.sqlite"),
                vec![(name.clone(), QueueSettings { max_receive: 5, dead_letter: None })],
            )
            .unwrap(),
        );
        queue.send(&name, "slow", Duration::ZERO).await.unwrap();
        queue.send(&name, "fast", Duration::ZERO).await.unwrap();
        let handler = Arc::new(SlowAndFast::default());
        let (stop_tx, stop) = watch::channel(false);
        let settings = DrainSettings { batch_size: 1, in_flight: 2, ..DrainSettings::default() };
        let task = tokio::spawn(drain(queue.clone(), name.clone(), handler.clone(), settings, stop));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while queue.depth(&name).await.unwrap() > 0 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the drain stops").unwrap();
        assert_eq!(*handler.finished.lock().unwrap(), ["fast", "slow"], "the fast one did not wait");
    }
}
