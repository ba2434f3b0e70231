//! What travels on the ingest queue: bucket notifications and media commands, told apart by shape.

use phoenix_domain::messages::MediaCommand;

use crate::notification::{Notification, NotificationError, parse_notification};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestMessage {
    /// From the bucket: originals were uploaded (or the notification was just configured).
    Notification(Notification),
    /// From the API: maintenance work on one media.
    Command(MediaCommand),
}

/// A body that is neither a media command nor an S3 notification; retrying it cannot help.
#[derive(Debug, thiserror::Error)]
pub enum MalformedMessage {
    #[error("a media command (it has an `action`) that does not parse: {0}")]
    Command(#[source] serde_json::Error),
    #[error(transparent)]
    Notification(#[from] NotificationError),
}

impl IngestMessage {
    /// Decides by shape: a body that claims to be a command ([`MediaCommand::is_command`]: a JSON
    /// object with an `action`) must parse as one; anything else must be an S3 notification.
    pub fn parse(body: &str) -> Result<Self, MalformedMessage> {
        if MediaCommand::is_command(body) {
            MediaCommand::parse(body).map(Self::Command).map_err(MalformedMessage::Command)
        } else {
            Ok(Self::Notification(parse_notification(body)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_notifications_are_told_apart_by_shape() {
        let purge = r#"{"action":"purge","model_id":"m1","media_id":"01jd3k6v2q8m3y7x9t0b5n4c2a"}"#;
        assert!(matches!(IngestMessage::parse(purge), Ok(IngestMessage::Command(MediaCommand::Purge { .. }))));
        let test_event = include_str!("../tests/fixtures/s3-test-event.json");
        assert_eq!(IngestMessage::parse(test_event).unwrap(), IngestMessage::Notification(Notification::Test));
        let put = include_str!("../tests/fixtures/s3-put-real.json");
        assert!(matches!(IngestMessage::parse(put), Ok(IngestMessage::Notification(Notification::Records(_)))));
    }

    #[test]
    fn a_broken_command_is_not_read_as_a_notification() {
        for body in [
            r#"{"action":"purge","model_id":"m1"}"#,
            r#"{"action":"other","model_id":"m1","media_id":"01jd3k6v2q8m3y7x9t0b5n4c2a"}"#,
            r#"{"action":"purge","model_id":"m1","media_id":"01jd3k6v2q8m3y7x9t0b5n4c2a","Records":[]}"#,
        ] {
            let error = IngestMessage::parse(body).unwrap_err();
            assert!(matches!(error, MalformedMessage::Command(_)), "{body}: {error}");
            assert!(error.to_string().contains("media command"), "{error}");
        }
        assert!(matches!(IngestMessage::parse("not json"), Err(MalformedMessage::Notification(_))));
        assert!(matches!(IngestMessage::parse("{}"), Err(MalformedMessage::Notification(_))));
    }
}
