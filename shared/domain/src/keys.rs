//! The object-key scheme, in one place: where originals and derivatives live. Everything that
//! builds or recognises a key (the upload use case, the processor, the purge, the local object
//! endpoint, bucket notifications) asks here.

use crate::ids::{MediaId, ModelId, ObjectKey};

/// Uploaded originals, `originals/{model_id}/{media_id}`: bucket notifications fire under it.
pub const ORIGINALS_PREFIX: &str = "originals/";
/// Derivatives, `derived/{model_id}/{media_id}/…`: public, immutable, cacheable for ever.
pub const DERIVED_PREFIX: &str = "derived/";
/// Sources of edited versions, `versions/{model_id}/{media_id}/{number}.{ext}`: private, like originals.
pub const VERSIONS_PREFIX: &str = "versions/";
/// Agency assets (watermark logos and profiles), `assets/…`: private.
pub const ASSETS_PREFIX: &str = "assets/";
/// Derivative keys change whenever their bytes do, so their objects may be cached for ever.
pub const DERIVATIVE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Where an uploaded original lives.
pub fn original(model: &ModelId, media: &MediaId) -> ObjectKey {
    ObjectKey::trusted(format!("{ORIGINALS_PREFIX}{model}/{media}"))
}

/// The ids an original's key names, or `None` for any other key.
pub fn parse_original(key: &ObjectKey) -> Option<(ModelId, MediaId)> {
    let rest = key.as_str().strip_prefix(ORIGINALS_PREFIX)?;
    let (model, media) = rest.split_once('/')?;
    Some((ModelId::parse(model).ok()?, MediaId::parse(media).ok()?))
}

/// The prefix under which every derivative of one media lives (what a purge lists).
pub fn derived_prefix(model: &ModelId, media: &MediaId) -> String {
    format!("{DERIVED_PREFIX}{model}/{media}/")
}

/// The prefix under which every edited version's source of one media lives (what a purge lists).
pub fn versions_prefix(model: &ModelId, media: &MediaId) -> String {
    format!("{VERSIONS_PREFIX}{model}/{media}/")
}

/// Where the source an edit job made lives: named by the job, so two edits racing for the same
/// media never write one key.
pub fn version_source(model: &ModelId, media: &MediaId, job: &crate::ids::JobId, extension: &str) -> ObjectKey {
    ObjectKey::trusted(format!("{}{job}.{extension}", versions_prefix(model, media)))
}

/// A watermark profile's settings document.
pub fn watermark_profile(name: &crate::ids::WatermarkName) -> ObjectKey {
    ObjectKey::trusted(format!("{ASSETS_PREFIX}watermarks/{name}.json"))
}

/// A watermark logo; the key changes with its bytes (`sha256` hex, first 16 digits kept).
pub fn watermark_logo(name: &crate::ids::WatermarkName, sha256: &str) -> ObjectKey {
    ObjectKey::trusted(format!("{ASSETS_PREFIX}watermarks/{name}/{}.png", &sha256[..16.min(sha256.len())]))
}

/// The prefix under which every watermark profile's settings document lives.
pub fn watermark_profiles_prefix() -> String {
    format!("{ASSETS_PREFIX}watermarks/")
}

/// What distinguishes one derivative's bytes from every other's.
#[derive(Debug, Clone, Copy)]
pub struct DerivativeName<'a> {
    /// The source's SHA-256, hex; the key carries its first 16 digits.
    pub source_sha256: &'a str,
    pub preset: &'a str,
    pub preset_version: u32,
    /// A cover crop's focal point in thousandths, when the preset crops around one.
    pub focal_point: Option<(u32, u32)>,
    /// The digest of the watermark drawn on it, if any.
    pub watermark: Option<&'a str>,
    pub extension: &'a str,
}

/// A derivative's key: content hash, preset version and (for crops) the focal point are in it,
/// so whatever changes the bytes changes the key and a cached derivative is never stale.
/// `None` when a part would make the key invalid (a preset name with a `/`, say).
pub fn derivative(model: &ModelId, media: &MediaId, name: DerivativeName<'_>) -> Option<ObjectKey> {
    let hash = name.source_sha256.get(..16)?;
    let crop = name.focal_point.map(|(x, y)| format!("-f{x}x{y}")).unwrap_or_default();
    let mark = name.watermark.map(|w| format!("-w{w}")).unwrap_or_default();
    let file = format!("{}-v{}{crop}{mark}.{}", name.preset, name.preset_version, name.extension);
    if file.contains('/') {
        return None;
    }
    ObjectKey::parse(&format!("{}{hash}/{file}", derived_prefix(model, media))).ok()
}

