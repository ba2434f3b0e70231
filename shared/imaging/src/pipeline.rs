//! Decode once (JPEG: scaled in the DCT domain to just what the largest preset needs), resize as
//! a cascade, convert colour and orient small images rather than the source, encode.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fast_image_resize as fr;
use tracing::debug;

use crate::analysis::{self, Analysis};
use crate::color::ColorConversion;
use crate::decode::{self, Channels, Decoded, Pixels};
use crate::encode::Encoders;
use crate::preset::hex_colour;
use crate::{
    Fit, FocalPoint, ImageFormat, ImageLimits, ImagingError, OutputFormat, Preset, PresetSet, Probe, RenderOptions,
};

/// Longest side of the image handed to [`analysis::analyze`] (which takes at most 100x100).
const ANALYSIS_SIDE: u32 = 100;
/// A smaller rendition is resized from a larger one (instead of the decoded source) when that is
/// at least this many times its size: indistinguishable, and far cheaper.
const CASCADE_RATIO: f64 = 2.0;
const FILTER: fr::FilterType = fr::FilterType::Lanczos3;
const FILTER_NAME: &str = "lanczos3";
/// Encoding is most of the work and renditions are independent: one thread per core, up to this.
const MAX_ENCODE_THREADS: usize = 4;

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
        f.debug_struct("Rendition")
            .field("preset", &self.preset)
            .field("preset_version", &self.preset_version)
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("operations", &self.operations)
            .finish()
    }
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

/// A rectangle in some image's pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn full(w: u32, h: u32) -> Self {
        Self { x: 0.0, y: 0.0, w: f64::from(w), h: f64::from(h) }
    }

    fn scaled(self, sx: f64, sy: f64) -> Self {
        Self { x: self.x * sx, y: self.y * sy, w: self.w * sx, h: self.h * sy }
    }

    /// The same area in stored coordinates, for a display-space rect of an image stored
    /// `stored_w`x`stored_h` with EXIF `orientation`.
    fn to_stored(self, orientation: u16, stored_w: f64, stored_h: f64) -> Self {
        let Self { x, y, w, h } = self;
        let (sw, sh) = (stored_w, stored_h);
        match orientation {
            2 => Self { x: sw - (x + w), y, w, h },
            3 => Self { x: sw - (x + w), y: sh - (y + h), w, h },
            4 => Self { x, y: sh - (y + h), w, h },
            5 => Self { x: y, y: x, w: h, h: w },
            6 => Self { x: y, y: sh - (x + w), w: h, h: w },
            7 => Self { x: sw - (y + h), y: sh - (x + w), w: h, h: w },
            8 => Self { x: sw - (y + h), y: x, w: h, h: w },
            _ => self,
        }
    }
}

/// One image to produce: a preset's pixels, or the analysis thumbnail.
struct Job<'a> {
    preset: Option<&'a Preset>,
    /// Output size, display orientation.
    out: (u32, u32),
    /// The part of the displayed photo it shows, in full-resolution display pixels.
    region: Rect,
    /// For cover crops, the focal point (for provenance).
    focal: Option<FocalPoint>,
}

impl Job<'_> {
    fn full_frame(&self) -> bool {
        self.focal.is_none()
    }
}

/// Where a job's pixels come from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum From {
    Source,
    /// Resized from the (larger, full-frame) output of another job.
    Job(usize),
    /// Exactly the output of another job.
    Same(usize),
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
    if probe.format == ImageFormat::Jpeg && !jpeg_has_end(bytes) {
        // Decoders pad a truncated scan with grey rather than failing, so check here.
        return Err(ImagingError::CorruptImage {
            format: Some(ImageFormat::Jpeg),
            detail: "the file ends before the end-of-image marker; it is probably truncated".into(),
        });
    }
    let selected: Vec<&Preset> =
        presets.presets.iter().filter(|p| only.is_none_or(|names| names.contains(&p.name.as_str()))).collect();
    let focal = options.focal_point.unwrap_or_default().clamped();
    let jobs = plan(&selected, probe.width, probe.height, focal);
    let sources = cascade(&jobs, probe.width, probe.height);

    let decoded = contain("decoding", || decode_source(bytes, &probe, limits, &jobs))??;
    let decode_time = started.elapsed();

    let rendered = contain("rendering", || render_and_encode(decoded, &probe, &jobs, &sources, presets.background))??;
    let Rendered { renditions, analysis, resize: resize_time, encode: encode_time, analysis_time } = rendered;

    let timings =
        StageTimings { decode: decode_time, resize: resize_time, encode: encode_time, analysis: analysis_time };
    debug!(?timings, width = probe.width, height = probe.height, "image processed");
    Ok(Processed { probe, renditions, analysis, timings })
}

