//! Decoding the upload once, scaled to what the jobs need, and the checks around it.

use super::pixels::orient;
use super::plan::Job;
use crate::color::ColorConversion;
use crate::decode::{self, Decoded, Pixels};
use crate::{ImageFormat, ImageLimits, ImagingError, Probe};

/// Decodes once, as small as every job that is rendered from the source allows.
pub(super) fn decode_source(
    bytes: &[u8],
    probe: &Probe,
    limits: &ImageLimits,
    jobs: &[Job<'_>],
) -> Result<Decoded, ImagingError> {
    let (stored_w, stored_h) = (probe.stored_width, probe.stored_height);
    let decoded = match probe.format {
        ImageFormat::Jpeg => {
            let transposed = probe.orientation >= 5;
            // Enough when no job would be upscaled from the decoded image.
            let enough = |sw: u32, sh: u32| {
                let (dw, dh) = if transposed { (sh, sw) } else { (sw, sh) };
                let (fx, fy) = (f64::from(dw) / f64::from(probe.width), f64::from(dh) / f64::from(probe.height));
                jobs.iter().all(|j| {
                    j.region.w * fx + 1e-6 >= f64::from(j.out.0) && j.region.h * fy + 1e-6 >= f64::from(j.out.1)
                })
            };
            let scale = decode::pick_jpeg_scale(stored_w, stored_h, enough);
            let decoded = decode::decode_jpeg(bytes, scale)?;
            let expected = (decode::scaled_dim(stored_w, scale), decode::scaled_dim(stored_h, scale));
            check_decoded_size(probe.format, &decoded, expected)?;
            decoded
        }
        ImageFormat::Png | ImageFormat::Webp => {
            let decoded = decode::decode_other(bytes, probe.format, limits)?;
            check_decoded_size(probe.format, &decoded, (stored_w, stored_h))?;
            decoded
        }
    };
    Ok(decoded)
}

/// Decodes at full size and returns the pixels upright and in sRGB: for edits, which make a new
/// source and so need every pixel, and whose result must look exactly as the pipeline would have
/// shown the original.
pub(crate) fn decode_upright(bytes: &[u8], probe: &Probe, limits: &ImageLimits) -> Result<Pixels, ImagingError> {
    let stored = (probe.stored_width, probe.stored_height);
    let decoded = match probe.format {
        ImageFormat::Jpeg => decode::decode_jpeg(bytes, (1, 1))?,
        ImageFormat::Png | ImageFormat::Webp => decode::decode_other(bytes, probe.format, limits)?,
    };
    check_decoded_size(probe.format, &decoded, stored)?;
    let Decoded { pixels, icc, inverted_cmyk, operation } = decoded;
    let color = ColorConversion::new(pixels.channels, icc.as_deref(), inverted_cmyk);
    // The provenance of a new source is the edit itself; how the original was read is not kept.
    let mut ops = vec![operation];
    Ok(finish(&color, probe.orientation, pixels, &mut ops))
}

fn check_decoded_size(format: ImageFormat, decoded: &Decoded, expected: (u32, u32)) -> Result<(), ImagingError> {
    if decoded.pixels.dims() == expected {
        return Ok(());
    }
    let (w, h) = decoded.pixels.dims();
    Err(ImagingError::CorruptImage {
        format: Some(format),
        detail: format!("the header promises {}x{} pixels but {w}x{h} were decoded", expected.0, expected.1),
    })
}

/// The decoded pixels with what still has to happen to them to be sRGB and upright.
pub(super) struct Source {
    pub(super) pixels: Pixels,
    pub(super) orientation: u16,
    pub(super) color: ColorConversion,
    pub(super) operations: Vec<String>,
}

impl Source {
    /// sRGB, oriented, and the provenance of both.
    pub(super) fn finish(&self, px: Pixels, ops: &mut Vec<String>) -> Pixels {
        finish(&self.color, self.orientation, px, ops)
    }
}

/// Converts `px` to sRGB, then applies EXIF `orientation`, noting both in `ops`.
fn finish(color: &ColorConversion, orientation: u16, px: Pixels, ops: &mut Vec<String>) -> Pixels {
    let px = color.apply(px);
    ops.extend(color.operation.clone());
    if (2..=8).contains(&orientation) {
        ops.push(format!("orient:{orientation}"));
        orient(&px, orientation)
    } else {
        px
    }
}

/// Whether the main image's entropy-coded data is followed by an EOI marker (FF D9).
///
/// Marker segments are walked up to the first scan so that an EOI inside an embedded EXIF
/// thumbnail does not count; after that, FF D9 cannot occur except as a marker (0xFF bytes in
/// scan data are stuffed with 0x00). Unparseable structure is left to the decoder to judge.
pub(super) fn jpeg_has_end(b: &[u8]) -> bool {
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
    fn eoi_is_required_after_the_scan() {
        let head = [0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0x00, 0x00, 0xFF, 0xDA, 0x00, 0x02, 1, 2, 3];
        assert!(!jpeg_has_end(&head), "EOI inside APP1 must not count");
        let mut whole = head.to_vec();
        whole.extend_from_slice(&[0xFF, 0x00, 0xFF, 0xD9]);
        assert!(jpeg_has_end(&whole));
        whole.extend_from_slice(b"trailing junk");
        assert!(jpeg_has_end(&whole));
    }
}
