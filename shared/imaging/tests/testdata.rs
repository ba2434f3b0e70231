//! The shared test photos: every photo must be accepted, every hostile file refused cleanly.

use phoenix_imaging::{ImageFormat, ImageLimits, Processed, default_presets, probe, process};

macro_rules! testdata {
    ($path:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/", $path)
    };
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn run(path: &str) -> Processed {
    process(&read(path), &ImageLimits::default(), &default_presets()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Checks the invariants every accepted photo must meet.
fn check_photo(path: &str, format: ImageFormat, display: (u32, u32)) -> Processed {
    let p = run(path);
    assert_eq!(p.probe.format, format, "{path}");
    assert_eq!((p.probe.width, p.probe.height), display, "{path}");
    let names: Vec<&str> = p.renditions.iter().map(|r| r.preset.as_str()).collect();
    assert_eq!(names, ["small", "medium", "large"], "{path}");
    for (r, preset) in p.renditions.iter().zip(default_presets()) {
        let expected_w = preset.width.min(display.0);
        let expected_h = (f64::from(display.1) * f64::from(expected_w) / f64::from(display.0)).round() as u32;
        assert_eq!((r.width, r.height), (expected_w, expected_h), "{path} {}", r.preset);
        assert_eq!(r.format, ImageFormat::Jpeg);
        let decoded = image::load_from_memory_with_format(&r.bytes, image::ImageFormat::Jpeg)
            .unwrap_or_else(|e| panic!("{path} {}: {e}", r.preset));
        assert_eq!((decoded.width(), decoded.height()), (r.width, r.height), "{path} {}", r.preset);
        assert_eq!(decoded.color(), image::ColorType::Rgb8, "{path} {}", r.preset);
        assert!(!r.bytes.windows(6).any(|w| w == b"Exif\0\0"), "{path} {}: a rendition must carry no EXIF", r.preset);
    }
    p
}

#[test]
fn landscape_20mp() {
    let p = check_photo(testdata!("photos/landscape-20mp.jpg"), ImageFormat::Jpeg, (6028, 3391));
    let large = &p.renditions[2];
    assert_eq!((large.width, large.height), (1280, 720));
}

#[test]
fn orientation_6_is_applied_and_exif_read() {
    let p = check_photo(testdata!("photos/exif-orientation6-gps.jpg"), ImageFormat::Jpeg, (2056, 3088));
    assert_eq!(p.probe.orientation, 6);
    assert_eq!((p.probe.stored_width, p.probe.stored_height), (3088, 2056));
    assert!(p.probe.camera_make.as_deref().is_some_and(|s| !s.is_empty()), "{:?}", p.probe);
    assert!(p.probe.camera_model.as_deref().is_some_and(|s| !s.is_empty()), "{:?}", p.probe);
    let captured = p.probe.captured_at.as_deref().expect("capture time");
    assert_eq!(captured.len(), 19, "{captured}");
    assert_eq!(&captured[4..5], "-");
    assert_eq!(&captured[10..11], "T");
    for r in &p.renditions {
        assert!(r.height > r.width, "{} is not portrait: {}x{}", r.preset, r.width, r.height);
    }
    assert_eq!(p.renditions[2].width, 1280);
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
        assert!(p.renditions.iter().all(|r| r.height > r.width), "{path}");
    }
}

#[test]
fn other_jpegs() {
    check_photo(testdata!("photos/macro-13mp.jpg"), ImageFormat::Jpeg, (4224, 3168));
    check_photo(testdata!("photos/progressive-13mp.jpg"), ImageFormat::Jpeg, (4224, 3168));
    check_photo(testdata!("photos/grayscale.jpg"), ImageFormat::Jpeg, (2411, 1356));
    check_photo(testdata!("photos/adobe-rgb.jpg"), ImageFormat::Jpeg, (2112, 1584));
}

#[test]
fn cmyk_is_not_inverted() {
    let p = check_photo(testdata!("photos/cmyk.jpg"), ImageFormat::Jpeg, (1280, 1919));
    // The same photo as portrait-10mp: inverted CMYK would make the mean brightness flip.
    let mean = |bytes: &[u8]| {
        let img = image::load_from_memory(bytes).unwrap().into_rgb8();
        img.as_raw().iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / img.as_raw().len() as f64
    };
    let reference = run(testdata!("photos/portrait-10mp.jpg"));
    let (a, b) = (mean(&p.renditions[0].bytes), mean(&reference.renditions[0].bytes));
    assert!((a - b).abs() < 40.0, "cmyk mean {a:.1}, rgb mean {b:.1}");
}

/// Mean chroma (max - min channel) of a rendition: a dull, unconverted Adobe RGB image shows here.
fn mean_chroma(jpeg: &[u8]) -> f64 {
    let img = image::load_from_memory(jpeg).unwrap().into_rgb8();
    let sum: u64 = img.pixels().map(|p| u64::from(p.0.iter().max().unwrap() - p.0.iter().min().unwrap())).sum();
    sum as f64 / (u64::from(img.width()) * u64::from(img.height())) as f64
}

#[test]
fn adobe_rgb_is_converted_to_srgb() {
    // Same photo as macro-13mp (sRGB): after conversion the colours must match it closely;
    // left in Adobe RGB they are visibly duller (about 42 against 50).
    let adobe = run(testdata!("photos/adobe-rgb.jpg"));
    let srgb = run(testdata!("photos/macro-13mp.jpg"));
    let (a, b) = (mean_chroma(&adobe.renditions[0].bytes), mean_chroma(&srgb.renditions[0].bytes));
    assert!((a - b).abs() < 2.0, "adobe-rgb chroma {a:.1}, srgb chroma {b:.1}");
}

#[test]
fn pngs_and_webp() {
    let p = check_photo(testdata!("photos/rgb16.png"), ImageFormat::Png, (904, 509));
    assert_eq!(p.renditions[2].width, 904, "never upscaled");
    assert_eq!(p.renditions[1].width, 640);
    check_photo(testdata!("photos/alpha.png"), ImageFormat::Png, (1200, 1802));
    check_photo(testdata!("photos/landscape.webp"), ImageFormat::Webp, (3000, 1688));
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
    match process(&read(path), &ImageLimits::default(), &default_presets()) {
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
fn truncated_png_is_corrupt() {
    let bytes = read(testdata!("photos/rgb16.png"));
    let e = process(&bytes[..bytes.len() / 2], &ImageLimits::default(), &default_presets()).unwrap_err();
    assert_eq!(e.code(), "corrupt_image", "{e}");
}
