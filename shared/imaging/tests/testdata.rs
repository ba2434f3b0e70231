//! The shared test photos: every photo must be accepted and yield every default preset in every
//! configured format, correctly; every hostile file refused cleanly.

use phoenix_imaging::{
    Fit, FocalPoint, ImageFormat, ImageLimits, OutputFormat, PresetSet, Processed, RenderOptions, Rendition, probe,
    process,
};

macro_rules! testdata {
    ($path:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/", $path)
    };
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn run_with(path: &str, presets: &PresetSet, only: Option<&[&str]>, options: &RenderOptions) -> Processed {
    process(&read(path), &ImageLimits::default(), presets, only, options).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn run(path: &str) -> Processed {
    run_with(path, &PresetSet::default(), None, &RenderOptions::default())
}

fn rendition<'a>(p: &'a Processed, preset: &str, format: OutputFormat) -> &'a Rendition {
    p.renditions
        .iter()
        .find(|r| r.preset == preset && r.format == format)
        .unwrap_or_else(|| panic!("no {preset} {format} in {:?}", p.renditions))
}

fn decode(r: &Rendition) -> image::DynamicImage {
    let format = match r.format {
        OutputFormat::Jpeg => image::ImageFormat::Jpeg,
        OutputFormat::Webp => image::ImageFormat::WebP,
        OutputFormat::Avif => panic!("no AVIF decoder in the tests"),
    };
    image::load_from_memory_with_format(&r.bytes, format).unwrap_or_else(|e| panic!("{} {}: {e}", r.preset, r.format))
}

/// The JPEG marker segments before the first scan: (marker, body).
fn jpeg_segments(b: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= b.len() && b[i] == 0xFF && b[i + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        out.push((b[i + 1], &b[i + 4..i + 2 + len]));
        i += 2 + len;
    }
    out
}

