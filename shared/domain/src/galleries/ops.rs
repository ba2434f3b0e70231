//! The operations one `PATCH` applies to a gallery, in order, all or nothing: set fields, insert,
//! remove and move items, insert, remove, move and rename sections. [`apply`] is pure: it changes
//! the gallery in memory and says which media joined and which left, so that the use case
//! ([`super::patch`]) can write their links.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer};

use super::{
    Gallery, GalleryError, MAX_DESCRIPTION_CHARS, MAX_ITEMS, MAX_OPERATIONS, MAX_SECTION_TITLE_CHARS, MAX_SECTIONS,
    MAX_TITLE_CHARS, Section, SectionId, Slug, Visibility, text,
};
use crate::ids::MediaId;

/// An index within a list: 0 is the front; absent means the end.
pub type Position = usize;

/// `null` → `Some(None)` (clear); absent → `None` (leave as is).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// One change to a gallery. Items are media ids of the gallery's model; a media is at most once
/// in a gallery. A section is named by its `section_id`; items go to the first section when
/// none is named.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = GalleryOperation))]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// Sets the fields given; `description: null` and `cover: null` clear them.
    SetFields {
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9-]{1,78}[a-z0-9]$"))]
        slug: Option<Slug>,
        #[serde(default, deserialize_with = "present")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
        description: Option<Option<String>>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "public"))]
        visibility: Option<Visibility>,
        /// One of the gallery's items (after this PATCH's operations), or `null`.
        #[serde(default, deserialize_with = "present")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
        cover: Option<Option<MediaId>>,
    },
    /// Inserts media (approved, of this model, not yet in the gallery) at `position` of a section.
    InsertItems {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        media_ids: Vec<MediaId>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
        section_id: Option<SectionId>,
        #[serde(default)]
        position: Option<Position>,
    },
    /// Takes media out of the gallery.
    RemoveItems {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        media_ids: Vec<MediaId>,
    },
    /// Moves items of the gallery, in the order given, to `position` of a section (counted
    /// after they left their places).
    MoveItems {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        media_ids: Vec<MediaId>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
        section_id: Option<SectionId>,
        #[serde(default)]
        position: Option<Position>,
    },
    /// Adds an empty section.
    InsertSection {
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        section_id: SectionId,
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        position: Option<Position>,
    },
    /// Removes a section and the items in it (a gallery keeps at least one section).
    RemoveSection {
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        section_id: SectionId,
    },
    MoveSection {
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        section_id: SectionId,
        position: Position,
    },
    /// Sets (or, with `null`, clears) a section's title.
    RenameSection {
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        section_id: SectionId,
        title: Option<String>,
    },
}

/// What [`apply`] changed besides the gallery itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Media that joined the gallery (their records need a link).
    pub added: BTreeSet<MediaId>,
    /// Media that left it (their links go).
    pub removed: BTreeSet<MediaId>,
}

fn field(index: usize, name: &str) -> String {
    format!("operations[{index}].{name}")
}

fn check_position(index: usize, position: Option<Position>, len: usize) -> Result<usize, GalleryError> {
    match position {
        None => Ok(len),
        Some(p) if p <= len => Ok(p),
        Some(p) => Err(GalleryError::invalid(&field(index, "position"), format!("{p} is past the end ({len})"))),
    }
}

fn distinct(index: usize, ids: &[MediaId]) -> Result<(), GalleryError> {
    if ids.is_empty() {
        return Err(GalleryError::invalid(&field(index, "media_ids"), "name at least one media"));
    }
    let mut seen = BTreeSet::new();
    if let Some(twice) = ids.iter().find(|id| !seen.insert(**id)) {
        return Err(GalleryError::invalid(&field(index, "media_ids"), format!("{twice} is named twice")));
    }
    Ok(())
}

fn section_index(gallery: &Gallery, index: usize, id: Option<&SectionId>) -> Result<usize, GalleryError> {
    match id {
        None => Ok(0),
        Some(id) => gallery
            .sections
            .iter()
            .position(|s| &s.section_id == id)
            .ok_or_else(|| GalleryError::invalid(&field(index, "section_id"), format!("no section {id}"))),
    }
}

pub(crate) fn take_items(gallery: &mut Gallery, ids: &[MediaId]) {
    let gone: BTreeSet<&MediaId> = ids.iter().collect();
    for section in &mut gallery.sections {
        section.items.retain(|m| !gone.contains(m));
    }
}

