//! Decode once, resize as a cascade, encode JPEG.

use std::fmt;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use fast_image_resize as fr;
use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageReader, RgbImage};
use tracing::debug;

use crate::{ImageFormat, ImageLimits, ImagingError, Preset, Probe, probe};

/// JPEG quality of every rendition: visually clean for photos at about a tenth of the size of q95.
const JPEG_QUALITY: u8 = 80;
/// Largest bytes-per-pixel a decoder may produce from an accepted format (16-bit RGBA PNG).
const MAX_BYTES_PER_PIXEL: u64 = 8;
/// Decoder working memory beyond the output buffer (row buffers, tables, a JPEG's copy of input).
const DECODER_SLACK: u64 = 64 * 1024 * 1024;

/// One derivative, ready to store.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendition {
    pub preset: String,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// By hand so a logged rendition shows its size, not megabytes of numbers.
impl fmt::Debug for Rendition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendition")
            .field("preset", &self.preset)
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

/// Wall time per stage, for logs and for sizing the function's memory/CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimings {
    /// Full decode plus conversion to 8-bit RGB.
    pub decode: Duration,
    /// All resizes plus orientation and colour conversion of the (small) results.
    pub resize: Duration,
    /// JPEG encoding of all renditions.
    pub encode: Duration,
}

#[derive(Debug, Clone)]
pub struct Processed {
    pub probe: Probe,
    /// In the order of the presets given.
    pub renditions: Vec<Rendition>,
    pub timings: StageTimings,
}

/// Validates an upload and renders one JPEG per preset.
///
/// Limits are checked from the header before anything is decoded; renditions are fresh
/// encodes of pixels only, so no EXIF (GPS, serial numbers) survives into them.
pub fn process(bytes: &[u8], limits: &ImageLimits, presets: &[Preset]) -> Result<Processed, ImagingError> {
    let probe = probe(bytes, limits)?;
    if probe.format == ImageFormat::Jpeg && !jpeg_has_end(bytes) {
        // The JPEG decoder pads a truncated scan with grey rather than failing, so check here.
        return Err(ImagingError::CorruptImage {
            format: Some(ImageFormat::Jpeg),
            detail: "the file ends before the end-of-image marker; it is probably truncated".into(),
        });
    }

    let started = Instant::now();
    let (source, icc) = contain("decoding", || decode_rgb8(bytes, probe.format, limits))??;
    if source.dimensions() != (probe.stored_width, probe.stored_height) {
        return Err(ImagingError::CorruptImage {
            format: Some(probe.format),
            detail: format!(
                "the header says {}x{} but {}x{} pixels were decoded",
                probe.stored_width,
                probe.stored_height,
                source.width(),
                source.height()
            ),
        });
    }
    let decode = started.elapsed();

    let started = Instant::now();
    let resized = contain("resizing", || {
        let mut resized = resize_all(&source, &probe, presets)?;
        if let Some(icc) = &icc {
            to_srgb(icc, &mut resized);
        }
        Ok::<_, ImagingError>(resized)
    })??;
    drop(source);
    let resize = started.elapsed();

    let started = Instant::now();
    let renditions = contain("encoding", || {
        presets
            .iter()
            .zip(resized)
            .map(|(preset, img)| {
                Ok(Rendition {
                    preset: preset.name.clone(),
                    format: ImageFormat::Jpeg,
                    width: img.width(),
                    height: img.height(),
                    bytes: encode_jpeg(&img)?,
                })
            })
            .collect::<Result<Vec<_>, ImagingError>>()
    })??;
    let encode = started.elapsed();

    let timings = StageTimings { decode, resize, encode };
    debug!(?timings, width = probe.width, height = probe.height, "image processed");
    Ok(Processed { probe, renditions, timings })
}

/// Runs codec code so that a panic in it (a bug reachable by crafted input) becomes a rejection.
pub(crate) fn contain<T>(stage: &str, f: impl FnOnce() -> T) -> Result<T, ImagingError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        ImagingError::from_panic(format!("{stage}: {message}"))
    })
}

