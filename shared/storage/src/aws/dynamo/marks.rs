//! Batch marks: how a batch item whose media record has no index entries commits with one
//! PutItem instead of a transaction.
//!
//! The record is written (conditional on its version) carrying `batch_mark`: the item's outcome,
//! undo values included, as JSON with the batch's expiry. The outcome item is written right
//! after. A crash between the two leaves the outcome only in the mark, and whoever meets the
//! mark next writes it out ("settles" it, conditional on there being no outcome yet):
//!
//! - the chunk's redelivery: it finds no outcome for the item, and the item's write finds its
//!   own mark on the stored record, so the item was applied; the outcome is settled and nothing
//!   is written to the record again (`AlreadyExists`, as for a transaction's outcome);
//! - any other write of the record, which would drop the attribute: writes that read the record
//!   first settle the mark they read (the version condition guards what they read); the blind
//!   PutItem of `update_media`'s fast path is conditional on there being no mark, and settles
//!   it on refusal before it tries again.
//!
//! So the change and its outcome are committed by one write, and no outcome is lost or counted
//! twice. A settled mark may stay on the record until its next write: it only ever settles to
//! the outcome that already exists.
//!
//! Why: a transaction costs twice the write capacity of its items, and an emulator (moto) copies
//! the whole table for every action of one, which made a 1,000-item batch take hours there.

use aws_sdk_dynamodb::types::AttributeValue;
use phoenix_domain::batches::BatchItem;
use phoenix_domain::ports::{StoreError, StoreResult};
use serde::{Deserialize, Serialize};

use super::DynamoMetadataStore;
use super::codec::Item;

/// On a media item: the outcome of the batch item that wrote it, until settled.
pub(super) const BATCH_MARK: &str = "batch_mark";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Mark {
    pub(super) item: BatchItem,
    /// The batch's expiry (unix seconds): the outcome item's TTL.
    pub(super) expires: i64,
}

impl Mark {
    pub(super) fn value(&self) -> StoreResult<AttributeValue> {
        serde_json::to_string(self)
            .map(AttributeValue::S)
            .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a batch mark cannot be encoded: {e}")))
    }

    /// The mark a stored media item carries, if any.
    pub(super) fn of(item: &Item) -> StoreResult<Option<Self>> {
        match item.get(BATCH_MARK) {
            None => Ok(None),
            Some(AttributeValue::S(json)) => serde_json::from_str(json).map(Some).map_err(|e| {
                StoreError::internal(anyhow::anyhow!("dynamodb: a stored batch mark does not decode: {e}"))
            }),
            Some(_) => Err(StoreError::internal(anyhow::anyhow!("dynamodb: a stored batch mark is not a string"))),
        }
    }

    /// Whether this mark is the outcome of item `seq` of `batch`'s.
    pub(super) fn is_of(&self, outcome: &BatchItem) -> bool {
        self.item.batch_id == outcome.batch_id && self.item.seq == outcome.seq
    }
}

impl DynamoMetadataStore {
    /// Writes out the outcome `mark` holds, unless the item has one already.
    pub(super) async fn settle(&self, mark: &Mark) -> StoreResult<()> {
        match self.create_item(super::batches::outcome_item(&mark.item, mark.expires)?).await {
            Ok(()) | Err(StoreError::AlreadyExists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Settles the mark `stored` carries, if any; whether it had one.
    pub(super) async fn settle_stored(&self, stored: Option<&Item>) -> StoreResult<bool> {
        match stored.map(Mark::of).transpose()?.flatten() {
            Some(mark) => self.settle(&mark).await.map(|()| true),
            None => Ok(false),
        }
    }
}

/// Test-only crash points: the next `n` marked puts stop before their outcome.
#[cfg(feature = "conformance")]
#[derive(Debug, Default, Clone)]
pub(super) struct Faults {
    /// Shared by clones of the store, as the store's clients are.
    crashes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[cfg(feature = "conformance")]
impl Faults {
    pub(super) fn arm(&self, n: usize) {
        self.crashes.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// `Unavailable` while armed (counting down), as if the process died after the record.
    pub(super) fn after_marked_put(&self) -> StoreResult<()> {
        use std::sync::atomic::Ordering;
        match self.crashes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Err(StoreError::unavailable(anyhow::anyhow!("injected crash after a marked put"))),
            Err(_) => Ok(()),
        }
    }
}
