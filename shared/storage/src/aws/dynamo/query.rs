//! The query planner: which index and which slice of its sort key serve a listing, and the filter
//! for what the index does not cover.

use std::collections::HashMap;

use phoenix_domain::ports::{ListIndex, MediaQuery, StoreError, StoreResult};
use phoenix_domain::{MediaId, MediaStatus, ModelId};
use time::OffsetDateTime;

use super::codec::{Item, SORTABLE_UTC, gallery_prefix, gsi1pk, gsi2pk, media_sk, pk, s, tag_prefix};
use super::table::{GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, PK, SK};

/// The last millisecond whose instants the sortable format can write (9999-12-31T23:59:59.999Z).
const MAX_SORTABLE_MS: u64 = 253_402_300_799_999;

/// The lowest `{created}#{id}` key of a record created in millisecond `ms` or later.
pub(super) fn created_lower(ms: u64) -> String {
    if ms == 0 {
        // Everything, records from before the epoch too (`matches` counts them as ms 0); not
        // empty, because a key condition's value cannot be.
        return "0".to_owned();
    }
    match sortable_ms(ms, 0) {
        Some(created) if ms <= MAX_SORTABLE_MS => created,
        // Past year 9999: above every key (no record is created then).
        _ => "~".to_owned(),
    }
}

/// A string above every `{created}#{id}` key of a record created in millisecond `ms` or
/// earlier, whatever its sub-millisecond part: `matches` truncates `created_at` to the ms.
pub(super) fn created_upper(ms: u64) -> String {
    match sortable_ms(ms, 999_999) {
        // Media ids are lower-case alphanumerics, all below `~`.
        Some(created) if ms <= MAX_SORTABLE_MS => format!("{created}#~"),
        _ => "~".to_owned(),
    }
}

fn sortable_ms(ms: u64, extra_nanos: i128) -> Option<String> {
    let nanos = i128::from(ms) * 1_000_000 + extra_nanos;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?.format(SORTABLE_UTC).ok()
}

