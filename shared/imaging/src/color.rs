//! Conversion to sRGB, the colour space browsers assume for untagged images (and ours are
//! untagged). Embedded ICC profiles (RGB, grey, CMYK) go through moxcms; CMYK without a usable
//! profile falls back to the naive formula. Applied to small renditions wherever possible.

use std::sync::Arc;

use moxcms::{ColorProfile, DataColorSpace, Layout, ProfileText, TransformExecutor, TransformOptions};
use tracing::debug;

use crate::decode::{Channels, Pixels};

type Transform = Arc<dyn TransformExecutor<u8> + Send + Sync>;

/// How the decoded samples become sRGB.
pub(crate) struct ColorConversion {
    kind: Kind,
    /// Provenance, e.g. `icc:adobe-rgb-1998->srgb`; `None` when nothing is done.
    pub operation: Option<String>,
}

enum Kind {
    /// Already sRGB (untagged, or tagged sRGB).
    Identity,
    Rgb(Transform),
    /// A grey profile; applied to the first channel, the result is RGB.
    Gray(Transform),
    /// CMYK through its profile: `inverted` samples are un-inverted first.
    CmykIcc {
        transform: Transform,
        inverted: bool,
    },
    CmykNaive {
        inverted: bool,
    },
}

impl ColorConversion {
    pub(crate) fn identity() -> Self {
        Self { kind: Kind::Identity, operation: None }
    }

    /// Plans the conversion for pixels of `channels` carrying `icc`. A profile that cannot be
    /// parsed or does not fit the pixels is ignored: that costs colour accuracy, never the upload.
    pub(crate) fn new(channels: Channels, icc: Option<&[u8]>, inverted_cmyk: bool) -> Self {
        let profile = icc.and_then(|icc| match ColorProfile::new_from_slice(icc) {
            Ok(p) => Some(p),
            Err(e) => {
                debug!(error = %e, "unreadable ICC profile ignored");
                None
            }
        });
        let srgb = ColorProfile::new_srgb();
        let options = TransformOptions::default();
        let naive = |inverted| Self {
            kind: Kind::CmykNaive { inverted },
            operation: Some(format!("cmyk{}->srgb:naive", if inverted { ":inverted" } else { "" })),
        };
        let Some(profile) = profile else {
            return if channels == Channels::Cmyk { naive(inverted_cmyk) } else { Self::identity() };
        };
        let name = profile_name(&profile);
        let op = |name: &str| Some(format!("icc:{name}->srgb"));
        match (channels, profile.color_space) {
            (Channels::Cmyk, DataColorSpace::Cmyk) => {
                match profile.create_transform_8bit(Layout::Rgba, &srgb, Layout::Rgb, options) {
                    Ok(transform) => {
                        Self { kind: Kind::CmykIcc { transform, inverted: inverted_cmyk }, operation: op(&name) }
                    }
                    Err(e) => {
                        debug!(error = %e, "CMYK profile without a usable transform");
                        naive(inverted_cmyk)
                    }
                }
            }
            (Channels::Cmyk, _) => naive(inverted_cmyk),
            (_, DataColorSpace::Rgb) if name.starts_with("srgb") => Self::identity(),
            (Channels::Rgb | Channels::Rgba, DataColorSpace::Rgb) => {
                let layout = if channels == Channels::Rgba { Layout::Rgba } else { Layout::Rgb };
                match profile.create_transform_8bit(layout, &srgb, layout, options) {
                    Ok(t) => Self { kind: Kind::Rgb(t), operation: op(&name) },
                    Err(_) => Self::identity(),
                }
            }
            (Channels::Rgb, DataColorSpace::Gray) => {
                match profile.create_transform_8bit(Layout::Gray, &srgb, Layout::Rgb, options) {
                    Ok(t) => Self { kind: Kind::Gray(t), operation: op(&name) },
                    Err(_) => Self::identity(),
                }
            }
            _ => Self::identity(),
        }
    }

