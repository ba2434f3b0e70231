//! The JSON a batch is asked for with — the body of `POST /v1/batches` and the `batch` of a
//! back-office message on the batches queue, one shape for both — and the queue's messages.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{BatchOperation, BatchRequest, ChunkMessage, MAX_ITEMS, Selection, Submitter};
use crate::ids::{Category, GalleryId, MediaId, ModelId, Tag};
use crate::media::MediaStatus;
use crate::ports::MediaQuery;

/// One explicit item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRef {
    pub model_id: ModelId,
    pub media_id: MediaId,
}

/// The media list's filters (one model's media), resolved once at submission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    #[serde(default)]
    pub status: Option<MediaStatus>,
    #[serde(default)]
    pub category: Option<Category>,
    #[serde(default)]
    pub tag: Option<Tag>,
    #[serde(default)]
    pub gallery: Option<GalleryId>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_before: Option<OffsetDateTime>,
}

/// A batch as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub model_id: ModelId,
    /// `approve`, `reject`, `categorize`, `tag`, `add_to_gallery`, `remove_from_gallery`,
    /// `set_usage_rights`, `delete`, `restore`.
    pub operation: String,
    #[serde(default)]
    pub params: serde_json::Value,
    /// Explicit items (at most 10,000), or ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemRef>>,
    /// ... a filter of `model_id`'s media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterBody>,
    #[serde(default)]
    pub dry_run: bool,
}

/// Why a body does not make a batch, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn bad(field: &str, message: impl Into<String>) -> BodyError {
    BodyError { field: field.into(), message: message.into() }
}

impl BatchBody {
    /// The request this body asks for: the operation and its params checked, exactly one of
    /// `items` and `filter`, every item of `model_id`.
    pub fn into_request(self) -> Result<BatchRequest, BodyError> {
        if !BatchOperation::NAMES.contains(&self.operation.as_str()) {
            return Err(bad(
                "operation",
                format!("unknown operation {:?}; one of {:?}", self.operation, BatchOperation::NAMES),
            ));
        }
        let mut params = match self.params {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(map) => map,
            _ => return Err(bad("params", "params must be a JSON object")),
        };
        params.insert("op".into(), serde_json::Value::String(self.operation.clone()));
        let operation: BatchOperation = serde_json::from_value(serde_json::Value::Object(params))
            .map_err(|e| bad("params", format!("params of {}: {e}", self.operation)))?;
        let selection = match (self.items, self.filter) {
            (Some(items), None) => {
                if items.is_empty() || items.len() > MAX_ITEMS {
                    return Err(bad("items", format!("1 to {MAX_ITEMS} items")));
                }
                if let Some(other) = items.iter().find(|i| i.model_id != self.model_id) {
                    return Err(bad(
                        "items",
                        format!("every item is of model {}; one is of {}", self.model_id, other.model_id),
                    ));
                }
                Selection::Items(items.into_iter().map(|i| i.media_id).collect())
            }
            (None, Some(f)) => Selection::Filter(MediaQuery {
                status: f.status,
                category: f.category,
                tag: f.tag,
                gallery: f.gallery,
                created_from: f.created_from,
                created_before: f.created_before,
                limit: 100,
                cursor: None,
            }),
            _ => return Err(bad("items", "give exactly one of `items` and `filter`")),
        };
        Ok(BatchRequest { model_id: self.model_id, operation, selection, dry_run: self.dry_run })
    }
}

/// A back-office system's claims, as a token would carry them (`sub`, `cognito:groups`,
/// `custom:model_id`), checked the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitterBody {
    pub sub: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub model_id: Option<ModelId>,
}

impl SubmitterBody {
    pub fn into_submitter(self) -> Result<Submitter, BodyError> {
        if self.sub.trim().is_empty() || self.sub.len() > 256 {
            return Err(bad("submitter.sub", "the submitter's subject is 1 to 256 characters"));
        }
        let admin = self.groups.iter().any(|g| g == "admin");
        if !admin && !self.groups.iter().any(|g| g == "model") {
            return Err(bad("submitter.groups", "the submitter is in group admin or model"));
        }
        if !admin && self.model_id.is_none() {
            return Err(bad("submitter.model_id", "a model submitter names its model"));
        }
        Ok(Submitter { subject: self.sub, admin, model_id: if admin { None } else { self.model_id } })
    }
}

