//! Galleries: a model's named, ordered selection of approved photos, in sections, with a title,
//! a slug unique per deployment and a visibility; and their publication as immutable, versioned
//! documents that the public reads.
//!
//! **The gallery is the source of truth for membership and order.** Each media record keeps
//! `galleries` links (an index: which galleries show this media, read by listings and, later, by
//! the republish hooks). Membership changes write both, in an order that only ever leaves a record
//! with a link too many, never one too few ([`links`]):
//! - an insert writes the records' links first, then the gallery (conditional on its version);
//!   if the gallery write fails, the links just added are taken back;
//! - a removal writes the gallery first, then takes the links off;
//! - a publish reads every member record anyway and repairs what it finds: it writes a missing
//!   link (lost to a crash, or a rejection before links outlived it), sets each link's `published`
//!   flag to whether the media is in the document, and removes stale links of records that the
//!   gallery's index lists but the gallery does not hold.
//!
//! Use cases: [`create`], [`get`], [`list`], [`delete`], [`patch`] (a list of [`Operation`]s
//! applied with `If-Match`), and [`publish`](publish::publish), [`rollback`](publish::rollback),
//! [`read_published`](publish::read_published) in [`publish`]; the rights sweep,
//! [`rights::sweep`], republishes galleries whose shown media's usage rights have expired.

mod error;
#[cfg(test)]
pub(crate) mod fakes;
pub mod links;
mod manage;
pub mod ops;
pub mod publish;
pub mod republish;
pub mod rights;

pub use error::GalleryError;
pub use manage::{CreateGallery, GalleryPorts, create, delete, get, list, patch};
pub use ops::{Operation, Position};
pub use publish::{
    PUBLIC_CACHE_CONTROL, Pointer, PublishPorts, PublishedDocument, PublishedItem, PublishedSection, Source, SourceSet,
    publish, publish_if_changed, read_published, rollback,
};

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{GalleryId, MediaId, ModelId};

/// Items a gallery holds at most, over all its sections.
pub const MAX_ITEMS: usize = 2_000;
/// Sections a gallery has at most.
pub const MAX_SECTIONS: usize = 50;
/// Operations one `PATCH` may carry.
pub const MAX_OPERATIONS: usize = 100;
/// Characters of a gallery's title, of a section's title, of a description.
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_SECTION_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Published versions a gallery remembers (and may roll back through).
pub const MAX_PUBLISHED_HISTORY: usize = 20;
/// The section a new gallery starts with when none is named.
pub const DEFAULT_SECTION: &str = "main";
/// Batch chunk marks a gallery keeps (the oldest go first): more than the chunks of the batches
/// that may run on one model at once (3 x 100 by default).
pub const MAX_BATCH_MARKS: usize = 400;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LabelError(pub String);

/// A gallery's public name in `/g/{slug}`: 3 to 80 characters of a-z, 0-9 and '-', neither
/// starting nor ending with '-' (upper case is folded, surrounding space trimmed). Unique per
/// deployment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 80;

    pub fn parse(raw: &str) -> Result<Self, LabelError> {
        let normal = raw.trim().to_ascii_lowercase();
        let well_formed = (Self::MIN_LEN..=Self::MAX_LEN).contains(&normal.len())
            && normal.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !normal.starts_with('-')
            && !normal.ends_with('-');
        if !well_formed {
            return Err(LabelError(format!(
                "slug must be {} to {} characters of a-z, 0-9 and '-', not starting or ending with '-'",
                Self::MIN_LEN,
                Self::MAX_LEN
            )));
        }
        Ok(Self(normal))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A section's id within its gallery, chosen by the caller: 1 to 40 characters of a-z, 0-9,
/// '-' or '_' (upper case is folded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SectionId(String);

impl SectionId {
    pub const MAX_LEN: usize = 40;

    pub fn parse(raw: &str) -> Result<Self, LabelError> {
        let normal = raw.trim().to_ascii_lowercase();
        if normal.is_empty()
            || normal.len() > Self::MAX_LEN
            || !normal.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(LabelError(format!(
                "section_id must be 1 to {} characters of a-z, 0-9, '-' or '_'",
                Self::MAX_LEN
            )));
        }
        Ok(Self(normal))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! label_impls {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = LabelError;
            fn try_from(raw: String) -> Result<Self, LabelError> {
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
label_impls!(Slug, SectionId);

/// Who may read a gallery's published document without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Only its model and the admins (and, later, share links).
    Private,
    /// Anyone with the URL; not listed anywhere.
    Unlisted,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Unlisted => "unlisted",
            Self::Public => "public",
        }
    }

    /// Whether the public routes serve it.
    pub fn is_readable_publicly(self) -> bool {
        !matches!(self, Self::Private)
    }
}

/// A named part of a gallery: its items in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub section_id: SectionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub items: Vec<MediaId>,
}

