//! Batch operations on up to 10,000 media: what a batch is (an operation over a snapshot of
//! items, split into chunks), its per-item outcomes with the values each applied item had before
//! (the undo log), and the rule that applies one operation to one record. Each item is applied
//! with the same rules a single request uses ([`crate::library`]), conditionally on the version
//! read, and its change and its outcome are written together, so a chunk delivered twice never
//! applies or counts an item twice.

mod apply;
mod chunk;
pub mod events;
#[cfg(test)]
mod fakes;
mod gallery;
mod submit;
pub mod wire;

pub use apply::{Applied, ApplyContext, apply_to};
pub use chunk::{ChunkReport, process_chunk, tally};
pub use submit::{
    BatchError, BatchLimits, BatchPorts, BatchRequest, ChunkMessage, QUEUE, Selection, Submitter, cancel, rollback,
    selects_trash, submit,
};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{BatchId, Category, GalleryId, MediaId, ModelId, Tag};
use crate::media::{MediaStatus, Review, Violation};

/// Items a batch may hold (explicit, or what a filter selects at submission).
pub const MAX_ITEMS: usize = 10_000;
/// Items per chunk: one queue message, applied by one delivery.
pub const CHUNK_SIZE: usize = 100;
/// Batch records live this long after submission (then the table's TTL removes them).
pub const BATCH_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// What a batch does to each item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum BatchOperation {
    /// Moderation (admins only, as for single items).
    Approve {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Reject {
        violations: Vec<Violation>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Sets (or, with `null`, clears) the category.
    Categorize {
        category: Option<Category>,
    },
    /// Adds and removes tags (removals first).
    Tag {
        #[serde(default)]
        add: Vec<Tag>,
        #[serde(default)]
        remove: Vec<Tag>,
    },
    AddToGallery {
        gallery_id: GalleryId,
    },
    RemoveFromGallery {
        gallery_id: GalleryId,
    },
    /// Sets (or clears) when the agency's right to use the photo ends.
    SetUsageRights {
        #[serde(default, with = "time::serde::rfc3339::option")]
        expires_at: Option<OffsetDateTime>,
    },
    /// Moves to the trash (restorable for the grace period).
    Delete,
    /// Brings back from the trash.
    Restore,
    /// Restores the values another batch changed (made by a rollback, not submitted).
    Rollback {
        of: BatchId,
    },
}

impl BatchOperation {
    pub const NAMES: [&'static str; 9] = [
        "approve",
        "reject",
        "categorize",
        "tag",
        "add_to_gallery",
        "remove_from_gallery",
        "set_usage_rights",
        "delete",
        "restore",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Self::Approve { .. } => "approve",
            Self::Reject { .. } => "reject",
            Self::Categorize { .. } => "categorize",
            Self::Tag { .. } => "tag",
            Self::AddToGallery { .. } => "add_to_gallery",
            Self::RemoveFromGallery { .. } => "remove_from_gallery",
            Self::SetUsageRights { .. } => "set_usage_rights",
            Self::Delete => "delete",
            Self::Restore => "restore",
            Self::Rollback { .. } => "rollback",
        }
    }

    /// Whether only admins may run it (reviews are admin only, as for single items).
    pub fn admin_only(&self) -> bool {
        matches!(self, Self::Approve { .. } | Self::Reject { .. })
    }
}

/// What became of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    Applied,
    /// The record changed between the read and the write, twice (or, in a rollback, since the
    /// batch): reported, never clobbered.
    SkippedConflict,
    SkippedNotFound,
    /// The submitter may not do this to this item (a model's batch reviewing, another model's media).
    SkippedNotAllowed,
    /// The item's state does not allow the operation (approving an upload still in flight).
    SkippedInvalidState,
    /// A fault (a store refusing the write); the message says which.
    Failed,
}

impl ItemOutcome {
    pub const ALL: [ItemOutcome; 6] = [
        Self::Applied,
        Self::SkippedConflict,
        Self::SkippedNotFound,
        Self::SkippedNotAllowed,
        Self::SkippedInvalidState,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::SkippedConflict => "skipped_conflict",
            Self::SkippedNotFound => "skipped_not_found",
            Self::SkippedNotAllowed => "skipped_not_allowed",
            Self::SkippedInvalidState => "skipped_invalid_state",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == raw)
    }
}

/// Counts per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub applied: u64,
    pub skipped_conflict: u64,
    pub skipped_not_found: u64,
    pub skipped_not_allowed: u64,
    pub skipped_invalid_state: u64,
    pub failed: u64,
}

impl OutcomeCounts {
    pub fn add(&mut self, outcome: ItemOutcome) {
        *self.slot(outcome) += 1;
    }

    fn slot(&mut self, outcome: ItemOutcome) -> &mut u64 {
        match outcome {
            ItemOutcome::Applied => &mut self.applied,
            ItemOutcome::SkippedConflict => &mut self.skipped_conflict,
            ItemOutcome::SkippedNotFound => &mut self.skipped_not_found,
            ItemOutcome::SkippedNotAllowed => &mut self.skipped_not_allowed,
            ItemOutcome::SkippedInvalidState => &mut self.skipped_invalid_state,
            ItemOutcome::Failed => &mut self.failed,
        }
    }

