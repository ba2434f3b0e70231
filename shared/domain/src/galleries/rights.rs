//! The rights sweep: galleries whose published version shows a media whose usage rights have
//! expired are republished without it.
//!
//! Each publish records, on the version it makes, the earliest usage-rights expiry among the
//! media the document shows ([`PublishedVersion::rights_expire_at`](super::PublishedVersion)); the
//! stores index galleries by that date of their *current* version
//! ([`Gallery::rights_due_at`](super::Gallery::rights_due_at)), and only galleries that have one.
//! The sweep (a timer locally, an EventBridge Scheduler schedule in AWS, every minute) reads the
//! galleries due at `now` from that index, earliest first, and publishes each again: the new
//! version leaves the expired media out and records the next expiry (or none), so the gallery
//! leaves the index until then. Nothing has to remember when the last sweep ran: a gallery is due
//! until it has been republished, so a sweep that failed or did not run is caught up by the next.
//!
//! Share links need no sweep: they drop expired media at the moment of each request.

use std::collections::BTreeSet;

use serde::Serialize;
use time::OffsetDateTime;

use super::publish::{PublishPorts, publish};
use super::republish::{Reason, RepublishMessage};
use super::{Gallery, GalleryError};
use crate::ids::GalleryId;
use crate::ports::{Queue, StoreError};

/// Who the republications made by the sweep name as their author.
pub const RIGHTS_SWEEP_ACTOR: &str = "rights-sweep";
/// Galleries read from the index at a time.
const PAGE: usize = 100;
/// Galleries one sweep republishes at most (the next sweep takes the rest).
pub const MAX_PER_SWEEP: usize = 500;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RightsSweep {
    /// Galleries found due.
    pub due: u32,
    /// Galleries published again without the expired media.
    pub republished: u32,
    /// Galleries whose republication failed (still due: the next sweep retries them).
    pub failed: u32,
}

/// Publishes `gallery` again (the full [`publish`], never "only if changed": the new version
/// records the next due date even when the document came out the same, so the gallery leaves the
/// index), then, when the public reads it and `queue` is given, asks the publish queue to
/// refresh it (reason `rights_expired`): its handler finds the document current and invalidates
/// the gallery's CDN paths, within one queue hop. A private gallery's CDN paths serve nothing.
pub async fn republish(
    ports: PublishPorts<'_>,
    queue: Option<&dyn Queue>,
    gallery: &Gallery,
    media_base: &str,
    now: OffsetDateTime,
) -> Result<Gallery, GalleryError> {
    let id = &gallery.gallery_id;
    let published = publish(ports, &gallery.model_id, id, RIGHTS_SWEEP_ACTOR, media_base, now).await?;
    let version = published.publication.as_ref().map_or(0, |p| p.current);
    tracing::info!(gallery_id = %id, version, next_due = ?published.rights_due_at(), "gallery republished: usage rights expired");
    if let Some(queue) = queue.filter(|_| published.visibility.is_readable_publicly()) {
        let message = RepublishMessage::new(published.model_id.clone(), id.clone(), Reason::RightsExpired);
        if let Err(e) = message.enqueue(queue).await {
            // The document is right; the CDN keeps its copy until the next change or its max age.
            tracing::error!(gallery_id = %id, error = %e, "the CDN invalidation of a republished gallery was not queued");
        }
    }
    Ok(published)
}

