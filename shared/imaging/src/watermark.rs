//! A logo blended onto the renditions of chosen presets.
//!
//! The logo is scaled to each rendition (a fraction of its width), not drawn at a fixed size, so
//! a thumbnail and a full-screen image carry the same mark in proportion. It is blended after the
//! rendition's pixels are final, so the cascade still resizes smaller renditions from clean
//! larger ones, and presets that are not named come out bit for bit as without a watermark.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use fast_image_resize as fr;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::color::ColorConversion;
use crate::decode::{Channels, Pixels};
use crate::pipeline::contain;
use crate::{ImageFormat, ImagingError, sniff};

/// Largest logo file accepted: a logo has no business being bigger, and it is decoded per job.
const MAX_LOGO_BYTES: usize = 4 * 1024 * 1024;
/// Largest logo side: more than any rendition needs (presets stop at 8192, logos cover a part).
const MAX_LOGO_SIDE: u32 = 4096;
/// Largest margin, as a fraction of the rendition's shorter side.
const MAX_MARGIN: f32 = 0.25;

/// The corner (or the centre) of the rendition the logo is placed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatermarkPosition {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
    Center,
}

impl WatermarkPosition {
    /// Stable snake_case name, as in JSON and provenance.
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

impl fmt::Display for WatermarkPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A logo and where, how large and how strongly it is blended onto which presets' renditions.
///
/// The logo is shared (`Arc`): it is decoded once ([`decode_logo`]) and used by every job.
#[derive(Clone, PartialEq)]
pub struct Watermark {
    /// Straight (not premultiplied) sRGB RGBA.
    pub logo: Arc<RgbaImage>,
    pub position: WatermarkPosition,
    /// Fraction of the rendition's shorter side between the logo and the edges (0..=0.25).
    pub margin: f32,
    /// Logo width as a fraction of the rendition's width (0 < scale <= 1).
    pub scale: f32,
    /// 0 < opacity <= 1; multiplies the logo's own alpha.
    pub opacity: f32,
    /// Only renditions of these presets are watermarked.
    pub presets: Vec<String>,
}

/// By hand so a logged watermark shows the logo's size, not its pixels.
impl fmt::Debug for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watermark")
            .field("logo", &format_args!("<{}x{} RGBA>", self.logo.width(), self.logo.height()))
            .field("position", &self.position)
            .field("margin", &self.margin)
            .field("scale", &self.scale)
            .field("opacity", &self.opacity)
            .field("presets", &self.presets)
            .finish()
    }
}

impl Watermark {
    /// Whether renditions of `preset` get the logo.
    pub fn applies_to(&self, preset: &str) -> bool {
        self.presets.iter().any(|p| p == preset)
    }

    /// Checks the settings' ranges (NaN is out of every range) and that there is a logo.
    /// [`process`](crate::process) calls this before decoding anything.
    pub fn validate(&self) -> Result<(), ImagingError> {
        let invalid = |detail: String| Err(ImagingError::InvalidWatermark { detail });
        if !(0.0..=MAX_MARGIN).contains(&self.margin) {
            return invalid(format!("margin {} is not between 0 and {MAX_MARGIN}", self.margin));
        }
        if !(self.scale > 0.0 && self.scale <= 1.0) {
            return invalid(format!("scale {} is not above 0 and at most 1", self.scale));
        }
        if !(self.opacity > 0.0 && self.opacity <= 1.0) {
            return invalid(format!("opacity {} is not above 0 and at most 1", self.opacity));
        }
        if self.logo.width() == 0 || self.logo.height() == 0 {
            return Err(ImagingError::InvalidLogo { detail: "the logo has no pixels".into() });
        }
        Ok(())
    }

    /// Provenance: `watermark:{position}:{scale}:{opacity}`.
    pub(crate) fn operation(&self) -> String {
        format!("watermark:{}:{}:{}", self.position, self.scale, self.opacity)
    }
}

/// Where the logo lands on a rendition of this size: (x, y, width, height); aspect kept, at least
/// 1x1, inside the image.
///
/// The logo is `scale` of the image's width, or less when it would be taller than the image. It
/// keeps `margin` (of the shorter side) from the edges of its corner; where logo and margins do
/// not all fit, the logo stays inside the image and the margin gives way.
pub fn placement(
    image_width: u32,
    image_height: u32,
    logo_width: u32,
    logo_height: u32,
    mark: &Watermark,
) -> (u32, u32, u32, u32) {
    let (iw, ih) = (image_width.max(1), image_height.max(1));
    let logo_aspect = f64::from(logo_width.max(1)) / f64::from(logo_height.max(1));
    let fraction = |v: f32, max: f32| if v.is_nan() { 0.0 } else { f64::from(v.clamp(0.0, max)) };
    let mut w = f64::from(iw) * fraction(mark.scale, 1.0);
    let mut h = w / logo_aspect;
    if h > f64::from(ih) {
        h = f64::from(ih);
        w = h * logo_aspect;
    }
    let (w, h) = ((w.round() as u32).clamp(1, iw), (h.round() as u32).clamp(1, ih));
    let margin = (f64::from(iw.min(ih)) * fraction(mark.margin, MAX_MARGIN)).round() as u32;
    let (free_x, free_y) = (iw - w, ih - h);
    let (near_x, far_x, mid_x) = (margin.min(free_x), free_x.saturating_sub(margin), free_x / 2);
    let (near_y, far_y, mid_y) = (margin.min(free_y), free_y.saturating_sub(margin), free_y / 2);
    let (x, y) = match mark.position {
        WatermarkPosition::TopLeft => (near_x, near_y),
        WatermarkPosition::TopRight => (far_x, near_y),
        WatermarkPosition::BottomLeft => (near_x, far_y),
        WatermarkPosition::BottomRight => (far_x, far_y),
        WatermarkPosition::Center => (mid_x, mid_y),
    };
    (x, y, w, h)
}