    pub fn sum(&self, other: &Self) -> Self {
        Self {
            applied: self.applied + other.applied,
            skipped_conflict: self.skipped_conflict + other.skipped_conflict,
            skipped_not_found: self.skipped_not_found + other.skipped_not_found,
            skipped_not_allowed: self.skipped_not_allowed + other.skipped_not_allowed,
            skipped_invalid_state: self.skipped_invalid_state + other.skipped_invalid_state,
            failed: self.failed + other.failed,
        }
    }

    pub fn total(&self) -> u64 {
        self.applied
            + self.skipped_conflict
            + self.skipped_not_found
            + self.skipped_not_allowed
            + self.skipped_invalid_state
            + self.failed
    }
}

/// The values of the fields batch operations change, as an item had them before a batch applied
/// its change: what a rollback puts back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoValues {
    pub status: MediaStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub usage_rights_expires_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trashed: Option<crate::media::Trash>,
    /// Gallery membership batches (and their rollbacks): the item's membership of the batch's
    /// gallery before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gallery: Option<GalleryMembership>,
}

/// An item's membership of one gallery, as a gallery batch found it (the undo log of
/// `add_to_gallery` and `remove_from_gallery`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GalleryMembership {
    pub gallery_id: GalleryId,
    /// Where the media was before the change; absent: it was not in the gallery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<GalleryPlace>,
    /// A rollback that puts a media back: the place it goes back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_to: Option<GalleryPlace>,
    /// Leaving: it was the gallery's cover. A rollback putting it back: it becomes the cover
    /// again (unless the gallery has another by then).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cover: bool,
}

/// A place in a gallery: a section and an index in it. A removal records each item's index
/// with the chunk's earlier items (in batch order) already taken out, so that putting them back
/// in the reverse order restores the order exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GalleryPlace {
    pub section_id: crate::galleries::SectionId,
    pub position: u32,
}

/// One item's outcome record, written in the same transaction as the item's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    pub batch_id: BatchId,
    /// The item's place in the batch (0-based): chunk `seq / CHUNK_SIZE`.
    pub seq: u32,
    pub model_id: ModelId,
    pub media_id: MediaId,
    pub outcome: ItemOutcome,
    /// Why it was skipped or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The undo log: the item's values before the change (applied items only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<UndoValues>,
    /// The record version the change wrote: a rollback applies only if the item is still there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_version: Option<u64>,
    /// A dry run's outcome is a prediction; nothing was written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub predicted: bool,
    /// The galleries the change may show differently (the record's links before and after it),
    /// written with the outcome: the chunk asks them to republish after its writes, and a
    /// redelivered chunk asks again, so a delivery that died in between loses no republish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub galleries: Vec<GalleryId>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The items of one chunk (the selection snapshot), and, once handled, its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchChunk {
    pub batch_id: BatchId,
    pub chunk: u32,
    pub media_ids: Vec<MediaId>,
    /// A rollback's chunk: for each item, its place in the batch it undoes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origin_seqs: Vec<u32>,
    /// Set when every item has its outcome: counted from the outcome records, so a chunk handled
    /// twice is counted the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<OutcomeCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Queued,
    Running,
    Completed,
    CompletedWithErrors,
    Failed,
    Cancelled,
    RolledBack,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::CompletedWithErrors,
        Self::Failed,
        Self::Cancelled,
        Self::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::CompletedWithErrors => "completed_with_errors",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::RolledBack => "rolled_back",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Queued or running: counted against the limits on running batches.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// A batch: an operation over a snapshot of one model's media, in chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub batch_id: BatchId,
    pub model_id: ModelId,
    pub operation: BatchOperation,
    pub status: BatchStatus,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub total: u64,
    pub chunks: u32,
    /// Chunks whose every item has its outcome.
    #[serde(default)]
    pub chunks_done: u32,
    /// Summed from the handled chunks' counts.
    #[serde(default)]
    pub counts: OutcomeCounts,
    /// The submitter's subject, and whether it acted as an admin (decides `skipped_not_allowed`).
    pub submitted_by: String,
    pub submitted_as_admin: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<BatchId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_by: Option<BatchId>,
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Incremented by every write; every write is conditional on the version read.
    pub version: u64,
    /// The TTL: the store forgets the batch (and its items) after this.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl Batch {
    /// Items handled per second so far (`None` before any chunk is done).
    pub fn items_per_second(&self, now: OffsetDateTime) -> Option<f64> {
        let started = self.started_at?;
        let end = self.finished_at.unwrap_or(now);
        let seconds = (end - started).as_seconds_f64();
        let done = self.counts.total();
        (done > 0 && seconds > 0.0).then(|| done as f64 / seconds)
    }

    /// When it should end at the current rate (`None` when ended or not yet measurable).
    pub fn eta(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        if !self.status.is_active() {
            return None;
        }
        let rate = self.items_per_second(now)?;
        let left = self.total.saturating_sub(self.counts.total()) as f64;
        Some(now + time::Duration::seconds_f64(left / rate))
    }

    /// The status a batch whose every chunk is done ends in.
    pub fn final_status(&self) -> BatchStatus {
        if self.counts.total() == self.counts.applied {
            BatchStatus::Completed
        } else if self.counts.applied == 0 && self.counts.failed == self.counts.total() && self.total > 0 {
            BatchStatus::Failed
        } else {
            BatchStatus::CompletedWithErrors
        }
    }
}
