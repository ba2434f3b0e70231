//! Watermark profiles: an agency's logo (a PNG with alpha, uploaded once) and how it is drawn —
//! position, margin, scale relative to the image, opacity — on the derivatives of the presets the
//! profile names (never the original). Profiles are small documents in the object store, next to
//! their logos (`assets/watermarks/…`); a watermark job snapshots the profile onto the version it
//! makes ([`AppliedWatermark`]).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{ObjectKey, WatermarkName};
use crate::keys;
use crate::media::AppliedWatermark;
use crate::ports::{ObjectStore, PutOptions, StoreError};

/// Where the logo sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatermarkPosition {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
    Center,
}

impl WatermarkPosition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopLeft => "top_left",
            Self::TopRight => "top_right",
            Self::BottomLeft => "bottom_left",
            Self::BottomRight => "bottom_right",
            Self::Center => "center",
        }
    }
}

/// How a profile draws its logo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSettings {
    pub position: WatermarkPosition,
    /// Space between the logo and the nearest edges, as a fraction of the image's shorter side (0 to 0.25).
    pub margin: f32,
    /// The logo's width as a fraction of the image's width (above 0, at most 1).
    pub scale: f32,
    /// Above 0, at most 1; multiplies the logo's own alpha.
    pub opacity: f32,
    /// The presets whose derivatives carry the mark (e.g. every public size); 1 to 32 names.
    pub presets: Vec<String>,
}

impl WatermarkSettings {
    /// Each bound, with the field that breaks it.
    pub fn validate(&self) -> Result<(), WatermarkError> {
        let bad =
            |field: &str, message: &str| Err(WatermarkError::Invalid { field: field.into(), message: message.into() });
        if !(0.0..=0.25).contains(&self.margin) {
            return bad("margin", "margin is a fraction of the shorter side, 0 to 0.25");
        }
        if !(self.scale > 0.0 && self.scale <= 1.0) {
            return bad("scale", "scale is the logo's width as a fraction of the image's, above 0 and at most 1");
        }
        if !(self.opacity > 0.0 && self.opacity <= 1.0) {
            return bad("opacity", "opacity is above 0 and at most 1");
        }
        if self.presets.is_empty() || self.presets.len() > 32 {
            return bad("presets", "name 1 to 32 presets to watermark");
        }
        if self.presets.iter().any(|p| p.is_empty() || p.len() > 64 || p.contains('/')) {
            return bad("presets", "preset names are 1 to 64 characters without '/'");
        }
        Ok(())
    }
}

/// A stored profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkProfile {
    pub name: WatermarkName,
    #[serde(flatten)]
    pub settings: WatermarkSettings,
    pub logo_key: ObjectKey,
    pub logo_sha256: String,
    pub logo_width: u32,
    pub logo_height: u32,
    pub updated_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl WatermarkProfile {
    /// The snapshot a watermark job puts on the version it makes.
    pub fn applied(&self) -> AppliedWatermark {
        AppliedWatermark {
            profile: self.name.clone(),
            logo_key: self.logo_key.clone(),
            position: self.settings.position.as_str().to_owned(),
            margin: self.settings.margin,
            scale: self.settings.scale,
            opacity: self.settings.opacity,
            presets: self.settings.presets.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The largest profile document read back.
const PROFILE_MAX_BYTES: u64 = 64 * 1024;
/// Profiles listed at most.
pub const MAX_PROFILES: usize = 100;

/// A logo the caller checked (decodable PNG with alpha, its size) and its SHA-256.
pub struct CheckedLogo {
    pub png: Bytes,
    pub width: u32,
    pub height: u32,
    pub sha256: String,
}

/// Creates or replaces a profile: the logo is stored under a key of its own bytes first, then the
/// profile document that names it, so a reader never sees a profile whose logo is missing.
/// Versions made with an earlier logo keep theirs (their snapshot names its key).
pub async fn put_profile(
    objects: &dyn ObjectStore,
    name: WatermarkName,
    settings: WatermarkSettings,
    logo: CheckedLogo,
    actor: &str,
    now: OffsetDateTime,
) -> Result<WatermarkProfile, WatermarkError> {
    settings.validate()?;
    let logo_key = keys::watermark_logo(&name, &logo.sha256);
    let png = PutOptions { content_type: Some("image/png".into()), cache_control: None };
    objects.put(&logo_key, logo.png, png).await?;
    let profile = WatermarkProfile {
        name,
        settings,
        logo_key,
        logo_sha256: logo.sha256,
        logo_width: logo.width,
        logo_height: logo.height,
        updated_by: actor.to_owned(),
        updated_at: now,
    };
    let json = serde_json::to_vec(&profile).map_err(StoreError::internal)?;
    let doc = PutOptions { content_type: Some("application/json".into()), cache_control: None };
    objects.put(&keys::watermark_profile(&profile.name), Bytes::from(json), doc).await?;
    Ok(profile)
}

pub async fn get_profile(objects: &dyn ObjectStore, name: &WatermarkName) -> Result<WatermarkProfile, WatermarkError> {
    let (_, bytes) = objects.get(&keys::watermark_profile(name), PROFILE_MAX_BYTES).await.map_err(|e| match e {
        StoreError::NotFound => WatermarkError::NotFound(format!("no watermark profile named {name}")),
        other => WatermarkError::Store(other),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| WatermarkError::Store(StoreError::internal(e)))
}

/// Every profile, by name (at most [`MAX_PROFILES`]).
pub async fn list_profiles(objects: &dyn ObjectStore) -> Result<Vec<WatermarkProfile>, WatermarkError> {
    let page = objects.list(&keys::watermark_profiles_prefix(), None, 1000).await?;
    let mut out = Vec::new();
    for key in page.keys.iter().filter(|k| k.as_str().ends_with(".json")).take(MAX_PROFILES) {
        let name = key.as_str().rsplit('/').next().and_then(|f| f.strip_suffix(".json")).unwrap_or_default();
        if let Ok(name) = WatermarkName::parse(name) {
            out.push(get_profile(objects, &name).await?);
        }
    }
    Ok(out)
}