/// What a logo must be, for messages.
const NEEDED: &str = "the logo must be a PNG with transparency (an alpha channel)";

fn invalid_logo(detail: impl Into<String>) -> ImagingError {
    ImagingError::InvalidLogo { detail: detail.into() }
}

/// Reads an uploaded logo: must be a PNG with an alpha channel, at most 4096x4096 and 4 MiB;
/// anything else is [`ImagingError::InvalidLogo`] with a clear message.
///
/// Size and type are checked from the header before the pixels are decoded; an embedded ICC
/// profile is applied, so the logo is sRGB like the renditions it is blended onto.
pub fn decode_logo(png: &[u8]) -> Result<RgbaImage, ImagingError> {
    if png.len() > MAX_LOGO_BYTES {
        return Err(invalid_logo(format!(
            "the file is {} bytes, over the limit of {MAX_LOGO_BYTES} bytes (4 MiB)",
            png.len()
        )));
    }
    match sniff(png) {
        Ok(ImageFormat::Png) => {}
        Ok(other) => return Err(invalid_logo(format!("{NEEDED}; this file is a {}", other.label()))),
        Err(e) => return Err(invalid_logo(format!("{NEEDED}; {e}"))),
    }
    contain("decoding the logo", || read_logo(png))?
}

fn read_logo(png: &[u8]) -> Result<RgbaImage, ImagingError> {
    let corrupt = |e: image::ImageError| invalid_logo(format!("the PNG could not be decoded: {e}"));
    let mut reader = ImageReader::with_format(Cursor::new(png), image::ImageFormat::Png);
    // Dimensions are checked below, with a better message; the default memory limit stays.
    reader.limits(image::Limits::default());
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if width > MAX_LOGO_SIDE || height > MAX_LOGO_SIDE {
        return Err(invalid_logo(format!(
            "the logo is {width}x{height} pixels; neither side may exceed {MAX_LOGO_SIDE}"
        )));
    }
    if !decoder.color_type().has_alpha() {
        return Err(invalid_logo(format!(
            "this PNG has no transparency (its pixels are {:?}); {NEEDED}",
            decoder.original_color_type()
        )));
    }
    // A broken profile only costs colour accuracy.
    let icc = decoder.icc_profile().ok().flatten();
    let rgba = DynamicImage::from_decoder(decoder).map_err(corrupt)?.into_rgba8();
    let color = ColorConversion::new(Channels::Rgba, icc.as_deref(), false);
    if color.is_identity() {
        return Ok(rgba);
    }
    let (w, h) = rgba.dimensions();
    let px = color.apply(Pixels::new(w, h, Channels::Rgba, rgba.into_raw()));
    Ok(RgbaImage::from_raw(w, h, px.data).expect("the conversion keeps the size"))
}

/// Blends `mark`'s logo onto a rendition's final sRGB pixels, source-over, at [`placement`].
pub(crate) fn apply(px: &mut Pixels, mark: &Watermark) -> Result<(), ImagingError> {
    let logo = &*mark.logo;
    let (x, y, w, h) = placement(px.width, px.height, logo.width(), logo.height(), mark);
    let resized;
    let logo: &[u8] = if logo.dimensions() == (w, h) {
        logo.as_raw()
    } else {
        resized = resize(logo, w, h)?;
        &resized
    };
    let opacity = mark.opacity.clamp(0.0, 1.0);
    let n = px.channels.count();
    let stride = px.width as usize * n;
    for (row, logo_row) in logo.chunks_exact(w as usize * 4).enumerate() {
        let start = (y as usize + row) * stride + x as usize * n;
        let dst_row = &mut px.data[start..start + w as usize * n];
        for (dst, src) in dst_row.chunks_exact_mut(n).zip(logo_row.chunks_exact(4)) {
            blend(dst, src, opacity);
        }
    }
    Ok(())
}

