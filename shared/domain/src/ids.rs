//! Newtypes for every identifier that crosses a boundary. Past `parse`, an id is always valid, so no
//! other layer re-checks it (and no key can smuggle `..` or `/` into a storage path).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be 1 to {max} characters of A-Z, a-z, 0-9, '-' or '_'")]
    Malformed { kind: &'static str, max: usize },
    #[error("object key {0:?} is not a valid key")]
    BadKey(String),
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A model (tenant) identifier, as carried in `custom:model_id` and in every path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelId(String);

impl ModelId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.chars().all(is_id_char) {
            return Err(IdError::Malformed { kind: "model_id", max: Self::MAX_LEN });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A media identifier: a ULID, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId(ulid::Ulid);

/// Ids made in one millisecond still sort in creation order: the generator increments the
/// random part instead of drawing it afresh, so "newest first" holds within a process.
static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);

impl MediaId {
    pub fn new() -> Self {
        let mut generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let generator = generator.get_or_insert_with(ulid::Generator::new);
        // Overflow needs 2^80 ids in one millisecond; a fresh id is still unique then.
        Self(generator.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        // Only the canonical lower-case form is accepted, so one media has exactly one spelling
        // in keys, URLs and the database.
        let malformed = IdError::Malformed { kind: "media_id", max: 26 };
        if raw.len() != 26 || raw.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(malformed);
        }
        ulid::Ulid::from_string(raw).map(Self).map_err(|_| malformed)
    }
}

impl Default for MediaId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_string().to_ascii_lowercase())
    }
}

impl Serialize for MediaId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MediaId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A key in the object store. Segments are non-empty, never `.` or `..`, and free of control
/// characters and backslashes, so a key maps safely onto a file path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let bad = || IdError::BadKey(raw.chars().take(80).collect());
        if raw.is_empty() || raw.len() > Self::MAX_LEN || raw.contains('\\') {
            return Err(bad());
        }
        if raw.chars().any(char::is_control) {
            return Err(bad());
        }
        for segment in raw.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(bad());
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where an uploaded original lives.
    pub fn original(model: &ModelId, media: &MediaId) -> Self {
        Self(format!("originals/{}/{}", model.as_str(), media))
    }

    /// Parses `originals/{model_id}/{media_id}` back into its ids.
    pub fn parse_original(&self) -> Option<(ModelId, MediaId)> {
        let mut parts = self.0.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("originals"), Some(model), Some(media), None) => {
                Some((ModelId::parse(model).ok()?, MediaId::parse(media).ok()?))
            }
            _ => None,
        }
    }
}

macro_rules! string_newtype_impls {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                Self::parse(&raw)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype_impls!(ModelId, ObjectKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_validated() {
        assert!(ModelId::parse("model-42_a").is_ok());
        for bad in ["", "a/b", "..", "a b", "é", &"x".repeat(65)] {
            assert!(ModelId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn media_ids_made_in_a_row_sort_in_order() {
        let ids: Vec<String> = (0..1000).map(|_| MediaId::new().to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn media_ids_round_trip_in_canonical_form_only() {
        let id = MediaId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(MediaId::parse(&text).unwrap(), id);
        assert!(MediaId::parse(&text.to_ascii_uppercase()).is_err());
        assert!(MediaId::parse("not-a-ulid").is_err());
    }

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "/a", "a//b", "a/../b", "a/./b", "a\\b", "a\nb", "a/"] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        let model = ModelId::parse("m1").unwrap();
        let media = MediaId::new();
        let key = ObjectKey::original(&model, &media);
        assert_eq!(key.parse_original(), Some((model, media)));
        assert_eq!(ObjectKey::parse("derived/m1/x.jpg").unwrap().parse_original(), None);
    }
}
