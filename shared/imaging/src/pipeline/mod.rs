//! Decode once (JPEG: scaled in the DCT domain to just what the largest preset needs), resize as
//! a cascade, convert colour and orient small images rather than the source, encode.

mod pixels;
mod plan;
mod render;
mod source;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use tracing::debug;

use self::plan::{cascade, plan};
use self::render::{Finishing, Rendered, render_and_encode};
pub(crate) use self::source::decode_upright;
use self::source::{decode_source, jpeg_has_end};
use crate::analysis::Analysis;
use crate::{ImageFormat, ImageLimits, ImagingError, OutputFormat, Preset, PresetSet, Probe, RenderOptions};

/// One derivative, ready to store.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendition {
    pub preset: String,
    pub preset_version: u32,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
    /// What was done, in order, e.g. `["decode:jpeg:scale=3/8", "resize:lanczos3:2261x1272->2048x1152",
    /// "encode:jpeg:q80:420:progressive:optimized"]`.
    pub operations: Vec<String>,
}

/// By hand so a logged rendition shows its size, not megabytes of numbers.
impl fmt::Debug for Rendition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Rendition");
        out.field("preset", &self.preset).field("preset_version", &self.preset_version);
        finish_image(&mut out, &self.format, (self.width, self.height), &self.bytes, &self.operations)
    }
}

/// The fields an encoded image's `Debug` ends with: its format, dimensions, the size of its
/// bytes (not the bytes) and the operations that made it.
pub(crate) fn finish_image(
    out: &mut fmt::DebugStruct<'_, '_>,
    format: &dyn fmt::Debug,
    (width, height): (u32, u32),
    bytes: &[u8],
    operations: &[String],
) -> fmt::Result {
    out.field("format", format)
        .field("width", &width)
        .field("height", &height)
        .field("bytes", &format_args!("<{} bytes>", bytes.len()))
        .field("operations", &operations)
        .finish()
}

/// Wall time per stage, for logs and for sizing the function's memory/CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimings {
    /// Header checks and the (scaled) decode.
    pub decode: Duration,
    /// All resizes, crops, colour conversion and orientation.
    pub resize: Duration,
    /// Encoding of all renditions.
    pub encode: Duration,
    /// The analysis hook (placeholder, dominant colour, perceptual hash).
    pub analysis: Duration,
}

#[derive(Debug, Clone)]
pub struct Processed {
    pub probe: Probe,
    /// Presets in the set's order, each preset's formats in its order.
    pub renditions: Vec<Rendition>,
    pub analysis: Analysis,
    pub timings: StageTimings,
}

/// Validates an upload and renders every preset of `presets` (or only those named in `only`) in
/// each of its formats, plus the analysis.
///
/// Limits are checked from the header before anything is decoded; renditions are fresh encodes of
/// pixels only, so no EXIF (GPS, serial numbers) survives into them.
pub fn process(
    bytes: &[u8],
    limits: &ImageLimits,
    presets: &PresetSet,
    only: Option<&[&str]>,
    options: &RenderOptions,
) -> Result<Processed, ImagingError> {
    let started = Instant::now();
    let probe = crate::probe(bytes, limits)?;
    check_complete(bytes, &probe)?;
    if let Some(mark) = &options.watermark {
        mark.validate()?;
    }
    let selected: Vec<&Preset> =
        presets.presets.iter().filter(|p| only.is_none_or(|names| names.contains(&p.name.as_str()))).collect();
    let focal = options.focal_point.unwrap_or_default().clamped();
    let jobs = plan(&selected, probe.width, probe.height, focal);
    let sources = cascade(&jobs, probe.width, probe.height);

    let decoded = contain("decoding", || decode_source(bytes, &probe, limits, &jobs))??;
    let decode_time = started.elapsed();

    let finishing = Finishing { background: presets.background, watermark: options.watermark.as_ref() };
    let rendered = contain("rendering", || render_and_encode(decoded, &probe, &jobs, &sources, finishing))??;
    let Rendered { renditions, analysis, resize: resize_time, encode: encode_time, analysis_time } = rendered;

    let timings =
        StageTimings { decode: decode_time, resize: resize_time, encode: encode_time, analysis: analysis_time };
    debug!(?timings, width = probe.width, height = probe.height, "image processed");
    Ok(Processed { probe, renditions, analysis, timings })
}

/// Refuses a JPEG without its end-of-image marker: decoders pad a truncated scan with grey rather
/// than failing, so the decode alone would not notice.
pub(crate) fn check_complete(bytes: &[u8], probe: &Probe) -> Result<(), ImagingError> {
    if probe.format == ImageFormat::Jpeg && !jpeg_has_end(bytes) {
        return Err(ImagingError::CorruptImage {
            format: Some(ImageFormat::Jpeg),
            detail: "the file ends before the end-of-image marker; it is probably truncated".into(),
        });
    }
    Ok(())
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
