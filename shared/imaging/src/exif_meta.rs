//! The few EXIF fields we keep: orientation, camera, lens, capture time, author, copyright and
//! GPS position. They go to our metadata store only; derivatives are re-encoded from pixels and
//! carry no EXIF at all, so nothing read here (GPS above all) leaks into a published image.

use exif::{DateTime, Exif, In, Reader, Tag, Value};
use serde::{Deserialize, Serialize};

/// EXIF text is free-form and attacker-chosen; this bounds what reaches our metadata store.
const MAX_TEXT_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExifMeta {
    pub orientation: u16,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub captured_at: Option<String>,
    /// LensModel, prefixed with LensMake when the model does not already name it.
    pub lens: Option<String>,
    pub artist: Option<String>,
    /// Photographer's and editor's notices (EXIF stores them NUL-separated), joined with " / ".
    pub copyright: Option<String>,
    pub gps: Option<GpsPosition>,
}

/// Where a photo was taken, in decimal degrees (WGS 84 as EXIF specifies), south and west negative.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpsPosition {
    pub latitude: f64,
    pub longitude: f64,
}

impl Default for ExifMeta {
    fn default() -> Self {
        Self {
            orientation: 1,
            camera_make: None,
            camera_model: None,
            captured_at: None,
            lens: None,
            artist: None,
            copyright: None,
            gps: None,
        }
    }
}

/// Parses a raw EXIF block (TIFF header first). Never fails: broken EXIF only loses metadata.
pub(crate) fn parse(raw: &[u8]) -> ExifMeta {
    // Some writers (WebP ones especially) keep the JPEG APP1 prefix in the block.
    let raw = raw.strip_prefix(b"Exif\0\0").unwrap_or(raw);
    let Ok(exif) = Reader::new().read_raw(raw.to_vec()) else {
        return ExifMeta::default();
    };
    let field = |tag| exif.get_field(tag, In::PRIMARY).map(|f| &f.value);
    let orientation =
        field(Tag::Orientation).and_then(|v| v.get_uint(0)).filter(|o| (1..=8).contains(o)).map_or(1, |o| o as u16);
    ExifMeta {
        orientation,
        camera_make: field(Tag::Make).and_then(ascii_text),
        camera_model: field(Tag::Model).and_then(ascii_text),
        captured_at: field(Tag::DateTimeOriginal).and_then(datetime),
        lens: lens(field(Tag::LensMake).and_then(ascii_text), field(Tag::LensModel).and_then(ascii_text)),
        artist: field(Tag::Artist).and_then(ascii_text),
        copyright: field(Tag::Copyright).and_then(all_ascii_text),
        gps: gps(&exif),
    }
}

fn lens(make: Option<String>, model: Option<String>) -> Option<String> {
    let model = model?;
    match make {
        Some(make) if !model.to_lowercase().contains(&make.to_lowercase()) => {
            Some(format!("{make} {model}").chars().take(MAX_TEXT_CHARS).collect())
        }
        _ => Some(model),
    }
}

/// The GPS position, if latitude and longitude are both present, well-formed and in range.
fn gps(exif: &Exif) -> Option<GpsPosition> {
    let field = |tag| exif.get_field(tag, In::PRIMARY).map(|f| &f.value);
    // "V" means the receiver had no fix: whatever coordinates follow are stale or made up.
    if field(Tag::GPSStatus).and_then(first_ascii).is_some_and(|s| s.eq_ignore_ascii_case(b"V")) {
        return None;
    }
    let latitude = coordinate(field(Tag::GPSLatitude)?, field(Tag::GPSLatitudeRef)?, b'N', b'S', 90.0)?;
    let longitude = coordinate(field(Tag::GPSLongitude)?, field(Tag::GPSLongitudeRef)?, b'E', b'W', 180.0)?;
    // Exactly 0,0 is what some cameras write when they have no fix, not a photo taken at sea.
    (latitude != 0.0 || longitude != 0.0).then_some(GpsPosition { latitude, longitude })
}

