//! [`Queue`] on SQS standard queues. Dead-lettering is SQS's own, by each queue's RedrivePolicy.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use phoenix_domain::QueueName;
use phoenix_domain::ports::{Queue, QueueStats, ReceivedMessage, StoreError, StoreResult};
use time::OffsetDateTime;

use super::{ceil_secs, classify};

/// SQS limits.
const MAX_DELAY_SECS: u64 = 900;
const MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;
const MAX_WAIT_SECS: u64 = 20;
const MAX_BATCH: usize = 10;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    urls: HashMap<QueueName, String>,
}

impl SqsQueue {
    /// `urls` maps each logical queue to its SQS queue URL.
    pub fn new(config: &SdkConfig, urls: HashMap<QueueName, String>) -> Self {
        Self::from_client(aws_sdk_sqs::Client::new(config), urls)
    }

    pub fn from_client(client: aws_sdk_sqs::Client, urls: HashMap<QueueName, String>) -> Self {
        Self { client, urls }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// Every logical queue this adapter knows, with its URL, in name order.
    pub fn urls(&self) -> Vec<(QueueName, String)> {
        let mut urls: Vec<(QueueName, String)> = self.urls.iter().map(|(n, u)| (n.clone(), u.clone())).collect();
        urls.sort();
        urls
    }

    /// A queue this adapter was not given a URL for is a wiring bug, not a bad request: `Internal`.
    fn url(&self, queue: &QueueName) -> StoreResult<&str> {
        self.urls
            .get(queue)
            .map(String::as_str)
            .ok_or_else(|| StoreError::internal(anyhow::anyhow!("unknown queue {:?}", queue.0)))
    }
}

fn seconds(what: &str, d: Duration, max: u64) -> StoreResult<i32> {
    let secs = ceil_secs(d);
    if secs > max {
        return Err(StoreError::Invalid(format!("{what} of {secs}s is over the maximum of {max}s")));
    }
    Ok(secs as i32)
}

fn to_received(message: aws_sdk_sqs::types::Message) -> StoreResult<ReceivedMessage> {
    // SQS always sends what we ask for: an answer without it is one we cannot read, not a hiccup.
    let missing = |what: &str| StoreError::internal(anyhow::anyhow!("sqs ReceiveMessage: a message has no {what}"));
    let attribute =
        |name: MessageSystemAttributeName| message.attributes().and_then(|a| a.get(&name)).map(String::as_str);
    let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| missing("ApproximateReceiveCount"))?;
    let sent_at = attribute(MessageSystemAttributeName::SentTimestamp)
        .and_then(|ms| ms.parse::<i128>().ok())
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok())
        .ok_or_else(|| missing("SentTimestamp"))?;
    Ok(ReceivedMessage {
        message_id: message.message_id.clone().ok_or_else(|| missing("MessageId"))?,
        receipt: message.receipt_handle.clone().ok_or_else(|| missing("ReceiptHandle"))?,
        body: message.body.clone().unwrap_or_default(),
        receive_count,
        sent_at,
    })
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: &QueueName, body: &str, delay: Duration) -> StoreResult<String> {
        let url = self.url(queue)?;
        let delay = seconds("delay", delay, MAX_DELAY_SECS)?;
        let output = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map_err(|e| classify("sqs SendMessage", e))?;
        output
            .message_id
            .ok_or_else(|| StoreError::internal(anyhow::anyhow!("sqs SendMessage: no MessageId in the answer")))
    }

    async fn receive(
        &self,
        queue: &QueueName,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        let url = self.url(queue)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let visibility = seconds("visibility timeout", visibility, MAX_VISIBILITY_SECS)?;
        let wait = (wait.as_secs().min(MAX_WAIT_SECS)) as i32;
        let output = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.min(MAX_BATCH) as i32)
            .visibility_timeout(visibility)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| classify("sqs ReceiveMessage", e))?;
        output.messages.unwrap_or_default().into_iter().map(to_received).collect()
    }

    async fn delete(&self, queue: &QueueName, receipt: &str) -> StoreResult<()> {
        let url = self.url(queue)?;
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| classify("sqs DeleteMessage", e))?;
        Ok(())
    }

    async fn change_visibility(&self, queue: &QueueName, receipt: &str, visibility: Duration) -> StoreResult<()> {
        let url = self.url(queue)?;
        let visibility = seconds("visibility timeout", visibility, MAX_VISIBILITY_SECS)?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility)
            .send()
            .await
            .map_err(|e| classify("sqs ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn depth(&self, queue: &QueueName) -> StoreResult<u64> {
        let stats = self.stats(queue).await?;
        Ok(stats.visible + stats.in_flight)
    }

    async fn stats(&self, queue: &QueueName) -> StoreResult<QueueStats> {
        let url = self.url(queue)?;
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| classify("sqs GetQueueAttributes", e))?;
        let attributes = output.attributes.unwrap_or_default();
        let count = |name: QueueAttributeName| -> StoreResult<u64> {
            attributes
                .get(&name)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| StoreError::internal(anyhow::anyhow!("sqs GetQueueAttributes: no {}", name.as_str())))
        };
        Ok(QueueStats {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages)?,
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed)?,
        })
    }
}
