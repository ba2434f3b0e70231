//! Edits that make a new source image: crop, rotate, flip.
//!
//! An edit is applied once, to the whole image, and its result replaces the original as the
//! source of every rendition. So the result is written the way the pipeline would show the
//! original (upright, sRGB) and with enough quality to be rendered again: [`process`] then treats
//! it like any upload, and the derivatives of an edited photo look exactly like those of a photo
//! taken that way.
//!
//! [`process`]: crate::process

use std::fmt;

use image::{ImageBuffer, Pixel, imageops};

use crate::decode::{Channels, Pixels};
use crate::pipeline::{check_complete, contain, decode_upright, finish_image};
use crate::{FocalPoint, ImageFormat, ImageLimits, ImagingError, encode};

/// One edit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EditOp {
    Crop(CropSpec),
    Rotate(Rotation),
    Flip(FlipAxis),
}

/// Which part of the image a crop keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CropSpec {
    /// A rectangle in the displayed (EXIF-oriented) image's pixels.
    Rect { x: u32, y: u32, width: u32, height: u32 },
    /// The largest rectangle of this aspect ratio (width:height) that fits, centred on the focal
    /// point as far as the edges allow.
    Aspect { width: u32, height: u32, focal: FocalPoint },
}

/// A clockwise rotation by a multiple of 90°: the only ones that lose nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Clockwise90,
    Half,
    Clockwise270,
}

impl Rotation {
    /// 90, 180 or 270 (clockwise); anything else is not a rotation we make.
    pub fn from_degrees(degrees: u32) -> Option<Self> {
        match degrees {
            90 => Some(Self::Clockwise90),
            180 => Some(Self::Half),
            270 => Some(Self::Clockwise270),
            _ => None,
        }
    }

    /// Clockwise degrees.
    pub fn degrees(self) -> u32 {
        match self {
            Self::Clockwise90 => 90,
            Self::Half => 180,
            Self::Clockwise270 => 270,
        }
    }
}

/// The axis a flip mirrors across.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlipAxis {
    /// Mirror left-right.
    Horizontal,
    /// Mirror top-bottom.
    Vertical,
}

impl FlipAxis {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Horizontal => "horizontal",
            Self::Vertical => "vertical",
        }
    }
}

/// The new source image an edit made.
#[derive(Clone, PartialEq, Eq)]
pub struct EditedSource {
    pub bytes: Vec<u8>,
    /// JPEG for opaque images, PNG for images with alpha.
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// The edit, e.g. `["crop:120,80,1600x900"]`, `["rotate:90"]`, `["flip:horizontal"]`.
    pub operations: Vec<String>,
}

/// By hand so a logged result shows its size, not megabytes of numbers.
impl fmt::Debug for EditedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("EditedSource");
        finish_image(&mut out, &self.format, (self.width, self.height), &self.bytes, &self.operations)
    }
}

/// Applies `op` to an upload and encodes the result as a new source: upright (orientation 1),
/// sRGB, no metadata; JPEG quality 95 4:4:4 when opaque, PNG when it has alpha.
///
/// The upload is checked like [`process`](crate::process) checks it (header limits, truncation)
/// and the edit's geometry before anything is decoded; codec work runs under the panic guard.
pub fn edit_source(bytes: &[u8], limits: &ImageLimits, op: &EditOp) -> Result<EditedSource, ImagingError> {
    let probe = crate::probe(bytes, limits)?;
    check_complete(bytes, &probe)?;
    // A bad crop is refused from the header's size, before paying for a full decode.
    let edit = match *op {
        EditOp::Crop(spec) => {
            let (x, y, width, height) = crop_rect(probe.width, probe.height, &spec)?;
            Edit::Crop { x, y, width, height }
        }
        EditOp::Rotate(r) => Edit::Rotate(r),
        EditOp::Flip(axis) => Edit::Flip(axis),
    };
    let pixels = contain("decoding", || decode_upright(bytes, &probe, limits))??;
    let edited = contain("editing", || edit.apply(pixels))?;
    let (bytes, format) = contain("encoding", || encode::master(&edited))??;
    Ok(EditedSource { bytes, format, width: edited.width, height: edited.height, operations: vec![edit.to_string()] })
}

