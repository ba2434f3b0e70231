//! Named derivative presets: configuration, not code.
//!
//! The defaults are `presets.json` beside this crate's `Cargo.toml`, compiled in; a deployment can
//! replace them with its own file ([`PresetSet::from_file`]). A preset's `version` is part of the
//! contract with stored derivatives: bump it whenever its output would change, so stale renditions
//! can be found and regenerated (`process(.., only: Some(&["name"]), ..)`).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Watermark;

/// The compiled-in default presets.
pub const DEFAULT_PRESETS_JSON: &str = include_str!("../presets.json");

/// Largest output side a preset may ask for (WebP's own limit is 16383).
const MAX_PRESET_SIDE: u32 = 8192;

/// An output encoding of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Jpeg,
    Webp,
    Avif,
}

impl OutputFormat {
    /// Stable lowercase name, as stored in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Webp => "webp",
            Self::Avif => "avif",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Avif => "image/avif",
        }
    }

    /// File name extension for stored objects.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
            Self::Avif => "avif",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a preset's size is derived from the photo's (displayed, i.e. oriented) size. Neither ever
/// upscales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "fit", rename_all = "lowercase")]
pub enum Fit {
    /// `width` wide (or the photo's width if smaller), the photo's aspect ratio kept.
    Width { width: u32 },
    /// Exactly `width`:`height`, cropped around the focal point; from a photo too small for the
    /// full size, the largest crop of that exact aspect ratio the photo allows.
    Cover { width: u32, height: u32 },
}

/// Encoder quality per format, 1..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quality {
    #[serde(default = "default_jpeg_quality")]
    pub jpeg: u8,
    #[serde(default = "default_webp_quality")]
    pub webp: u8,
    #[serde(default = "default_avif_quality")]
    pub avif: u8,
}

fn default_jpeg_quality() -> u8 {
    80
}
fn default_webp_quality() -> u8 {
    80
}
fn default_avif_quality() -> u8 {
    60
}

impl Default for Quality {
    fn default() -> Self {
        Self { jpeg: default_jpeg_quality(), webp: default_webp_quality(), avif: default_avif_quality() }
    }
}

impl Quality {
    pub fn for_format(&self, format: OutputFormat) -> u8 {
        match format {
            OutputFormat::Jpeg => self.jpeg,
            OutputFormat::Webp => self.webp,
            OutputFormat::Avif => self.avif,
        }
    }
}

/// One named derivative: a size and the encodings it is stored in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
    /// Bumped whenever this preset's output would change.
    pub version: u32,
    #[serde(flatten)]
    pub fit: Fit,
    pub formats: Vec<OutputFormat>,
    #[serde(default)]
    pub quality: Quality,
    /// Progressive JPEG (worth it from about 1000 px up: it loads coarse-to-fine, and is smaller).
    #[serde(default)]
    pub progressive: bool,
    /// libwebp's effort (`method`, 0..=6) for opaque photos; 3 when absent. Images with alpha
    /// always use 4 (lower efforts compress the alpha plane badly). See docs/imaging.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webp_effort: Option<u8>,
}

/// Why a preset file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("cannot read the preset file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the preset JSON is malformed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid presets: {0}")]
    Invalid(String),
}

/// The presets a deployment renders, and the colour that transparent pixels become in formats
/// without alpha (JPEG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetSet {
    pub presets: Vec<Preset>,
    /// `"#rrggbb"` in JSON; white when absent.
    #[serde(default = "white", serialize_with = "ser_hex_colour", deserialize_with = "de_hex_colour")]
    pub background: [u8; 3],
}

fn white() -> [u8; 3] {
    [255, 255, 255]
}

impl Default for PresetSet {
    /// The compiled-in `presets.json`.
    fn default() -> Self {
        Self::from_json(DEFAULT_PRESETS_JSON).expect("the embedded presets.json is valid")
    }
}

impl PresetSet {
    /// Parses and validates a preset document (the shape of `presets.json`).
    pub fn from_json(json: &str) -> Result<Self, PresetError> {
        let set: Self = serde_json::from_str(json)?;
        set.validate()?;
        Ok(set)
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PresetError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path)
            .map_err(|source| PresetError::Io { path: path.display().to_string(), source })?;
        Self::from_json(&json)
    }

    pub fn get(&self, name: &str) -> Option<&Preset> {
        self.presets.iter().find(|p| p.name == name)
    }

    /// Checks what serde cannot: names usable in object keys and unique, sizes sane, formats
    /// given once each, qualities in range.
    pub fn validate(&self) -> Result<(), PresetError> {
        let invalid = |msg: String| Err(PresetError::Invalid(msg));
        if self.presets.is_empty() {
            return invalid("there are no presets".into());
        }
        let mut names = HashSet::new();
        for p in &self.presets {
            let name = &p.name;
            let name_ok = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !name_ok {
                return invalid(format!("preset name {name:?} must be 1-64 characters of a-z, 0-9, '-' and '_'"));
            }
            if !names.insert(name.as_str()) {
                return invalid(format!("preset {name:?} is defined twice"));
            }
            let sides: &[u32] = match &p.fit {
                Fit::Width { width } => &[*width],
                Fit::Cover { width, height } => &[*width, *height],
            };
            if sides.iter().any(|&s| s == 0 || s > MAX_PRESET_SIDE) {
                return invalid(format!("preset {name:?}: sizes must be between 1 and {MAX_PRESET_SIDE} pixels"));
            }
            if p.formats.is_empty() {
                return invalid(format!("preset {name:?} has no formats"));
            }
            if p.webp_effort.is_some_and(|e| e > 6) {
                return invalid(format!("preset {name:?}: webp_effort must be 0 to 6"));
            }
            let mut seen = HashSet::new();
            if let Some(f) = p.formats.iter().find(|f| !seen.insert(**f)) {
                return invalid(format!("preset {name:?} lists {f} twice"));
            }
            for f in [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Avif] {
                let q = p.quality.for_format(f);
                if !(1..=100).contains(&q) {
                    return invalid(format!("preset {name:?}: {f} quality {q} is not in 1..=100"));
                }
            }
        }
        Ok(())
    }
}

