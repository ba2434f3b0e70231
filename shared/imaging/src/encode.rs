//! Fresh encodes of pixels only: no EXIF, XMP, IPTC or ICC is ever written, so nothing from the
//! original (GPS above all) reaches a derivative, and every output is untagged sRGB.

use crate::decode::{Channels, Pixels};
use crate::{ImagingError, OutputFormat};

/// rav1e speed 1 (slowest) ..= 10. 6 is about 10x faster than the default with little loss
/// at these sizes; AVIF stays opt-in because even so it costs more than JPEG and WebP together.
const AVIF_SPEED: u8 = 6;
/// libwebp effort 0..=6; 4 is its default and the usual size/speed balance.
const WEBP_METHOD: i32 = 4;

fn failed(format: OutputFormat, e: impl std::fmt::Display) -> ImagingError {
    ImagingError::CorruptImage { format: None, detail: format!("{format} encoding failed: {e}") }
}

/// Encoders are created once per photo and reused across its renditions.
pub(crate) struct Encoders {
    jpeg: Option<turbojpeg::Compressor>,
}

impl Encoders {
    pub(crate) fn new() -> Self {
        Self { jpeg: None }
    }

    /// Encodes RGB or RGBA pixels (alpha already flattened for JPEG by the caller). Returns the
    /// bytes and the provenance string.
    pub(crate) fn encode(
        &mut self,
        px: &Pixels,
        format: OutputFormat,
        quality: u8,
        progressive: bool,
    ) -> Result<(Vec<u8>, String), ImagingError> {
        match format {
            OutputFormat::Jpeg => {
                let bytes = self.jpeg(px, quality, progressive)?;
                let mode = if progressive { "progressive" } else { "baseline" };
                Ok((bytes, format!("encode:jpeg:q{quality}:420:{mode}:optimized")))
            }
            OutputFormat::Webp => Ok((webp(px, quality)?, format!("encode:webp:q{quality}:m{WEBP_METHOD}"))),
            OutputFormat::Avif => Ok((avif(px, quality)?, format!("encode:avif:q{quality}:s{AVIF_SPEED}"))),
        }
    }

    fn jpeg(&mut self, px: &Pixels, quality: u8, progressive: bool) -> Result<Vec<u8>, ImagingError> {
        let err = |e: turbojpeg::Error| failed(OutputFormat::Jpeg, e);
        if self.jpeg.is_none() {
            let mut c = turbojpeg::Compressor::new().map_err(err)?;
            c.set_subsamp(turbojpeg::Subsamp::Sub2x2).map_err(err)?;
            c.set_optimize(true).map_err(err)?;
            self.jpeg = Some(c);
        }
        let c = self.jpeg.as_mut().expect("just created");
        c.set_quality(i32::from(quality)).map_err(err)?;
        c.set_progressive(progressive).map_err(err)?;
        let format = match px.channels {
            Channels::Rgb => turbojpeg::PixelFormat::RGB,
            Channels::Rgba => turbojpeg::PixelFormat::RGBA,
            Channels::Cmyk => return Err(failed(OutputFormat::Jpeg, "CMYK pixels reached the encoder")),
        };
        let width = px.width as usize;
        let image = turbojpeg::Image {
            pixels: &px.data[..],
            width,
            pitch: width * px.channels.count(),
            height: px.height as usize,
            format,
        };
        c.compress_to_vec(image).map_err(err)
    }
}

fn webp(px: &Pixels, quality: u8) -> Result<Vec<u8>, ImagingError> {
    let encoder = match px.channels {
        Channels::Rgb => webp::Encoder::from_rgb(&px.data, px.width, px.height),
        Channels::Rgba => webp::Encoder::from_rgba(&px.data, px.width, px.height),
        Channels::Cmyk => return Err(failed(OutputFormat::Webp, "CMYK pixels reached the encoder")),
    };
    let mut config = webp::WebPConfig::new().map_err(|()| failed(OutputFormat::Webp, "libwebp version mismatch"))?;
    config.lossless = 0;
    config.quality = f32::from(quality);
    config.method = WEBP_METHOD;
    config.alpha_compression = 1;
    let memory = encoder.encode_advanced(&config).map_err(|e| failed(OutputFormat::Webp, format!("{e:?}")))?;
    Ok(memory.to_vec())
}

fn avif(px: &Pixels, quality: u8) -> Result<Vec<u8>, ImagingError> {
    let (w, h) = (px.width as usize, px.height as usize);
    let encoder = ravif::Encoder::new()
        .with_quality(f32::from(quality.clamp(1, 100)))
        .with_alpha_quality(f32::from(quality.clamp(1, 100)))
        .with_speed(AVIF_SPEED);
    let encoded = match px.channels {
        Channels::Rgb => {
            let buf: Vec<ravif::RGB8> = px.data.chunks_exact(3).map(|p| ravif::RGB8::new(p[0], p[1], p[2])).collect();
            encoder.encode_rgb(ravif::Img::new(&buf[..], w, h))
        }
        Channels::Rgba => {
            let buf: Vec<ravif::RGBA8> =
                px.data.chunks_exact(4).map(|p| ravif::RGBA8::new(p[0], p[1], p[2], p[3])).collect();
            encoder.encode_rgba(ravif::Img::new(&buf[..], w, h))
        }
        Channels::Cmyk => return Err(failed(OutputFormat::Avif, "CMYK pixels reached the encoder")),
    };
    Ok(encoded.map_err(|e| failed(OutputFormat::Avif, e))?.avif_file)
}
