//! Messages the domain puts on queues, with their wire form, their `enqueue` and their parse, in
//! one place: whoever sends one and whoever handles it share this code, never a copy of it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{MediaId, ModelId};
use crate::ports::{Queue, QueueName, StoreResult};

/// Maintenance work for the processor, on the ingest queue beside the bucket's notifications
/// (JSON, tagged by `action`; see docs/messages.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum MediaCommand {
    /// Bring the derivatives up to date with the configured presets.
    Regenerate {
        model_id: ModelId,
        media_id: MediaId,
        /// Presets to rebuild even if current.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        presets: Vec<String>,
        /// Rebuild every cover crop (the focal point moved).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        crops: bool,
    },
    /// Remove the objects of a deleted media (its tombstone says which), then the tombstone.
    Purge { model_id: ModelId, media_id: MediaId },
}

impl MediaCommand {
    /// The queue commands travel on.
    pub const QUEUE: QueueName = QueueName::INGEST;

    /// Whether a message body claims to be a command (a JSON object with an `action`), as
    /// opposed to a bucket notification; such a body must then parse as one.
    pub fn is_command(body: &str) -> bool {
        #[derive(Deserialize)]
        struct Probe {
            action: Option<serde::de::IgnoredAny>,
        }
        serde_json::from_str::<Probe>(body).is_ok_and(|p| p.action.is_some())
    }

    pub fn parse(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a command always serialises")
    }

    /// Sends the command to the ingest queue, delivered after `delay`.
    pub async fn enqueue(&self, queue: &dyn Queue, delay: Duration) -> StoreResult<String> {
        queue.send(&Self::QUEUE, &self.to_json(), delay).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_have_a_stable_wire_form() {
        let model = ModelId::parse("m1").unwrap();
        let media = MediaId::parse("01jd3k6v2q8m3y7x9t0b5n4c2a").unwrap();
        let purge = MediaCommand::Purge { model_id: model.clone(), media_id: media };
        assert_eq!(
            serde_json::to_string(&purge).unwrap(),
            r#"{"action":"purge","model_id":"m1","media_id":"01jd3k6v2q8m3y7x9t0b5n4c2a"}"#
        );
        let regen: MediaCommand = serde_json::from_str(
            r#"{"action":"regenerate","model_id":"m1","media_id":"01jd3k6v2q8m3y7x9t0b5n4c2a","presets":["cover-square"]}"#,
        )
        .unwrap();
        assert_eq!(
            regen,
            MediaCommand::Regenerate {
                model_id: model,
                media_id: media,
                presets: vec!["cover-square".into()],
                crops: false
            }
        );
        assert!(serde_json::from_str::<MediaCommand>(r#"{"action":"other","model_id":"m1"}"#).is_err());
    }

    #[test]
    fn commands_are_told_from_notifications_by_their_action() {
        assert!(MediaCommand::is_command(r#"{"action":"purge","model_id":"m1"}"#));
        assert!(MediaCommand::is_command(r#"{"action":"other"}"#));
        assert!(!MediaCommand::is_command(r#"{"Records":[]}"#));
        assert!(!MediaCommand::is_command(r#"{"Event":"s3:TestEvent"}"#));
        assert!(!MediaCommand::is_command("not json"));
    }
}
