//! Cheap content analysis of a small, already oriented thumbnail: a ThumbHash placeholder, a
//! dominant colour and a 64-bit perceptual hash for near-duplicate detection.
//!
//! Everything here is deterministic and total: any input, however small or malformed, yields an
//! [`Analysis`], never a panic.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::{Deserialize, Serialize};

/// Largest side ThumbHash accepts; larger input is box-downscaled to fit first.
const MAX_SIDE: u32 = 100;

/// Side of the grayscale image the perceptual hash is taken from.
const PHASH_SIZE: usize = 32;

/// Two photos whose perceptual hashes are at most this many bits apart (out of 64) are likely the
/// same picture: re-encoded, resized, lightly edited or converted to grey. This is the usual
/// threshold for a 64-bit DCT hash: unrelated photos land around 32 bits apart (each bit is a
/// coin toss, as half the coefficients are above the median by construction), while re-encoding,
/// resizing or a brightness change flip only the few coefficients that sit close to the median.
pub const LIKELY_DUPLICATE_DISTANCE: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    /// Standard base64, without padding, of the ThumbHash bytes.
    pub thumbhash: String,
    /// Lower-case `#rrggbb`, sRGB.
    pub dominant_color: String,
    /// 16 lower-case hex digits: a 64-bit perceptual hash, compared with [`hamming`].
    pub phash: String,
}

/// Analyses an RGB8 interleaved, sRGB, already oriented image of at most 100x100 pixels.
///
/// Out-of-contract input is still handled: a larger image is box-downscaled to fit 100x100 first,
/// bytes past `width * height * 3` are ignored, and an empty image or one whose buffer is too short
/// for its dimensions is analysed as a single black pixel.
pub fn analyze(rgb: &[u8], width: u32, height: u32) -> Analysis {
    let pixels = u64::from(width) * u64::from(height);
    let expected = pixels.checked_mul(3).and_then(|n| usize::try_from(n).ok());
    let (rgb, width, height) = match expected {
        Some(len) if pixels > 0 && rgb.len() >= len => fit(&rgb[..len], width, height),
        _ => (vec![0; 3], 1, 1),
    };
    Analysis {
        thumbhash: thumbhash(&rgb, width, height),
        dominant_color: dominant_color(&rgb),
        phash: format!("{:016x}", phash(&rgb, width as usize, height as usize)),
    }
}

/// Hamming distance between two perceptual hashes as produced by [`analyze`]; `None` unless both
/// are exactly 16 hex digits.
pub fn hamming(a: &str, b: &str) -> Option<u32> {
    let parse = |s: &str| {
        (s.len() == 16 && s.bytes().all(|c| c.is_ascii_hexdigit())).then(|| u64::from_str_radix(s, 16).ok()).flatten()
    };
    Some((parse(a)? ^ parse(b)?).count_ones())
}

/// Returns the image unchanged if it fits ThumbHash's 100x100 limit, box-downscaled otherwise.
fn fit(rgb: &[u8], width: u32, height: u32) -> (Vec<u8>, u32, u32) {
    if width <= MAX_SIDE && height <= MAX_SIDE {
        return (rgb.to_vec(), width, height);
    }
    let scale = f64::from(MAX_SIDE) / f64::from(width.max(height));
    let new_w = ((f64::from(width) * scale).round() as u32).clamp(1, MAX_SIDE);
    let new_h = ((f64::from(height) * scale).round() as u32).clamp(1, MAX_SIDE);
    let channels: Vec<Vec<f64>> = (0..3)
        .map(|c| {
            let plane: Vec<f64> = rgb.iter().skip(c).step_by(3).map(|&v| f64::from(v)).collect();
            resample(&plane, width as usize, height as usize, new_w as usize, new_h as usize)
        })
        .collect();
    let out = (0..new_w as usize * new_h as usize)
        .flat_map(|i| channels.iter().map(move |plane| plane[i].round().clamp(0.0, 255.0) as u8))
        .collect();
    (out, new_w, new_h)
}

fn thumbhash(rgb: &[u8], width: u32, height: u32) -> String {
    let rgba: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], u8::MAX]).collect();
    STANDARD_NO_PAD.encode(thumbhash::rgba_to_thumb_hash(width as usize, height as usize, &rgba))
}

