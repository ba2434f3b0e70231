//! The few EXIF fields we keep. Everything else (GPS above all) is read by nobody and written
//! into no derivative.

use exif::{DateTime, In, Reader, Tag, Value};

/// EXIF text is free-form and attacker-chosen; this bounds what reaches our metadata store.
const MAX_TEXT_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExifMeta {
    pub orientation: u16,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub captured_at: Option<String>,
}

impl Default for ExifMeta {
    fn default() -> Self {
        Self { orientation: 1, camera_make: None, camera_model: None, captured_at: None }
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
    }
}

fn first_ascii(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Ascii(parts) => parts.first().map(Vec::as_slice),
        _ => None,
    }
}

fn ascii_text(v: &Value) -> Option<String> {
    let text: String =
        String::from_utf8_lossy(first_ascii(v)?).chars().filter(|c| !c.is_control()).take(MAX_TEXT_CHARS).collect();
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
