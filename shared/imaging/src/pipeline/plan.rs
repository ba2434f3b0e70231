//! Planning geometry: the jobs to render, their crops and sizes, and what each is resized from.

use crate::{Fit, FocalPoint, Preset};

/// Longest side of the image handed to [`analysis::analyze`](crate::analysis::analyze) (which takes
/// at most 100x100).
const ANALYSIS_SIDE: u32 = 100;
/// A smaller rendition is resized from a larger one (instead of the decoded source) when that is
/// at least this many times its size: indistinguishable, and far cheaper.
const CASCADE_RATIO: f64 = 2.0;

/// A rectangle in some image's pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rect {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) w: f64,
    pub(super) h: f64,
}

impl Rect {
    fn full(w: u32, h: u32) -> Self {
        Self { x: 0.0, y: 0.0, w: f64::from(w), h: f64::from(h) }
    }

    pub(super) fn scaled(self, sx: f64, sy: f64) -> Self {
        Self { x: self.x * sx, y: self.y * sy, w: self.w * sx, h: self.h * sy }
    }

    /// The same area in stored coordinates, for a display-space rect of an image stored
    /// `stored_w`x`stored_h` with EXIF `orientation`.
    pub(super) fn to_stored(self, orientation: u16, stored_w: f64, stored_h: f64) -> Self {
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
pub(super) struct Job<'a> {
    pub(super) preset: Option<&'a Preset>,
    /// Output size, display orientation.
    pub(super) out: (u32, u32),
    /// The part of the displayed photo it shows, in full-resolution display pixels.
    pub(super) region: Rect,
    /// For cover crops, the focal point (for provenance).
    pub(super) focal: Option<FocalPoint>,
}

impl Job<'_> {
    fn full_frame(&self) -> bool {
        self.focal.is_none()
    }
}

/// Where a job's pixels come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum From {
    Source,
    /// Resized from the (larger, full-frame) output of another job.
    Job(usize),
    /// Exactly the output of another job.
    Same(usize),
}

/// The jobs for `presets` on a photo displayed `width`x`height`, in the presets' order, then the
/// analysis thumbnail last.
pub(super) fn plan<'a>(presets: &[&'a Preset], width: u32, height: u32, focal: FocalPoint) -> Vec<Job<'a>> {
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
pub(super) fn cascade(jobs: &[Job<'_>], width: u32, height: u32) -> Vec<(usize, From)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Channels, Pixels};
    use crate::pipeline::pixels::orient;

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
}
