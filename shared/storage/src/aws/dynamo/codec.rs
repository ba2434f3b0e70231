//! The item codec: keys, a record ↔ its media item and index entries, tombstones, fingerprints.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use phoenix_domain::ports::{Fingerprint, StoreError, StoreResult};
use phoenix_domain::{Category, GalleryId, MediaId, MediaRecord, MediaStatus, ModelId, Tag};
use time::format_description::FormatItem;
use time::macros::format_description;

use super::table::{GSI1PK, GSI1SK, GSI2PK, GSI2SK, GSI3PK, GSI3SK, PK, SK, TTL_ATTRIBUTE};

pub(super) type Item = HashMap<String, AttributeValue>;

/// On a media item: the `SK`s of its index entries, so a write knows which copies to replace.
pub(super) const INDEX_KEYS: &str = "index_keys";
pub(super) const VERSION: &str = "version";
/// Attributes that only the storage layout needs: never part of a decoded record.
const STORAGE_ATTRIBUTES: [&str; 11] =
    [PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK, GSI3PK, GSI3SK, TTL_ATTRIBUTE, INDEX_KEYS, super::marks::BATCH_MARK];
/// The `GSI3PK` of every trashed media record: the trash of all models, by `purge_after`.
pub(super) const TRASH_PARTITION: &str = "TRASH";

pub(super) const MEDIA_PREFIX: &str = "MEDIA#";
/// One item per model holds every fingerprint (one read gets them all); at ~50 bytes a media,
/// DynamoDB's 400 KB item limit allows about 8,000 fingerprinted media per model.
pub(super) const FINGERPRINTS_SK: &str = "FINGERPRINTS";
const FINGERPRINT_PREFIX: &str = "ph_";

/// RFC 3339 in UTC with a fixed-width fraction, so that the strings sort as the instants do.
pub(super) const SORTABLE_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

pub(super) fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn pk(model: &ModelId) -> String {
    format!("MODEL#{}", model.as_str())
}

pub(super) fn media_sk(media: &MediaId) -> String {
    format!("{MEDIA_PREFIX}{media}")
}

pub(super) fn tombstone_sk(media: &MediaId) -> String {
    format!("TOMBSTONE#{media}")
}

pub(super) fn fingerprint_attribute(media: &MediaId) -> String {
    format!("{FINGERPRINT_PREFIX}{media}")
}

pub(super) fn table_key(pk: String, sk: String) -> Item {
    [(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))].into()
}

pub(super) fn media_key(model: &ModelId, media: &MediaId) -> Item {
    table_key(pk(model), media_sk(media))
}

pub(super) fn fingerprints_key(model: &ModelId) -> Item {
    table_key(pk(model), FINGERPRINTS_SK.to_owned())
}

pub(super) fn tombstone_key(model: &ModelId, media: &MediaId) -> Item {
    table_key(pk(model), tombstone_sk(media))
}

pub(super) fn gsi1pk(model: &ModelId, status: MediaStatus) -> String {
    format!("MODEL#{}#STATUS#{}", model.as_str(), status.as_str())
}

pub(super) fn gsi2pk(model: &ModelId, category: &Category) -> String {
    format!("MODEL#{}#CATEGORY#{}", model.as_str(), category.as_str())
}

pub(super) fn tag_prefix(tag: &Tag) -> String {
    format!("TAG#{}#", tag.as_str())
}

pub(super) fn gallery_prefix(gallery: &GalleryId) -> String {
    format!("GALLERY#{}#", gallery.as_str())
}

/// An instant in [`SORTABLE_UTC`].
pub(super) fn sortable(at: time::OffsetDateTime) -> StoreResult<String> {
    at.to_offset(time::UtcOffset::UTC)
        .format(SORTABLE_UTC)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: instant {at} cannot be formatted: {e}")))
}

/// `{purge_after}#{model_id}#{media_id}`: a trashed record's `GSI3SK`, so the trash sorts by when
/// it may be purged.
pub(super) fn trash_key(record: &MediaRecord, purge_after: time::OffsetDateTime) -> StoreResult<String> {
    Ok(format!("{}#{}#{}", sortable(purge_after)?, record.model_id.as_str(), record.media_id))
}