/// RIFF chunk ids of a WebP file.
fn webp_chunks(b: &[u8]) -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    let mut i = 12;
    while i + 8 <= b.len() {
        out.push([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        i += 8 + len + (len & 1);
    }
    out
}

/// No metadata from the original, and sRGB by being untagged.
fn check_clean(r: &Rendition) {
    let what = format!("{} {}", r.preset, r.format);
    assert!(!r.bytes.windows(6).any(|w| w == b"Exif\0\0"), "{what}: carries EXIF");
    assert!(!r.bytes.windows(4).any(|w| w == b"GPS\0"), "{what}: carries GPS");
    match r.format {
        OutputFormat::Jpeg => {
            for (marker, body) in jpeg_segments(&r.bytes) {
                assert_ne!(marker, 0xE1, "{what}: APP1 (EXIF/XMP) present");
                assert_ne!(marker, 0xED, "{what}: APP13 (IPTC) present");
                assert!(!(marker == 0xE2 && body.starts_with(b"ICC_PROFILE")), "{what}: ICC profile present");
            }
        }
        OutputFormat::Webp => {
            let chunks = webp_chunks(&r.bytes);
            for bad in [b"EXIF", b"XMP ", b"ICCP"] {
                assert!(!chunks.contains(bad), "{what}: {} chunk in {chunks:?}", String::from_utf8_lossy(bad));
            }
        }
        OutputFormat::Avif => assert_eq!(&r.bytes[4..12], b"ftypavif", "{what}"),
    }
}

/// Checks the invariants every accepted photo must meet.
fn check_photo(path: &str, format: ImageFormat, display: (u32, u32)) -> Processed {
    let p = run(path);
    assert_eq!(p.probe.format, format, "{path}");
    assert_eq!((p.probe.width, p.probe.height), display, "{path}");
    let presets = PresetSet::default();
    let expected: Vec<(&str, OutputFormat)> =
        presets.presets.iter().flat_map(|p| p.formats.iter().map(|f| (p.name.as_str(), *f))).collect();
    let got: Vec<(&str, OutputFormat)> = p.renditions.iter().map(|r| (r.preset.as_str(), r.format)).collect();
    assert_eq!(got, expected, "{path}");
    for r in &p.renditions {
        let what = format!("{path} {} {}", r.preset, r.format);
        let preset = presets.get(&r.preset).unwrap();
        assert_eq!(r.preset_version, preset.version);
        match preset.fit {
            Fit::Width { width } => {
                let w = width.min(display.0);
                assert_eq!(r.width, w, "{what}");
                let h = f64::from(display.1) * f64::from(w) / f64::from(display.0);
                assert!((f64::from(r.height) - h).abs() <= 1.0, "{what}: {}x{}", r.width, r.height);
            }
            Fit::Cover { width, height } => {
                assert_eq!(u64::from(r.width) * u64::from(height), u64::from(r.height) * u64::from(width), "{what}");
                assert!(r.width <= width && r.width <= display.0 && r.height <= display.1, "{what}");
                if width <= display.0 && height <= display.1 {
                    assert_eq!((r.width, r.height), (width, height), "{what}");
                }
            }
        }
        let decoded = decode(r);
        assert_eq!((decoded.width(), decoded.height()), (r.width, r.height), "{what}");
        let expected_colour = if r.format == OutputFormat::Jpeg || !decoded.color().has_alpha() {
            image::ColorType::Rgb8
        } else {
            image::ColorType::Rgba8
        };
        assert_eq!(decoded.color(), expected_colour, "{what}");
        check_clean(r);
        assert!(r.operations.first().is_some_and(|o| o.starts_with("decode:")), "{what}: {:?}", r.operations);
        assert!(r.operations.last().is_some_and(|o| o.starts_with("encode:")), "{what}: {:?}", r.operations);
    }
    assert_eq!(p.analysis.dominant_color.len(), 7, "{path}: {:?}", p.analysis);
    assert_eq!(p.analysis.phash.len(), 16, "{path}: {:?}", p.analysis);
    assert!(!p.analysis.thumbhash.is_empty(), "{path}");
    p
}

#[test]
fn landscape_20mp() {
    let p = check_photo(testdata!("photos/landscape-20mp.jpg"), ImageFormat::Jpeg, (6028, 3391));
    let large = rendition(&p, "large", OutputFormat::Jpeg);
    assert_eq!((large.width, large.height), (1280, 720));
    let xlarge = rendition(&p, "xlarge", OutputFormat::Jpeg);
    assert_eq!((xlarge.width, xlarge.height), (2048, 1152));
    // Decoded in the DCT domain at a fraction of the size, never at full size.
    assert!(xlarge.operations[0].starts_with("decode:jpeg:scale="), "{:?}", xlarge.operations);
    assert!(xlarge.operations.last().unwrap().contains(":progressive:optimized"), "{:?}", xlarge.operations);
    assert_eq!(rendition(&p, "xlarge", OutputFormat::Jpeg).bytes[..2], [0xFF, 0xD8]);
    let small = rendition(&p, "small", OutputFormat::Jpeg);
    assert!(small.operations.last().unwrap().contains(":baseline:"), "{:?}", small.operations);
    let square = rendition(&p, "cover-square", OutputFormat::Webp);
    assert!(square.operations.iter().any(|o| o == "crop:3391x3391+1319+0@0.50,0.50"), "{:?}", square.operations);
}

#[test]
fn orientation_6_is_applied_and_exif_read() {
    let p = check_photo(testdata!("photos/exif-orientation6-gps.jpg"), ImageFormat::Jpeg, (2056, 3088));
    assert_eq!(p.probe.orientation, 6);
    assert_eq!((p.probe.stored_width, p.probe.stored_height), (3088, 2056));
    assert!(p.probe.camera_make.as_deref().is_some_and(|s| !s.is_empty()), "{:?}", p.probe);
    assert!(p.probe.camera_model.as_deref().is_some_and(|s| !s.is_empty()), "{:?}", p.probe);
    assert!(p.probe.artist.is_some() && p.probe.copyright.is_some(), "{:?}", p.probe);
    let gps = p.probe.gps.expect("GPS position read for the metadata store");
    assert!(gps.latitude.abs() <= 90.0 && gps.longitude.abs() <= 180.0, "{gps:?}");
    let captured = p.probe.captured_at.as_deref().expect("capture time");
    assert_eq!(captured.len(), 19, "{captured}");
    assert_eq!(&captured[4..5], "-");
    assert_eq!(&captured[10..11], "T");
    for r in p.renditions.iter().filter(|r| !r.preset.starts_with("cover-square")) {
        assert!(r.height > r.width, "{} is not portrait: {}x{}", r.preset, r.width, r.height);
    }
    let xlarge = rendition(&p, "xlarge", OutputFormat::Jpeg);
    assert_eq!((xlarge.width, xlarge.height), (2048, 3076));
    assert!(xlarge.operations.contains(&"orient:6".to_owned()), "{:?}", xlarge.operations);
    assert_eq!(rendition(&p, "large", OutputFormat::Webp).width, 1280);
    // GPS must not survive: the GPS IFD tag would appear in any copied EXIF.
    for r in &p.renditions {
        assert!(!r.bytes.windows(4).any(|w| w == b"GPS\0" || w == b"\x88\x25\0\x04"));
    }
}

#[test]
fn portraits_stay_portrait() {
    for (path, dims) in
        [(testdata!("photos/portrait-10mp.jpg"), (2560, 3837)), (testdata!("photos/portrait-6mp.jpg"), (2056, 3088))]
    {
        let p = check_photo(path, ImageFormat::Jpeg, dims);
        assert!(p.renditions.iter().filter(|r| r.preset != "cover-square").all(|r| r.height > r.width), "{path}");
    }
}

#[test]
fn other_jpegs() {
    check_photo(testdata!("photos/macro-13mp.jpg"), ImageFormat::Jpeg, (4224, 3168));
    check_photo(testdata!("photos/progressive-13mp.jpg"), ImageFormat::Jpeg, (4224, 3168));
    let grey = check_photo(testdata!("photos/grayscale.jpg"), ImageFormat::Jpeg, (2411, 1356));
    let img = decode(rendition(&grey, "small", OutputFormat::Jpeg)).into_rgb8();
    let max_spread = img.pixels().map(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap()).max().unwrap();
    assert!(max_spread <= 8, "grey stays grey: channel spread {max_spread}");
    check_photo(testdata!("photos/adobe-rgb.jpg"), ImageFormat::Jpeg, (2112, 1584));
}

/// Per-channel mean of a rendition, 0..=255.
fn mean_rgb(r: &Rendition) -> [f64; 3] {
    let img = decode(r).into_rgb8();
    let mut sum = [0u64; 3];
    for p in img.pixels() {
        for (s, v) in sum.iter_mut().zip(p.0) {
            *s += u64::from(v);
        }
    }
    let n = f64::from(img.width() * img.height());
    sum.map(|s| s as f64 / n)
}

fn assert_close(a: [f64; 3], b: [f64; 3], tolerance: f64, what: &str) {
    for c in 0..3 {
        assert!((a[c] - b[c]).abs() < tolerance, "{what}: channel {c}: {a:.1?} vs {b:.1?}");
    }
}

#[test]
fn cmyk_is_converted_not_inverted() {
    let p = check_photo(testdata!("photos/cmyk.jpg"), ImageFormat::Jpeg, (1280, 1919));
    assert!(
        rendition(&p, "small", OutputFormat::Jpeg).operations.iter().any(|o| o.starts_with("icc:")),
        "converted through its CMYK profile"
    );
    // The same photo as portrait-10mp (RGB): inverted CMYK would flip the means.
    let reference = run(testdata!("photos/portrait-10mp.jpg"));
    for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
        let (a, b) = (mean_rgb(rendition(&p, "small", format)), mean_rgb(rendition(&reference, "small", format)));
        assert_close(a, b, 12.0, "cmyk vs rgb");
    }
}

