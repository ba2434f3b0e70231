//! Create, read, list, delete and patch galleries; membership changes keep the media records'
//! links in step ([`super::links`]).

use time::OffsetDateTime;

use super::links::{LinkError, link_all, unlink_all};
use super::ops::{Operation, apply};
use super::{
    DEFAULT_SECTION, Gallery, GalleryError, MAX_DESCRIPTION_CHARS, MAX_SECTION_TITLE_CHARS, MAX_SECTIONS,
    MAX_TITLE_CHARS, Section, SectionId, Slug, Visibility, new_gallery_id, publish, text,
};
use crate::ids::{GalleryId, MediaId, ModelId};
use crate::ports::{GalleryStore, MediaStore, ObjectStore, Page, StoreError, bounds};

/// The ports the gallery use cases use: galleries, the media records (links, and what a
/// published document shows), and the object store (published documents and their pointer).
#[derive(Clone, Copy)]
pub struct GalleryPorts<'a> {
    pub galleries: &'a dyn GalleryStore,
    pub media: &'a dyn MediaStore,
    pub objects: &'a dyn ObjectStore,
}

/// A new gallery: empty, in the sections named (or one, `main`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateGallery {
    pub title: String,
    pub slug: Slug,
    pub description: Option<String>,
    pub visibility: Visibility,
    pub sections: Vec<(SectionId, Option<String>)>,
}

/// Makes a gallery for `model`. `SlugTaken` if another gallery has the slug.
pub async fn create(
    store: &dyn GalleryStore,
    model: &ModelId,
    request: CreateGallery,
    now: OffsetDateTime,
) -> Result<Gallery, GalleryError> {
    let title = text("title", Some(&request.title), MAX_TITLE_CHARS, false)?
        .ok_or_else(|| GalleryError::invalid("title", "must not be empty"))?;
    let description = text("description", request.description.as_deref(), MAX_DESCRIPTION_CHARS, true)?;
    if request.sections.len() > MAX_SECTIONS {
        return Err(GalleryError::invalid("sections", format!("at most {MAX_SECTIONS} sections")));
    }
    let mut sections: Vec<Section> = Vec::with_capacity(request.sections.len().max(1));
    for (i, (section_id, title)) in request.sections.into_iter().enumerate() {
        let field = format!("sections[{i}]");
        if sections.iter().any(|s| s.section_id == section_id) {
            return Err(GalleryError::invalid(&format!("{field}.section_id"), format!("{section_id} is named twice")));
        }
        let title = text(&format!("{field}.title"), title.as_deref(), MAX_SECTION_TITLE_CHARS, false)?;
        sections.push(Section { section_id, title, items: Vec::new() });
    }
    if sections.is_empty() {
        let main = SectionId::parse(DEFAULT_SECTION).expect("the default section id is valid");
        sections.push(Section { section_id: main, title: None, items: Vec::new() });
    }
    let gallery = Gallery {
        gallery_id: new_gallery_id(),
        model_id: model.clone(),
        title,
        slug: request.slug,
        description,
        visibility: request.visibility,
        cover: None,
        sections,
        version: 1,
        created_at: now,
        updated_at: now,
        publication: None,
        batch_marks: Vec::new(),
    };
    store.create_gallery(&gallery).await.map_err(|e| match e {
        StoreError::AlreadyExists => GalleryError::SlugTaken(gallery.slug.to_string()),
        other => GalleryError::Store(other),
    })?;
    tracing::info!(gallery_id = %gallery.gallery_id, model_id = %model, "gallery created");
    Ok(gallery)
}

/// The gallery, if it is `model`'s (another model's is "not found", as one that does not exist).
pub async fn get(store: &dyn GalleryStore, model: &ModelId, id: &GalleryId) -> Result<Gallery, GalleryError> {
    let gallery = store.get_gallery(id).await.map_err(GalleryError::reading(id))?;
    if &gallery.model_id != model {
        return Err(GalleryError::not_found(id));
    }
    Ok(gallery)
}

/// A model's galleries, newest first.
pub async fn list(
    store: &dyn GalleryStore,
    model: &ModelId,
    limit: usize,
    cursor: Option<String>,
) -> Result<Page<Gallery>, GalleryError> {
    bounds::page_size(limit).map_err(|_| {
        GalleryError::invalid(
            "limit",
            format!("a page holds {} to {} galleries", bounds::PAGE_SIZE.start(), bounds::PAGE_SIZE.end()),
        )
    })?;
    Ok(store.list_galleries(model, limit, cursor).await?)
}

