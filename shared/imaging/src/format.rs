use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ImagingError;

/// The formats we accept. Deliberately few: every decoder is attack surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
}

impl ImageFormat {
    /// Stable lowercase name, as stored in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }

    /// File name extension for stored objects.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    /// How people write the name, for messages.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Webp => "WebP",
        }
    }

    pub(crate) fn to_image(self) -> image::ImageFormat {
        match self {
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Png => image::ImageFormat::Png,
            Self::Webp => image::ImageFormat::WebP,
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const ACCEPTED: &str = "upload JPEG, PNG or WebP";

/// Identifies the format from magic bytes only: file names and declared content types are
/// chosen by the uploader and prove nothing.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, ImagingError> {
    if bytes.is_empty() {
        return Err(ImagingError::EmptyFile);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(ImageFormat::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(ImageFormat::Png);
    }
    if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return Ok(ImageFormat::Webp);
    }
    Err(ImagingError::unsupported(match known_other(bytes) {
        Some(name) => format!("{name} images are not accepted: {ACCEPTED}"),
        None if looks_like_markup(bytes) => {
            format!("the file is a text document (HTML, XML or SVG markup), not an image: {ACCEPTED}")
        }
        None => format!("the file is not a recognised image: {ACCEPTED}"),
    }))
}

/// Formats people commonly try, named so the message tells them what they sent.
fn known_other(b: &[u8]) -> Option<&'static str> {
    let brand = |brands: &[&[u8]]| b.len() >= 12 && &b[4..8] == b"ftyp" && brands.contains(&&b[8..12]);
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("GIF")
    } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        Some("TIFF")
    } else if b.starts_with(b"BM") && b.len() >= 14 {
        Some("BMP")
    } else if brand(&[b"avif", b"avis"]) {
        Some("AVIF")
    } else if brand(&[b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"]) {
        Some("HEIC")
    } else if b.starts_with(b"%PDF") {
        Some("PDF")
    } else if looks_like_svg(b) {
        Some("SVG")
    } else {
        None
    }
}

/// Text that begins with `<` (after a BOM and whitespace): HTML, XML or SVG. These are refused
/// outright because served back they could run script in our origin.
fn looks_like_markup(b: &[u8]) -> bool {
    let b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'<')
}

fn looks_like_svg(b: &[u8]) -> bool {
    if !looks_like_markup(b) {
        return false;
    }
    let head = &b[..b.len().min(1024)];
    head.windows(4).any(|w| w.eq_ignore_ascii_case(b"<svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(b: &[u8]) -> &'static str {
        sniff(b).unwrap_err().code()
    }

    #[test]
    fn recognises_accepted_formats() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest").unwrap(), ImageFormat::Jpeg);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").unwrap(), ImageFormat::Png);
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ").unwrap(), ImageFormat::Webp);
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(code(b""), "empty_file");
        assert_eq!(code(b"RIFF\0\0\0\0WAVEfmt "), "unsupported_format");
        assert_eq!(code(b"\xFF\xD8"), "unsupported_format");
        let svg = sniff(b"\xEF\xBB\xBF  <?xml version=\"1.0\"?>\n<svg></svg>").unwrap_err();
        assert!(svg.to_string().starts_with("SVG images are not accepted"), "{svg}");
        let html = sniff(b"<!DOCTYPE html><p>hi").unwrap_err();
        assert!(html.to_string().contains("not an image"), "{html}");
        let heic = sniff(b"\0\0\0\x18ftypheic\0\0\0\0").unwrap_err();
        assert!(heic.to_string().starts_with("HEIC"), "{heic}");
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(ImageFormat::Webp.as_str(), "webp");
        assert_eq!(ImageFormat::Jpeg.mime(), "image/jpeg");
        assert_eq!(ImageFormat::Jpeg.extension(), "jpg");
    }
}
