//! Fresh encodes of pixels only: no EXIF, XMP, IPTC or ICC is ever written, so nothing from the
//! original (GPS above all) reaches a derivative, and every output is untagged sRGB.

use crate::decode::{Channels, Pixels};
use crate::{ImageFormat, ImagingError, OutputFormat};

/// rav1e speed 1 (slowest) ..= 10. 6 is about 10x faster than the default with little loss
/// at these sizes; AVIF stays opt-in because even so it costs more than JPEG and WebP together.
const AVIF_SPEED: u8 = 6;
/// libwebp effort 0..=6 for opaque images when the preset names none. 3 keeps the same
/// rate-distortion optimisation as libwebp's (and sharp's) default 4 with fewer analysis passes:
/// somewhat faster, and on our photos the files are as small (within ±0.3 %). 2 drops that
/// optimisation: twice as fast, 4–5 % larger; the default presets use it for the two largest
/// sizes only (docs/decisions/0005-webp-effort-for-large-renditions.md).
const WEBP_METHOD: i32 = 3;
/// For images with alpha: at 3, libwebp compresses the alpha plane far worse (+8 % on
/// `alpha.png`'s set), so these keep libwebp's default 4.
const WEBP_METHOD_ALPHA: i32 = 4;

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
        webp_effort: Option<u8>,
    ) -> Result<(Vec<u8>, String), ImagingError> {
        match format {
            OutputFormat::Jpeg => {
                let bytes = self.jpeg(px, quality, progressive)?;
                let mode = if progressive { "progressive" } else { "baseline" };
                Ok((bytes, format!("encode:jpeg:q{quality}:420:{mode}:optimized")))
            }
            OutputFormat::Webp => {
                let method = webp_method(px.channels, webp_effort);
                Ok((webp(px, quality, method)?, format!("encode:webp:q{quality}:m{method}")))
            }
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
        c.compress_to_vec(turbojpeg_image(px)?).map_err(err)
    }
}

/// `px` as libjpeg-turbo reads it.
fn turbojpeg_image(px: &Pixels) -> Result<turbojpeg::Image<&[u8]>, ImagingError> {
    let format = match px.channels {
        Channels::Rgb => turbojpeg::PixelFormat::RGB,
        Channels::Rgba => turbojpeg::PixelFormat::RGBA,
        Channels::Cmyk => return Err(failed(OutputFormat::Jpeg, "CMYK pixels reached the encoder")),
    };
    let width = px.width as usize;
    Ok(turbojpeg::Image {
        pixels: &px.data[..],
        width,
        pitch: width * px.channels.count(),
        height: px.height as usize,
        format,
    })
}

/// JPEG quality of a new source made by an edit. It is rendered again (and maybe edited again),
/// so it must lose far less than a derivative does.
const MASTER_JPEG_QUALITY: i32 = 95;

/// Encodes a new source image (an edit's result): opaque pixels as JPEG at
/// [`MASTER_JPEG_QUALITY`], 4:4:4 (colour edges stay sharp through repeated edits), optimised
/// Huffman; pixels with alpha as PNG, which is lossless and keeps it. Pixels only, like every
/// encode here, so the result is untagged sRGB with orientation 1.
pub(crate) fn master(px: &Pixels) -> Result<(Vec<u8>, ImageFormat), ImagingError> {
    match px.channels {
        Channels::Rgb => {
            let err = |e: turbojpeg::Error| failed(OutputFormat::Jpeg, e);
            let mut c = turbojpeg::Compressor::new().map_err(err)?;
            c.set_subsamp(turbojpeg::Subsamp::None).map_err(err)?;
            c.set_quality(MASTER_JPEG_QUALITY).map_err(err)?;
            c.set_optimize(true).map_err(err)?;
            Ok((c.compress_to_vec(turbojpeg_image(px)?).map_err(err)?, ImageFormat::Jpeg))
        }
        Channels::Rgba => {
            use image::ImageEncoder;
            use image::codecs::png::{CompressionType, FilterType, PngEncoder};
            let mut out = Vec::new();
            PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive)
                .write_image(&px.data, px.width, px.height, image::ExtendedColorType::Rgba8)
                .map_err(|e| ImagingError::CorruptImage {
                    format: None,
                    detail: format!("png encoding failed: {e}"),
                })?;
            Ok((out, ImageFormat::Png))
        }
        Channels::Cmyk => Err(failed(OutputFormat::Jpeg, "CMYK pixels reached the encoder")),
    }
}