/// Source-over of one straight-alpha RGBA logo pixel onto an RGB or straight-alpha RGBA pixel.
fn blend(dst: &mut [u8], src: &[u8], opacity: f32) {
    let a = f32::from(src[3]) / 255.0 * opacity;
    if a <= 0.0 {
        return;
    }
    let to_u8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    if dst.len() == 3 {
        for c in 0..3 {
            dst[c] = to_u8(f32::from(src[c]) * a + f32::from(dst[c]) * (1.0 - a));
        }
    } else {
        let da = f32::from(dst[3]) / 255.0;
        let out_a = a + da * (1.0 - a);
        for c in 0..3 {
            dst[c] = to_u8((f32::from(src[c]) * a + f32::from(dst[c]) * da * (1.0 - a)) / out_a);
        }
        dst[3] = to_u8(out_a * 255.0);
    }
}

/// The logo at `w`x`h`: Lanczos3, alpha-aware (premultiplied while filtering, so transparent
/// pixels' colours do not bleed into the edges).
fn resize(logo: &RgbaImage, w: u32, h: u32) -> Result<Vec<u8>, ImagingError> {
    let internal = |e: &dyn fmt::Display| ImagingError::CorruptImage {
        format: None,
        detail: format!("resizing the watermark failed: {e}"),
    };
    let src = fr::images::ImageRef::new(logo.width(), logo.height(), logo.as_raw(), fr::PixelType::U8x4)
        .map_err(|e| internal(&e))?;
    let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8x4);
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3)).use_alpha(true);
    fr::Resizer::new().resize(&src, &mut dst, &options).map_err(|e| internal(&e))?;
    Ok(dst.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(position: WatermarkPosition, margin: f32, scale: f32) -> Watermark {
        Watermark {
            logo: Arc::new(RgbaImage::new(200, 100)),
            position,
            margin,
            scale,
            opacity: 1.0,
            presets: vec!["medium".into()],
        }
    }

    #[test]
    fn placement_keeps_the_aspect_and_the_margin() {
        use WatermarkPosition::*;
        // 640x360, logo 2:1 at a quarter of the width: 160x80, 18 px (5 % of 360) from the edges.
        assert_eq!(placement(640, 360, 200, 100, &mark(BottomRight, 0.05, 0.25)), (462, 262, 160, 80));
        assert_eq!(placement(640, 360, 200, 100, &mark(TopLeft, 0.05, 0.25)), (18, 18, 160, 80));
        assert_eq!(placement(640, 360, 200, 100, &mark(TopRight, 0.05, 0.25)), (462, 18, 160, 80));
        assert_eq!(placement(640, 360, 200, 100, &mark(BottomLeft, 0.05, 0.25)), (18, 262, 160, 80));
        assert_eq!(placement(640, 360, 200, 100, &mark(Center, 0.05, 0.25)), (240, 140, 160, 80));
        // Too tall at full width: as tall as the image instead.
        assert_eq!(placement(100, 20, 200, 100, &mark(BottomRight, 0.0, 1.0)), (60, 0, 40, 20));
        // Margins give way rather than push the logo out.
        assert_eq!(placement(100, 100, 200, 100, &mark(BottomRight, 0.25, 1.0)), (0, 25, 100, 50));
        // Never below 1x1, even for nonsense.
        assert_eq!(placement(1, 1, 0, 0, &mark(Center, f32::NAN, f32::NAN)), (0, 0, 1, 1));
    }

    #[test]
    fn settings_are_validated() {
        let ok = mark(WatermarkPosition::Center, 0.05, 0.25);
        assert!(ok.validate().is_ok());
        for bad in [
            Watermark { margin: 0.3, ..ok.clone() },
            Watermark { scale: 0.0, ..ok.clone() },
            Watermark { scale: 1.5, ..ok.clone() },
            Watermark { opacity: 0.0, ..ok.clone() },
            Watermark { opacity: f32::NAN, ..ok.clone() },
        ] {
            let e = bad.validate().unwrap_err();
            assert_eq!(e.code(), "invalid_watermark", "{bad:?}: {e}");
        }
        let empty = Watermark { logo: Arc::new(RgbaImage::new(0, 0)), ..ok };
        assert_eq!(empty.validate().unwrap_err().code(), "invalid_logo");
    }

    #[test]
    fn blending_is_source_over() {
        let mut rgb = [0, 100, 200];
        blend(&mut rgb, &[255, 255, 255, 255], 0.5);
        assert_eq!(rgb, [128, 178, 228]);
        let mut rgb = [10, 20, 30];
        blend(&mut rgb, &[255, 0, 0, 0], 1.0);
        assert_eq!(rgb, [10, 20, 30], "transparent logo pixels change nothing");
        // Onto a transparent pixel the logo's own colour shows, at its alpha.
        let mut rgba = [0, 0, 0, 0];
        blend(&mut rgba, &[255, 0, 0, 128], 1.0);
        assert_eq!(rgba, [255, 0, 0, 128]);
        let mut rgba = [0, 0, 255, 255];
        blend(&mut rgba, &[255, 0, 0, 255], 0.5);
        assert_eq!(rgba, [128, 0, 128, 255]);
    }
}