/// The rectangle `(x, y, width, height)` a crop keeps of an image displayed
/// `image_width`x`image_height`. Pure geometry, so callers can show or check the result first.
///
/// An `Aspect` crop is as large as the image allows, sides rounded to whole pixels (so the ratio
/// is exact only to the nearest pixel), at least 1x1.
pub fn crop_rect(image_width: u32, image_height: u32, spec: &CropSpec) -> Result<(u32, u32, u32, u32), ImagingError> {
    let (iw, ih) = (image_width, image_height);
    let invalid = |what: String| Err(ImagingError::InvalidEdit { detail: format!("the image is {iw}x{ih}; {what}") });
    if iw == 0 || ih == 0 {
        return invalid("there is nothing to crop".into());
    }
    match *spec {
        CropSpec::Rect { x, y, width, height } => {
            if width == 0 || height == 0 {
                return invalid(format!("the crop {width}x{height} is empty"));
            }
            let (right, bottom) = (u64::from(x) + u64::from(width), u64::from(y) + u64::from(height));
            if right > u64::from(iw) || bottom > u64::from(ih) {
                return invalid(format!(
                    "the crop {width}x{height} at {x},{y} reaches {right},{bottom}, outside the image"
                ));
            }
            Ok((x, y, width, height))
        }
        CropSpec::Aspect { width: aw, height: ah, focal } => {
            if aw == 0 || ah == 0 {
                return invalid(format!("the aspect ratio {aw}:{ah} has a zero side"));
            }
            let (w, h) = (f64::from(iw), f64::from(ih));
            let aspect = f64::from(aw) / f64::from(ah);
            // Rounded to the nearest pixel: never beyond the image, since the exact side is not.
            let (cw, ch) = if w / h > aspect {
                (((h * aspect).round() as u32).clamp(1, iw), ih)
            } else {
                (iw, ((w / aspect).round() as u32).clamp(1, ih))
            };
            let focal = focal.clamped();
            let place = |centre: f64, side: u32, full: u32| {
                (centre - f64::from(side) / 2.0).round().clamp(0.0, f64::from(full - side)) as u32
            };
            Ok((place(f64::from(focal.x) * w, cw, iw), place(f64::from(focal.y) * h, ch, ih), cw, ch))
        }
    }
}

/// An [`EditOp`] with its geometry resolved against the image.
#[derive(Debug, Clone, Copy)]
enum Edit {
    Crop { x: u32, y: u32, width: u32, height: u32 },
    Rotate(Rotation),
    Flip(FlipAxis),
}

/// Provenance, e.g. `crop:120,80,1600x900`.
impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Crop { x, y, width, height } => write!(f, "crop:{x},{y},{width}x{height}"),
            Self::Rotate(r) => write!(f, "rotate:{}", r.degrees()),
            Self::Flip(axis) => write!(f, "flip:{}", axis.as_str()),
        }
    }
}

impl Edit {
    /// The edit on upright sRGB pixels.
    fn apply(self, px: Pixels) -> Pixels {
        let (width, height, channels) = (px.width, px.height, px.channels);
        let (width, height, data) = match channels {
            Channels::Rgb => {
                let img = image::RgbImage::from_raw(width, height, px.data).expect("pixels fill their size");
                let out = self.apply_to(img);
                (out.width(), out.height(), out.into_raw())
            }
            Channels::Rgba => {
                let img = image::RgbaImage::from_raw(width, height, px.data).expect("pixels fill their size");
                let out = self.apply_to(img);
                (out.width(), out.height(), out.into_raw())
            }
            Channels::Cmyk => unreachable!("colour conversion makes RGB(A)"),
        };
        Pixels::new(width, height, channels, data)
    }

