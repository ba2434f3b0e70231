//! Removing a deleted media's objects (its tombstone says which), then its tombstone.

use phoenix_domain::keys;
use phoenix_domain::ports::TombstoneStore;
use phoenix_domain::{MediaId, ModelId, ObjectStore};
use tracing::info;

use super::{Outcome, ProcessError, Processor};

/// Objects listed (and deleted) per page.
const PAGE: usize = 1000;

impl Processor {
    /// Removes every object of a deleted media, then its tombstone. The API enqueues this with a
    /// delay longer than its own timeout, so a delete that did not happen is seen as such.
    pub(super) async fn purge(&self, model: &ModelId, media: &MediaId) -> Result<Outcome, ProcessError> {
        purge(self.objects.as_ref(), self.tombstones.as_ref(), model, media).await
    }
}

async fn purge(
    objects: &dyn ObjectStore,
    tombstones: &dyn TombstoneStore,
    model: &ModelId,
    media: &MediaId,
) -> Result<Outcome, ProcessError> {
    let Some(tombstone) = tombstones.get_tombstone(model, media).await? else {
        return Ok(Outcome::Ignored("no tombstone: never deleted, or already purged".into()));
    };
    let mut removed = 0;
    // Listing catches objects the record no longer names (a crash between writing a derivative
    // and recording it).
    // Every version's derivatives live under one prefix, edited versions' sources under another.
    for prefix in [keys::derived_prefix(model, media), keys::versions_prefix(model, media)] {
        let mut cursor = None;
        loop {
            let page = objects.list(&prefix, cursor.take(), PAGE).await?;
            for key in &page.keys {
                objects.delete(key).await?;
                removed += 1;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    for derivative in &tombstone.derivatives {
        objects.delete(&derivative.key).await?;
    }
    objects.delete(&tombstone.original_key).await?;
    tombstones.remove_tombstone(model, media).await?;
    info!(removed, "purged a deleted media");
    Ok(Outcome::Purged(removed + 1))
}