/// The derivative key a public URL path names (`/derived/{rest}`), if it is one.
pub fn derived_from_path(rest: &str) -> Option<ObjectKey> {
    ObjectKey::parse(&format!("{DERIVED_PREFIX}{rest}")).ok()
}

/// Published gallery documents and their pointers, `published/galleries/{gallery_id}/…`: read by
/// the API's public routes (not served from the bucket).
pub const PUBLISHED_PREFIX: &str = "published/";

/// Everything one gallery published: its versions and its pointer.
pub fn published_prefix(gallery: &crate::ids::GalleryId) -> String {
    format!("{PUBLISHED_PREFIX}galleries/{gallery}/")
}

/// A published version of a gallery: immutable once written (each publish takes a new number).
pub fn published_document(gallery: &crate::ids::GalleryId, version: u32) -> ObjectKey {
    ObjectKey::trusted(format!("{}v{version}.json", published_prefix(gallery)))
}

/// The small object naming the version of a gallery the public reads.
pub fn published_pointer(gallery: &crate::ids::GalleryId) -> ObjectKey {
    ObjectKey::trusted(format!("{}current.json", published_prefix(gallery)))
}

/// Whether `key` is a gallery's pointer ([`published_pointer`]).
pub fn is_published_pointer(key: &ObjectKey) -> bool {
    key.as_str()
        .strip_prefix(PUBLISHED_PREFIX)
        .and_then(|rest| rest.strip_prefix("galleries/"))
        .and_then(|rest| rest.strip_suffix("/current.json"))
        .is_some_and(|gallery| crate::ids::GalleryId::parse(gallery).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originals_round_trip_and_nothing_else_parses_as_one() {
        let (model, media) = (ModelId::parse("m1").unwrap(), MediaId::new());
        let key = original(&model, &media);
        assert_eq!(key.as_str(), format!("originals/m1/{media}"));
        assert_eq!(parse_original(&key), Some((model.clone(), media)));
        for other in [format!("derived/m1/{media}"), format!("originals/m1/{media}/x"), "originals/m1".into()] {
            assert_eq!(parse_original(&ObjectKey::parse(&other).unwrap()), None, "{other}");
        }
    }

    #[test]
    fn derivative_keys_change_with_what_changes_the_bytes() {
        let (model, media) = (ModelId::parse("m1").unwrap(), MediaId::new());
        let sha = "0123456789abcdef0123456789abcdef";
        let name = DerivativeName {
            source_sha256: sha,
            preset: "thumb",
            preset_version: 2,
            focal_point: Some((500, 250)),
            watermark: None,
            extension: "webp",
        };
        let key = derivative(&model, &media, name).unwrap();
        assert_eq!(key.as_str(), format!("derived/m1/{media}/0123456789abcdef/thumb-v2-f500x250.webp"));
        assert!(key.as_str().starts_with(&derived_prefix(&model, &media)));
        assert!(derivative(&model, &media, DerivativeName { preset: "a/b", ..name }).is_none());
        let marked = derivative(&model, &media, DerivativeName { watermark: Some("0a1b2c3d"), ..name }).unwrap();
        assert!(marked.as_str().ends_with("thumb-v2-f500x250-w0a1b2c3d.webp"), "{marked:?}");
        assert!(derivative(&model, &media, DerivativeName { source_sha256: "short", ..name }).is_none());
    }
    #[test]
    fn only_a_gallerys_pointer_is_a_pointer() {
        let gallery = crate::ids::GalleryId::parse("g-01").unwrap();
        assert!(is_published_pointer(&published_pointer(&gallery)));
        for other in [
            published_document(&gallery, 1).as_str().to_owned(),
            format!("published/galleries/{gallery}/x/current.json"),
            "published/galleries/current.json".into(),
            format!("derived/galleries/{gallery}/current.json"),
        ] {
            assert!(!is_published_pointer(&ObjectKey::parse(&other).unwrap()), "{other}");
        }
    }
}