/// Applies `operations` in order to `gallery` (in memory), or refuses them all with the first
/// error, naming its operation (`operations[3].position`). Does not touch the version.
pub fn apply(gallery: &mut Gallery, operations: Vec<Operation>) -> Result<Applied, GalleryError> {
    if operations.is_empty() || operations.len() > MAX_OPERATIONS {
        return Err(GalleryError::invalid("operations", format!("send 1 to {MAX_OPERATIONS} operations")));
    }
    let before: BTreeSet<MediaId> = gallery.items().copied().collect();
    let mut cover_set_by = None;
    for (i, operation) in operations.into_iter().enumerate() {
        match operation {
            Operation::SetFields { title, slug, description, visibility, cover } => {
                if let Some(title) = title {
                    gallery.title = text(&field(i, "title"), Some(&title), MAX_TITLE_CHARS, false)?
                        .ok_or_else(|| GalleryError::invalid(&field(i, "title"), "must not be empty"))?;
                }
                if let Some(slug) = slug {
                    gallery.slug = slug;
                }
                if let Some(description) = description {
                    gallery.description =
                        text(&field(i, "description"), description.as_deref(), MAX_DESCRIPTION_CHARS, true)?;
                }
                if let Some(visibility) = visibility {
                    gallery.visibility = visibility;
                }
                if let Some(cover) = cover {
                    gallery.cover = cover;
                    cover_set_by = cover.map(|_| i);
                }
            }
            Operation::InsertItems { media_ids, section_id, position } => {
                distinct(i, &media_ids)?;
                if let Some(present) = media_ids.iter().find(|m| gallery.contains(m)) {
                    return Err(GalleryError::invalid(
                        &field(i, "media_ids"),
                        format!("{present} is already in the gallery (move it with move_items)"),
                    ));
                }
                if gallery.item_count() + media_ids.len() > MAX_ITEMS {
                    return Err(GalleryError::invalid(
                        &field(i, "media_ids"),
                        format!("a gallery holds at most {MAX_ITEMS} items"),
                    ));
                }
                let s = section_index(gallery, i, section_id.as_ref())?;
                let at = check_position(i, position, gallery.sections[s].items.len())?;
                gallery.sections[s].items.splice(at..at, media_ids);
            }
            Operation::RemoveItems { media_ids } => {
                distinct(i, &media_ids)?;
                if let Some(absent) = media_ids.iter().find(|m| !gallery.contains(m)) {
                    return Err(GalleryError::invalid(
                        &field(i, "media_ids"),
                        format!("{absent} is not in the gallery"),
                    ));
                }
                take_items(gallery, &media_ids);
            }
            Operation::MoveItems { media_ids, section_id, position } => {
                distinct(i, &media_ids)?;
                if let Some(absent) = media_ids.iter().find(|m| !gallery.contains(m)) {
                    return Err(GalleryError::invalid(
                        &field(i, "media_ids"),
                        format!("{absent} is not in the gallery"),
                    ));
                }
                let s = section_index(gallery, i, section_id.as_ref())?;
                take_items(gallery, &media_ids);
                let at = check_position(i, position, gallery.sections[s].items.len())?;
                gallery.sections[s].items.splice(at..at, media_ids);
            }
            Operation::InsertSection { section_id, title, position } => {
                if gallery.section(&section_id).is_some() {
                    return Err(GalleryError::invalid(
                        &field(i, "section_id"),
                        format!("the gallery already has a section {section_id}"),
                    ));
                }
                if gallery.sections.len() >= MAX_SECTIONS {
                    return Err(GalleryError::invalid(
                        &field(i, "section_id"),
                        format!("a gallery has at most {MAX_SECTIONS} sections"),
                    ));
                }
                let title = text(&field(i, "title"), title.as_deref(), MAX_SECTION_TITLE_CHARS, false)?;
                let at = check_position(i, position, gallery.sections.len())?;
                gallery.sections.insert(at, Section { section_id, title, items: Vec::new() });
            }
            Operation::RemoveSection { section_id } => {
                let s = section_index(gallery, i, Some(&section_id))?;
                if gallery.sections.len() == 1 {
                    return Err(GalleryError::invalid(&field(i, "section_id"), "a gallery keeps at least one section"));
                }
                gallery.sections.remove(s);
            }
            Operation::MoveSection { section_id, position } => {
                let s = section_index(gallery, i, Some(&section_id))?;
                let section = gallery.sections.remove(s);
                let at = check_position(i, Some(position), gallery.sections.len())?;
                gallery.sections.insert(at, section);
            }
            Operation::RenameSection { section_id, title } => {
                let s = section_index(gallery, i, Some(&section_id))?;
                gallery.sections[s].title = text(&field(i, "title"), title.as_deref(), MAX_SECTION_TITLE_CHARS, false)?;
            }
        }
    }
    if let Some(cover) = gallery.cover
        && !gallery.contains(&cover)
    {
        if let Some(i) = cover_set_by {
            return Err(GalleryError::invalid(
                &field(i, "cover"),
                format!("{cover} is not one of the gallery's items"),
            ));
        }
        // Its media left the gallery: the gallery has no cover until one is set.
        gallery.cover = None;
    }
    let after: BTreeSet<MediaId> = gallery.items().copied().collect();
    Ok(Applied {
        added: after.difference(&before).copied().collect(),
        removed: before.difference(&after).copied().collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::galleries::fakes::gallery;

    fn ops(value: serde_json::Value) -> Vec<Operation> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn items_are_inserted_moved_and_removed_in_order() {
        let (a, b, c) = (MediaId::new(), MediaId::new(), MediaId::new());
        let mut g = gallery();
        let applied = apply(
            &mut g,
            ops(json!([
                {"op": "insert_items", "media_ids": [a, b, c]},
                {"op": "insert_section", "section_id": "Back", "title": "Backstage"},
                {"op": "move_items", "media_ids": [c], "section_id": "back"},
                {"op": "move_items", "media_ids": [b], "position": 0},
                {"op": "set_fields", "cover": c, "title": " Summer ", "visibility": "public"}
            ])),
        )
        .unwrap();
        assert_eq!(g.sections[0].items, vec![b, a]);
        assert_eq!(g.sections[1].items, vec![c]);
        assert_eq!(g.sections[1].title.as_deref(), Some("Backstage"));
        assert_eq!((g.cover, g.title.as_str(), g.visibility), (Some(c), "Summer", Visibility::Public));
        assert_eq!(applied.added, [a, b, c].into());

        let applied = apply(
            &mut g,
            ops(json!([{"op": "remove_section", "section_id": "back"}, {"op": "remove_items", "media_ids": [a]}])),
        )
        .unwrap();
        assert_eq!(applied.removed, [a, c].into());
        assert_eq!(g.item_count(), 1);
        assert_eq!(g.cover, None, "the cover left with its media");
    }

    #[test]
    fn a_bad_operation_names_itself_and_changes_nothing_it_returns() {
        let a = MediaId::new();
        let cases = [
            (json!([{"op": "remove_items", "media_ids": [a]}]), "operations[0].media_ids"),
            (
                json!([{"op": "insert_items", "media_ids": [a]}, {"op": "insert_items", "media_ids": [a]}]),
                "operations[1].media_ids",
            ),
            (json!([{"op": "insert_items", "media_ids": [a], "position": 3}]), "operations[0].position"),
            (json!([{"op": "insert_items", "media_ids": [a], "section_id": "nope"}]), "operations[0].section_id"),
            (json!([{"op": "remove_section", "section_id": "main"}]), "operations[0].section_id"),
            (json!([{"op": "set_fields", "cover": a}]), "operations[0].cover"),
            (json!([{"op": "set_fields", "title": "  "}]), "operations[0].title"),
            (json!([]), "operations"),
        ];
        for (body, want) in cases {
            let mut g = gallery();
            match apply(&mut g, ops(body.clone())) {
                Err(GalleryError::Invalid { field, .. }) => assert_eq!(field, want, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_gallery_holds_at_most_max_items() {
        let mut g = gallery();
        let many: Vec<MediaId> = (0..MAX_ITEMS).map(|_| MediaId::new()).collect();
        apply(&mut g, vec![Operation::InsertItems { media_ids: many, section_id: None, position: None }]).unwrap();
        let more = vec![Operation::InsertItems { media_ids: vec![MediaId::new()], section_id: None, position: None }];
        assert!(matches!(apply(&mut g, more), Err(GalleryError::Invalid { .. })));
    }

    #[test]
    fn unknown_operations_and_fields_are_refused() {
        assert!(serde_json::from_value::<Vec<Operation>>(json!([{"op": "explode"}])).is_err());
        assert!(
            serde_json::from_value::<Vec<Operation>>(json!([{"op": "remove_items", "media_ids": [], "x": 1}])).is_err()
        );
        let cleared: Vec<Operation> =
            serde_json::from_value(json!([{"op": "set_fields", "description": null}])).unwrap();
        assert!(matches!(&cleared[0], Operation::SetFields { description: Some(None), .. }));
    }
}