/// Mean chroma (max - min channel) of a rendition: a dull, unconverted Adobe RGB image shows here.
fn mean_chroma(r: &Rendition) -> f64 {
    let img = decode(r).into_rgb8();
    let sum: u64 = img.pixels().map(|p| u64::from(p.0.iter().max().unwrap() - p.0.iter().min().unwrap())).sum();
    sum as f64 / (u64::from(img.width()) * u64::from(img.height())) as f64
}

#[test]
fn adobe_rgb_is_converted_to_srgb() {
    // Same photo as macro-13mp (sRGB): after conversion the colours must match it closely;
    // left in Adobe RGB they are visibly duller (about 42 against 50).
    let adobe = run(testdata!("photos/adobe-rgb.jpg"));
    let srgb = run(testdata!("photos/macro-13mp.jpg"));
    let (a, b) = (rendition(&adobe, "small", OutputFormat::Jpeg), rendition(&srgb, "small", OutputFormat::Jpeg));
    assert!(a.operations.iter().any(|o| o.starts_with("icc:") && o.ends_with("->srgb")), "{:?}", a.operations);
    let (ca, cb) = (mean_chroma(a), mean_chroma(b));
    assert!((ca - cb).abs() < 2.0, "adobe-rgb chroma {ca:.1}, srgb chroma {cb:.1}");
    assert_close(mean_rgb(a), mean_rgb(b), 12.0, "adobe-rgb vs srgb");
}

