//! [`EventBus`] on EventBridge: one `PutEvents` entry per event, on the deployment's bus
//! (`PHOENIX_EVENT_BUS`). Rules on that bus route events to whoever listens; the bus itself keeps
//! nothing.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_smithy_types::DateTime;
use phoenix_domain::ports::{BusEvent, EventBus, StoreError, StoreResult};

use super::classify;

#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeBus {
    /// Publishes on the bus named (or with the ARN) `bus`.
    pub fn new(config: &SdkConfig, bus: impl Into<String>) -> Self {
        Self::from_client(aws_sdk_eventbridge::Client::new(config), bus)
    }

    pub fn from_client(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }

    pub fn client(&self) -> &aws_sdk_eventbridge::Client {
        &self.client
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, event: &BusEvent) -> StoreResult<()> {
        let detail = serde_json::to_string(&event.detail).map_err(StoreError::internal)?;
        let time = DateTime::from_nanos(event.time.unix_timestamp_nanos())
            .map_err(|e| StoreError::internal(anyhow::anyhow!("event time {} out of range: {e}", event.time)))?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(event.source)
            .detail_type(&event.detail_type)
            .detail(detail)
            .time(time)
            .build();
        let output =
            self.client.put_events().entries(entry).send().await.map_err(|e| classify("eventbridge PutEvents", e))?;
        // PutEvents answers 200 even when it refused an entry: the entry says why.
        if output.failed_entry_count() > 0 {
            let failed = output.entries().iter().find(|e| e.error_code().is_some());
            let code = failed.and_then(|e| e.error_code()).unwrap_or("unknown");
            let message = failed.and_then(|e| e.error_message()).unwrap_or_default();
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "eventbridge PutEvents refused the {} event: {code}: {message}",
                event.detail_type
            )));
        }
        Ok(())
    }
}