    pub(crate) fn is_identity(&self) -> bool {
        matches!(self.kind, Kind::Identity)
    }

    /// sRGB RGB or RGBA pixels from decoded ones.
    pub(crate) fn apply(&self, px: Pixels) -> Pixels {
        let (w, h) = px.dims();
        match &self.kind {
            Kind::Identity => px,
            Kind::Rgb(t) => {
                let mut out = vec![0; px.data.len()];
                match t.transform(&px.data, &mut out) {
                    Ok(()) => Pixels::new(w, h, px.channels, out),
                    Err(_) => px,
                }
            }
            Kind::Gray(t) => {
                let gray: Vec<u8> = px.data.chunks_exact(3).map(|p| p[0]).collect();
                let mut out = vec![0; gray.len() * 3];
                match t.transform(&gray, &mut out) {
                    Ok(()) => Pixels::new(w, h, Channels::Rgb, out),
                    Err(_) => px,
                }
            }
            Kind::CmykIcc { transform, inverted } => {
                let mut cmyk = px.data;
                if *inverted {
                    cmyk.iter_mut().for_each(|v| *v = 255 - *v);
                }
                let mut out = vec![0; cmyk.len() / 4 * 3];
                match transform.transform(&cmyk, &mut out) {
                    Ok(()) => Pixels::new(w, h, Channels::Rgb, out),
                    Err(_) => {
                        if *inverted {
                            cmyk.iter_mut().for_each(|v| *v = 255 - *v);
                        }
                        naive_cmyk(&Pixels::new(w, h, Channels::Cmyk, cmyk), *inverted)
                    }
                }
            }
            Kind::CmykNaive { inverted } => naive_cmyk(&px, *inverted),
        }
    }
}

/// R = (1-C)(1-K) etc., on samples where 255 means full ink (or no ink, if `inverted`).
fn naive_cmyk(px: &Pixels, inverted: bool) -> Pixels {
    let out = px
        .data
        .chunks_exact(4)
        .flat_map(|p| {
            let ink = |v: u8| if inverted { 255 - u32::from(v) } else { u32::from(v) };
            let k = 255 - ink(p[3]);
            let ch = |v: u8| (((255 - ink(v)) * k + 127) / 255) as u8;
            [ch(p[0]), ch(p[1]), ch(p[2])]
        })
        .collect();
    Pixels::new(px.width, px.height, Channels::Rgb, out)
}

/// A short slug of the profile's description, e.g. `adobe-rgb-1998`, for provenance.
fn profile_name(profile: &ColorProfile) -> String {
    let text = match &profile.description {
        Some(ProfileText::PlainString(s)) => s.clone(),
        Some(ProfileText::Localizable(v)) => v.first().map(|l| l.value.clone()).unwrap_or_default(),
        Some(ProfileText::Description(d)) => d.ascii_string.clone(),
        None => String::new(),
    };
    let mut slug = String::new();
    for c in text.chars().take(48) {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        match profile.color_space {
            DataColorSpace::Cmyk => "cmyk".into(),
            DataColorSpace::Gray => "gray".into(),
            _ => "rgb".into(),
        }
    } else {
        slug.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_cmyk_handles_adobe_inversion() {
        let px = Pixels::new(2, 1, Channels::Cmyk, vec![0, 0, 0, 0, 255, 255, 255, 255]);
        assert_eq!(naive_cmyk(&px, false).data, [255, 255, 255, 0, 0, 0]);
        assert_eq!(naive_cmyk(&px, true).data, [0, 0, 0, 255, 255, 255]);
    }

    #[test]
    fn untagged_rgb_is_left_alone() {
        assert!(ColorConversion::new(Channels::Rgb, None, false).is_identity());
        assert!(ColorConversion::new(Channels::Rgb, Some(b"not a profile"), false).is_identity());
        assert!(!ColorConversion::new(Channels::Cmyk, None, true).is_identity());
    }
}
