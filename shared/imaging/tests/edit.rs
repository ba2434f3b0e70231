//! Edits on the shared test photos: the geometry is exact, the pixels are the original's (within
//! JPEG's loss), and the result is a source the pipeline renders like any upload.

use image::{RgbImage, RgbaImage, imageops};
use phoenix_imaging::{
    CropSpec, EditOp, EditedSource, FlipAxis, FocalPoint, ImageFormat, ImageLimits, OutputFormat, PresetSet,
    RenderOptions, Rotation, crop_rect, edit_source, probe, process,
};

macro_rules! testdata {
    ($path:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/", $path)
    };
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn edit(bytes: &[u8], op: EditOp) -> EditedSource {
    edit_source(bytes, &ImageLimits::default(), &op).unwrap_or_else(|e| panic!("{op:?}: {e}"))
}

fn rotate(degrees: u32) -> EditOp {
    EditOp::Rotate(Rotation::from_degrees(degrees).unwrap())
}

/// The new source as the pipeline would see it: upright, no metadata, the stated size.
fn check_source(e: &EditedSource) -> image::DynamicImage {
    let p = probe(&e.bytes, &ImageLimits::default()).unwrap();
    assert_eq!((p.format, p.width, p.height, p.orientation), (e.format, e.width, e.height, 1), "{e:?}");
    assert!(p.gps.is_none() && p.camera_make.is_none(), "no metadata is carried over: {p:?}");
    assert!(!e.bytes.windows(6).any(|w| w == b"Exif\0\0"), "{e:?} carries EXIF");
    let img = image::load_from_memory(&e.bytes).unwrap();
    assert_eq!((img.width(), img.height()), (e.width, e.height));
    img
}

/// Mean absolute difference per channel between two images of the same size.
fn mean_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| u64::from(x.abs_diff(y))).sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn a_rect_crop_is_exactly_the_requested_part() {
    let original = read(testdata!("photos/portrait-6mp.jpg"));
    let op = EditOp::Crop(CropSpec::Rect { x: 120, y: 80, width: 1600, height: 900 });
    let e = edit(&original, op);
    assert_eq!((e.format, e.width, e.height), (ImageFormat::Jpeg, 1600, 900));
    assert_eq!(e.operations, ["crop:120,80,1600x900"]);
    let cropped = check_source(&e).into_rgb8();
    let expected =
        imageops::crop_imm(&image::load_from_memory(&original).unwrap().into_rgb8(), 120, 80, 1600, 900).to_image();
    let d = mean_diff(&cropped, &expected);
    assert!(d < 2.5, "the crop shows that part of the photo: mean difference {d:.2}");
    // One pixel off would be much further away.
    let shifted =
        imageops::crop_imm(&image::load_from_memory(&original).unwrap().into_rgb8(), 124, 80, 1600, 900).to_image();
    assert!(mean_diff(&cropped, &shifted) > 2.0 * d, "{d:.2}");
}

#[test]
fn an_aspect_crop_is_the_largest_of_that_shape() {
    let original = read(testdata!("photos/landscape-20mp.jpg"));
    let spec = CropSpec::Aspect { width: 1, height: 1, focal: FocalPoint::default() };
    assert_eq!(crop_rect(6028, 3391, &spec).unwrap(), (1319, 0, 3391, 3391));
    let e = edit(&original, EditOp::Crop(spec));
    assert_eq!((e.width, e.height), (3391, 3391), "a square as tall as the photo");
    assert_eq!(e.operations, ["crop:1319,0,3391x3391"]);
    check_source(&e);
}

#[test]
fn bad_crops_are_refused_before_decoding() {
    let original = read(testdata!("photos/landscape-20mp.jpg"));
    let refuse = |spec: CropSpec| edit_source(&original, &ImageLimits::default(), &EditOp::Crop(spec)).unwrap_err();
    let e = refuse(CropSpec::Rect { x: 6000, y: 0, width: 100, height: 100 });
    assert_eq!(e.code(), "invalid_edit");
    assert_eq!(
        e.to_string(),
        "invalid edit: the image is 6028x3391; the crop 100x100 at 6000,0 reaches 6100,100, outside the image"
    );
    let e = refuse(CropSpec::Rect { x: 0, y: 0, width: 0, height: 100 });
    assert!(e.to_string().contains("6028x3391") && e.to_string().contains("empty"), "{e}");
    let e = refuse(CropSpec::Aspect { width: 16, height: 0, focal: FocalPoint::default() });
    assert!(e.to_string().contains("6028x3391") && e.to_string().contains("16:0"), "{e}");
    // The upload's own problems come first, as in `process`.
    let e = edit_source(&original[..original.len() - 100], &ImageLimits::default(), &rotate(90)).unwrap_err();
    assert_eq!(e.code(), "corrupt_image", "{e}");
    let tight = ImageLimits { max_pixels: 1_000_000, ..ImageLimits::default() };
    assert_eq!(edit_source(&original, &tight, &rotate(90)).unwrap_err().code(), "too_many_pixels");
}