#[test]
fn pngs_and_webp() {
    let p = check_photo(testdata!("photos/rgb16.png"), ImageFormat::Png, (904, 509));
    assert_eq!(rendition(&p, "large", OutputFormat::Jpeg).width, 904, "never upscaled");
    assert_eq!(rendition(&p, "xlarge", OutputFormat::Webp).width, 904, "never upscaled");
    assert_eq!(rendition(&p, "medium", OutputFormat::Jpeg).width, 640);
    let portrait = rendition(&p, "cover-portrait", OutputFormat::Jpeg);
    assert_eq!((portrait.width, portrait.height), (381, 508), "the largest 3:4 crop a small photo holds");
    for r in &p.renditions {
        assert_eq!(decode(r).color(), image::ColorType::Rgb8, "16-bit became 8-bit: {} {}", r.preset, r.format);
    }
    assert!(p.renditions[0].operations[0].contains("16bit->8bit"), "{:?}", p.renditions[0].operations);
    check_photo(testdata!("photos/landscape.webp"), ImageFormat::Webp, (3000, 1688));
}

#[test]
fn alpha_is_kept_in_webp_and_flattened_in_jpeg() {
    let p = check_photo(testdata!("photos/alpha.png"), ImageFormat::Png, (1200, 1802));
    let webp = decode(rendition(&p, "medium", OutputFormat::Webp));
    assert!(webp.color().has_alpha(), "WebP keeps alpha");
    let webp = webp.into_rgba8();
    assert!(webp.get_pixel(0, 0).0[3] < 128, "the vignette's corner is transparent: {:?}", webp.get_pixel(0, 0));
    let jpeg = rendition(&p, "medium", OutputFormat::Jpeg);
    assert!(jpeg.operations.contains(&"flatten:#ffffff".to_owned()), "{:?}", jpeg.operations);
    let corner = decode(jpeg).into_rgb8().get_pixel(0, 0).0;
    assert!(corner.iter().all(|&c| c >= 235), "flattened onto white: {corner:?}");

    // A configured background colour.
    let presets = PresetSet { background: [200, 20, 40], ..PresetSet::default() };
    let p = run_with(testdata!("photos/alpha.png"), &presets, Some(&["small"]), &RenderOptions::default());
    let corner = decode(rendition(&p, "small", OutputFormat::Jpeg)).into_rgb8().get_pixel(0, 0).0;
    let close = |a: u8, b: u8| a.abs_diff(b) <= 25;
    assert!(close(corner[0], 200) && close(corner[1], 20) && close(corner[2], 40), "{corner:?}");
}