// Dominant colour: pixels are bucketed by the top 3 bits of each channel (512 coarse buckets,
// so a sky gradient or skin tone stays one bucket even on a 100x100 thumbnail), each bucket scores
// its pixel count times (1 + chroma of its mean), chroma being (max - min) / 255, so a saturated
// subject can beat a slightly larger grey or white background; the winner's mean colour is
// returned, ties going to the lower bucket index so the result is deterministic.
fn dominant_color(rgb: &[u8]) -> String {
    let mut buckets = vec![(0_u32, [0_u32; 3]); 512];
    for p in rgb.chunks_exact(3) {
        let index = usize::from(p[0] >> 5) << 6 | usize::from(p[1] >> 5) << 3 | usize::from(p[2] >> 5);
        let (count, sums) = &mut buckets[index];
        *count += 1;
        for (sum, &v) in sums.iter_mut().zip(p) {
            *sum += u32::from(v);
        }
    }
    let mut best: Option<(f64, [u8; 3])> = None;
    for &(count, sums) in buckets.iter().filter(|(count, _)| *count > 0) {
        let mean = sums.map(|s| ((f64::from(s) / f64::from(count)).round()) as u8);
        let chroma = f64::from(mean.iter().max().unwrap_or(&0) - mean.iter().min().unwrap_or(&0)) / 255.0;
        let score = f64::from(count) * (1.0 + chroma);
        if best.is_none_or(|(top, _)| score > top) {
            best = Some((score, mean));
        }
    }
    let [r, g, b] = best.map_or([0; 3], |(_, mean)| mean);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The pHash of phash.org: the image is reduced to 32x32 grayscale (Rec. 601 luma, area
/// averaging), its 2-D DCT-II taken, and the 8x8 block of lowest frequencies after the DC row and
/// column (coefficients 1..=8 on each axis) compared with its own median; bit 63 is (1, 1),
/// then row by row.
fn phash(rgb: &[u8], width: usize, height: usize) -> u64 {
    let luma: Vec<f64> = rgb
        .chunks_exact(3)
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let gray = resample(&luma, width, height, PHASH_SIZE, PHASH_SIZE);

    // Orthonormal DCT-II basis, only for the frequencies we keep: basis[k][x].
    let n = PHASH_SIZE as f64;
    let basis: Vec<Vec<f64>> = (1..=8)
        .map(|k| {
            (0..PHASH_SIZE)
                .map(|x| (2.0 / n).sqrt() * (std::f64::consts::PI * (2 * x + 1) as f64 * k as f64 / (2.0 * n)).cos())
                .collect()
        })
        .collect();
    // Rows first (32 rows x 8 frequencies), then columns.
    let rows: Vec<[f64; 8]> = gray
        .chunks_exact(PHASH_SIZE)
        .map(|row| std::array::from_fn(|u| basis[u].iter().zip(row).map(|(b, v)| b * v).sum()))
        .collect();
    let mut coefficients = [0.0; 64];
    for (v, basis_v) in basis.iter().enumerate() {
        for u in 0..8 {
            let c: f64 = basis_v.iter().zip(&rows).map(|(b, row)| b * row[u]).sum();
            // Rounding noise on a flat image must not decide bits: a flat image hashes to zero.
            coefficients[v * 8 + u] = if c.abs() < 1e-6 { 0.0 } else { c };
        }
    }
    let mut sorted = coefficients;
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    coefficients.iter().fold(0, |hash, &c| hash << 1 | u64::from(c > median))
}

/// Resamples a single-channel image by area averaging (each output pixel is the mean of the
/// source area it covers), which works for both shrinking and enlarging.
fn resample(src: &[f64], width: usize, height: usize, new_w: usize, new_h: usize) -> Vec<f64> {
    let xs = area_weights(width, new_w);
    let ys = area_weights(height, new_h);
    let horizontal: Vec<f64> = src
        .chunks_exact(width)
        .flat_map(|row| xs.iter().map(move |w| w.iter().map(|&(i, w)| row[i] * w).sum::<f64>()))
        .collect();
    let mut out = Vec::with_capacity(new_w * new_h);
    for weights in &ys {
        for x in 0..new_w {
            out.push(weights.iter().map(|&(y, w)| horizontal[y * new_w + x] * w).sum());
        }
    }
    out
}

/// For each of `dst` output cells, the source cells it overlaps and their normalised weights.
fn area_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let (start, end) = (i as f64 * scale, (i + 1) as f64 * scale);
            let first = start.floor() as usize;
            let last = (end.ceil() as usize).clamp(first + 1, src);
            (first..last)
                .map(|j| (j, (end.min((j + 1) as f64) - start.max(j as f64)).max(0.0) / scale))
                .filter(|&(_, w)| w > 0.0)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(r: u8, g: u8, b: u8, w: u32, h: u32) -> Vec<u8> {
        [r, g, b].repeat((w * h) as usize)
    }

    /// Decodes a test photo and shrinks it to fit 100x100, as the pipeline would.
    fn photo(name: &str) -> image::RgbImage {
        let path = format!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/photos/{}"), name);
        let img = image::open(&path).unwrap_or_else(|e| panic!("{path}: {e}")).to_rgb8();
        fit_within(&img, 100)
    }

    fn fit_within(img: &image::RgbImage, side: u32) -> image::RgbImage {
        let scale = f64::from(side) / f64::from(img.width().max(img.height()));
        let w = ((f64::from(img.width()) * scale).round() as u32).max(1);
        let h = ((f64::from(img.height()) * scale).round() as u32).max(1);
        image::imageops::thumbnail(img, w, h)
    }

    fn analyze_img(img: &image::RgbImage) -> Analysis {
        analyze(img.as_raw(), img.width(), img.height())
    }

    fn distance(a: &Analysis, b: &Analysis) -> u32 {
        hamming(&a.phash, &b.phash).expect("well-formed phash")
    }

    fn mean_rgb(rgb: &[u8], stride: usize) -> [f64; 3] {
        let n = (rgb.len() / stride) as f64;
        std::array::from_fn(|c| rgb.iter().skip(c).step_by(stride).map(|&v| f64::from(v)).sum::<f64>() / n)
    }

    #[test]
    fn solid_colour_is_exact_and_hashes_flat() {
        let a = analyze(&solid(200, 30, 40, 10, 7), 10, 7);
        assert_eq!(a.dominant_color, "#c81e28");
        assert_eq!(a.phash, "0000000000000000");
        assert_eq!(a, analyze(&solid(200, 30, 40, 10, 7), 10, 7), "deterministic");
    }

    #[test]
    fn tiny_odd_and_malformed_input_never_panics() {
        for (w, h) in [(1, 1), (1, 2), (2, 1), (1, 100), (100, 1), (3, 3), (100, 100), (7, 33)] {
            let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
            let a = analyze(&rgb, w, h);
            assert_eq!(a.phash.len(), 16);
            assert!(hamming(&a.phash, &a.phash) == Some(0));
            assert_eq!(a.dominant_color.len(), 7);
            assert!(thumbhash::thumb_hash_to_rgba(&STANDARD_NO_PAD.decode(&a.thumbhash).unwrap()).is_ok());
        }
        let black = analyze(&[0, 0, 0], 1, 1);
        assert_eq!(analyze(&[], 0, 0), black);
        assert_eq!(analyze(&[1, 2, 3], 0, 5), black);
        assert_eq!(analyze(&[1, 2, 3], 2, 2), black, "buffer too short");
        assert_eq!(analyze(&[], u32::MAX, u32::MAX), black);
        // Trailing bytes are ignored.
        assert_eq!(analyze(&[9, 8, 7, 1, 1], 1, 1), analyze(&[9, 8, 7], 1, 1));
        // Oversized input is shrunk rather than refused.
        let big = analyze(&solid(10, 200, 10, 250, 120), 250, 120);
        assert_eq!(big.dominant_color, "#0ac80a");
        assert_eq!(big, analyze(&solid(10, 200, 10, 100, 48), 100, 48));
    }

    #[test]
    fn hamming_rejects_malformed_hashes() {
        assert_eq!(hamming("0000000000000000", "000000000000000f"), Some(4));
        assert_eq!(hamming("ffffffffffffffff", "0000000000000000"), Some(64));
        assert_eq!(hamming("FFFFFFFFFFFFFFFF", "ffffffffffffffff"), Some(0));
        assert_eq!(hamming("000000000000000", "0000000000000000"), None);
        assert_eq!(hamming("00000000000000000", "0000000000000000"), None);
        assert_eq!(hamming("+000000000000000", "0000000000000000"), None);
        assert_eq!(hamming("000000000000000g", "0000000000000000"), None);
        assert_eq!(hamming("", ""), None);
        assert_eq!(hamming("ééééééé0", "0000000000000000"), None);
    }

    #[test]
    fn dominant_colour_prefers_saturated_subject_over_slightly_larger_grey() {
        // 60% mid grey, 40% strong red: the red wins thanks to the chroma weighting...
        let mut rgb = solid(128, 128, 128, 10, 6);
        rgb.extend(solid(220, 20, 20, 10, 4));
        assert_eq!(analyze(&rgb, 10, 10).dominant_color, "#dc1414");
        // ...but not when the grey is overwhelming (85%).
        let mut rgb = solid(128, 128, 128, 20, 17);
        rgb.extend(solid(220, 20, 20, 20, 3));
        assert_eq!(analyze(&rgb, 20, 20).dominant_color, "#808080");
        // The bucket's mean is returned, not its corner.
        let rgb = [100, 50, 10, 110, 60, 20].repeat(5);
        assert_eq!(analyze(&rgb, 5, 2).dominant_color, "#69370f");
    }

    #[test]
    fn thumbhash_decodes_to_the_average_colour() {
        let checks = [("landscape-20mp.jpg", photo("landscape-20mp.jpg")), ("macro-13mp.jpg", photo("macro-13mp.jpg"))]
            .into_iter()
            .chain([(
                "synthetic",
                image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])),
            )]);
        for (name, img) in checks {
            let a = analyze_img(&img);
            let bytes = STANDARD_NO_PAD.decode(&a.thumbhash).expect("base64");
            assert!(!a.thumbhash.ends_with('='));
            let (w, h, rgba) = thumbhash::thumb_hash_to_rgba(&bytes).expect("thumbhash decodes");
            assert_eq!(rgba.len(), w * h * 4);
            let (input, decoded) = (mean_rgb(img.as_raw(), 3), mean_rgb(&rgba, 4));
            println!(
                "{name}: thumbhash {} ({} bytes), input mean {input:.1?}, decoded mean {decoded:.1?}",
                a.thumbhash,
                bytes.len()
            );
            for c in 0..3 {
                assert!((input[c] - decoded[c]).abs() < 12.0, "{name}: channel {c}: {input:?} vs {decoded:?}");
            }
            // Aspect ratio survives too.
            let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&bytes).unwrap();
            let expected = img.width() as f32 / img.height() as f32;
            assert!((ratio / expected - 1.0).abs() < 0.25, "{name}: aspect {ratio} vs {expected}");
        }
    }

    #[test]
    fn phash_survives_edits_and_separates_different_photos() {
        let landscape = photo("landscape-20mp.jpg");
        let grey = photo("grayscale.jpg");
        let macro_ = photo("macro-13mp.jpg");
        let progressive = photo("progressive-13mp.jpg");
        let base = analyze_img(&landscape);
        println!("landscape {base:?}");
        assert_eq!(base, analyze_img(&landscape), "deterministic");

        let brightened = image::imageops::colorops::brighten(&landscape, 25);
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 40).encode_image(&landscape).unwrap();
        let recompressed = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        let resized = fit_within(&landscape, 61);

        let report = |name: &str, a: &Analysis, b: &Analysis| {
            let d = distance(a, b);
            println!("{name}: {} vs {} -> {d}", a.phash, b.phash);
            d
        };
        let near = [
            report("brightened", &base, &analyze_img(&brightened)),
            report("jpeg q40", &base, &analyze_img(&recompressed)),
            report("resized to 61px", &base, &analyze_img(&resized)),
            report("landscape vs grayscale", &base, &analyze_img(&grey)),
            report("macro vs progressive", &analyze_img(&macro_), &analyze_img(&progressive)),
        ];
        let far = report("landscape vs macro", &base, &analyze_img(&macro_));
        for d in near {
            assert!(d <= LIKELY_DUPLICATE_DISTANCE, "{d} bits apart");
        }
        assert!(near[4] <= 4, "same photo, different encoding: {}", near[4]);
        assert!(far > 2 * LIKELY_DUPLICATE_DISTANCE, "different photos only {far} bits apart");
    }
}