/// How one listing reads: one Query of one index, an inclusive slice of one partition's sort key.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) index: Option<&'static str>,
    /// Exactly the attributes of the index's `LastEvaluatedKey` (its keys and the table's), sorted.
    pub(super) key_attributes: &'static [&'static str],
    pub(super) partition: (&'static str, String),
    pub(super) sort: (&'static str, String, String),
}

const TABLE_KEYS: &[&str] = &[PK, SK];
const GSI1_KEYS: &[&str] = &[GSI1PK, GSI1SK, PK, SK];
const GSI2_KEYS: &[&str] = &[GSI2PK, GSI2SK, PK, SK];

/// The index `query.index()` names, sliced to the creation range `low..=high` (unix ms).
pub(super) fn plan(model: &ModelId, query: &MediaQuery, (low, high): (u64, u64)) -> Plan {
    let base = |prefix: String| Plan {
        index: None,
        key_attributes: TABLE_KEYS,
        partition: (PK, pk(model)),
        sort: (SK, format!("{prefix}{}", created_lower(low)), format!("{prefix}{}", created_upper(high))),
    };
    match (query.index(), &query.gallery, &query.tag, &query.category, query.status) {
        (ListIndex::Gallery, Some(gallery), ..) => base(gallery_prefix(gallery)),
        (ListIndex::Tag, _, Some(tag), ..) => base(tag_prefix(tag)),
        (ListIndex::Category, _, _, Some(category), _) => Plan {
            index: Some(GSI2),
            key_attributes: GSI2_KEYS,
            partition: (GSI2PK, gsi2pk(model, category)),
            sort: (GSI2SK, created_lower(low), created_upper(high)),
        },
        (ListIndex::Status, .., Some(status)) => Plan {
            index: Some(GSI1),
            key_attributes: GSI1_KEYS,
            partition: (GSI1PK, gsi1pk(model, status)),
            sort: (GSI1SK, created_lower(low), created_upper(high)),
        },
        // Media ids are ULIDs: an id range is a creation range.
        _ => Plan {
            index: None,
            key_attributes: TABLE_KEYS,
            partition: (PK, pk(model)),
            sort: (SK, media_sk(&MediaId::first_of_ms(low)), media_sk(&MediaId::last_of_ms(high.min((1 << 48) - 1)))),
        },
    }
}

/// The FilterExpression for the filters the chosen index does not cover, adding its names and
/// values.
pub(super) fn filter_expression(
    query: &MediaQuery,
    names: &mut HashMap<String, String>,
    values: &mut Item,
) -> StoreResult<Option<String>> {
    let index = query.index();
    let mut clauses = Vec::new();
    if let Some(status) = query.status
        && index != ListIndex::Status
    {
        names.insert("#status".to_owned(), "status".to_owned());
        values.insert(":status".to_owned(), s(status.as_str().to_owned()));
        clauses.push("#status = :status");
    }
    if let Some(category) = &query.category
        && index != ListIndex::Category
    {
        names.insert("#metadata".to_owned(), "metadata".to_owned());
        names.insert("#category".to_owned(), "category".to_owned());
        values.insert(":category".to_owned(), s(category.as_str().to_owned()));
        clauses.push("#metadata.#category = :category");
    }
    if let Some(tag) = &query.tag
        && index != ListIndex::Tag
    {
        names.insert("#metadata".to_owned(), "metadata".to_owned());
        names.insert("#tags".to_owned(), "tags".to_owned());
        values.insert(":tag".to_owned(), s(tag.as_str().to_owned()));
        clauses.push("contains(#metadata.#tags, :tag)");
    }
    // The trash is in no listing but its own (`status = deleted`, on GSI1).
    if query.status.is_none() {
        names.insert("#status".to_owned(), "status".to_owned());
        values.insert(":deleted".to_owned(), s(MediaStatus::Deleted.as_str().to_owned()));
        clauses.push("#status <> :deleted");
    }
    // A gallery always picks the gallery index (it is the most selective filter), so no item
    // carries an attribute to filter galleries by. Refuse rather than list too much, should
    // that order ever change (a bug here, not a bad request).
    if query.gallery.is_some() && index != ListIndex::Gallery {
        return Err(StoreError::internal(anyhow::anyhow!("dynamodb: a gallery filter needs the gallery index")));
    }
    Ok((!clauses.is_empty()).then(|| clauses.join(" AND ")))
}

#[cfg(test)]
mod tests {
    use phoenix_domain::{Category, GalleryId, Tag};

    use super::*;

    #[test]
    fn creation_bounds_cover_whole_milliseconds() {
        let ms = 1_714_979_289_123; // 2024-05-06T07:08:09.123Z
        assert_eq!(created_lower(ms), "2024-05-06T07:08:09.123000000Z");
        assert_eq!(created_upper(ms), "2024-05-06T07:08:09.123999999Z#~");
        let media = MediaId::new().to_string();
        let last_ns = format!("2024-05-06T07:08:09.123999999Z#{media}");
        let next_ms = format!("2024-05-06T07:08:09.124000000Z#{media}");
        let first_ns = format!("2024-05-06T07:08:09.123000000Z#{media}");
        assert!(created_lower(ms) <= first_ns && first_ns <= created_upper(ms));
        assert!(last_ns <= created_upper(ms), "the whole last millisecond is in range");
        assert!(next_ms > created_upper(ms) && next_ms >= created_lower(ms + 1));
        assert_eq!(created_lower(0), "0");
        assert_eq!(created_upper((1 << 48) - 1), "~");
        assert!("1969-12-31T23:59:59.999000000Z#x" > created_lower(0).as_str());
    }

    #[test]
    fn the_query_picks_its_index() {
        let model = ModelId::parse("m1").unwrap();
        let range = (5, 9);
        let mut query = MediaQuery {
            status: Some(MediaStatus::Approved),
            category: Some(Category::parse("runway").unwrap()),
            tag: Some(Tag::parse("beach").unwrap()),
            gallery: Some(GalleryId::parse("g1").unwrap()),
            ..MediaQuery::new(10)
        };
        let gallery = plan(&model, &query, range);
        assert_eq!((gallery.index, gallery.partition.1.as_str()), (None, "MODEL#m1"));
        assert!(gallery.sort.1.starts_with("GALLERY#g1#1970-01-01T00:00:00.005"));
        query.gallery = None;
        assert!(plan(&model, &query, range).sort.1.starts_with("TAG#beach#"));
        query.tag = None;
        let category = plan(&model, &query, range);
        assert_eq!((category.index, category.partition.1.as_str()), (Some(GSI2), "MODEL#m1#CATEGORY#runway"));
        query.category = None;
        let status = plan(&model, &query, range);
        assert_eq!((status.index, status.partition.1.as_str()), (Some(GSI1), "MODEL#m1#STATUS#approved"));
        query.status = None;
        let all = plan(&model, &query, range);
        assert_eq!(all.index, None);
        assert_eq!(all.sort.1, media_sk(&MediaId::first_of_ms(5)));
        assert_eq!(all.sort.2, media_sk(&MediaId::last_of_ms(9)));

        let query = MediaQuery {
            status: Some(MediaStatus::Approved),
            category: Some(Category::parse("runway").unwrap()),
            gallery: Some(GalleryId::parse("g1").unwrap()),
            ..MediaQuery::new(10)
        };
        let (mut names, mut values) = (HashMap::new(), HashMap::new());
        let filter = filter_expression(&query, &mut names, &mut values).unwrap();
        assert_eq!(filter.as_deref(), Some("#status = :status AND #metadata.#category = :category"));
        assert_eq!(values[":category"], s("runway".to_owned()));
        assert_eq!(names.len(), 3);
    }
}