#[test]
fn identical_renditions_are_encoded_once() {
    // alpha.png is 1200 px wide: `large` (1280) and `xlarge` (2048) are both the whole photo at
    // 1200x1802, in the same formats and qualities; different progressive flags stay separate.
    let p = run(testdata!("photos/alpha.png"));
    for format in [OutputFormat::Webp, OutputFormat::Jpeg] {
        let (large, xlarge) = (rendition(&p, "large", format), rendition(&p, "xlarge", format));
        assert_eq!((xlarge.width, xlarge.height), (1200, 1802));
        assert_eq!(large.bytes, xlarge.bytes, "{format}");
        assert_eq!((xlarge.preset.as_str(), xlarge.preset_version), ("xlarge", 2));
        let ops = &xlarge.operations;
        assert_eq!(ops[ops.len() - 2], "reuse:large-v2", "{format}: {ops:?}");
        assert_eq!(ops.last(), large.operations.last(), "the same encode");
        assert!(!large.operations.iter().any(|o| o.starts_with("reuse:")), "{:?}", large.operations);
    }
    let presets = PresetSet::from_json(
        r##"{"background":"#ffffff","presets":[
            {"name":"a","version":1,"fit":"width","width":1300,"formats":["jpeg","webp"]},
            {"name":"b","version":2,"fit":"width","width":1400,"formats":["jpeg","webp"],"progressive":true},
            {"name":"c","version":3,"fit":"width","width":1500,"formats":["webp"],"quality":{"webp":60}}]}"##,
    )
    .unwrap();
    let p = run_with(testdata!("photos/alpha.png"), &presets, None, &RenderOptions::default());
    assert_eq!(p.renditions.len(), 5);
    let (a, b) = (rendition(&p, "a", OutputFormat::Webp), rendition(&p, "b", OutputFormat::Webp));
    assert_eq!(a.bytes, b.bytes, "WebP has no progressive mode");
    assert_eq!(b.operations[b.operations.len() - 2], "reuse:a-v1", "{:?}", b.operations);
    let (a, b) = (rendition(&p, "a", OutputFormat::Jpeg), rendition(&p, "b", OutputFormat::Jpeg));
    assert_ne!(a.bytes, b.bytes, "baseline and progressive are different encodes");
    assert!(b.operations.last().unwrap().contains("progressive"), "{:?}", b.operations);
    let c = rendition(&p, "c", OutputFormat::Webp);
    assert!(c.operations.last().unwrap().starts_with("encode:webp:q60"), "{:?}", c.operations);
    assert_ne!(c.bytes, a.bytes);
    for r in &p.renditions {
        check_clean(r);
    }
}

#[test]
fn the_focal_point_moves_cover_crops() {
    let path = testdata!("photos/landscape-20mp.jpg");
    let presets = PresetSet::default();
    let only: &[&str] = &["cover-square", "medium"];
    let at = |x: f32| RenderOptions { focal_point: Some(FocalPoint { x, y: 0.5 }), ..RenderOptions::default() };
    let left = run_with(path, &presets, Some(only), &at(0.0));
    let right = run_with(path, &presets, Some(only), &at(1.0));
    let (l, r) =
        (rendition(&left, "cover-square", OutputFormat::Jpeg), rendition(&right, "cover-square", OutputFormat::Jpeg));
    assert_eq!((l.width, l.height, r.width, r.height), (600, 600, 600, 600));
    assert_ne!(l.bytes, r.bytes);
    assert!(l.operations.iter().any(|o| o.starts_with("crop:") && o.ends_with("@0.00,0.50")), "{:?}", l.operations);
    // Compare with the left and right squares of the full frame (medium is 640x360).
    let full = decode(rendition(&left, "medium", OutputFormat::Jpeg)).into_rgb8();
    let square_mean = |x0: u32| {
        let mut sum = [0u64; 3];
        for y in 0..360 {
            for x in x0..x0 + 360 {
                let p = full.get_pixel(x, y).0;
                (0..3).for_each(|c| sum[c] += u64::from(p[c]));
            }
        }
        sum.map(|s| s as f64 / (360.0 * 360.0))
    };
    let dist = |a: [f64; 3], b: [f64; 3]| (0..3).map(|c| (a[c] - b[c]).abs()).sum::<f64>();
    let (ml, mr) = (mean_rgb(l), mean_rgb(r));
    let (fl, fr) = (square_mean(0), square_mean(640 - 360));
    assert!(dist(ml, fl) < dist(ml, fr), "left crop {ml:.1?} vs left {fl:.1?} / right {fr:.1?}");
    assert!(dist(mr, fr) < dist(mr, fl), "right crop {mr:.1?} vs left {fl:.1?} / right {fr:.1?}");
    // Only what was asked for.
    let names: Vec<&str> = left.renditions.iter().map(|r| r.preset.as_str()).collect();
    assert_eq!(names, ["medium", "medium", "cover-square", "cover-square"]);
}

