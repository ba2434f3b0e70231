//! What both adapters of the batch port share: the checks a request passes before any store is
//! asked, the listing an item cursor is bound to, and when a batch counts as absent.

use phoenix_domain::BatchId;
use phoenix_domain::batches::{Batch, ItemOutcome};
use phoenix_domain::ports::{StoreError, StoreResult};
use time::OffsetDateTime;

/// The highest item place a batch may use: DynamoDB's item keys hold it in five digits
/// (`ITEM#{seq:05}`, so that key order is place order), and both stores refuse the same places.
pub(crate) const MAX_SEQ: u32 = 99_999;

/// `Invalid` past [`MAX_SEQ`] (no batch holds that many items).
pub(crate) fn check_seq(seq: u32) -> StoreResult<()> {
    if seq > MAX_SEQ {
        return Err(StoreError::Invalid(format!("an item's place is at most {MAX_SEQ}, not {seq}")));
    }
    Ok(())
}

/// The listing an item cursor is bound to: the batch and the outcome filter.
pub(crate) fn items_listing(id: &BatchId, outcome: Option<ItemOutcome>) -> String {
    format!("batch-items|{id}|{}", outcome.map(ItemOutcome::as_str).unwrap_or_default())
}

/// Past `expires_at` a batch is absent, whatever the store still holds (TTL deletes lazily).
pub(crate) fn batch_is_live(batch: &Batch, now: OffsetDateTime) -> bool {
    batch.expires_at > now
}
