//! Watermarks on real renditions: the logo is where `placement` says, blended as stated, and
//! nothing else changes.

use std::sync::Arc;

use image::{ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use phoenix_imaging::{
    ImageLimits, OutputFormat, PresetSet, Processed, RenderOptions, Rendition, Watermark, WatermarkPosition,
    decode_logo, placement, process,
};

macro_rules! testdata {
    ($path:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/", $path)
    };
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn png(width: u32, height: u32, colour: image::ExtendedColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(data, width, height, colour).unwrap();
    out
}

/// A solid red logo as an uploaded PNG would be, of alpha `alpha`.
fn red_logo(alpha: u8) -> Arc<RgbaImage> {
    let logo = RgbaImage::from_pixel(64, 64, Rgba([255, 0, 0, alpha]));
    let bytes = png(64, 64, image::ExtendedColorType::Rgba8, logo.as_raw());
    let decoded = decode_logo(&bytes).unwrap();
    assert_eq!(decoded, logo);
    Arc::new(decoded)
}

fn mark(logo: Arc<RgbaImage>, opacity: f32, presets: &[&str]) -> Watermark {
    Watermark {
        logo,
        position: WatermarkPosition::BottomRight,
        margin: 0.05,
        scale: 0.25,
        opacity,
        presets: presets.iter().map(|&p| p.to_owned()).collect(),
    }
}

fn render(path: &str, only: &[&str], watermark: Option<Watermark>) -> Processed {
    let options = RenderOptions { watermark, ..RenderOptions::default() };
    process(&read(path), &ImageLimits::default(), &PresetSet::default(), Some(only), &options).unwrap()
}

fn rendition<'a>(p: &'a Processed, preset: &str, format: OutputFormat) -> &'a Rendition {
    p.renditions.iter().find(|r| r.preset == preset && r.format == format).unwrap()
}

fn rgb(r: &Rendition) -> RgbImage {
    image::load_from_memory(&r.bytes).unwrap().into_rgb8()
}

/// Per-channel mean and max absolute difference of `got` from `expected(x, y)` over the pixels
/// for which `inside(x, y)` holds.
fn compare(got: &RgbImage, expected: impl Fn(u32, u32) -> Rgb<u8>, inside: impl Fn(u32, u32) -> bool) -> (f64, u8) {
    let (mut sum, mut n, mut max) = (0u64, 0u64, 0u8);
    for (x, y, p) in got.enumerate_pixels() {
        if !inside(x, y) {
            continue;
        }
        for (a, b) in p.0.iter().zip(expected(x, y).0) {
            let d = a.abs_diff(b);
            (sum, n, max) = (sum + u64::from(d), n + 1, max.max(d));
        }
    }
    assert!(n > 0);
    (sum as f64 / n as f64, max)
}

/// Mean difference allowed outside the logo between a marked and an unmarked rendition. JPEG
/// codes 8x8 blocks independently: only the blocks the logo touches change (about 0.15 over
/// the rest of `medium`). libwebp chooses its segments and filter strength from the whole
/// picture, so the logo shifts the coding noise everywhere: about 1.1 on `medium`, where the
/// WebP and the JPEG of the very same pixels differ by 2.1.
fn unchanged_tolerance(format: OutputFormat) -> f64 {
    if format == OutputFormat::Jpeg { 0.5 } else { 2.0 }
}

/// The logo's rectangle on a `w`x`h` rendition, shrunk by `inset` (JPEG smears colour edges).
fn within(rect: (u32, u32, u32, u32), inset: u32) -> impl Fn(u32, u32) -> bool {
    let (x0, y0, w, h) = rect;
    move |x, y| x >= x0 + inset && x < x0 + w - inset && y >= y0 + inset && y < y0 + h - inset
}

/// Outside the logo's rectangle grown by `band` pixels.
fn outside(rect: (u32, u32, u32, u32), band: u32) -> impl Fn(u32, u32) -> bool {
    let (x0, y0, w, h) = rect;
    move |x, y| x + band < x0 || x >= x0 + w + band || y + band < y0 || y >= y0 + h + band
}