/// A job's display-space sRGB pixels and their provenance, shared by its encodes and the jobs
/// resized from it.
type Output = Arc<(Pixels, Vec<String>)>;

/// One encode: a preset's pixels in one format.
struct EncodeTask<'a> {
    /// Index into the renditions, in the presets' order.
    slot: usize,
    preset: &'a Preset,
    format: OutputFormat,
    output: Output,
}

fn encode_one(encoders: &mut Encoders, task: &EncodeTask<'_>, background: [u8; 3]) -> Result<Rendition, ImagingError> {
    let (pixels, operations) = &*task.output;
    let (preset, format) = (task.preset, task.format);
    let mut operations = operations.clone();
    let flattened;
    let input = if format == OutputFormat::Jpeg && pixels.channels == Channels::Rgba {
        operations.push(format!("flatten:{}", hex_colour(background)));
        flattened = flatten(pixels.clone(), background);
        &flattened
    } else {
        pixels
    };
    let (bytes, op) =
        encoders.encode(input, format, preset.quality.for_format(format), preset.progressive, preset.webp_effort)?;
    operations.push(op);
    Ok(Rendition {
        preset: preset.name.clone(),
        preset_version: preset.version,
        format,
        width: pixels.width,
        height: pixels.height,
        bytes,
        operations,
    })
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

/// The jobs for `presets` on a photo displayed `width`x`height`, in the presets' order, then the
/// analysis thumbnail last.
fn plan<'a>(presets: &[&'a Preset], width: u32, height: u32, focal: FocalPoint) -> Vec<Job<'a>> {
    let full = Rect::full(width, height);
    let mut jobs: Vec<Job<'a>> = presets
        .iter()
        .map(|&p| match p.fit {
            Fit::Width { width: w } => {
                Job { preset: Some(p), out: fit_width(w, width, height), region: full, focal: None }
            }
            Fit::Cover { width: w, height: h } => {
                let (region, out) = cover(w, h, width, height, focal);
                Job { preset: Some(p), out, region, focal: Some(focal) }
            }
        })
        .collect();
    let out = if width >= height {
        fit_width(ANALYSIS_SIDE, width, height)
    } else {
        let (h, w) = fit_width(ANALYSIS_SIDE, height, width);
        (w, h)
    };
    jobs.push(Job { preset: None, out, region: full, focal: None });
    jobs
}