/// The decoded pixels and the embedded ICC profile, if any.
fn decode_rgb8(
    bytes: &[u8],
    format: ImageFormat,
    limits: &ImageLimits,
) -> Result<(RgbImage, Option<Vec<u8>>), ImagingError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image());
    // Second line of defence behind the header checks in `probe`, in case a decoder disagrees
    // with itself about the dimensions.
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    let max_alloc = limits.max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL).saturating_add(DECODER_SLACK);
    decoder_limits.max_alloc = Some(max_alloc);
    reader.limits(decoder_limits);
    let image_err = |e| ImagingError::from_image(format, e);
    let mut decoder = reader.into_decoder().map_err(image_err)?;
    let output_bytes = decoder.total_bytes();
    if output_bytes > max_alloc {
        return Err(ImagingError::CorruptImage {
            format: Some(format),
            detail: format!("decoding would need {output_bytes} bytes, over the limit of {max_alloc}"),
        });
    }
    // A broken profile only costs colour accuracy, not the upload.
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(image_err)?;
    Ok((into_rgb8_on_white(image), icc))
}

/// JPEG has no alpha; transparent areas become white, which is what a page background shows.
fn into_rgb8_on_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for px in rgba.as_raw().chunks_exact(4) {
        let alpha = u32::from(px[3]);
        for &c in &px[..3] {
            // c*a + 255*(1-a), rounded, in 0..=255.
            rgb.push(((u32::from(c) * alpha + 255 * (255 - alpha) + 127) / 255) as u8);
        }
    }
    RgbImage::from_raw(width, height, rgb).expect("buffer sized for the image")
}

/// Display-space size of a preset: fit the width, keep the aspect ratio, never upscale.
fn target_size(preset_width: u32, display_width: u32, display_height: u32) -> (u32, u32) {
    let width = preset_width.clamp(1, display_width);
    let height =
        (u64::from(display_height) * u64::from(width) + u64::from(display_width) / 2) / u64::from(display_width);
    (width, (height as u32).max(1))
}

/// Resizes in stored orientation and orients the small results, which is much cheaper than
/// rotating the full-size source. Returns one image per preset, in the presets' order.
///
/// Cascade: the largest preset comes from the source; each smaller one from the previous
/// rendition when that is at least twice its width (quality is indistinguishable at these
/// ratios, and filtering a 1280px image is far cheaper than a 20 MP one).
fn resize_all(source: &RgbImage, probe: &Probe, presets: &[Preset]) -> Result<Vec<RgbImage>, ImagingError> {
    let transposed = probe.orientation >= 5;
    let mut order: Vec<usize> = (0..presets.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(presets[i].width));

    let mut resizer = fr::Resizer::new();
    let options = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    let mut done: Vec<Option<RgbImage>> = vec![None; presets.len()];
    let mut previous: Option<(usize, u32)> = None; // (preset index, display width)
    for i in order {
        let (width, height) = target_size(presets[i].width, probe.width, probe.height);
        let (stored_w, stored_h) = if transposed { (height, width) } else { (width, height) };
        let from = match previous {
            Some((p, prev_width)) if prev_width >= width.saturating_mul(2) => {
                done[p].as_ref().expect("previous rendition kept")
            }
            _ => source,
        };
        let resized = if from.dimensions() == (stored_w, stored_h) {
            from.clone()
        } else {
            resize(&mut resizer, &options, from, stored_w, stored_h)?
        };
        done[i] = Some(resized);
        previous = Some((i, width));
    }

    let orientation = Orientation::from_exif(probe.orientation as u8).unwrap_or(Orientation::NoTransforms);
    Ok(done
        .into_iter()
        .map(|img| {
            let mut img = DynamicImage::ImageRgb8(img.expect("every preset rendered"));
            img.apply_orientation(orientation);
            img.into_rgb8()
        })
        .collect())
}

fn resize(
    resizer: &mut fr::Resizer,
    options: &fr::ResizeOptions,
    from: &RgbImage,
    width: u32,
    height: u32,
) -> Result<RgbImage, ImagingError> {
    let internal =
        |e: &dyn fmt::Display| ImagingError::CorruptImage { format: None, detail: format!("resize failed: {e}") };
    let src = fr::images::ImageRef::new(from.width(), from.height(), from.as_raw(), fr::PixelType::U8x3)
        .map_err(|e| internal(&e))?;
    let mut dst = fr::images::Image::new(width, height, fr::PixelType::U8x3);
    resizer.resize(&src, &mut dst, options).map_err(|e| internal(&e))?;
    Ok(RgbImage::from_raw(width, height, dst.into_vec()).expect("buffer sized for the image"))
}