/// One published version: its number, when and by whom, and how many items it showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedVersion {
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub by: String,
    pub items: u32,
    /// SHA-256 (hex) of the document's bytes: its strong ETag.
    pub sha256: String,
    /// The earliest usage-rights expiry among the media this version shows (all later than its
    /// publish): when it must be republished without them ([`rights`]). Absent: none expires.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub rights_expire_at: Option<OffsetDateTime>,
}

/// A gallery's publication: the version the public reads (`current`), the highest number ever
/// used (`latest`: the next publish is `latest + 1`, so a number is never reused), and the
/// versions a rollback may go back to, oldest first (at most [`MAX_PUBLISHED_HISTORY`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub current: u32,
    pub latest: u32,
    pub history: Vec<PublishedVersion>,
}

impl Publication {
    pub fn current_version(&self) -> Option<&PublishedVersion> {
        self.history.iter().find(|v| v.version == self.current)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gallery {
    pub gallery_id: GalleryId,
    pub model_id: ModelId,
    pub title: String,
    pub slug: Slug,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub visibility: Visibility,
    /// The media shown as the gallery's cover: one of its items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<MediaId>,
    /// In order; every gallery has at least one.
    pub sections: Vec<Section>,
    /// Starts at 1, incremented by every write; writes are conditional on the version read.
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Absent until the first publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,
    /// The batch chunks whose membership change this gallery took, `{batch_id}:{chunk}`, oldest
    /// first, at most [`MAX_BATCH_MARKS`]: written with the change, so a redelivered chunk finds
    /// its change made and never makes it twice ([`crate::batches`]). Never shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch_marks: Vec<String>,
}

impl Gallery {
    /// Every item, section by section, in order.
    pub fn items(&self) -> impl Iterator<Item = &MediaId> {
        self.sections.iter().flat_map(|s| s.items.iter())
    }

    pub fn item_count(&self) -> usize {
        self.sections.iter().map(|s| s.items.len()).sum()
    }

    pub fn contains(&self, media: &MediaId) -> bool {
        self.items().any(|m| m == media)
    }

    pub fn section(&self, id: &SectionId) -> Option<&Section> {
        self.sections.iter().find(|s| &s.section_id == id)
    }

    /// When the version the public reads shows a media past its usage rights, if it ever will:
    /// the stores index galleries by it, and the rights sweep republishes those due
    /// ([`rights::sweep`]).
    pub fn rights_due_at(&self) -> Option<OffsetDateTime> {
        self.publication.as_ref()?.current_version()?.rights_expire_at
    }
}

/// A fresh gallery id: a lower-case ULID made like media ids (ids made in one millisecond keep
/// their order), so a model's galleries list newest first by id.
pub fn new_gallery_id() -> GalleryId {
    GalleryId::parse(&MediaId::new().to_string()).expect("a ULID is a valid gallery id")
}

/// Trimmed text of at most `max` characters without control characters (newlines and tabs
/// allowed in descriptions only); empty is `None`.
pub(crate) fn text(
    field: &str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
) -> Result<Option<String>, GalleryError> {
    let Some(value) = value else { return Ok(None) };
    let trimmed = value.trim();
    if trimmed.chars().count() > max {
        return Err(GalleryError::invalid(field, format!("at most {max} characters")));
    }
    if trimmed.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t'))) {
        return Err(GalleryError::invalid(field, "must not contain control characters"));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_have_one_spelling_and_a_safe_alphabet() {
        assert_eq!(Slug::parse(" Summer-2027 ").unwrap().as_str(), "summer-2027");
        for bad in ["", "ab", "-abc", "abc-", "a b c", "a_bc", "a/bc", "é-abc", &"x".repeat(81)] {
            assert!(Slug::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(SectionId::parse("Main_1").is_ok());
        assert!(SectionId::parse("a#b").is_err());
    }

    #[test]
    fn gallery_ids_are_fresh_lower_case_ulids() {
        let (a, b) = (new_gallery_id(), new_gallery_id());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 26);
        assert_eq!(a.as_str(), a.as_str().to_ascii_lowercase());
    }
}
