//! [`LaneControl`] on Lambda: a lane is paused by disabling the event source mapping that feeds
//! its queue to the worker. Its messages stay in the queue (they are not received, so they
//! neither count receives nor go to the DLQ) until the mapping is enabled again. The mapping ids
//! come from the template (`PHOENIX_JOBS_HIGH_MAPPING`, `PHOENIX_JOBS_NORMAL_MAPPING`: the `Ref`
//! of each lane's `AWS::Lambda::EventSourceMapping` is its UUID).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use phoenix_domain::jobs::Lane;
use phoenix_domain::ports::{LaneControl, StoreError, StoreResult};

use super::classify;

#[derive(Debug, Clone)]
pub struct LambdaLanes {
    client: aws_sdk_lambda::Client,
    mappings: BTreeMap<Lane, String>,
}

impl LambdaLanes {
    /// `mappings` names each lane's event source mapping (UUID). A lane without one (a function
    /// that only needs to ask, such as the worker) is never paused, and cannot be.
    pub fn new(config: &SdkConfig, mappings: BTreeMap<Lane, String>) -> Self {
        Self::from_client(aws_sdk_lambda::Client::new(config), mappings)
    }

    pub fn from_client(client: aws_sdk_lambda::Client, mappings: BTreeMap<Lane, String>) -> Self {
        Self { client, mappings }
    }

    pub fn client(&self) -> &aws_sdk_lambda::Client {
        &self.client
    }
}

/// Whether a mapping in `state` delivers nothing: disabled, or on its way there.
fn is_paused_state(state: &str) -> bool {
    matches!(state, "Disabled" | "Disabling")
}

#[async_trait]
impl LaneControl for LambdaLanes {
    async fn set_paused(&self, lane: Lane, paused: bool) -> StoreResult<()> {
        let Some(uuid) = self.mappings.get(&lane) else {
            // A wiring bug: this function was not given the mapping (its PHOENIX_JOBS_*_MAPPING).
            return Err(StoreError::internal(anyhow::anyhow!(
                "lane {} cannot be paused or resumed here: no event source mapping is configured for it \
                 (PHOENIX_JOBS_{}_MAPPING)",
                lane.as_str(),
                lane.as_str().to_ascii_uppercase()
            )));
        };
        self.client
            .update_event_source_mapping()
            .uuid(uuid)
            .enabled(!paused)
            .send()
            .await
            .map_err(|e| classify("lambda UpdateEventSourceMapping", e))?;
        Ok(())
    }

    async fn is_paused(&self, lane: Lane) -> StoreResult<bool> {
        let Some(uuid) = self.mappings.get(&lane) else {
            return Ok(false);
        };
        let output = self
            .client
            .get_event_source_mapping()
            .uuid(uuid)
            .send()
            .await
            .map_err(|e| classify("lambda GetEventSourceMapping", e))?;
        let state = output.state().ok_or_else(|| {
            StoreError::internal(anyhow::anyhow!("lambda GetEventSourceMapping: mapping {uuid} has no State"))
        })?;
        Ok(is_paused_state(state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_and_disabling_mappings_are_paused() {
        for state in ["Disabled", "Disabling"] {
            assert!(is_paused_state(state), "{state}");
        }
        for state in ["Enabled", "Enabling", "Creating", "Updating", "Deleting"] {
            assert!(!is_paused_state(state), "{state}");
        }
    }
}