/// Converts RGB renditions to sRGB, the colour space browsers assume for untagged JPEGs (and
/// ours are untagged). Without this, Adobe RGB and Display P3 photos (most phones) look dull.
///
/// Done on the renditions, not the source: a few hundred thousand pixels instead of millions.
/// Profiles that are not RGB (grey; CMYK, which the decoder has already converted naively) or
/// that cannot be parsed leave the pixels as they are.
fn to_srgb(icc: &[u8], images: &mut [RgbImage]) {
    use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};
    let Ok(profile) = ColorProfile::new_from_slice(icc) else {
        debug!("unreadable ICC profile ignored");
        return;
    };
    if profile.color_space != DataColorSpace::Rgb {
        return;
    }
    let srgb = ColorProfile::new_srgb();
    let Ok(transform) = profile.create_transform_8bit(Layout::Rgb, &srgb, Layout::Rgb, TransformOptions::default())
    else {
        debug!("ICC profile without a usable RGB transform ignored");
        return;
    };
    for image in images {
        let mut out = vec![0; image.as_raw().len()];
        if transform.transform(image.as_raw(), &mut out).is_ok() {
            *image = RgbImage::from_raw(image.width(), image.height(), out).expect("same size");
        }
    }
}

fn encode_jpeg(img: &RgbImage) -> Result<Vec<u8>, ImagingError> {
    let mut out = Vec::with_capacity(img.as_raw().len() / 8);
    JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode(img.as_raw(), img.width(), img.height(), ExtendedColorType::Rgb8)
        .map_err(|e| ImagingError::CorruptImage { format: None, detail: format!("JPEG encoding failed: {e}") })?;
    Ok(out)
}

/// Whether the main image's entropy-coded data is followed by an EOI marker (FF D9).
///
/// Marker segments are walked up to the first scan so that an EOI inside an embedded EXIF
/// thumbnail does not count; after that, FF D9 cannot occur except as a marker (0xFF bytes in
/// scan data are stuffed with 0x00). Unparseable structure is left to the decoder to judge.
fn jpeg_has_end(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    let scan_start = loop {
        if i >= b.len() {
            return false;
        }
        if b[i] != 0xFF {
            break 2; // malformed segment chain: fall back to searching the whole file
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1; // fill bytes
        }
        let Some(&marker) = b.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0x01 | 0xD0..=0xD8 => {}
            0xD9 => return false,
            0xDA => break i,
            _ => {
                let Some(len) = b.get(i..i + 2).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))) else {
                    return false;
                };
                i += len.max(2);
            }
        }
    };
    b[scan_start..].windows(2).rev().any(|w| w == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_sizes_fit_width_and_never_upscale() {
        assert_eq!(target_size(1280, 6028, 3391), (1280, 720));
        assert_eq!(target_size(1280, 904, 509), (904, 509));
        assert_eq!(target_size(320, 2056, 3088), (320, 481));
        assert_eq!(target_size(320, 10_000, 1), (320, 1));
        assert_eq!(target_size(0, 100, 50), (1, 1));
    }

    #[test]
    fn eoi_is_required_after_the_scan() {
        let head = [0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0x00, 0x00, 0xFF, 0xDA, 0x00, 0x02, 1, 2, 3];
        assert!(!jpeg_has_end(&head), "EOI inside APP1 must not count");
        let mut whole = head.to_vec();
        whole.extend_from_slice(&[0xFF, 0x00, 0xFF, 0xD9]);
        assert!(jpeg_has_end(&whole));
        whole.extend_from_slice(b"trailing junk");
        assert!(jpeg_has_end(&whole));
    }

    #[test]
    fn alpha_is_flattened_onto_white() {
        let rgba = image::RgbaImage::from_raw(3, 1, vec![0, 0, 0, 0, 0, 0, 0, 255, 100, 0, 0, 128]).unwrap();
        let rgb = into_rgb8_on_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.as_raw(), &[255, 255, 255, 0, 0, 0, 177, 127, 127]);
    }
}