/// `{created}#{media_id}`: the sort key of GSI1, GSI2 and (after their prefix) of index entries.
pub(super) fn created_key(record: &MediaRecord) -> StoreResult<String> {
    let created = record.created_at.to_offset(time::UtcOffset::UTC).format(SORTABLE_UTC).map_err(|e| {
        StoreError::internal(anyhow::anyhow!("dynamodb: created_at {} cannot be formatted: {e}", record.created_at))
    })?;
    Ok(format!("{created}#{}", record.media_id))
}

/// The `SK`s of a record's index entries: one per distinct tag and gallery; none while it is in
/// the trash (only the trash lists it).
pub(super) fn index_keys(record: &MediaRecord) -> StoreResult<BTreeSet<String>> {
    if record.is_trashed() {
        return Ok(BTreeSet::new());
    }
    let created = created_key(record)?;
    let tags = record.metadata.tags.iter().map(|tag| format!("{}{created}", tag_prefix(tag)));
    let galleries = record.gallery_ids().map(|gallery| format!("{}{created}", gallery_prefix(gallery)));
    Ok(tags.chain(galleries).collect())
}

/// The record's fields, each its own attribute, and nothing of the layout.
fn record_fields(record: &MediaRecord) -> StoreResult<Item> {
    let mut item: Item = serde_dynamo::aws_sdk_dynamodb_1::to_item(record)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a media record cannot be encoded: {e}")))?;
    item.insert(VERSION.to_owned(), n(record.version));
    Ok(item)
}

/// The media item and its index entries (full copies in the same partition, without GSI keys so
/// that status and category listings never see them, with the TTL so that they expire with it).
pub(super) fn media_items(record: &MediaRecord) -> StoreResult<(Item, Vec<Item>)> {
    let fields = record_fields(record)?;
    let created = created_key(record)?;
    let entries = index_keys(record)?;
    let partition = pk(&record.model_id);
    let ttl = record.expires_at.map(|t| n(t.unix_timestamp()));

    let copies = entries
        .iter()
        .map(|entry| {
            let mut copy = fields.clone();
            copy.insert(PK.to_owned(), s(partition.clone()));
            copy.insert(SK.to_owned(), s(entry.clone()));
            if let Some(ttl) = &ttl {
                copy.insert(TTL_ATTRIBUTE.to_owned(), ttl.clone());
            }
            copy
        })
        .collect();

    let mut main = fields;
    main.insert(PK.to_owned(), s(partition));
    main.insert(SK.to_owned(), s(media_sk(&record.media_id)));
    main.insert(GSI1PK.to_owned(), s(gsi1pk(&record.model_id, record.status)));
    main.insert(GSI1SK.to_owned(), s(created.clone()));
    if let Some(category) = record.metadata.category.as_ref().filter(|_| !record.is_trashed()) {
        main.insert(GSI2PK.to_owned(), s(gsi2pk(&record.model_id, category)));
        main.insert(GSI2SK.to_owned(), s(created));
    }
    // The trash (sparse): only trashed records, by when they may be purged.
    if let Some(purge_after) = record.purge_after() {
        main.insert(GSI3PK.to_owned(), s(TRASH_PARTITION.to_owned()));
        main.insert(GSI3SK.to_owned(), s(trash_key(record, purge_after)?));
    }
    if let Some(ttl) = ttl {
        main.insert(TTL_ATTRIBUTE.to_owned(), ttl);
    }
    // A string set cannot be empty: no entries, no attribute (the update's fast path relies on it).
    if !entries.is_empty() {
        main.insert(INDEX_KEYS.to_owned(), AttributeValue::Ss(entries.into_iter().collect()));
    }
    Ok((main, copies))
}