/// Applies `operations` to the gallery at version `expected` (a stale version is a conflict),
/// all or nothing. Media that join are linked first (only approved media of the model: else
/// `MediaNotAddable`, naming them), then the gallery is written conditionally, then media that
/// left are unlinked. A change of visibility or slug of a published gallery moves its pointer
/// at once (making it private takes it off the public routes).
pub async fn patch(
    ports: GalleryPorts<'_>,
    model: &ModelId,
    id: &GalleryId,
    expected: u64,
    operations: Vec<Operation>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Gallery, GalleryError> {
    let before = get(ports.galleries, model, id).await?;
    if before.version != expected {
        return Err(GalleryError::stale(before.version, expected));
    }
    let mut gallery = before.clone();
    let applied = apply(&mut gallery, operations)?;
    gallery.version += 1;
    gallery.updated_at = now;

    let added: Vec<MediaId> = applied.added.iter().copied().collect();
    if let Err((refused, error)) = link_all(ports.media, model, &added, id, actor, now).await {
        return Err(match error {
            LinkError::Store(e) => GalleryError::Store(e),
            LinkError::Refused(message) if refused.len() == 1 => {
                GalleryError::MediaNotAddable { message, media_ids: refused }
            }
            LinkError::Refused(_) => GalleryError::MediaNotAddable {
                message: format!(
                    "{} of the media cannot join the gallery: only approved media of this model do",
                    refused.len()
                ),
                media_ids: refused,
            },
        });
    }
    if let Err(e) = ports.galleries.update_gallery(&gallery, &before.slug).await {
        // The gallery did not change: the links just made would be stale.
        unlink_all(ports.media, model, &added, id, actor, now).await;
        return Err(match e {
            StoreError::AlreadyExists => GalleryError::SlugTaken(gallery.slug.to_string()),
            other => GalleryError::writing(other),
        });
    }
    let removed: Vec<MediaId> = applied.removed.iter().copied().collect();
    unlink_all(ports.media, model, &removed, id, actor, now).await;
    if gallery.publication.is_some() && (gallery.visibility != before.visibility || gallery.slug != before.slug) {
        publish::write_pointer(ports.objects, &gallery).await?;
    }
    tracing::info!(
        gallery_id = %id, version = gallery.version, added = added.len(), removed = removed.len(), "gallery patched"
    );
    Ok(gallery)
}

/// Deletes the gallery (at `expected`, when given): the record and its slug, then its pointer
/// (so the public routes stop at once) and published documents, then its members' links.
pub async fn delete(
    ports: GalleryPorts<'_>,
    model: &ModelId,
    id: &GalleryId,
    expected: Option<u64>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), GalleryError> {
    let gallery = get(ports.galleries, model, id).await?;
    if let Some(expected) = expected.filter(|v| *v != gallery.version) {
        return Err(GalleryError::stale(gallery.version, expected));
    }
    ports.galleries.delete_gallery(&gallery).await.map_err(GalleryError::writing)?;
    publish::remove_published(ports.objects, id).await?;
    let members: Vec<MediaId> = gallery.items().copied().collect();
    unlink_all(ports.media, model, &members, id, actor, now).await;
    tracing::info!(gallery_id = %id, members = members.len(), "gallery deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::galleries::fakes::{Fakes, approved};
    use crate::media::MediaStatus;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    fn request(slug: &str) -> CreateGallery {
        CreateGallery {
            title: "Summer".into(),
            slug: Slug::parse(slug).unwrap(),
            description: None,
            visibility: Visibility::Private,
            sections: vec![],
        }
    }

    fn ops(value: serde_json::Value) -> Vec<Operation> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn slugs_are_unique_and_a_new_gallery_has_one_section() {
        let rt = rt();
        let fakes = Fakes::default();
        let model = ModelId::parse("m1").unwrap();
        let now = OffsetDateTime::now_utc();
        let g = rt.block_on(create(&fakes, &model, request("summer"), now)).unwrap();
        assert_eq!((g.version, g.sections.len(), g.sections[0].section_id.as_str()), (1, 1, "main"));
        let again = rt.block_on(create(&fakes, &model, request("summer"), now));
        assert!(matches!(again, Err(GalleryError::SlugTaken(_))), "{again:?}");
        let other = ModelId::parse("m2").unwrap();
        assert!(matches!(rt.block_on(get(&fakes, &other, &g.gallery_id)), Err(GalleryError::NotFound(_))));
    }

    #[test]
    fn a_patch_links_what_joins_unlinks_what_leaves_and_refuses_a_stale_version() {
        let rt = rt();
        let fakes = Fakes::default();
        let (a, b) = (fakes.add(approved()), fakes.add(approved()));
        let model = ModelId::parse("m1").unwrap();
        let now = OffsetDateTime::now_utc();
        let g = rt.block_on(create(&fakes, &model, request("summer"), now)).unwrap();
        let id = g.gallery_id.clone();
        let patched = rt
            .block_on(patch(
                fakes.ports(),
                &model,
                &id,
                1,
                ops(json!([{"op": "insert_items", "media_ids": [a, b]}])),
                "u",
                now,
            ))
            .unwrap();
        assert_eq!(patched.version, 2);
        assert!(fakes.media(&a).gallery_ids().any(|g| g == &id));
        assert!(fakes.media(&b).gallery_ids().any(|g| g == &id));

        let stale = rt.block_on(patch(
            fakes.ports(),
            &model,
            &id,
            1,
            ops(json!([{"op": "remove_items", "media_ids": [a]}])),
            "u",
            now,
        ));
        assert!(matches!(stale, Err(GalleryError::VersionConflict { current_version: Some(2), .. })), "{stale:?}");

        rt.block_on(patch(
            fakes.ports(),
            &model,
            &id,
            2,
            ops(json!([{"op": "remove_items", "media_ids": [a]}])),
            "u",
            now,
        ))
        .unwrap();
        assert_eq!(fakes.media(&a).galleries, vec![]);
        assert_eq!(fakes.gallery(&id).sections[0].items, vec![b]);
    }

    #[test]
    fn only_approved_media_join_and_a_refusal_leaves_no_link_behind() {
        let rt = rt();
        let fakes = Fakes::default();
        let good = fakes.add(approved());
        let mut pending = approved();
        pending.status = MediaStatus::PendingReview;
        let pending = fakes.add(pending);
        let model = ModelId::parse("m1").unwrap();
        let now = OffsetDateTime::now_utc();
        let g = rt.block_on(create(&fakes, &model, request("summer"), now)).unwrap();
        let refused = rt.block_on(patch(
            fakes.ports(),
            &model,
            &g.gallery_id,
            1,
            ops(json!([{"op": "insert_items", "media_ids": [good, pending]}])),
            "u",
            now,
        ));
        match refused {
            Err(GalleryError::MediaNotAddable { media_ids, .. }) => assert_eq!(media_ids, vec![pending]),
            other => panic!("{other:?}"),
        }
        assert_eq!(fakes.media(&good).galleries, vec![], "the link made before the refusal was taken back");
        assert_eq!(fakes.gallery(&g.gallery_id).version, 1);
    }

    #[test]
    fn a_lost_gallery_write_takes_the_new_links_back() {
        let rt = rt();
        let fakes = Fakes::default();
        let a = fakes.add(approved());
        let model = ModelId::parse("m1").unwrap();
        let now = OffsetDateTime::now_utc();
        let g = rt.block_on(create(&fakes, &model, request("summer"), now)).unwrap();
        fakes.fail_next_gallery_update();
        let lost = rt.block_on(patch(
            fakes.ports(),
            &model,
            &g.gallery_id,
            1,
            ops(json!([{"op": "insert_items", "media_ids": [a]}])),
            "u",
            now,
        ));
        assert!(matches!(lost, Err(GalleryError::VersionConflict { .. })), "{lost:?}");
        assert_eq!(fakes.media(&a).galleries, vec![]);
    }

    #[test]
    fn deleting_a_gallery_unlinks_its_members() {
        let rt = rt();
        let fakes = Fakes::default();
        let a = fakes.add(approved());
        let model = ModelId::parse("m1").unwrap();
        let now = OffsetDateTime::now_utc();
        let g = rt.block_on(create(&fakes, &model, request("summer"), now)).unwrap();
        let id = g.gallery_id.clone();
        rt.block_on(patch(
            fakes.ports(),
            &model,
            &id,
            1,
            ops(json!([{"op": "insert_items", "media_ids": [a]}])),
            "u",
            now,
        ))
        .unwrap();
        assert!(matches!(
            rt.block_on(delete(fakes.ports(), &model, &id, Some(1), "u", now)),
            Err(GalleryError::VersionConflict { .. })
        ));
        rt.block_on(delete(fakes.ports(), &model, &id, Some(2), "u", now)).unwrap();
        assert_eq!(fakes.media(&a).galleries, vec![]);
        assert!(matches!(rt.block_on(get(&fakes, &model, &id)), Err(GalleryError::NotFound(_))));
    }
}
