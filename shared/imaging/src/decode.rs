//! Decoding: JPEG with libjpeg-turbo (scaled in the DCT domain, so a 20 MP photo is never
//! materialised at full size), PNG and WebP with the `image` crate under allocation limits.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::{ImageFormat, ImageLimits, ImagingError};

/// Largest bytes-per-pixel a decoder may produce from an accepted format (16-bit RGBA PNG).
const MAX_BYTES_PER_PIXEL: u64 = 8;
/// Decoder working memory beyond the output buffer (row buffers, tables, a JPEG's copy of input).
const DECODER_SLACK: u64 = 64 * 1024 * 1024;
/// Progressive JPEGs with more scans than this are refused: legitimate encoders write about ten,
/// and each scan costs a pass over the whole coefficient buffer (a known CPU-exhaustion attack).
const MAX_JPEG_SCANS: u32 = 500;

/// Interleaved 8-bit samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channels {
    Rgb,
    /// Unassociated alpha.
    Rgba,
    /// As stored in the file (Adobe's are inverted: 255 is no ink).
    Cmyk,
}

impl Channels {
    pub(crate) fn count(self) -> usize {
        match self {
            Self::Rgb => 3,
            Self::Rgba | Self::Cmyk => 4,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: Channels,
    pub data: Vec<u8>,
}

impl Pixels {
    pub(crate) fn new(width: u32, height: u32, channels: Channels, data: Vec<u8>) -> Self {
        debug_assert_eq!(data.len(), width as usize * height as usize * channels.count());
        Self { width, height, channels, data }
    }

    pub(crate) fn dims(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// What the decoder produced, in stored orientation and the file's colour space.
pub(crate) struct Decoded {
    pub pixels: Pixels,
    pub icc: Option<Vec<u8>>,
    /// CMYK samples are inverted (Adobe APP14 present).
    pub inverted_cmyk: bool,
    /// Provenance, e.g. `decode:jpeg:scale=3/8`.
    pub operation: String,
}

/// The DCT scaling factors libjpeg-turbo offers at or below 1, smallest first.
const SCALES: [(usize, usize); 8] = [(1, 8), (1, 4), (3, 8), (1, 2), (5, 8), (3, 4), (7, 8), (1, 1)];

/// Dimensions libjpeg-turbo produces for `dim` at `num/denom` (TJSCALED: rounded up).
pub(crate) fn scaled_dim(dim: u32, (num, denom): (usize, usize)) -> u32 {
    (dim as usize * num).div_ceil(denom) as u32
}

/// The smallest DCT scale whose output still satisfies `enough(scaled_width, scaled_height)`.
pub(crate) fn pick_jpeg_scale(width: u32, height: u32, enough: impl Fn(u32, u32) -> bool) -> (usize, usize) {
    SCALES.into_iter().find(|&s| enough(scaled_dim(width, s), scaled_dim(height, s))).unwrap_or((1, 1))
}

fn tj_err(e: turbojpeg::Error) -> ImagingError {
    let detail = e.to_string();
    let lower = detail.to_ascii_lowercase();
    if lower.contains("precision") || lower.contains("unsupported") {
        ImagingError::unsupported(format!(
            "this JPEG uses a feature that is not supported ({detail}): re-save it as a baseline JPEG, PNG or WebP"
        ))
    } else {
        ImagingError::CorruptImage { format: Some(ImageFormat::Jpeg), detail }
    }
}

/// JPEG header dimensions, read by libjpeg-turbo (no pixel decode).
pub(crate) fn jpeg_dimensions(bytes: &[u8]) -> Result<(u32, u32), ImagingError> {
    let header = turbojpeg::read_header(bytes).map_err(tj_err)?;
    let dim = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Ok((dim(header.width), dim(header.height)))
}

/// Decodes a JPEG at `scale` (from [`pick_jpeg_scale`]) into RGB, or CMYK for CMYK/YCCK files.
pub(crate) fn decode_jpeg(bytes: &[u8], scale: (usize, usize)) -> Result<Decoded, ImagingError> {
    let markers = JpegMarkers::read(bytes);
    let mut decompressor = turbojpeg::Decompressor::new().map_err(tj_err)?;
    let header = decompressor.read_header(bytes).map_err(tj_err)?;
    // Lossless JPEG cannot be scaled in the DCT domain (it has none).
    let scale = if header.is_lossless { (1, 1) } else { scale };
    decompressor.set_scaling_factor(turbojpeg::ScalingFactor::new(scale.0, scale.1)).map_err(tj_err)?;
    decompressor.set_scan_limit(MAX_JPEG_SCANS).map_err(tj_err)?;
    let cmyk = matches!(header.colorspace, turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK);
    let (channels, format) = if cmyk {
        (Channels::Cmyk, turbojpeg::PixelFormat::CMYK)
    } else {
        (Channels::Rgb, turbojpeg::PixelFormat::RGB)
    };
    let scaled = header.scaled(turbojpeg::ScalingFactor::new(scale.0, scale.1));
    let (width, height) = (scaled.width, scaled.height);
    let pitch = width * channels.count();
    let mut data = vec![0u8; pitch * height];
    let image = turbojpeg::Image { pixels: &mut data[..], width, pitch, height, format };
    decompressor.decompress(bytes, image).map_err(tj_err)?;
    let operation =
        if scale == (1, 1) { "decode:jpeg".to_owned() } else { format!("decode:jpeg:scale={}/{}", scale.0, scale.1) };
    Ok(Decoded {
        pixels: Pixels::new(width as u32, height as u32, channels, data),
        icc: markers.icc,
        inverted_cmyk: cmyk && markers.adobe,
        operation,
    })
}

/// Decodes a PNG or WebP at full size into 8-bit RGB, or RGBA when any pixel is not opaque.
pub(crate) fn decode_other(bytes: &[u8], format: ImageFormat, limits: &ImageLimits) -> Result<Decoded, ImagingError> {
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
    let (width, height) = (image.width(), image.height());
    let bits = if matches!(image, DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_)) {
        "8"
    } else {
        match image.color().bytes_per_pixel() / image.color().channel_count() {
            1 => "8",
            2 => "16",
            _ => "32f",
        }
    };
    let pixels = if image.color().has_alpha() {
        let rgba = image.into_rgba8().into_raw();
        if rgba.chunks_exact(4).all(|p| p[3] == 255) {
            let rgb = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
            Pixels::new(width, height, Channels::Rgb, rgb)
        } else {
            Pixels::new(width, height, Channels::Rgba, rgba)
        }
    } else {
        Pixels::new(width, height, Channels::Rgb, image.into_rgb8().into_raw())
    };
    let operation = if bits == "8" { format!("decode:{format}") } else { format!("decode:{format}:{bits}bit->8bit") };
    Ok(Decoded { pixels, icc, inverted_cmyk: false, operation })
}

/// What the marker segments before the first scan say.
#[derive(Debug, Default)]
pub(crate) struct JpegMarkers {
    /// The APP1 EXIF block (TIFF header first).
    pub exif: Option<Vec<u8>>,
    /// The APP2 ICC profile, its chunks joined in sequence order.
    pub icc: Option<Vec<u8>>,
    /// An Adobe APP14 segment is present (CMYK samples are then stored inverted).
    pub adobe: bool,
}

impl JpegMarkers {
    /// Walks the segments up to the first scan. Malformed structure ends the walk; what was found
    /// until then is kept (the decoder is the judge of validity, not this).
    pub(crate) fn read(b: &[u8]) -> Self {
        let mut out = Self::default();
        let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
        let mut i = 2; // after SOI
        while i + 4 <= b.len() && b[i] == 0xFF {
            let marker = b[i + 1];
            if marker == 0xFF {
                i += 1; // fill byte
                continue;
            }
            if marker == 0xDA || marker == 0xD9 {
                break;
            }
            if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
                i += 2;
                continue;
            }
            let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
            let Some(segment) = (len >= 2).then(|| b.get(i + 4..i + 2 + len)).flatten() else {
                break;
            };
            match marker {
                0xE1 if out.exif.is_none() => {
                    if let Some(tiff) = segment.strip_prefix(b"Exif\0\0") {
                        out.exif = Some(tiff.to_vec());
                    }
                }
                0xE2 => {
                    if let Some(rest) = segment.strip_prefix(b"ICC_PROFILE\0")
                        && rest.len() >= 2
                    {
                        icc_chunks.push((rest[0], &rest[2..]));
                    }
                }
                0xEE if segment.starts_with(b"Adobe") => out.adobe = true,
                _ => {}
            }
            i += 2 + len;
        }
        if !icc_chunks.is_empty() {
            icc_chunks.sort_by_key(|(seq, _)| *seq);
            out.icc = Some(icc_chunks.into_iter().flat_map(|(_, c)| c.iter().copied()).collect());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_the_smallest_that_is_big_enough() {
        assert_eq!(pick_jpeg_scale(6028, 3391, |w, _| w >= 2048), (3, 8));
        assert_eq!(pick_jpeg_scale(6028, 3391, |w, _| w >= 32), (1, 8));
        assert_eq!(pick_jpeg_scale(904, 509, |w, _| w >= 904), (1, 1));
        assert_eq!(scaled_dim(3391, (3, 8)), 1272);
    }

    #[test]
    fn markers_are_found_before_the_scan_only() {
        let mut b = vec![0xFF, 0xD8];
        let mut seg = |marker: u8, body: &[u8]| {
            b.extend_from_slice(&[0xFF, marker]);
            b.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
            b.extend_from_slice(body);
        };
        seg(0xE1, b"Exif\0\0II*\0");
        seg(0xE2, b"ICC_PROFILE\0\x02\x02world");
        seg(0xE2, b"ICC_PROFILE\0\x01\x02hello ");
        seg(0xEE, b"Adobe\0\x64\0\0\0\0\x02");
        seg(0xDA, b"\0");
        seg(0xE1, b"Exif\0\0MM\0*");
        let m = JpegMarkers::read(&b);
        assert_eq!(m.exif.as_deref(), Some(&b"II*\0"[..]));
        assert_eq!(m.icc.as_deref(), Some(&b"hello world"[..]));
        assert!(m.adobe);
        assert!(JpegMarkers::read(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF]).exif.is_none());
    }
}