#[test]
fn rotation_turns_the_displayed_image() {
    // Stored 3088x2056 with orientation 6, displayed 2056x3088.
    let original = read(testdata!("photos/exif-orientation6-gps.jpg"));
    let turned = edit(&original, rotate(90));
    assert_eq!((turned.width, turned.height), (3088, 2056), "90° swaps the displayed sides");
    assert_eq!(turned.operations, ["rotate:90"]);
    check_source(&turned);
    let half = edit(&original, rotate(180));
    assert_eq!((half.width, half.height), (2056, 3088));
    check_source(&half);
    let back = edit(&original, rotate(270));
    assert_eq!((back.width, back.height), (3088, 2056));

    // Clockwise, of what viewers see: compare renditions of the original turned here with
    // renditions of the turned source.
    let presets = |width: u32| {
        PresetSet::from_json(&format!(
            r#"{{"presets":[{{"name":"w","version":1,"fit":"width","width":{width},"formats":["webp"]}}]}}"#
        ))
        .unwrap()
    };
    let rendered = |bytes: &[u8], width: u32| {
        let p = process(bytes, &ImageLimits::default(), &presets(width), None, &RenderOptions::default()).unwrap();
        assert_eq!(p.renditions[0].format, OutputFormat::Webp);
        image::load_from_memory(&p.renditions[0].bytes).unwrap().into_rgb8()
    };
    let upright = rendered(&original, 400);
    assert_eq!(upright.dimensions(), (400, 601));
    for (edited, expected) in [
        (&turned, imageops::rotate90(&upright)),
        (&back, imageops::rotate270(&upright)),
        (&half, imageops::rotate180(&upright)),
    ] {
        let got = rendered(&edited.bytes, expected.width());
        let wrong = imageops::flip_vertical(&expected);
        let (d, d_wrong) = (mean_diff(&got, &expected), mean_diff(&got, &wrong));
        assert!(d < 3.0 && d_wrong > 3.0 * d, "{:?}: {d:.2} (mirrored: {d_wrong:.2})", edited.operations);
    }
}

#[test]
fn four_quarter_turns_return_the_landscape() {
    let original = read(testdata!("photos/landscape.webp"));
    let mut bytes = original.clone();
    let mut sizes = Vec::new();
    for _ in 0..4 {
        let e = edit(&bytes, rotate(90));
        assert_eq!(e.format, ImageFormat::Jpeg, "opaque: JPEG");
        sizes.push((e.width, e.height));
        bytes = e.bytes;
    }
    assert_eq!(sizes, [(1688, 3000), (3000, 1688), (1688, 3000), (3000, 1688)]);
    let before = image::load_from_memory(&original).unwrap().into_rgb8();
    let after = image::load_from_memory(&bytes).unwrap().into_rgb8();
    let d = mean_diff(&before, &after);
    assert!(d < 1.5, "four generations at quality 95 4:4:4 stay close: {d:.2}");
}

#[test]
fn a_horizontal_flip_mirrors_left_and_right() {
    let original = read(testdata!("photos/landscape.webp"));
    let e = edit(&original, EditOp::Flip(FlipAxis::Horizontal));
    assert_eq!((e.width, e.height), (3000, 1688));
    assert_eq!(e.operations, ["flip:horizontal"]);
    let flipped = check_source(&e).into_rgb8();
    let input = image::load_from_memory(&original).unwrap().into_rgb8();
    let column =
        |img: &RgbImage, x: u32| -> Vec<u8> { (0..img.height()).flat_map(|y| img.get_pixel(x, y).0).collect() };
    let diff =
        |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.len() as f64;
    let (left, right) = (column(&flipped, 0), column(&flipped, 2999));
    let (d_left, d_right) = (diff(&left, &column(&input, 2999)), diff(&right, &column(&input, 0)));
    assert!(d_left < 3.0 && d_right < 3.0, "mirrored edges: {d_left:.2}, {d_right:.2}");
    let unflipped = diff(&left, &column(&input, 0));
    assert!(unflipped > 5.0 * d_left.max(0.5), "the edges are different enough to tell: {unflipped:.2}");
    assert!(mean_diff(&flipped, &imageops::flip_horizontal(&input)) < 2.0);

    let e = edit(&original, EditOp::Flip(FlipAxis::Vertical));
    let flipped = check_source(&e).into_rgb8();
    assert!(mean_diff(&flipped, &imageops::flip_vertical(&input)) < 2.0);
}

#[test]
fn alpha_stays_alpha_and_lossless() {
    let original = read(testdata!("photos/alpha.png"));
    let input = image::load_from_memory(&original).unwrap().into_rgba8();
    let turned = edit(&original, rotate(90));
    assert_eq!((turned.format, turned.width, turned.height), (ImageFormat::Png, 1802, 1200));
    let img = check_source(&turned);
    assert!(img.color().has_alpha());
    let img: RgbaImage = img.into_rgba8();
    assert!(img.get_pixel(0, 0).0[3] < 128, "the transparent corner stays transparent");
    assert_eq!(img, imageops::rotate90(&input), "PNG: exactly the original's pixels, turned");

    let cropped = edit(&original, EditOp::Crop(CropSpec::Rect { x: 0, y: 0, width: 300, height: 200 }));
    assert_eq!((cropped.format, cropped.width, cropped.height), (ImageFormat::Png, 300, 200));
    assert_eq!(check_source(&cropped).into_rgba8(), imageops::crop_imm(&input, 0, 0, 300, 200).to_image());

    // The pipeline takes the new source like any upload, alpha and all.
    let p = process(
        &turned.bytes,
        &ImageLimits::default(),
        &PresetSet::default(),
        Some(&["medium"]),
        &RenderOptions::default(),
    )
    .unwrap();
    let webp = p.renditions.iter().find(|r| r.format == OutputFormat::Webp).unwrap();
    assert_eq!((webp.width, webp.height), (640, 426));
    assert!(image::load_from_memory(&webp.bytes).unwrap().color().has_alpha());
}