/// Degrees, minutes, seconds (three rationals) and a hemisphere reference → signed decimal degrees.
fn coordinate(dms: &Value, reference: &Value, positive: u8, negative: u8, max: f64) -> Option<f64> {
    let parts: Vec<f64> = match dms {
        Value::Rational(parts) => parts.iter().map(|r| (r.denom != 0).then(|| r.to_f64())).collect::<Option<_>>()?,
        _ => return None,
    };
    let [degrees, minutes, seconds] = parts[..] else {
        return None;
    };
    if minutes >= 60.0 || seconds >= 60.0 {
        return None;
    }
    let value = degrees + minutes / 60.0 + seconds / 3600.0;
    if !value.is_finite() || value > max {
        return None;
    }
    match first_ascii(reference)?.trim_ascii() {
        [r] if r.eq_ignore_ascii_case(&positive) => Some(value),
        [r] if r.eq_ignore_ascii_case(&negative) => Some(-value),
        _ => None,
    }
}

fn first_ascii(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Ascii(parts) => parts.first().map(Vec::as_slice),
        _ => None,
    }
}

fn ascii_text(v: &Value) -> Option<String> {
    sanitise(first_ascii(v)?)
}

/// Every NUL-separated string of the value, sanitised and joined with " / ".
fn all_ascii_text(v: &Value) -> Option<String> {
    let Value::Ascii(parts) = v else {
        return None;
    };
    let joined = parts.iter().filter_map(|p| sanitise(p)).collect::<Vec<_>>().join(" / ");
    sanitise(joined.as_bytes())
}