fn de_hex_colour<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 3], D::Error> {
    let s = String::deserialize(d)?;
    parse_hex_colour(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("background {s:?} is not a colour like \"#ffffff\"")))
}

fn ser_hex_colour<S: Serializer>(c: &[u8; 3], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex_colour(*c))
}

pub(crate) fn hex_colour(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn parse_hex_colour(s: &str) -> Option<[u8; 3]> {
    let hex = s.strip_prefix('#')?;
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// A point of interest in the displayed (oriented) photo, as fractions of its width and height
/// (0,0 is the top left). Cover crops are centred on it as far as the photo's edges allow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FocalPoint {
    pub x: f32,
    pub y: f32,
}

impl Default for FocalPoint {
    fn default() -> Self {
        Self { x: 0.5, y: 0.5 }
    }
}

impl FocalPoint {
    /// Clamped into 0..=1 (NaN becomes the centre).
    pub(crate) fn clamped(self) -> Self {
        let c = |v: f32| if v.is_nan() { 0.5 } else { v.clamp(0.0, 1.0) };
        Self { x: c(self.x), y: c(self.y) }
    }
}

/// Per-photo choices that are not configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RenderOptions {
    /// Where cover crops are centred; the middle when `None`.
    pub focal_point: Option<FocalPoint>,
    /// A logo blended onto the renditions of the presets it names. Not serialised: it holds
    /// pixels, and callers load the logo themselves ([`decode_logo`](crate::decode_logo)).
    #[serde(skip)]
    pub watermark: Option<Watermark>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse() {
        let set = PresetSet::default();
        let names: Vec<&str> = set.presets.iter().map(|p| p.name.as_str()).collect();
        for n in ["tiny", "small", "medium", "large", "xlarge", "cover-square", "cover-portrait"] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert_eq!(set.background, [255, 255, 255]);
        assert!(set.presets.iter().all(|p| !p.formats.contains(&OutputFormat::Avif)), "AVIF is opt-in");
        assert_eq!(set.get("small").unwrap().fit, Fit::Width { width: 320 });
        assert_eq!(set.get("cover-portrait").unwrap().fit, Fit::Cover { width: 900, height: 1200 });
        assert_eq!(set.get("small").unwrap().quality, Quality::default());
        assert!(set.get("xlarge").unwrap().progressive);
    }

    #[test]
    fn bad_documents_are_refused_clearly() {
        let err = |json: &str| PresetSet::from_json(json).unwrap_err().to_string();
        assert!(err("{").starts_with("the preset JSON is malformed"), "{}", err("{"));
        let e = err(r#"{"presets":[{"name":"a","version":1,"fit":"zoom","width":3,"formats":["jpeg"]}]}"#);
        assert!(e.contains("malformed"), "{e}");
        let e = err(r#"{"presets":[{"name":"a","version":1,"fit":"width","width":0,"formats":["jpeg"]}]}"#);
        assert!(e.contains("between 1 and"), "{e}");
        let e = err(r#"{"presets":[{"name":"a","version":1,"fit":"width","width":9,"formats":["gif"]}]}"#);
        assert!(e.contains("malformed"), "{e}");
        let e = err(r#"{"presets":[{"name":"A b","version":1,"fit":"width","width":9,"formats":["jpeg"]}]}"#);
        assert!(e.contains("preset name"), "{e}");
        let e = err(r##"{"background":"white","presets":[]}"##);
        assert!(e.contains("background"), "{e}");
        let e = err(
            r#"{"presets":[{"name":"a","version":1,"fit":"width","width":9,"formats":["jpeg"],"quality":{"jpeg":0}}]}"#,
        );
        assert!(e.contains("quality 0"), "{e}");
    }

    #[test]
    fn a_custom_document_round_trips() {
        let set = PresetSet::from_json(
            r##"{"background":"#102030","presets":[
                {"name":"hero","version":3,"fit":"cover","width":1600,"height":900,"formats":["avif","jpeg"],
                 "quality":{"avif":55},"progressive":true}]}"##,
        )
        .unwrap();
        assert_eq!(set.background, [0x10, 0x20, 0x30]);
        let hero = set.get("hero").unwrap();
        assert_eq!(hero.quality, Quality { jpeg: 80, webp: 80, avif: 55 });
        let again = PresetSet::from_json(&serde_json::to_string(&set).unwrap()).unwrap();
        assert_eq!(again, set);
    }
}
