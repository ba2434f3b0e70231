//! Limits every metadata adapter enforces in the same way (the conformance suite checks each of
//! them on both), so a request that one deployment accepts is never refused by another.

use std::ops::RangeInclusive;

use super::{StoreError, StoreResult};
use crate::ids::{MediaId, ModelId};
use crate::media::{MAX_GALLERIES, MAX_TAGS, MediaRecord};

/// Items a listing page may hold.
pub const PAGE_SIZE: RangeInclusive<usize> = 1..=100;
/// The page size when a caller names none.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Keys one batch get may name: DynamoDB's BatchGetItem takes 100 in one round trip.
pub const MAX_BATCH_GET: usize = 100;

/// A page size inside [`PAGE_SIZE`], or `Invalid`.
pub fn page_size(limit: usize) -> StoreResult<usize> {
    if PAGE_SIZE.contains(&limit) {
        Ok(limit)
    } else {
        Err(StoreError::Invalid(format!(
            "a page holds {} to {} items, not {limit}",
            PAGE_SIZE.start(),
            PAGE_SIZE.end()
        )))
    }
}

/// 1 to [`MAX_BATCH_GET`] keys, no repeats.
pub fn batch_keys(keys: &[(ModelId, MediaId)]) -> StoreResult<()> {
    if keys.is_empty() || keys.len() > MAX_BATCH_GET {
        return Err(StoreError::Invalid(format!("a batch get names 1 to {MAX_BATCH_GET} keys, not {}", keys.len())));
    }
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    if !keys.iter().all(|k| seen.insert(k)) {
        return Err(StoreError::Invalid("a batch get names each key once".into()));
    }
    Ok(())
}

/// A record small enough for its index entries to commit in one transaction.
pub fn record(record: &MediaRecord) -> StoreResult<()> {
    if record.metadata.tags.len() > MAX_TAGS || record.galleries.len() > MAX_GALLERIES {
        return Err(StoreError::Invalid(format!("a media has at most {MAX_TAGS} tags and {MAX_GALLERIES} galleries")));
    }
    Ok(())
}

/// The version an update is conditional on: the record's own minus one (writers bump first).
pub fn previous_version(record: &MediaRecord) -> StoreResult<u64> {
    record.version.checked_sub(1).ok_or_else(|| StoreError::Invalid("a record's version starts at 1".into()))
}