/// Control characters stripped, length capped, blank → `None`.
fn sanitise(bytes: &[u8]) -> Option<String> {
    let text: String =
        String::from_utf8_lossy(bytes).chars().filter(|c| !c.is_control()).take(MAX_TEXT_CHARS).collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `YYYY:MM:DD HH:MM:SS` → `YYYY-MM-DDTHH:MM:SS`; placeholder and impossible dates are dropped.
fn datetime(v: &Value) -> Option<String> {
    let dt = DateTime::from_ascii(first_ascii(v)?).ok()?;
    let valid = (1..=9999).contains(&dt.year)
        && (1..=12).contains(&dt.month)
        && (1..=31).contains(&dt.day)
        && dt.hour < 24
        && dt.minute < 60
        && dt.second < 61;
    valid.then(|| {
        format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw EXIF block of a test photo, as `image` hands it to `parse`.
    fn photo_exif(name: &str) -> Option<Vec<u8>> {
        use image::ImageDecoder as _;
        let path = format!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/photos/{}"), name);
        let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}")));
        let mut decoder = image::codecs::jpeg::JpegDecoder::new(file).expect("a JPEG");
        decoder.exif_metadata().expect("readable")
    }

    #[test]
    fn reads_everything_from_a_camera_photo() {
        let meta = parse(&photo_exif("exif-orientation6-gps.jpg").expect("has EXIF"));
        println!("{meta:#?}");
        assert_eq!(meta.orientation, 6);
        assert_eq!(meta.camera_make.as_deref(), Some("Canon"));
        assert_eq!(meta.camera_model.as_deref(), Some("Canon EOS R5"));
        assert_eq!(meta.captured_at.as_deref(), Some("2026-05-14T16:32:10"));
        assert_eq!(meta.artist.as_deref(), Some("Test Photographer"));
        assert_eq!(meta.copyright.as_deref(), Some("CC-BY-4.0 Aitzol Berasategi"));
        assert_eq!(meta.lens, None, "the file records no lens");
        let gps = meta.gps.expect("has a GPS position");
        // The Eiffel Tower: north and east, so both positive.
        assert!((gps.latitude - 48.858_37).abs() < 1e-6, "{gps:?}");
        assert!((gps.longitude - 2.294_481).abs() < 1e-6, "{gps:?}");
    }

    fn rationals(parts: &[(u32, u32)]) -> Value {
        Value::Rational(parts.iter().map(|&(num, denom)| exif::Rational { num, denom }).collect())
    }

    fn ascii(s: &str) -> Value {
        Value::Ascii(vec![s.as_bytes().to_vec()])
    }

    #[test]
    fn coordinates_are_signed_decimal_degrees_and_malformed_ones_dropped() {
        let dms = rationals(&[(33, 1), (51, 1), (3456, 100)]);
        let sydney = 33.0 + 51.0 / 60.0 + 34.56 / 3600.0;
        assert_eq!(coordinate(&dms, &ascii("S"), b'N', b'S', 90.0), Some(-sydney));
        assert_eq!(coordinate(&dms, &ascii("n"), b'N', b'S', 90.0), Some(sydney));
        assert_eq!(coordinate(&dms, &ascii("W"), b'E', b'W', 180.0), Some(-sydney));
        // Decimal minutes, as many phones write them.
        let decimal = rationals(&[(2, 1), (1767, 100), (0, 1)]);
        assert_eq!(coordinate(&decimal, &ascii("E"), b'E', b'W', 180.0), Some(2.0 + 17.67 / 60.0));
        let reject = |dms: &Value, reference: &str| coordinate(dms, &ascii(reference), b'N', b'S', 90.0);
        assert_eq!(reject(&dms, "X"), None);
        assert_eq!(reject(&dms, ""), None);
        assert_eq!(reject(&dms, "NS"), None);
        assert_eq!(reject(&rationals(&[(33, 1), (51, 0), (0, 1)]), "N"), None, "zero denominator");
        assert_eq!(reject(&rationals(&[(33, 1), (51, 1)]), "N"), None, "two parts");
        assert_eq!(reject(&rationals(&[(91, 1), (0, 1), (0, 1)]), "N"), None, "out of range");
        assert_eq!(reject(&rationals(&[(10, 1), (60, 1), (0, 1)]), "N"), None, "60 minutes");
        assert_eq!(reject(&ascii("33 51 34"), "N"), None, "not rationals");
    }

    #[test]
    fn lens_and_multi_part_text() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(lens(None, s("EF24-105mm f/4L IS USM")), s("EF24-105mm f/4L IS USM"));
        assert_eq!(lens(s("Canon"), s("EF24-105mm f/4L IS USM")), s("Canon EF24-105mm f/4L IS USM"));
        assert_eq!(lens(s("Apple"), s("iPhone 13 back camera, apple lens")), s("iPhone 13 back camera, apple lens"));
        assert_eq!(lens(s("Sigma"), None), None, "a maker alone names no lens");
        assert_eq!(lens(s(&"M".repeat(100)), s(&"x".repeat(100))).map(|l| l.chars().count()), Some(MAX_TEXT_CHARS));
        let two = Value::Ascii(vec![b"Jane Doe\x07".to_vec(), b" ".to_vec(), b"Editor Co".to_vec()]);
        assert_eq!(all_ascii_text(&two).as_deref(), Some("Jane Doe / Editor Co"));
        assert_eq!(all_ascii_text(&Value::Ascii(vec![b" ".to_vec(), b"\x1b".to_vec()])), None);
        assert_eq!(all_ascii_text(&Value::Short(vec![1])), None);
        assert_eq!(sanitise("a".repeat(500).as_bytes()).map(|t| t.len()), Some(MAX_TEXT_CHARS));
    }

    #[test]
    fn a_photo_without_exif_has_no_metadata() {
        let meta = photo_exif("macro-13mp.jpg").as_deref().map(parse).unwrap_or_default();
        assert_eq!(meta, ExifMeta::default());
    }

    #[test]
    fn garbage_is_no_metadata() {
        assert_eq!(parse(b""), ExifMeta::default());
        assert_eq!(parse(b"Exif\0\0II*\0\xFF\xFF\xFF\xFF"), ExifMeta::default());
        assert_eq!(parse(&[0xAB; 64]), ExifMeta::default());
    }

    #[test]
    fn dates_are_normalised_and_placeholders_dropped() {
        let v = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
        assert_eq!(datetime(&v("2021:07:04 13:05:09")).as_deref(), Some("2021-07-04T13:05:09"));
        assert_eq!(datetime(&v("0000:00:00 00:00:00")), None);
        assert_eq!(datetime(&v("    :  :     :  :  ")), None);
        assert_eq!(ascii_text(&v("  Canon\0 ")).as_deref(), Some("Canon"));
        assert_eq!(ascii_text(&v("   ")), None);
    }
}