#[test]
fn avif_is_opt_in_and_decodable() {
    let presets = PresetSet::from_json(
        r#"{"presets":[{"name":"thumb","version":2,"fit":"width","width":160,"formats":["avif","jpeg"],
            "quality":{"avif":55}}]}"#,
    )
    .unwrap();
    let p = run_with(testdata!("photos/rgb16.png"), &presets, None, &RenderOptions::default());
    assert_eq!(p.renditions.len(), 2);
    let avif = &p.renditions[0];
    assert_eq!((avif.preset.as_str(), avif.preset_version, avif.format), ("thumb", 2, OutputFormat::Avif));
    assert_eq!((avif.width, avif.height), (160, 90));
    assert_eq!(&avif.bytes[4..12], b"ftypavif");
    assert!(avif.bytes.windows(4).any(|w| w == b"av01"), "an AV1 item");
    assert!(avif.bytes.len() > 200 && avif.bytes.len() < 20_000, "{}", avif.bytes.len());
    assert_eq!(avif.operations.last().unwrap(), "encode:avif:q55:s6");
    check_clean(avif);
    assert_eq!(decode(&p.renditions[1]).width(), 160);
}

#[test]
fn a_custom_preset_set_renders_only_its_presets() {
    let presets = PresetSet::from_json(
        r##"{"background":"#000000","presets":[{"name":"banner","version":1,"fit":"cover","width":400,"height":100,
            "formats":["webp"]}]}"##,
    )
    .unwrap();
    let p = run_with(testdata!("photos/portrait-6mp.jpg"), &presets, None, &RenderOptions::default());
    assert_eq!(p.renditions.len(), 1);
    let r = &p.renditions[0];
    assert_eq!((r.preset.as_str(), r.format, r.width, r.height), ("banner", OutputFormat::Webp, 400, 100));
    check_clean(r);

    let e =
        PresetSet::from_json(r#"{"presets":[{"name":"x","version":1,"fit":"width","formats":["jpeg"]}]}"#).unwrap_err();
    assert!(e.to_string().contains("malformed") && e.to_string().contains("width"), "{e}");
    let e = PresetSet::from_file("/nonexistent/presets.json").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/presets.json"), "{e}");
}

#[test]
fn probe_reads_header_only() {
    let p = probe(&read(testdata!("photos/landscape-20mp.jpg")), &ImageLimits::default()).unwrap();
    assert_eq!((p.width, p.height, p.orientation), (6028, 3391, 1));
    let tight = ImageLimits { max_pixels: 1_000_000, ..ImageLimits::default() };
    let e = probe(&read(testdata!("photos/landscape-20mp.jpg")), &tight).unwrap_err();
    assert_eq!(e.code(), "too_many_pixels");
    assert_eq!(e.to_string(), "JPEG is 6028x3391 = 20440948 pixels, over the limit of 1000000");
    let small = ImageLimits { max_bytes: 1000, ..ImageLimits::default() };
    assert_eq!(probe(&read(testdata!("photos/rgb16.png")), &small).unwrap_err().code(), "file_too_large");
}

