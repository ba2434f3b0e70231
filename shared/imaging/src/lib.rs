//! Image validation and the derivative pipeline.
//!
//! Uploads are untrusted: everything cheap (size, magic bytes, header dimensions) is checked
//! before anything expensive (a full decode), and the decoder itself runs under allocation limits
//! and inside `catch_unwind`, so a hostile file costs a rejection, never the process.
//!
//! Background jobs use the same checks: [`edit_source`] crops, rotates or flips an upload into a
//! new source for the pipeline, and a [`Watermark`] in [`RenderOptions`] marks chosen presets.

pub mod analysis;
mod color;
mod decode;
mod edit;
mod encode;
mod error;
mod exif_meta;
mod format;
mod pipeline;
mod preset;
mod watermark;

pub use analysis::Analysis;
pub use edit::{CropSpec, EditOp, EditedSource, FlipAxis, Rotation, crop_rect, edit_source};
pub use error::ImagingError;
pub use exif_meta::GpsPosition;
pub use format::{ImageFormat, sniff};
pub use pipeline::{Processed, Rendition, StageTimings, process};
pub use preset::{
    DEFAULT_PRESETS_JSON, Fit, FocalPoint, OutputFormat, Preset, PresetError, PresetSet, Quality, RenderOptions,
};
pub use watermark::{Watermark, WatermarkPosition, decode_logo, placement};

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What an upload may be. Enforced from the header, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLimits {
    pub max_bytes: u64,
    pub max_pixels: u64,
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self { max_bytes: 50 * 1024 * 1024, max_pixels: 100_000_000, max_side: 20_000 }
    }
}

/// What the header says about an upload: enough to decide whether to decode it at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub format: ImageFormat,
    /// Dimensions of the pixel data as stored, before EXIF orientation.
    pub stored_width: u32,
    pub stored_height: u32,
    /// EXIF orientation, 1..=8; 1 when absent or unreadable.
    pub orientation: u16,
    /// Dimensions as displayed, i.e. after orientation (swapped for 5..=8).
    pub width: u32,
    pub height: u32,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    /// EXIF DateTimeOriginal as `YYYY-MM-DDTHH:MM:SS` (no zone: EXIF does not record one).
    pub captured_at: Option<String>,
    pub lens: Option<String>,
    pub artist: Option<String>,
    pub copyright: Option<String>,
    /// Where the photo was taken. Private: never copied into a derivative, and callers decide
    /// whether to keep it at all.
    pub gps: Option<GpsPosition>,
}

/// Reads the header only (no pixel decode) and enforces `limits`, so bombs and oversized files
/// are refused before they can cost memory.
pub fn probe(bytes: &[u8], limits: &ImageLimits) -> Result<Probe, ImagingError> {
    if bytes.is_empty() {
        return Err(ImagingError::EmptyFile);
    }
    let len = bytes.len() as u64;
    if len > limits.max_bytes {
        return Err(ImagingError::FileTooLarge { bytes: len, limit: limits.max_bytes });
    }
    let format = sniff(bytes)?;
    // Header parsing of hostile input is still parsing: contain any panic there too.
    let (stored_width, stored_height, exif) = pipeline::contain("reading the header", || read_header(bytes, format))??;
    check_dimensions(format, stored_width, stored_height, limits)?;

    let meta = exif.as_deref().map(exif_meta::parse).unwrap_or_default();
    let orientation = meta.orientation;
    let (width, height) = if orientation >= 5 { (stored_height, stored_width) } else { (stored_width, stored_height) };
    Ok(Probe {
        format,
        stored_width,
        stored_height,
        orientation,
        width,
        height,
        camera_make: meta.camera_make,
        camera_model: meta.camera_model,
        captured_at: meta.captured_at,
        lens: meta.lens,
        artist: meta.artist,
        copyright: meta.copyright,
        gps: meta.gps,
    })
}

/// Hex SHA-256 of the original's bytes: the content address for derivative keys.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

type Header = (u32, u32, Option<Vec<u8>>);

fn read_header(bytes: &[u8], format: ImageFormat) -> Result<Header, ImagingError> {
    if format == ImageFormat::Jpeg {
        // libjpeg-turbo reads the frame header; EXIF comes from our own walk of the segments.
        let (width, height) = decode::jpeg_dimensions(bytes)?;
        return Ok((width, height, decode::JpegMarkers::read(bytes).exif));
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format.to_image());
    // No dimension limits here: our own checks follow, with better messages. The default memory
    // limit stays, for metadata chunks (e.g. a zlib-bombed PNG profile) read with the header.
    reader.limits(image::Limits::default());
    let mut decoder = reader.into_decoder().map_err(|e| ImagingError::from_image(format, e))?;
    let (width, height) = image::ImageDecoder::dimensions(&decoder);
    // Broken EXIF must not cost the upload: it only loses the metadata.
    let exif = image::ImageDecoder::exif_metadata(&mut decoder).ok().flatten();
    Ok((width, height, exif))
}

fn check_dimensions(format: ImageFormat, width: u32, height: u32, limits: &ImageLimits) -> Result<(), ImagingError> {
    if width == 0 || height == 0 {
        return Err(ImagingError::CorruptImage {
            format: Some(format),
            detail: format!("the header gives {width}x{height} pixels"),
        });
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(ImagingError::DimensionsTooLarge { format, width, height, limit: limits.max_side });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImagingError::TooManyPixels { format, width, height, pixels, limit: limits.max_pixels });
    }
    Ok(())
}