#[test]
fn the_logo_lands_where_placement_says_and_nothing_else_changes() {
    let path = testdata!("photos/landscape-20mp.jpg");
    let only: &[&str] = &["small", "medium", "large"];
    let plain = render(path, only, None);
    let marked = render(path, only, Some(mark(red_logo(255), 1.0, &["medium"])));
    let m = mark(red_logo(255), 1.0, &["medium"]);
    let rect = placement(640, 360, 64, 64, &m);
    assert_eq!(rect, (462, 182, 160, 160));
    for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
        let (p, w) = (rendition(&plain, "medium", format), rendition(&marked, "medium", format));
        assert_eq!((w.width, w.height), (640, 360));
        let ops = &w.operations;
        assert_eq!(ops[ops.len() - 2], "watermark:bottom_right:0.25:1", "{ops:?}");
        assert_eq!(ops[..ops.len() - 2], p.operations[..p.operations.len() - 1], "otherwise the same steps");
        let (got, clean) = (rgb(w), rgb(p));
        let (mean, max) = compare(&got, |_, _| Rgb([255, 0, 0]), within(rect, 4));
        assert!(mean < 3.0 && max < 40, "{format}: red inside the logo: mean {mean:.2}, max {max}");
        let (mean, max) = compare(&got, |x, y| *clean.get_pixel(x, y), outside(rect, 0));
        let tolerance = unchanged_tolerance(format);
        assert!(mean < tolerance, "{format}: the rest is the unmarked rendition: mean {mean:.2}, max {max}");
        if format == OutputFormat::Jpeg {
            // JPEG blocks are coded independently: beyond the logo's blocks (and chroma's
            // smoothing across them) not a single pixel differs.
            let (mean, max) = compare(&got, |x, y| *clean.get_pixel(x, y), outside(rect, 32));
            assert_eq!((mean, max), (0.0, 0), "{format}");
        }
    }
    // Presets not named: byte for byte as without a watermark (even though `small` may be
    // resized from the marked preset's pixels).
    for preset in ["small", "large"] {
        for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
            let (p, w) = (rendition(&plain, preset, format), rendition(&marked, preset, format));
            assert_eq!(p.bytes, w.bytes, "{preset} {format}");
            assert_eq!(p.operations, w.operations, "{preset} {format}");
        }
    }
    assert_eq!(plain.analysis, marked.analysis, "the analysis sees the photo, not the logo");
}

#[test]
fn opacity_and_the_logos_own_alpha_blend() {
    let path = testdata!("photos/landscape-20mp.jpg");
    let plain = render(path, &["medium"], None);
    for (logo, opacity) in [(red_logo(255), 0.5), (red_logo(128), 1.0)] {
        let m = mark(logo, opacity, &["medium"]);
        let marked = render(path, &["medium"], Some(m.clone()));
        let rect = placement(640, 360, 64, 64, &m);
        for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
            let (got, clean) = (rgb(rendition(&marked, "medium", format)), rgb(rendition(&plain, "medium", format)));
            // Half red over the photo.
            let blend = |x: u32, y: u32| {
                let c = clean.get_pixel(x, y).0;
                let mix = |logo: f64, photo: u8| (logo * 0.5 + f64::from(photo) * 0.5).round() as u8;
                Rgb([mix(255.0, c[0]), mix(0.0, c[1]), mix(0.0, c[2])])
            };
            let (mean, max) = compare(&got, blend, within(rect, 4));
            assert!(mean < 4.0 && max < 48, "{format} opacity {opacity}: mean {mean:.2}, max {max}");
            let (mean, _) = compare(&got, |x, y| *clean.get_pixel(x, y), outside(rect, 0));
            assert!(mean < unchanged_tolerance(format), "{format}: {mean:.2}");
        }
    }
}