fn refused(path: &str) -> phoenix_imaging::ImagingError {
    match process(&read(path), &ImageLimits::default(), &PresetSet::default(), None, &RenderOptions::default()) {
        Ok(p) => panic!("{path} was accepted: {:?}", p.probe),
        Err(e) => e,
    }
}

#[test]
fn hostile_files_are_refused() {
    let cases = [
        (testdata!("hostile/huge-dimensions-header.jpg"), "dimensions_too_large"),
        (testdata!("hostile/truncated.jpg"), "corrupt_image"),
        (testdata!("hostile/html-named.jpg"), "unsupported_format"),
        (testdata!("hostile/empty.jpg"), "empty_file"),
        (testdata!("hostile/random-bytes.jpg"), "unsupported_format"),
        (testdata!("hostile/animated.gif"), "unsupported_format"),
        (testdata!("hostile/script.svg"), "unsupported_format"),
    ];
    for (path, code) in cases {
        let e = refused(path);
        assert_eq!(e.code(), code, "{path}: {e}");
        assert!(!e.to_string().is_empty());
    }
    let bomb = refused(testdata!("hostile/bomb-50000x50000.png"));
    assert!(["dimensions_too_large", "too_many_pixels"].contains(&bomb.code()), "{bomb}");
    assert!(bomb.to_string().contains("50000x50000"), "{bomb}");

    let gif = refused(testdata!("hostile/animated.gif"));
    assert_eq!(gif.to_string(), "GIF images are not accepted: upload JPEG, PNG or WebP");
    let svg = refused(testdata!("hostile/script.svg"));
    assert!(svg.to_string().starts_with("SVG images are not accepted"), "{svg}");
}

#[test]
fn truncated_and_damaged_files_are_corrupt() {
    let limits = ImageLimits::default();
    let (presets, options) = (PresetSet::default(), RenderOptions::default());
    let bytes = read(testdata!("photos/rgb16.png"));
    let e = process(&bytes[..bytes.len() / 2], &limits, &presets, None, &options).unwrap_err();
    assert_eq!(e.code(), "corrupt_image", "{e}");
    // A JPEG whose header is cut off before the frame header.
    let jpeg = read(testdata!("photos/portrait-6mp.jpg"));
    let e = process(&jpeg[..200], &limits, &presets, None, &options).unwrap_err();
    assert_eq!(e.code(), "corrupt_image", "{e}");
    // Scan data overwritten with garbage, EOI kept: must not crash, whatever it decodes to.
    let mut damaged = jpeg.clone();
    let n = damaged.len();
    damaged[n / 2..n / 2 + 4096].iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7919 % 251) as u8);
    if let Err(e) = process(&damaged, &limits, &presets, None, &options) {
        assert!(["corrupt_image", "decoder_panic"].contains(&e.code()), "{e}");
    }
}

#[test]
fn webp_effort_follows_the_preset_for_opaque_photos_only() {
    // The default presets trade a few per cent of size for speed on the two largest sizes only.
    let p = run(testdata!("photos/landscape.webp"));
    let method = |r: &Rendition| r.operations.last().unwrap().rsplit(':').next().unwrap().to_owned();
    for (preset, expected) in
        [("small", "m3"), ("medium", "m3"), ("cover-portrait", "m3"), ("large", "m2"), ("xlarge", "m2")]
    {
        assert_eq!(method(rendition(&p, preset, OutputFormat::Webp)), expected, "{preset}");
    }
    // Alpha keeps libwebp's default effort whatever the preset says.
    let p = run(testdata!("photos/alpha.png"));
    assert_eq!(method(rendition(&p, "xlarge", OutputFormat::Webp)), "m4");
    let bad = r#"{"presets":[{"name":"a","version":1,"fit":"width","width":10,"formats":["webp"],"webp_effort":7}]}"#;
    assert!(PresetSet::from_json(bad).is_err());
}