/// The current version of back-office submissions.
pub const SUBMISSION_SCHEMA_VERSION: u32 = 1;

/// A back-office system's submission, sent straight to the batches queue (docs/messages.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    pub schema_version: u32,
    pub submitter: SubmitterBody,
    pub batch: BatchBody,
}

/// A message on the batches queue.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchMessage {
    Chunk(ChunkMessage),
    Submission(Box<Submission>),
    /// A body that is neither: it goes to the dead-letter queue at once, with `reason` logged.
    Malformed {
        body: String,
        reason: String,
    },
}

impl BatchMessage {
    /// Reads a body: a submission (an object with `schema_version`) must parse and be of a
    /// known version; anything else must be a chunk message.
    pub fn parse(body: &str) -> Self {
        let malformed = |reason: String| Self::Malformed { body: body.to_owned(), reason };
        let value: serde_json::Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return malformed(format!("not JSON: {e}")),
        };
        if value.get("schema_version").is_some() {
            return match serde_json::from_value::<Submission>(value) {
                Ok(s) if s.schema_version == SUBMISSION_SCHEMA_VERSION => Self::Submission(Box::new(s)),
                Ok(s) => malformed(format!(
                    "schema_version {} is not supported (this is {SUBMISSION_SCHEMA_VERSION})",
                    s.schema_version
                )),
                Err(e) => malformed(format!("not a batch submission: {e}")),
            };
        }
        match serde_json::from_value::<ChunkMessage>(value) {
            Ok(chunk) => Self::Chunk(chunk),
            Err(e) => malformed(format!("neither a submission (no schema_version) nor a chunk message: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_chunks_and_everything_else_are_told_apart() {
        let submission = r#"{"schema_version":1,"submitter":{"sub":"crm","groups":["admin"]},
            "batch":{"model_id":"m1","operation":"tag","params":{"add":["ss27"]},
                     "filter":{"status":"approved"}}}"#;
        let BatchMessage::Submission(s) = BatchMessage::parse(submission) else { panic!("not a submission") };
        let request = s.batch.clone().into_request().unwrap();
        assert_eq!(request.operation, BatchOperation::Tag { add: vec![Tag::parse("ss27").unwrap()], remove: vec![] });
        assert!(matches!(request.selection, Selection::Filter(ref q) if q.status == Some(MediaStatus::Approved)));
        assert!(s.submitter.into_submitter().unwrap().admin);

        let chunk = r#"{"batch_id":"01jd3k6v2q8m3y7x9t0b5n4c2a","chunk":3}"#;
        assert!(matches!(BatchMessage::parse(chunk), BatchMessage::Chunk(ChunkMessage { chunk: 3, .. })));
        for bad in ["not json", r#"{"schema_version":2,"submitter":{"sub":"x"},"batch":{}}"#, r#"{"hello":1}"#] {
            assert!(matches!(BatchMessage::parse(bad), BatchMessage::Malformed { .. }), "{bad}");
        }
    }

    #[test]
    fn a_body_names_the_field_it_gets_wrong() {
        let body = |json: &str| serde_json::from_str::<BatchBody>(json).unwrap().into_request().unwrap_err().field;
        assert_eq!(body(r#"{"model_id":"m1","operation":"explode","items":[]}"#), "operation");
        assert_eq!(body(r#"{"model_id":"m1","operation":"delete"}"#), "items");
        assert_eq!(body(r#"{"model_id":"m1","operation":"categorize","params":{"category":5},"filter":{}}"#), "params");
        let other = r#"{"model_id":"m1","operation":"delete","items":[{"model_id":"m2","media_id":"01jd3k6v2q8m3y7x9t0b5n4c2a"}]}"#;
        assert_eq!(body(other), "items");
    }
}
