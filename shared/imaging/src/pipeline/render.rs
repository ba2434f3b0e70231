//! Running the cascade of resizes and encoding the renditions, on every core.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fast_image_resize as fr;

use super::Rendition;
use super::pixels::{crop_resize, flatten};
use super::plan::{From, Job};
use super::source::Source;
use crate::analysis::{self, Analysis};
use crate::color::ColorConversion;
use crate::decode::{Channels, Decoded, Pixels};
use crate::encode::Encoders;
use crate::preset::hex_colour;
use crate::watermark::{self, Watermark};
use crate::{ImagingError, OutputFormat, Preset, Probe};

/// Encoding is most of the work and renditions are independent: one thread per core, up to this.
const MAX_ENCODE_THREADS: usize = 4;

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

/// What renditions get once resized, besides encoding: the colour alpha is flattened onto (JPEG,
/// the analysis) and the watermark, on the presets it names.
#[derive(Clone, Copy)]
pub(super) struct Finishing<'w> {
    pub(super) background: [u8; 3],
    pub(super) watermark: Option<&'w Watermark>,
}

impl<'w> Finishing<'w> {
    /// The watermark, if `preset`'s renditions get it.
    fn watermark_for(&self, preset: &Preset) -> Option<&'w Watermark> {
        self.watermark.filter(|m| m.applies_to(&preset.name))
    }
}

pub(super) struct Rendered {
    pub(super) renditions: Vec<Rendition>,
    pub(super) analysis: Analysis,
    pub(super) resize: Duration,
    pub(super) encode: Duration,
    pub(super) analysis_time: Duration,
}

/// Runs the cascade, then encodes on every core (up to [`MAX_ENCODE_THREADS`]). Memory stays
/// bounded: the decoded source is freed once the last job resized from it is done, and each
/// rendition's pixels once encoded and no later job resizes from them.
pub(super) fn render_and_encode(
    decoded: Decoded,
    probe: &Probe,
    jobs: &[Job<'_>],
    plan: &[(usize, From)],
    finishing: Finishing<'_>,
) -> Result<Rendered, ImagingError> {
    // Slots for the renditions in the presets' order, each preset's formats in its order.
    let mut slots = Vec::with_capacity(jobs.len());
    let mut first_slot = Vec::with_capacity(jobs.len());
    for job in jobs {
        first_slot.push(slots.len());
        slots.extend(job.preset.iter().flat_map(|p| p.formats.iter().map(|_| ())));
    }
    let reuse = reused_slots(jobs, plan, &first_slot, slots.len(), finishing);
    let results: Vec<Mutex<Option<Result<Rendition, ImagingError>>>> = slots.iter().map(|_| Mutex::new(None)).collect();
    let encode_nanos = AtomicU64::new(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let to_encode = reuse.iter().filter(|r| r.is_none()).count();
    let workers = cores.clamp(1, MAX_ENCODE_THREADS).min(to_encode);

    let encode = |encoders: &mut Encoders, task: EncodeTask<'_>| {
        let started = Instant::now();
        let slot = task.slot;
        let result = encode_one(encoders, &task, finishing.background);
        drop(task); // frees the pixels if this was their last use
        encode_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        *results[slot].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    };

    let ((analysis, analysis_time), resize) = if workers <= 1 {
        let mut encoders = Encoders::new();
        render_jobs(decoded, probe, jobs, plan, &first_slot, finishing, |task| {
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
        let rendered = render_jobs(decoded, probe, jobs, plan, &first_slot, finishing, |task| {
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

/// What makes two encodes one: the pixels' root job, format, quality, progressive (JPEG),
/// effort (WebP) and whether the watermark is on them.
type EncodeKey = (usize, OutputFormat, u8, bool, Option<u8>, bool);

/// For each rendition slot, the earlier slot whose encode it reuses (with its own preset), if
/// any: same pixels (jobs linked by `From::Same`: full frame, same output size), same format, same
/// quality and, for JPEG, the same progressive flag (for WebP, the same effort), and both
/// watermarked or neither. E.g. `large` (1280) and `xlarge` (2048) from a photo 1200 px wide.
/// The first slot of each such group is encoded, the others copy it.
fn reused_slots<'a>(
    jobs: &[Job<'a>],
    plan: &[(usize, From)],
    first_slot: &[usize],
    slots: usize,
    finishing: Finishing<'_>,
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
                finishing.watermark_for(preset).is_some(),
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

/// A job's output with the logo blended on, for its encodes only: later jobs resize from the
/// clean pixels. Copied only when something else still holds them (a later job, a job whose
/// pixels these are).
fn watermarked(output: Output, mark: &Watermark) -> Result<Output, ImagingError> {
    let (mut pixels, mut operations) = Arc::unwrap_or_clone(output);
    watermark::apply(&mut pixels, mark)?;
    operations.push(mark.operation());
    Ok(Arc::new((pixels, operations)))
}

/// The cascade itself: renders every job in `plan` order and hands each preset's renditions to
/// `submit` (false: the encoders are gone). Returns the analysis, and the time spent resizing
/// and analysing.
fn render_jobs<'a>(
    decoded: Decoded,
    probe: &Probe,
    jobs: &[Job<'a>],
    plan: &[(usize, From)],
    first_slot: &[usize],
    finishing: Finishing<'_>,
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
        let kept_output = (uses[i] > 0).then(|| output.clone());
        match job.preset {
            Some(preset) => {
                let output = match finishing.watermark_for(preset) {
                    Some(mark) => watermarked(output, mark)?,
                    None => output,
                };
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
                let thumb = flatten(output.0.clone(), finishing.background);
                analysis = Some((analysis::analyze(&thumb.data, thumb.width, thumb.height), started.elapsed()));
            }
        }
        kept[i] = kept_output;
    }
    let (analysis, analysis_time) = analysis.expect("the analysis job is planned");
    let resize = started.elapsed().saturating_sub(paused).saturating_sub(analysis_time);
    Ok(((analysis, analysis_time), resize))
}