/// The tombstone a delete leaves: the deleted record's fields under `TOMBSTONE#{media_id}`.
pub(super) fn tombstone_item(record: &MediaRecord) -> StoreResult<Item> {
    let mut tombstone = record_fields(record)?;
    tombstone.insert(PK.to_owned(), s(pk(&record.model_id)));
    tombstone.insert(SK.to_owned(), s(tombstone_sk(&record.media_id)));
    Ok(tombstone)
}

/// The record an item holds (a media item, an index entry or a tombstone). An item that does not
/// decode is our fault (a bug, or data written by hand), not the caller's: `Internal`.
pub(super) fn from_item(item: &Item) -> StoreResult<MediaRecord> {
    let mut fields = item.clone();
    for key in STORAGE_ATTRIBUTES {
        fields.remove(key);
    }
    serde_dynamo::aws_sdk_dynamodb_1::from_item(fields)
        .map_err(|e| StoreError::internal(anyhow::anyhow!("dynamodb: a stored media record does not decode: {e}")))
}

/// The `SK`s a stored media item names as its index entries.
pub(super) fn stored_index_keys(item: &Item) -> BTreeSet<String> {
    match item.get(INDEX_KEYS) {
        Some(AttributeValue::Ss(keys)) => keys.iter().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

pub(super) fn sort_key_of(item: &Item) -> Option<&str> {
    match item.get(SK) {
        Some(AttributeValue::S(sk)) => Some(sk),
        _ => None,
    }
}

/// The fingerprints an item of the model holds (`ph_{media_id}` = pHash); others are ignored.
pub(super) fn decode_fingerprints(item: &Item) -> Vec<Fingerprint> {
    item.iter()
        .filter_map(|(name, value)| {
            let media_id = MediaId::parse(name.strip_prefix(FINGERPRINT_PREFIX)?).ok()?;
            let AttributeValue::S(phash) = value else { return None };
            Some(Fingerprint { media_id, phash: phash.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use phoenix_domain::media::{GalleryLink, MAX_TAGS};
    use phoenix_domain::ports::bounds;

    use super::*;

    fn sample(status: MediaStatus) -> MediaRecord {
        let model = ModelId::parse("m1").unwrap();
        crate::conformance::sample_record(&model, &MediaId::new(), status)
    }

    #[test]
    fn sort_keys_have_a_fixed_width_and_sort_as_instants() {
        let mut record = sample(MediaStatus::Approved);
        record.created_at = time::macros::datetime!(2024-05-06 07:08:09 UTC);
        let whole = created_key(&record).unwrap();
        assert_eq!(whole, format!("2024-05-06T07:08:09.000000000Z#{}", record.media_id));
        record.created_at = time::macros::datetime!(2024-05-06 07:08:09.5 UTC);
        assert!(created_key(&record).unwrap() > whole);
    }

    #[test]
    fn items_carry_keys_version_and_ttl() {
        let mut record = sample(MediaStatus::Uploading);
        let media = record.media_id;
        record.expires_at = Some(time::macros::datetime!(2030-01-01 00:00 UTC));
        record.version = 7;
        let (item, copies) = media_items(&record).unwrap();
        assert!(copies.is_empty());
        assert_eq!(item[PK], s("MODEL#m1".to_owned()));
        assert_eq!(item[SK], s(format!("MEDIA#{media}")));
        assert_eq!(item[GSI1PK], s("MODEL#m1#STATUS#uploading".to_owned()));
        assert_eq!(item[GSI1SK], s(created_key(&record).unwrap()));
        assert_eq!(item[GSI2PK], s("MODEL#m1#CATEGORY#editorial".to_owned()));
        assert_eq!(item[GSI2SK], item[GSI1SK]);
        assert_eq!(item["version"], AttributeValue::N("7".to_owned()));
        assert_eq!(item[TTL_ATTRIBUTE], AttributeValue::N("1893456000".to_owned()));
        assert!(!item.contains_key(INDEX_KEYS), "no index entries, no index_keys");
        assert_eq!(from_item(&item).unwrap(), record);

        record.expires_at = None;
        record.metadata.category = None;
        let (item, _) = media_items(&record).unwrap();
        assert!(!item.contains_key(TTL_ATTRIBUTE));
        assert!(!item.contains_key(GSI2PK) && !item.contains_key(GSI2SK), "GSI2 is sparse");
        assert_eq!(from_item(&item).unwrap(), record);
    }

    #[test]
    fn index_entries_are_copies_without_gsi_keys() {
        let mut record = sample(MediaStatus::Approved);
        record.created_at = time::macros::datetime!(2024-05-06 07:08:09.123 UTC);
        record.expires_at = Some(time::macros::datetime!(2030-01-01 00:00 UTC));
        record.metadata.tags = vec![Tag::parse("beach").unwrap(), Tag::parse("summer").unwrap()];
        let gallery = GalleryId::parse("G-1").unwrap();
        record.galleries = vec![
            GalleryLink { gallery_id: gallery.clone(), published: true },
            GalleryLink { gallery_id: gallery, published: false },
        ];
        let created = format!("2024-05-06T07:08:09.123000000Z#{}", record.media_id);
        let (item, copies) = media_items(&record).unwrap();
        let expected: BTreeSet<String> =
            [format!("GALLERY#G-1#{created}"), format!("TAG#beach#{created}"), format!("TAG#summer#{created}")].into();
        assert_eq!(stored_index_keys(&item), expected, "one entry per distinct tag and gallery");
        let copy_keys: BTreeSet<String> = copies.iter().filter_map(|c| sort_key_of(c).map(str::to_owned)).collect();
        assert_eq!(copy_keys, expected);
        for copy in &copies {
            assert_eq!(copy[PK], s("MODEL#m1".to_owned()));
            for absent in [GSI1PK, GSI1SK, GSI2PK, GSI2SK, INDEX_KEYS] {
                assert!(!copy.contains_key(absent), "a copy has no {absent}");
            }
            assert_eq!(copy[TTL_ATTRIBUTE], item[TTL_ATTRIBUTE], "a copy expires with its record");
            assert_eq!(from_item(copy).unwrap(), record);
        }
        assert_eq!(from_item(&item).unwrap(), record);
        record.metadata.tags = (0..=MAX_TAGS).map(|i| Tag::parse(&format!("t{i}")).unwrap()).collect();
        assert!(matches!(bounds::record(&record), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn a_trashed_record_is_in_the_trash_index_only() {
        let mut record = sample(MediaStatus::Approved);
        record.metadata.tags = vec![Tag::parse("beach").unwrap()];
        let (item, copies) = media_items(&record).unwrap();
        assert_eq!(copies.len(), 1);
        assert!(!item.contains_key(GSI3PK) && item.contains_key(GSI2PK));
        let now = time::macros::datetime!(2026-11-24 09:15:02.5 UTC);
        record.move_to_trash("a", now, std::time::Duration::from_secs(60)).unwrap();
        let (item, copies) = media_items(&record).unwrap();
        assert!(copies.is_empty(), "no tag or gallery entries in the trash");
        assert!(!item.contains_key(INDEX_KEYS) && !item.contains_key(GSI2PK) && !item.contains_key(GSI2SK));
        assert_eq!(item[GSI1PK], s("MODEL#m1#STATUS#deleted".to_owned()));
        assert_eq!(item[GSI3PK], s("TRASH".to_owned()));
        assert_eq!(item[GSI3SK], s(format!("2026-11-24T09:16:02.500000000Z#m1#{}", record.media_id)));
        assert_eq!(from_item(&item).unwrap(), record);
    }

    #[test]
    fn fingerprints_decode_from_their_attributes() {
        let media = MediaId::new();
        let item: Item = [
            (PK.to_owned(), s("MODEL#m1".to_owned())),
            (SK.to_owned(), s(FINGERPRINTS_SK.to_owned())),
            (fingerprint_attribute(&media), s("00000000000000ff".to_owned())),
            ("ph_not-an-id".to_owned(), s("ffffffffffffffff".to_owned())),
        ]
        .into();
        assert_eq!(decode_fingerprints(&item), vec![Fingerprint { media_id: media, phash: "00000000000000ff".into() }]);
    }
}