/// Lossy WebP straight from RGB(A) to a YUV 4:2:0 picture (`use_argb = 0`): libwebp then never
/// holds an ARGB copy of the image (4 bytes a pixel) next to the YUV planes it encodes from.
/// (The `webp` crate always imports to ARGB, which costs an extra full-size buffer and a pass.)
fn webp(px: &Pixels, quality: u8, method: i32) -> Result<Vec<u8>, ImagingError> {
    use libwebp_sys as sys;
    let fail = |e: &str| failed(OutputFormat::Webp, e);
    let (Ok(width), Ok(height)) = (i32::try_from(px.width), i32::try_from(px.height)) else {
        return Err(fail("image too large"));
    };
    let stride = |n: i32| width.checked_mul(n).ok_or_else(|| fail("image too large"));
    let expected = px.width as usize * px.height as usize * px.channels.count();
    if px.data.len() < expected || width == 0 || height == 0 {
        return Err(fail("pixel buffer does not match its dimensions"));
    }
    let mut config = sys::WebPConfig::new().map_err(|()| fail("libwebp version mismatch"))?;
    config.lossless = 0;
    config.quality = f32::from(quality);
    config.method = method;
    config.alpha_compression = 1;
    config.thread_level = 0;
    let mut picture = Picture(sys::WebPPicture::new().map_err(|()| fail("libwebp version mismatch"))?);
    let pic = &mut picture.0;
    pic.use_argb = 0;
    pic.width = width;
    pic.height = height;
    // SAFETY: `data` holds `height` rows of `width` pixels of the imported layout (checked above);
    // libwebp only reads it, during this call.
    let imported = unsafe {
        match px.channels {
            Channels::Rgb => sys::WebPPictureImportRGB(pic, px.data.as_ptr(), stride(3)?),
            Channels::Rgba => sys::WebPPictureImportRGBA(pic, px.data.as_ptr(), stride(4)?),
            Channels::Cmyk => return Err(fail("CMYK pixels reached the encoder")),
        }
    };
    if imported == 0 {
        return Err(failed(OutputFormat::Webp, format!("import: {:?}", pic.error_code)));
    }
    let mut out: Vec<u8> = Vec::new();
    pic.writer = Some(write_to_vec);
    pic.custom_ptr = std::ptr::from_mut(&mut out).cast();
    // SAFETY: config and picture are initialised; the writer appends to `out`, which outlives the call.
    let ok = unsafe { sys::WebPValidateConfig(&config) != 0 && sys::WebPEncode(&config, pic) != 0 };
    pic.custom_ptr = std::ptr::null_mut();
    if !ok {
        return Err(failed(OutputFormat::Webp, format!("{:?}", pic.error_code)));
    }
    Ok(out)
}

/// Owns a libwebp picture's buffers.
struct Picture(libwebp_sys::WebPPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture was initialised by `WebPPicture::new`; freeing an unallocated one is a no-op.
        unsafe { libwebp_sys::WebPPictureFree(&mut self.0) }
    }
}

/// libwebp's output callback: appends to the `Vec<u8>` in `custom_ptr`.
extern "C" fn write_to_vec(data: *const u8, size: usize, picture: *const libwebp_sys::WebPPicture) -> i32 {
    // SAFETY: libwebp passes the picture being encoded, whose `custom_ptr` is set to a live
    // `Vec<u8>` for the duration of `WebPEncode`, and `size` readable bytes at `data`.
    unsafe {
        let out = &mut *(*picture).custom_ptr.cast::<Vec<u8>>();
        if size > 0 {
            out.extend_from_slice(std::slice::from_raw_parts(data, size));
        }
    }
    1
}

fn webp_method(channels: Channels, effort: Option<u8>) -> i32 {
    if channels == Channels::Rgba { WEBP_METHOD_ALPHA } else { effort.map_or(WEBP_METHOD, i32::from) }
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