    /// `image::imageops` does the pixel work: in place where it can (180°, flips), into a new
    /// buffer where the shape changes.
    fn apply_to<P: Pixel<Subpixel = u8> + 'static>(self, mut img: ImageBuffer<P, Vec<u8>>) -> ImageBuffer<P, Vec<u8>> {
        match self {
            Self::Crop { x, y, width, height } => imageops::crop_imm(&img, x, y, width, height).to_image(),
            Self::Rotate(Rotation::Clockwise90) => imageops::rotate90(&img),
            Self::Rotate(Rotation::Half) => {
                imageops::rotate180_in_place(&mut img);
                img
            }
            Self::Rotate(Rotation::Clockwise270) => imageops::rotate270(&img),
            Self::Flip(FlipAxis::Horizontal) => {
                imageops::flip_horizontal_in_place(&mut img);
                img
            }
            Self::Flip(FlipAxis::Vertical) => {
                imageops::flip_vertical_in_place(&mut img);
                img
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn centre() -> FocalPoint {
        FocalPoint::default()
    }

    #[test]
    fn rect_crops_are_checked_against_the_image() {
        let rect = |x, y, width, height| CropSpec::Rect { x, y, width, height };
        assert_eq!(crop_rect(100, 50, &rect(10, 5, 90, 45)).unwrap(), (10, 5, 90, 45));
        let e = crop_rect(100, 50, &rect(10, 5, 91, 45)).unwrap_err();
        assert_eq!(e.code(), "invalid_edit");
        assert_eq!(
            e.to_string(),
            "invalid edit: the image is 100x50; the crop 91x45 at 10,5 reaches 101,50, outside the image"
        );
        let e = crop_rect(100, 50, &rect(0, 0, 0, 10)).unwrap_err();
        assert!(e.to_string().contains("100x50") && e.to_string().contains("empty"), "{e}");
        // No overflow near u32::MAX.
        assert!(crop_rect(100, 50, &rect(u32::MAX, 0, 10, 10)).is_err());
    }

    #[test]
    fn aspect_crops_are_the_largest_that_fit_around_the_focal_point() {
        let aspect = |width, height, focal| CropSpec::Aspect { width, height, focal };
        assert_eq!(crop_rect(6028, 3391, &aspect(1, 1, centre())).unwrap(), (1319, 0, 3391, 3391));
        assert_eq!(crop_rect(6028, 3391, &aspect(1, 1, FocalPoint { x: 0.0, y: 0.5 })).unwrap(), (0, 0, 3391, 3391));
        assert_eq!(crop_rect(6028, 3391, &aspect(1, 1, FocalPoint { x: 1.0, y: 0.0 })).unwrap(), (2637, 0, 3391, 3391));
        assert_eq!(crop_rect(2056, 3088, &aspect(16, 9, centre())).unwrap(), (0, 966, 2056, 1157));
        assert_eq!(crop_rect(100, 100, &aspect(1000, 1, centre())).unwrap(), (0, 50, 100, 1), "at least 1x1");
        let e = crop_rect(100, 50, &aspect(0, 1, centre())).unwrap_err();
        assert!(e.to_string().contains("100x50") && e.to_string().contains("0:1"), "{e}");
    }

    #[test]
    fn rotations_are_named_in_degrees() {
        assert_eq!(Rotation::from_degrees(90), Some(Rotation::Clockwise90));
        assert_eq!(Rotation::from_degrees(180), Some(Rotation::Half));
        assert_eq!(Rotation::from_degrees(270), Some(Rotation::Clockwise270));
        assert_eq!(Rotation::from_degrees(0), None);
        assert_eq!(Rotation::from_degrees(45), None);
        assert!([90, 180, 270].iter().all(|&d| Rotation::from_degrees(d).unwrap().degrees() == d));
    }
}
