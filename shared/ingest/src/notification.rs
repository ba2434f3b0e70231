//! S3 event notifications as they arrive in an SQS message body.
//!
//! Our own tolerant shape rather than `aws_lambda_events::s3::S3Event`: that type requires
//! `userIdentity`, `requestParameters` and `eventTime`, which the emulator omits, and we read
//! only the bucket, key, size and ETag.

use percent_encoding::percent_decode_str;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub event_name: String,
    pub bucket: Option<String>,
    /// The key, URL-decoded (S3 encodes keys in notifications, spaces as `+`).
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `s3:TestEvent`, sent once when a notification is configured.
    Test,
    Records(Vec<ObjectCreated>),
}

#[derive(Debug, thiserror::Error)]
#[error("not an S3 notification: {0}")]
pub struct NotificationError(String);

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: Option<String>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: String,
    size: Option<u64>,
    e_tag: Option<String>,
}

/// Decodes a key as S3 writes it in notifications: form-encoded, so `+` is a space.
pub fn decode_key(raw: &str) -> Result<String, NotificationError> {
    let plus_as_space = raw.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| NotificationError(format!("key {raw:?} is not valid UTF-8 once decoded")))
}

pub fn parse_notification(body: &str) -> Result<Notification, NotificationError> {
    let envelope: Envelope = serde_json::from_str(body).map_err(|e| NotificationError(e.to_string()))?;
    if envelope.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    let records = envelope.records.ok_or_else(|| NotificationError("no Records".into()))?;
    records
        .into_iter()
        .map(|r| {
            Ok(ObjectCreated {
                event_name: r.event_name.unwrap_or_default(),
                bucket: r.s3.bucket.name,
                key: decode_key(&r.s3.object.key)?,
                size: r.s3.object.size,
                etag: r.s3.object.e_tag.map(|e| e.trim_matches('"').to_owned()),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Notification::Records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_s3_notification() {
        let n = parse_notification(include_str!("../tests/fixtures/s3-put-real.json")).unwrap();
        let Notification::Records(records) = n else { panic!("not records") };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key, "originals/model-1/01jd3k6v2q8m3y7x9t0b5n4c2a");
        assert_eq!(records[0].event_name, "ObjectCreated:Put");
        assert_eq!(records[0].size, Some(1024));
        assert_eq!(records[0].etag.as_deref(), Some("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn emulator_notification_without_identity_and_with_encoded_slashes() {
        let n = parse_notification(include_str!("../tests/fixtures/s3-put-moto.json")).unwrap();
        let Notification::Records(records) = n else { panic!("not records") };
        assert_eq!(records[0].key, "originals/model-1/01jd3k6v2q8m3y7x9t0b5n4c2a");
    }

    #[test]
    fn test_event_is_recognised() {
        assert_eq!(
            parse_notification(include_str!("../tests/fixtures/s3-test-event.json")).unwrap(),
            Notification::Test
        );
        let emulator = include_str!("../tests/fixtures/s3-test-event-moto.json");
        assert_eq!(parse_notification(emulator).unwrap(), Notification::Test);
    }

    #[test]
    fn keys_are_form_decoded() {
        assert_eq!(decode_key("a+b%2Fc%C3%A9").unwrap(), "a b/cé");
        assert!(decode_key("%FF").is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_notification("not json").is_err());
        assert!(parse_notification("{}").is_err());
        assert!(parse_notification(r#"{"Records":[{"s3":{}}]}"#).is_err());
    }
}
