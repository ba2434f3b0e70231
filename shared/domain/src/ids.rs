//! Newtypes for every identifier that crosses a boundary. Past `parse`, an id is always valid, so no
//! other layer re-checks it (and no key can smuggle `..` or `/` into a storage path).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be 1 to {max} characters of A-Z, a-z, 0-9, '-' or '_'")]
    Malformed { kind: &'static str, max: usize },
    #[error("{kind} must be 1 to {max} characters of a-z, 0-9, '-' or '_' (upper case is folded)")]
    BadLabel { kind: &'static str, max: usize },
    #[error("object key {0:?} is not a valid key")]
    BadKey(String),
    #[error(
        "media_id must be a ULID in its canonical form: 26 characters of 0-9 and lower-case a-z without i, l, o, u (e.g. 01jd3k6v2q8m3y7x9t0b5n4c2a)"
    )]
    BadMediaId,
    #[error("job_id must be a ULID in its canonical form: 26 characters of 0-9 and lower-case a-z without i, l, o, u")]
    BadJobId,
    #[error(
        "batch_id must be a ULID in its canonical form: 26 characters of 0-9 and lower-case a-z without i, l, o, u"
    )]
    BadBatchId,
    #[error("link_id must be a ULID in its canonical form: 26 characters of 0-9 and lower-case a-z without i, l, o, u")]
    BadShareLinkId,
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The impls every ULID-backed id shares: `new` (ids made in one millisecond keep their order,
/// as [`MediaId::new`]'s do, so "newest first" holds), `created_at`, `parse` of the canonical
/// lower-case form (else `$error`), `Display`, and serde as that string.
macro_rules! ulid_id {
    ($id:ident, $error:ident) => {
        impl $id {
            pub fn new() -> Self {
                Self(MediaId::new().0)
            }

            pub fn created_at(&self) -> time::OffsetDateTime {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0.timestamp_ms()) * 1_000_000)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            }

            pub fn parse(raw: &str) -> Result<Self, IdError> {
                if raw.len() != 26 || raw.chars().any(|c| c.is_ascii_uppercase()) {
                    return Err(IdError::$error);
                }
                ulid::Ulid::from_string(raw).map(Self).map_err(|_| IdError::$error)
            }
        }

        impl Default for $id {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0.to_string().to_ascii_lowercase())
            }
        }

        impl Serialize for $id {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $id {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
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
        Self::generate_at(time::OffsetDateTime::now_utc())
    }

    /// An id made at `at` (to the millisecond) — or, if this process already made an id in a
    /// later millisecond, just after that one, so ids keep their creation order. Records take
    /// their `created_at` from the id ([`MediaId::created_at`]).
    pub fn generate_at(at: time::OffsetDateTime) -> Self {
        let at = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0));
        let mut generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let generator = generator.get_or_insert_with(ulid::Generator::new);
        // Overflow needs 2^80 ids in one millisecond; a fresh id is still unique then.
        Self(generator.generate_from_datetime(at).unwrap_or_else(|_| ulid::Ulid::from_datetime(at)))
    }

    /// The smallest and the largest id of a millisecond (unix ms): the bounds of an id range.
    pub fn first_of_ms(ms: u64) -> Self {
        Self(ulid::Ulid::from_parts(ms, 0))
    }

    pub fn last_of_ms(ms: u64) -> Self {
        Self(ulid::Ulid::from_parts(ms, u128::MAX))
    }

    /// The instant of the id's timestamp.
    pub fn created_at(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.timestamp_ms()) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// Milliseconds since the epoch at which this id was made.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        // Only the canonical lower-case form is accepted, so one media has exactly one spelling
        // in keys, URLs and the database.
        if raw.len() != 26 || raw.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(IdError::BadMediaId);
        }
        ulid::Ulid::from_string(raw).map(Self).map_err(|_| IdError::BadMediaId)
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

/// A background job's identifier: a ULID (lower case, like [`MediaId`]), so a model's jobs sort by
/// submission time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(ulid::Ulid);
ulid_id!(JobId, BadJobId);

impl JobId {
    /// The id of `parent`'s child for one media: the same every time it is asked for, so a
    /// fan-out that is interrupted and resumed never makes a second child for a media. It sorts
    /// with its parent (the parent's timestamp, then a digest of the media id).
    pub fn child(parent: &JobId, media: &MediaId) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{parent}/{media}").as_bytes());
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        Self(ulid::Ulid::from_parts(parent.0.timestamp_ms(), u128::from_be_bytes(random)))
    }
}