/// Republishes every gallery due at `now` (at most [`MAX_PER_SWEEP`]) with [`republish`]. A
/// gallery that fails is logged, counted and left due; only the index's own failure fails the
/// sweep.
pub async fn sweep(
    ports: PublishPorts<'_>,
    queue: Option<&dyn Queue>,
    media_base: &str,
    now: OffsetDateTime,
) -> Result<RightsSweep, StoreError> {
    let mut report = RightsSweep::default();
    let mut tried: BTreeSet<GalleryId> = BTreeSet::new();
    while tried.len() < MAX_PER_SWEEP {
        let due = ports.galleries.galleries_due(now, PAGE).await?;
        let fresh: Vec<_> = due.into_iter().filter(|g| !tried.contains(&g.gallery_id)).collect();
        if fresh.is_empty() {
            break;
        }
        for gallery in fresh {
            tried.insert(gallery.gallery_id.clone());
            // The index may lag a republish that already happened.
            if gallery.rights_due_at().is_none_or(|due| due > now) {
                continue;
            }
            report.due += 1;
            match republish(ports, queue, &gallery, media_base, now).await {
                Ok(_) => report.republished += 1,
                // Deleted since the index was read: nothing to do.
                Err(GalleryError::NotFound(_)) => {}
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(gallery_id = %gallery.gallery_id, error = %e, "a gallery past its media's usage rights was not republished");
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::Duration;

    use super::*;
    use crate::galleries::fakes::{Fakes, approved};
    use crate::galleries::publish::{publish_if_changed, read_published};
    use crate::galleries::{CreateGallery, Operation, PublishedDocument, Slug, Visibility, create, patch};
    use crate::ids::{MediaId, ModelId};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    fn shown(rt: &tokio::runtime::Runtime, fakes: &Fakes, id: &GalleryId) -> Vec<MediaId> {
        let (_, body) = rt.block_on(read_published(fakes, id)).unwrap().unwrap();
        let doc: PublishedDocument = serde_json::from_slice(&body).unwrap();
        doc.sections.iter().flat_map(|s| s.items.iter().map(|i| i.media_id)).collect()
    }

    #[test]
    fn a_gallery_is_due_when_a_shown_media_expires_and_the_sweep_republishes_it_without() {
        let rt = rt();
        let fakes = Fakes::default();
        let model = ModelId::parse("m1").unwrap();
        let t0 = OffsetDateTime::now_utc();
        let expiry = t0 + Duration::hours(1);
        let later = t0 + Duration::hours(5);
        let soon = fakes.add({
            let mut r = approved();
            r.metadata.usage_rights_expires_at = Some(expiry);
            r
        });
        let after = fakes.add({
            let mut r = approved();
            r.metadata.usage_rights_expires_at = Some(later);
            r
        });
        let forever = fakes.add(approved());
        let request = CreateGallery {
            title: "T".into(),
            slug: Slug::parse("rights").unwrap(),
            description: None,
            visibility: Visibility::Public,
            sections: vec![],
        };
        let g = rt.block_on(create(&fakes, &model, request, t0)).unwrap();
        let ops: Vec<Operation> =
            serde_json::from_value(json!([{"op": "insert_items", "media_ids": [soon, after, forever]}])).unwrap();
        rt.block_on(patch(fakes.ports(), &model, &g.gallery_id, 1, ops, "u", t0)).unwrap();
        let id = g.gallery_id.clone();
        let published = rt.block_on(publish(fakes.ports(), &model, &id, "u", "", t0)).unwrap();
        assert_eq!(published.rights_due_at(), Some(expiry), "the earliest expiry of what it shows");

        // Before the expiry: nothing due, nothing done.
        let report = rt.block_on(sweep(fakes.ports(), None, "", expiry - Duration::seconds(1))).unwrap();
        assert_eq!(report, RightsSweep::default());
        assert_eq!(shown(&rt, &fakes, &id), vec![soon, after, forever]);

        // At the expiry: republished without it; due again at the next one.
        let report = rt.block_on(sweep(fakes.ports(), None, "", expiry)).unwrap();
        assert_eq!(report, RightsSweep { due: 1, republished: 1, failed: 0 });
        assert_eq!(shown(&rt, &fakes, &id), vec![after, forever]);
        let gallery = fakes.gallery(&id);
        assert_eq!(gallery.publication.as_ref().unwrap().current, 2);
        assert_eq!(gallery.publication.as_ref().unwrap().history[1].by, RIGHTS_SWEEP_ACTOR);
        assert_eq!(gallery.rights_due_at(), Some(later));
        // A second sweep at the same moment has nothing to do.
        assert_eq!(rt.block_on(sweep(fakes.ports(), None, "", expiry)).unwrap(), RightsSweep::default());

        // A sweep that did not run is caught up by the next: both later expiries are past.
        let report = rt.block_on(sweep(fakes.ports(), None, "", later + Duration::days(1))).unwrap();
        assert_eq!(report.republished, 1);
        assert_eq!(shown(&rt, &fakes, &id), vec![forever]);
        assert_eq!(fakes.gallery(&id).rights_due_at(), None, "nothing left that expires: off the index");
    }

    /// A public gallery of `media`, published at `t0`; its id.
    fn published(
        rt: &tokio::runtime::Runtime,
        fakes: &Fakes,
        slug: &str,
        visibility: Visibility,
        media: &[MediaId],
        t0: OffsetDateTime,
    ) -> GalleryId {
        let model = ModelId::parse("m1").unwrap();
        let request = CreateGallery {
            title: "T".into(),
            slug: Slug::parse(slug).unwrap(),
            description: None,
            visibility,
            sections: vec![],
        };
        let g = rt.block_on(create(fakes, &model, request, t0)).unwrap();
        let ops: Vec<Operation> = serde_json::from_value(json!([{"op": "insert_items", "media_ids": media}])).unwrap();
        rt.block_on(patch(fakes.ports(), &model, &g.gallery_id, 1, ops, "u", t0)).unwrap();
        rt.block_on(publish(fakes.ports(), &model, &g.gallery_id, "u", "", t0)).unwrap();
        g.gallery_id
    }

    #[test]
    fn the_sweep_asks_the_publish_queue_to_invalidate_a_public_gallery_and_not_a_private_one() {
        let rt = rt();
        let fakes = Fakes::default();
        let queue = crate::media::fakes::Fakes::default();
        let t0 = OffsetDateTime::now_utc();
        let expiry = t0 + Duration::minutes(5);
        let a = fakes.add({
            let mut r = approved();
            r.metadata.usage_rights_expires_at = Some(expiry);
            r
        });
        let public = published(&rt, &fakes, "open", Visibility::Public, &[a], t0);
        let private = published(&rt, &fakes, "closed", Visibility::Private, &[a], t0);
        let report = rt.block_on(sweep(fakes.ports(), Some(&queue), "", expiry)).unwrap();
        assert_eq!(report, RightsSweep { due: 2, republished: 2, failed: 0 });
        assert!(shown(&rt, &fakes, &public).is_empty() && fakes.gallery(&private).rights_due_at().is_none());
        let sent: Vec<RepublishMessage> =
            queue.sent.lock().unwrap().iter().map(|(body, _)| RepublishMessage::parse(body).unwrap()).collect();
        assert_eq!(sent, [RepublishMessage::new(ModelId::parse("m1").unwrap(), public, Reason::RightsExpired)]);
    }

    #[test]
    fn a_new_usage_rights_date_alone_makes_the_publish_queue_record_it() {
        let rt = rt();
        let fakes = Fakes::default();
        let model = ModelId::parse("m1").unwrap();
        let t0 = OffsetDateTime::now_utc();
        let a = fakes.add(approved());
        let id = published(&rt, &fakes, "dated", Visibility::Public, &[a], t0);
        assert_eq!(fakes.gallery(&id).rights_due_at(), None);
        // The document does not change (it shows no dates), but the gallery becomes due.
        let expiry = t0 + Duration::hours(1);
        fakes.edit(&a, |r| r.metadata.usage_rights_expires_at = Some(expiry));
        let (gallery, new) = rt.block_on(publish_if_changed(fakes.ports(), &model, &id, "p", "", t0)).unwrap();
        assert!(new, "a new version records the date");
        assert_eq!(gallery.rights_due_at(), Some(expiry));
        let (_, again) = rt.block_on(publish_if_changed(fakes.ports(), &model, &id, "p", "", t0)).unwrap();
        assert!(!again, "nothing new the second time");
        let report = rt.block_on(sweep(fakes.ports(), None, "", expiry)).unwrap();
        assert_eq!(report.republished, 1);
        assert!(shown(&rt, &fakes, &id).is_empty());
    }

    #[test]
    fn a_failed_republish_is_counted_and_left_due() {
        let rt = rt();
        let fakes = Fakes::default();
        let model = ModelId::parse("m1").unwrap();
        let t0 = OffsetDateTime::now_utc();
        let a = fakes.add({
            let mut r = approved();
            r.metadata.usage_rights_expires_at = Some(t0 + Duration::minutes(5));
            r
        });
        let request = CreateGallery {
            title: "T".into(),
            slug: Slug::parse("failing").unwrap(),
            description: None,
            visibility: Visibility::Private,
            sections: vec![],
        };
        let g = rt.block_on(create(&fakes, &model, request, t0)).unwrap();
        let ops: Vec<Operation> = serde_json::from_value(json!([{"op": "insert_items", "media_ids": [a]}])).unwrap();
        rt.block_on(patch(fakes.ports(), &model, &g.gallery_id, 1, ops, "u", t0)).unwrap();
        rt.block_on(publish(fakes.ports(), &model, &g.gallery_id, "u", "", t0)).unwrap();
        fakes.fail_next_gallery_update();
        let now = t0 + Duration::minutes(6);
        let report = rt.block_on(sweep(fakes.ports(), None, "", now)).unwrap();
        assert_eq!(report, RightsSweep { due: 1, republished: 0, failed: 1 });
        let report = rt.block_on(sweep(fakes.ports(), None, "", now)).unwrap();
        assert_eq!(report, RightsSweep { due: 1, republished: 1, failed: 0 }, "retried by the next sweep");
    }
}