#[test]
fn watermarks_on_alpha_and_shared_encodes() {
    // alpha.png is 1200 px wide: `large` and `xlarge` are the same pixels, normally encoded once.
    let path = testdata!("photos/alpha.png");
    let m = Watermark { position: WatermarkPosition::TopLeft, margin: 0.0, ..mark(red_logo(255), 1.0, &["xlarge"]) };
    let plain = render(path, &["large", "xlarge"], None);
    let marked = render(path, &["large", "xlarge"], Some(m.clone()));
    for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
        let (large, xlarge) = (rendition(&marked, "large", format), rendition(&marked, "xlarge", format));
        assert_eq!(large.bytes, rendition(&plain, "large", format).bytes, "{format}");
        assert_ne!(xlarge.bytes, large.bytes, "{format}: the marked one is its own encode");
        assert!(!xlarge.operations.iter().any(|o| o.starts_with("reuse:")), "{:?}", xlarge.operations);
    }
    // WebP keeps alpha: the logo is opaque red over the transparent corner, the rest stays clear.
    let xlarge = rendition(&marked, "xlarge", OutputFormat::Webp);
    let img = image::load_from_memory(&xlarge.bytes).unwrap().into_rgba8();
    let (x, y, w, h) = placement(1200, 1802, 64, 64, &m);
    assert_eq!((x, y, w, h), (0, 0, 300, 300));
    let p = img.get_pixel(10, 10).0;
    assert!(p[0] > 230 && p[1] < 30 && p[2] < 30 && p[3] > 250, "{p:?}");
    assert!(img.get_pixel(1190, 10).0[3] < 128, "outside the logo the corner is still transparent");
    // JPEG: the logo, then the flattening onto the background.
    let jpeg = rendition(&marked, "xlarge", OutputFormat::Jpeg);
    let ops = &jpeg.operations;
    assert_eq!(ops[ops.len() - 3..], ["watermark:top_left:0.25:1", "flatten:#ffffff", ops[ops.len() - 1].as_str()]);
}

#[test]
fn logos_must_be_pngs_with_alpha_and_small() {
    let refuse = |bytes: &[u8]| {
        let e = decode_logo(bytes).unwrap_err();
        assert_eq!(e.code(), "invalid_logo", "{e}");
        e.to_string()
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
        .write_image(&[200; 16 * 16 * 3], 16, 16, image::ExtendedColorType::Rgb8)
        .unwrap();
    let e = refuse(&jpeg);
    assert!(e.contains("PNG") && e.contains("JPEG"), "{e}");
    let e = refuse(&png(16, 16, image::ExtendedColorType::Rgb8, &[200; 16 * 16 * 3]));
    assert!(e.contains("no transparency"), "{e}");
    let e = refuse(&read(testdata!("photos/rgb16.png")));
    assert!(e.contains("no transparency"), "{e}");
    let e = refuse(&png(4097, 8, image::ExtendedColorType::Rgba8, &vec![0; 4097 * 8 * 4]));
    assert!(e.contains("4097x8") && e.contains("4096"), "{e}");
    let mut big = png(16, 16, image::ExtendedColorType::Rgba8, &[0; 16 * 16 * 4]);
    big.resize(4 * 1024 * 1024 + 1, 0);
    let e = refuse(&big);
    assert!(e.contains("4194305 bytes") && e.contains("4 MiB"), "{e}");
    let e = refuse(&read(testdata!("photos/alpha.png"))[..1000]);
    assert!(e.contains("could not be decoded"), "{e}");
    // Grey with alpha is fine: it becomes RGBA.
    let logo = decode_logo(&png(10, 5, image::ExtendedColorType::La8, &[128; 10 * 5 * 2])).unwrap();
    assert_eq!(logo.dimensions(), (10, 5));
    assert_eq!(logo.get_pixel(0, 0).0, [128, 128, 128, 128]);
}

#[test]
fn bad_settings_are_refused_before_decoding() {
    let options = RenderOptions {
        watermark: Some(Watermark { scale: 0.0, ..mark(red_logo(255), 1.0, &["medium"]) }),
        ..RenderOptions::default()
    };
    let e = process(&[0xFF, 0xD8, 0xFF], &ImageLimits::default(), &PresetSet::default(), None, &options).unwrap_err();
    assert_eq!(e.code(), "corrupt_image", "the upload is judged first: {e}");
    let e =
        process(&read(testdata!("photos/rgb16.png")), &ImageLimits::default(), &PresetSet::default(), None, &options)
            .unwrap_err();
    assert_eq!(e.code(), "invalid_watermark", "{e}");
    assert!(e.to_string().contains("scale 0"), "{e}");
    // Its serialised form is what it was: the watermark is not part of it.
    assert_eq!(serde_json::to_string(&options).unwrap(), r#"{"focal_point":null}"#);
}