/// A batch's identifier: a ULID (lower case, like [`MediaId`]), so a model's batches sort by
/// submission time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(ulid::Ulid);
ulid_id!(BatchId, BadBatchId);

/// A share link's identifier: a ULID (lower case), so a gallery's links sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareLinkId(ulid::Ulid);
ulid_id!(ShareLinkId, BadShareLinkId);

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

    /// A key built by [`crate::keys`] from validated ids (never empty, no bad segments).
    pub(crate) fn trusted(raw: String) -> Self {
        debug_assert!(Self::parse(&raw).is_ok(), "{raw}");
        Self(raw)
    }
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

/// A gallery identifier (the galleries API mints them; links to galleries live on media records).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GalleryId(String);

impl GalleryId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.chars().all(is_id_char) {
            return Err(IdError::Malformed { kind: "gallery_id", max: Self::MAX_LEN });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Labels people type (tags, categories) are kept in one spelling: trimmed and lower-cased,
/// then 1 to 40 characters of a-z, 0-9, '-' or '_'. The key schemes rely on the alphabet
/// (no `#`), and one spelling means `Beach` and `beach ` find the same photos.
macro_rules! label_newtype {
    ($(#[$doc:meta])* $t:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $t(String);

        impl $t {
            pub const MAX_LEN: usize = 40;

            pub fn parse(raw: &str) -> Result<Self, IdError> {
                let normal = raw.trim().to_ascii_lowercase();
                if normal.is_empty() || normal.len() > Self::MAX_LEN || !normal.chars().all(is_label_char) {
                    return Err(IdError::BadLabel { kind: $kind, max: Self::MAX_LEN });
                }
                Ok(Self(normal))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

label_newtype!(
    /// A free-form tag on a media (`beach`, `editorial`, `ss-2027`).
    Tag,
    "tag"
);
label_newtype!(
    /// The one category a media belongs to (`headshot`, `runway`, `polaroid`).
    Category,
    "category"
);

label_newtype!(
    /// A named watermark profile (`agency-logo`): the logo and where and how it is drawn.
    WatermarkName,
    "watermark profile name"
);

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
string_newtype_impls!(ModelId, ObjectKey, GalleryId, Tag, Category, WatermarkName);

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
        // The refusal says what the one accepted spelling is.
        let message = MediaId::parse(&text.to_ascii_uppercase()).unwrap_err().to_string();
        assert!(message.contains("lower-case") && !message.contains("A-Z"), "{message}");
        assert!(MediaId::parse("not-a-ulid").is_err());
    }

    #[test]
    fn labels_have_one_spelling() {
        assert_eq!(Tag::parse(" Beach ").unwrap().as_str(), "beach");
        assert_eq!(Category::parse("RUNWAY_2027").unwrap().as_str(), "runway_2027");
        for bad in ["", " ", "a#b", "a b", "é", "a/b", &"x".repeat(41)] {
            assert!(Tag::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_carry_their_creation_millisecond() {
        // Ids stay in creation order across the process, so an id made "at" an instant is made
        // in that millisecond or, when another id already went further, just after.
        let at = time::OffsetDateTime::now_utc();
        let id = MediaId::generate_at(at);
        let at_ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap();
        assert!(id.timestamp_ms() >= at_ms && id.timestamp_ms() < at_ms + 1_000, "{} vs {at_ms}", id.timestamp_ms());
        assert_eq!(MediaId(ulid::Ulid::from_datetime(at.into())).timestamp_ms(), at_ms);
        assert!(MediaId::first_of_ms(id.timestamp_ms()) <= id && id <= MediaId::last_of_ms(id.timestamp_ms()));
        assert!(MediaId::last_of_ms(id.timestamp_ms() - 1) < id);
    }

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "/a", "a//b", "a/../b", "a/./b", "a\\b", "a\nb", "a/"] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        let model = ModelId::parse("m1").unwrap();
        let media = MediaId::new();
        let key = crate::keys::original(&model, &media);
        assert_eq!(crate::keys::parse_original(&key), Some((model, media)));
        assert_eq!(crate::keys::parse_original(&ObjectKey::parse("derived/m1/x.jpg").unwrap()), None);
    }
}