/// Fit the width, keep the aspect ratio, never upscale.
fn fit_width(preset_width: u32, width: u32, height: u32) -> (u32, u32) {
    let w = preset_width.clamp(1, width);
    let h = (u64::from(height) * u64::from(w) + u64::from(width) / 2) / u64::from(width);
    (w, (h as u32).max(1))
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The crop (in display pixels) and output size of a `pw`x`ph` cover preset: the largest region of
/// the preset's aspect ratio, centred on `focal` as far as the edges allow. From a photo too
/// small for the preset, the largest exact-aspect size it holds, cut 1:1.
fn cover(pw: u32, ph: u32, width: u32, height: u32, focal: FocalPoint) -> (Rect, (u32, u32)) {
    let (w, h) = (f64::from(width), f64::from(height));
    let aspect = f64::from(pw) / f64::from(ph);
    let (mut cw, mut ch) = if w / h > aspect { (h * aspect, h) } else { (w, w / aspect) };
    let g = gcd(pw, ph);
    let (a, b) = (pw / g, ph / g);
    let k = (cw / f64::from(a) + 1e-9).floor().min((ch / f64::from(b) + 1e-9).floor()) as u32;
    let out = if k >= g {
        (pw, ph)
    } else if k >= 1 {
        // Not enough pixels for the full size: cut exactly the output size, no resampling.
        cw = f64::from(a * k);
        ch = f64::from(b * k);
        (a * k, b * k)
    } else {
        // Even one aspect unit does not fit (a sliver of a photo): the nearest size there is.
        let out = ((cw.floor() as u32).max(1), (ch.floor() as u32).max(1));
        (cw, ch) = (f64::from(out.0).min(w), f64::from(out.1).min(h));
        out
    };
    let x = (f64::from(focal.x) * w - cw / 2.0).clamp(0.0, w - cw);
    let y = (f64::from(focal.y) * h - ch / 2.0).clamp(0.0, h - ch);
    let (x, y) = if k < g { (x.round(), y.round()) } else { (x, y) };
    (Rect { x, y, w: cw, h: ch }, out)
}

/// Picks each job's source: the smallest earlier full-frame output at least [`CASCADE_RATIO`]
/// times its size, else the decoded source. Jobs run largest first.
fn cascade(jobs: &[Job<'_>], width: u32, height: u32) -> Vec<(usize, From)> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(u64::from(jobs[i].out.0) * u64::from(jobs[i].out.1)));
    let mut done: Vec<usize> = Vec::new();
    let mut plan = Vec::with_capacity(jobs.len());
    for i in order {
        let job = &jobs[i];
        let same = done.iter().copied().find(|&d| jobs[d].full_frame() && job.full_frame() && jobs[d].out == job.out);
        let from = if let Some(d) = same {
            From::Same(d)
        } else {
            done.iter()
                .copied()
                .filter(|&d| jobs[d].full_frame())
                .filter(|&d| {
                    let (dw, dh) = jobs[d].out;
                    let rw = job.region.w * f64::from(dw) / f64::from(width);
                    let rh = job.region.h * f64::from(dh) / f64::from(height);
                    rw + 1e-6 >= CASCADE_RATIO * f64::from(job.out.0)
                        && rh + 1e-6 >= CASCADE_RATIO * f64::from(job.out.1)
                })
                .min_by_key(|&d| u64::from(jobs[d].out.0) * u64::from(jobs[d].out.1))
                .map_or(From::Source, From::Job)
        };
        plan.push((i, from));
        done.push(i);
    }
    plan
}

/// Decodes once, as small as every job that is rendered from the source allows.
fn decode_source(bytes: &[u8], probe: &Probe, limits: &ImageLimits, jobs: &[Job<'_>]) -> Result<Decoded, ImagingError> {
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
struct Source {
    pixels: Pixels,
    orientation: u16,
    color: ColorConversion,
    operations: Vec<String>,
}

impl Source {
    /// sRGB, oriented, and the provenance of both.
    fn finish(&self, px: Pixels, ops: &mut Vec<String>) -> Pixels {
        let px = self.color.apply(px);
        ops.extend(self.color.operation.clone());
        if (2..=8).contains(&self.orientation) {
            ops.push(format!("orient:{}", self.orientation));
            orient(&px, self.orientation)
        } else {
            px
        }
    }
}

struct Rendered {
    renditions: Vec<Rendition>,
    analysis: Analysis,
    resize: Duration,
    encode: Duration,
    analysis_time: Duration,
}

/// Runs the cascade, then encodes on every core (up to [`MAX_ENCODE_THREADS`]). Memory stays
/// bounded: the decoded source is freed once the last job resized from it is done, and each
/// rendition's pixels once encoded and no later job resizes from them.
fn render_and_encode(
    decoded: Decoded,
    probe: &Probe,
    jobs: &[Job<'_>],
    plan: &[(usize, From)],
    background: [u8; 3],
) -> Result<Rendered, ImagingError> {
    // Slots for the renditions in the presets' order, each preset's formats in its order.
    let mut slots = Vec::with_capacity(jobs.len());
    let mut first_slot = Vec::with_capacity(jobs.len());
    for job in jobs {
        first_slot.push(slots.len());
        slots.extend(job.preset.iter().flat_map(|p| p.formats.iter().map(|_| ())));
    }
    let reuse = reused_slots(jobs, plan, &first_slot, slots.len());
    let results: Vec<Mutex<Option<Result<Rendition, ImagingError>>>> = slots.iter().map(|_| Mutex::new(None)).collect();
    let encode_nanos = AtomicU64::new(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let to_encode = reuse.iter().filter(|r| r.is_none()).count();
    let workers = cores.clamp(1, MAX_ENCODE_THREADS).min(to_encode);

    let encode = |encoders: &mut Encoders, task: EncodeTask<'_>| {
        let started = Instant::now();
        let slot = task.slot;
        let result = encode_one(encoders, &task, background);
        drop(task); // frees the pixels if this was their last use
        encode_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        *results[slot].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    };

    let ((analysis, analysis_time), resize) = if workers <= 1 {
        let mut encoders = Encoders::new();
        render_jobs(decoded, probe, jobs, plan, &first_slot, background, |task| {
            if reuse[task.slot].is_none() {
                encode(&mut encoders, task);
            }
            true
        })?
    } else {
        // Render everything first (the decoded source is freed as soon as the last job that
        // needs it is done), then encode on all cores, largest first, freeing each rendition's
        // pixels with its last encode. Overlapping the two would keep the source alive longer.
        let mut tasks = Vec::new();
        let rendered = render_jobs(decoded, probe, jobs, plan, &first_slot, background, |task| {
            if reuse[task.slot].is_none() {
                tasks.push(task);
            }
            true
        })?;
        tasks.sort_by_key(|t| std::cmp::Reverse(u64::from(t.output.0.width) * u64::from(t.output.0.height)));
        let queue = Mutex::new(tasks.into_iter());
        let (queue, encode) = (&queue, &encode);
        std::thread::scope(|scope| {
            for _ in 1..workers {
                scope.spawn(move || {
                    let mut encoders = Encoders::new();
                    loop {
                        // A statement of its own, so the lock is not held while encoding.
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some(task) = next else { break };
                        encode(&mut encoders, task);
                    }
                });
            }
            let mut encoders = Encoders::new();
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some(task) = next else { break };
                encode(&mut encoders, task);
            }
        });
        rendered
    };
    let mut renditions: Vec<Rendition> = Vec::with_capacity(results.len());
    for (r, reused) in results.into_iter().zip(&reuse) {
        let r = r.into_inner().unwrap_or_else(|e| e.into_inner());
        let rendition = match (r, reused) {
            (Some(r), _) => r?,
            (None, Some((from, preset))) => {
                // Byte for byte what this preset would have produced: copy it, under its own name.
                let mut r = renditions[*from].clone();
                // Noted just before the (shared) encode step, which stays last.
                let at = r.operations.len().saturating_sub(1);
                r.operations.insert(at, format!("reuse:{}-v{}", r.preset, r.preset_version));
                r.preset = preset.name.clone();
                r.preset_version = preset.version;
                r
            }
            (None, None) => return Err(ImagingError::from_panic("an encoder thread stopped")),
        };
        renditions.push(rendition);
    }
    Ok(Rendered {
        renditions,
        analysis,
        resize,
        encode: Duration::from_nanos(encode_nanos.into_inner()),
        analysis_time,
    })
}

/// What makes two encodes one: the pixels' root job, format, quality, progressive (JPEG) and
/// effort (WebP).
type EncodeKey = (usize, OutputFormat, u8, bool, Option<u8>);

/// For each rendition slot, the earlier slot whose encode it reuses (with its own preset), if
/// any: same pixels (jobs linked by `From::Same`: full frame, same output size), same format, same
/// quality and, for JPEG, the same progressive flag (for WebP, the same effort). E.g. `large` (1280) and `xlarge` (2048) from
/// a photo 1200 px wide. The first slot of each such group is encoded, the others copy it.
fn reused_slots<'a>(
    jobs: &[Job<'a>],
    plan: &[(usize, From)],
    first_slot: &[usize],
    slots: usize,
) -> Vec<Option<(usize, &'a Preset)>> {
    // The job whose pixels each job shares (itself unless `From::Same`).
    let mut root: Vec<usize> = (0..jobs.len()).collect();
    for &(i, from) in plan {
        if let From::Same(d) = from {
            root[i] = root[d];
        }
    }
    let mut reuse = vec![None; slots];
    let mut seen: Vec<(EncodeKey, usize)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let Some(preset) = job.preset else { continue };
        for (k, &format) in preset.formats.iter().enumerate() {
            let slot = first_slot[i] + k;
            let key = (
                root[i],
                format,
                preset.quality.for_format(format),
                format == OutputFormat::Jpeg && preset.progressive,
                preset.webp_effort.filter(|_| format == OutputFormat::Webp),
            );
            match seen.iter().find(|(other, _)| *other == key) {
                Some(&(_, from)) => reuse[slot] = Some((from, preset)),
                None => seen.push((key, slot)),
            }
        }
    }
    reuse
}

type RenderResult = ((Analysis, Duration), Duration);

/// The cascade itself: renders every job in `plan` order and hands each preset's renditions to
/// `submit` (false: the encoders are gone). Returns the analysis, and the time spent resizing
/// and analysing.
fn render_jobs<'a>(
    decoded: Decoded,
    probe: &Probe,
    jobs: &[Job<'a>],
    plan: &[(usize, From)],
    first_slot: &[usize],
    background: [u8; 3],
    mut submit: impl FnMut(EncodeTask<'a>) -> bool,
) -> Result<RenderResult, ImagingError> {
    let started = Instant::now();
    let mut paused = Duration::ZERO;
    let Decoded { pixels, icc, inverted_cmyk, operation } = decoded;
    let color = ColorConversion::new(pixels.channels, icc.as_deref(), inverted_cmyk);
    let mut source = Some(Source { pixels, orientation: probe.orientation, color, operations: vec![operation] });
    let src = source.as_mut().expect("just set");

    // Converting colour and orientation on the renditions is cheaper than on the source, unless
    // the renditions made from the source add up to more pixels than it has.
    let needs_finish = !src.color.is_identity() || (2..=8).contains(&src.orientation);
    let from_source: u64 = plan
        .iter()
        .filter(|(_, f)| *f == From::Source)
        .map(|&(i, _)| u64::from(jobs[i].out.0) * u64::from(jobs[i].out.1))
        .sum();
    let source_pixels = u64::from(src.pixels.width) * u64::from(src.pixels.height);
    if needs_finish && from_source > source_pixels {
        let px = std::mem::replace(&mut src.pixels, Pixels::new(0, 0, Channels::Rgb, Vec::new()));
        let mut ops = std::mem::take(&mut src.operations);
        src.pixels = src.finish(px, &mut ops);
        src.operations = ops;
        src.color = ColorConversion::identity();
        src.orientation = 1;
    }

    // How many later jobs still resize from each job's output, and from the source.
    let mut uses = vec![0usize; jobs.len()];
    let mut source_uses = 0;
    for (_, from) in plan {
        match from {
            From::Job(d) | From::Same(d) => uses[*d] += 1,
            From::Source => source_uses += 1,
        }
    }
    let mut kept: Vec<Option<Output>> = (0..jobs.len()).map(|_| None).collect();
    let mut resizer = fr::Resizer::new();
    let mut analysis = None;
    for &(i, from) in plan {
        let job = &jobs[i];
        let output: Output = match from {
            From::Same(d) => kept[d].clone().expect("rendered before"),
            From::Job(d) => {
                let parent = kept[d].as_ref().expect("rendered before");
                let (px, ops) = &**parent;
                let region = job.region.scaled(
                    f64::from(px.width) / f64::from(probe.width),
                    f64::from(px.height) / f64::from(probe.height),
                );
                let mut ops = ops.clone();
                let px = crop_resize(&mut resizer, px, region, job.out, job.focal.map(|f| (f, job.region)), &mut ops)?;
                Arc::new((px, ops))
            }
            From::Source => {
                let src = source.as_ref().expect("the source is kept while jobs need it");
                let px = &src.pixels;
                let transposed = src.orientation >= 5;
                let (dw, dh) = if transposed { (px.height, px.width) } else { (px.width, px.height) };
                let region = job
                    .region
                    .scaled(f64::from(dw) / f64::from(probe.width), f64::from(dh) / f64::from(probe.height))
                    .to_stored(src.orientation, f64::from(px.width), f64::from(px.height));
                let out = if transposed { (job.out.1, job.out.0) } else { job.out };
                let mut ops = src.operations.clone();
                let resized = crop_resize(&mut resizer, px, region, out, job.focal.map(|f| (f, job.region)), &mut ops)?;
                let finished = src.finish(resized, &mut ops);
                Arc::new((finished, ops))
            }
        };
        debug_assert_eq!(output.0.dims(), job.out);
        match from {
            From::Source => {
                source_uses -= 1;
                if source_uses == 0 {
                    source = None;
                }
            }
            From::Job(d) | From::Same(d) => {
                uses[d] -= 1;
                if uses[d] == 0 {
                    kept[d] = None;
                }
            }
        }
        match job.preset {
            Some(preset) => {
                let handed_over = Instant::now();
                for (k, &format) in preset.formats.iter().enumerate() {
                    let task = EncodeTask { slot: first_slot[i] + k, preset, format, output: output.clone() };
                    if !submit(task) {
                        return Err(ImagingError::from_panic("the encoder threads stopped"));
                    }
                }
                paused += handed_over.elapsed();
            }
            None => {
                let started = Instant::now();
                let thumb = flatten(output.0.clone(), background);
                analysis = Some((analysis::analyze(&thumb.data, thumb.width, thumb.height), started.elapsed()));
            }
        }
        if uses[i] > 0 {
            kept[i] = Some(output);
        }
    }
    let (analysis, analysis_time) = analysis.expect("the analysis job is planned");
    let resize = started.elapsed().saturating_sub(paused).saturating_sub(analysis_time);
    Ok(((analysis, analysis_time), resize))
}

fn internal(e: impl fmt::Display) -> ImagingError {
    ImagingError::CorruptImage { format: None, detail: format!("resize failed: {e}") }
}

/// Cuts `region` out of `from` and resizes it to `out` (a copy when nothing changes).
fn crop_resize(
    resizer: &mut fr::Resizer,
    from: &Pixels,
    region: Rect,
    out: (u32, u32),
    focal: Option<(FocalPoint, Rect)>,
    ops: &mut Vec<String>,
) -> Result<Pixels, ImagingError> {
    // Scaling between images leaves rounding noise; the resizer wants the box strictly inside.
    let (fw, fh) = (f64::from(from.width), f64::from(from.height));
    let (w, h) = (region.w.min(fw), region.h.min(fh));
    let region = Rect { x: region.x.clamp(0.0, fw - w), y: region.y.clamp(0.0, fh - h), w, h };
    let near = |a: f64, b: f64| (a - b).abs() < 1e-6;
    let full = near(region.x, 0.0) && near(region.y, 0.0) && near(region.w, fw) && near(region.h, fh);
    let (rw, rh) = (region.w.round() as u32, region.h.round() as u32);
    if let Some((f, full_res)) = focal {
        // In the original's display pixels, whatever scale the crop was cut at.
        let (cw, ch) = (full_res.w.round(), full_res.h.round());
        let (cx, cy) = (full_res.x.round(), full_res.y.round());
        ops.push(format!("crop:{cw}x{ch}+{cx}+{cy}@{:.2},{:.2}", f.x, f.y));
    }
    if full && from.dims() == out {
        return Ok(from.clone());
    }
    let (iw, ih) = if full { from.dims() } else { (rw, rh) };
    ops.push(format!("resize:{FILTER_NAME}:{iw}x{ih}->{}x{}", out.0, out.1));
    let pixel_type = match from.channels {
        Channels::Rgb => fr::PixelType::U8x3,
        Channels::Rgba | Channels::Cmyk => fr::PixelType::U8x4,
    };
    let src = fr::images::ImageRef::new(from.width, from.height, &from.data, pixel_type).map_err(internal)?;
    let mut dst = fr::images::Image::new(out.0, out.1, pixel_type);
    let mut options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(FILTER))
        .use_alpha(from.channels == Channels::Rgba);
    if !full {
        options = options.crop(region.x, region.y, region.w, region.h);
    }
    let resized = resizer.resize(&src, &mut dst, &options).map_err(internal);
    // The resizer keeps its intermediate image (and, with alpha, a premultiplied copy of the
    // source) for the next call: as big as the output, or the source. Free them now rather than
    // keep them through the encodes.
    resizer.reset_internal_buffers();
    resized?;
    Ok(Pixels::new(out.0, out.1, from.channels, dst.into_vec()))
}

/// Applies EXIF orientation `o` (2..=8) to pixels stored as the file has them.
fn orient(px: &Pixels, o: u16) -> Pixels {
    let n = px.channels.count();
    let (sw, sh) = (px.width as usize, px.height as usize);
    let (dw, dh) = if o >= 5 { (sh, sw) } else { (sw, sh) };
    let mut out = vec![0u8; px.data.len()];
    for dy in 0..dh {
        let row = &mut out[dy * dw * n..(dy + 1) * dw * n];
        for (dx, dst) in row.chunks_exact_mut(n).enumerate() {
            let (sx, sy) = match o {
                2 => (sw - 1 - dx, dy),
                3 => (sw - 1 - dx, sh - 1 - dy),
                4 => (dx, sh - 1 - dy),
                5 => (dy, dx),
                6 => (dy, sh - 1 - dx),
                7 => (sw - 1 - dy, sh - 1 - dx),
                8 => (sw - 1 - dy, dx),
                _ => (dx, dy),
            };
            let at = (sy * sw + sx) * n;
            dst.copy_from_slice(&px.data[at..at + n]);
        }
    }
    Pixels::new(dw as u32, dh as u32, px.channels, out)
}

/// RGBA onto an opaque background (for JPEG, which has no alpha); other pixels unchanged.
fn flatten(px: Pixels, background: [u8; 3]) -> Pixels {
    if px.channels != Channels::Rgba {
        return px;
    }
    let rgb = px
        .data
        .chunks_exact(4)
        .flat_map(|p| {
            let a = u32::from(p[3]);
            // c*a + bg*(1-a), rounded, in 0..=255.
            let mix = |c: u8, bg: u8| ((u32::from(c) * a + u32::from(bg) * (255 - a) + 127) / 255) as u8;
            [mix(p[0], background[0]), mix(p[1], background[1]), mix(p[2], background[2])]
        })
        .collect();
    Pixels::new(px.width, px.height, Channels::Rgb, rgb)
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
    fn width_fit_keeps_aspect_and_never_upscales() {
        assert_eq!(fit_width(1280, 6028, 3391), (1280, 720));
        assert_eq!(fit_width(1280, 904, 509), (904, 509));
        assert_eq!(fit_width(320, 2056, 3088), (320, 481));
        assert_eq!(fit_width(320, 10_000, 1), (320, 1));
        assert_eq!(fit_width(0, 100, 50), (1, 1));
    }

    #[test]
    fn cover_crops_keep_the_exact_aspect() {
        let centre = FocalPoint::default();
        let (r, out) = cover(600, 600, 6028, 3391, centre);
        assert_eq!(out, (600, 600));
        assert_eq!((r.w, r.h), (3391.0, 3391.0));
        assert!((r.x - (6028.0 - 3391.0) / 2.0).abs() < 1e-9);
        // Too small for 900x1200: the largest 3:4 it holds, cut 1:1.
        let (r, out) = cover(900, 1200, 904, 509, centre);
        assert_eq!(out, (381, 508));
        assert_eq!((r.w, r.h), (381.0, 508.0));
        // Focal point at the left edge: the crop starts there.
        let (r, _) = cover(600, 600, 6028, 3391, FocalPoint { x: 0.0, y: 0.5 });
        assert_eq!(r.x, 0.0);
        let (r, _) = cover(600, 600, 6028, 3391, FocalPoint { x: 1.0, y: 0.5 });
        assert_eq!(r.x, 6028.0 - 3391.0);
    }

    #[test]
    fn display_rects_map_back_to_stored_ones() {
        // A 4x2 stored image shown with orientation 6 is 2x4; its top row of display pixels
        // (x 0..2, y 0..1) is stored as the left column (x 0..1, y 0..2).
        let r = Rect { x: 0.0, y: 0.0, w: 2.0, h: 1.0 };
        assert_eq!(r.to_stored(6, 4.0, 2.0), Rect { x: 0.0, y: 0.0, w: 1.0, h: 2.0 });
        assert_eq!(r.to_stored(8, 4.0, 2.0), Rect { x: 3.0, y: 0.0, w: 1.0, h: 2.0 });
        assert_eq!(r.to_stored(3, 2.0, 4.0), Rect { x: 0.0, y: 3.0, w: 2.0, h: 1.0 });
        // Check every orientation against `orient` pixel by pixel.
        let stored = Pixels::new(3, 2, Channels::Rgb, (0..18).collect());
        for o in 1..=8u16 {
            let shown = if o == 1 { stored.clone() } else { orient(&stored, o) };
            for dy in 0..shown.height {
                for dx in 0..shown.width {
                    let r = Rect { x: f64::from(dx), y: f64::from(dy), w: 1.0, h: 1.0 }.to_stored(o, 3.0, 2.0);
                    let at = ((r.y as usize) * 3 + r.x as usize) * 3;
                    let shown_at = ((dy * shown.width + dx) * 3) as usize;
                    assert_eq!(stored.data[at], shown.data[shown_at], "orientation {o} at {dx},{dy}");
                }
            }
        }
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
    fn alpha_is_flattened_onto_the_background() {
        let rgba = Pixels::new(3, 1, Channels::Rgba, vec![0, 0, 0, 0, 0, 0, 0, 255, 100, 0, 0, 128]);
        assert_eq!(flatten(rgba.clone(), [255, 255, 255]).data, [255, 255, 255, 0, 0, 0, 177, 127, 127]);
        assert_eq!(flatten(rgba, [0, 0, 0]).data[..3], [0, 0, 0]);
    }
}
