//! Pixel operations: crop and resize, EXIF orientation, flattening alpha onto a background.

use std::fmt;

use fast_image_resize as fr;

use super::plan::Rect;
use crate::decode::{Channels, Pixels};
use crate::{FocalPoint, ImagingError};

const FILTER: fr::FilterType = fr::FilterType::Lanczos3;
const FILTER_NAME: &str = "lanczos3";

fn internal(e: impl fmt::Display) -> ImagingError {
    ImagingError::CorruptImage { format: None, detail: format!("resize failed: {e}") }
}

/// Cuts `region` out of `from` and resizes it to `out` (a copy when nothing changes).
pub(super) fn crop_resize(
    resizer: &mut fr::Resizer,
    from: &Pixels,
    region: Rect,
    out: (u32, u32),
    focal: Option<(FocalPoint, Rect)>,
    ops: &mut Vec<String>,
) -> Result<Pixels, ImagingError> {
    // Scaling between images leaves rounding noise; the resizer wants the box strictly inside.
    let (fw, fh) = (f64::from(from.width), f64::from(from.height));
    let (w, h) = (region.w.min(fw), region.h.min(fh));
    let region = Rect { x: region.x.clamp(0.0, fw - w), y: region.y.clamp(0.0, fh - h), w, h };
    let near = |a: f64, b: f64| (a - b).abs() < 1e-6;
    let full = near(region.x, 0.0) && near(region.y, 0.0) && near(region.w, fw) && near(region.h, fh);
    let (rw, rh) = (region.w.round() as u32, region.h.round() as u32);
    if let Some((f, full_res)) = focal {
        // In the original's display pixels, whatever scale the crop was cut at.
        let (cw, ch) = (full_res.w.round(), full_res.h.round());
        let (cx, cy) = (full_res.x.round(), full_res.y.round());
        ops.push(format!("crop:{cw}x{ch}+{cx}+{cy}@{:.2},{:.2}", f.x, f.y));
    }
    if full && from.dims() == out {
        return Ok(from.clone());
    }
    let (iw, ih) = if full { from.dims() } else { (rw, rh) };
    ops.push(format!("resize:{FILTER_NAME}:{iw}x{ih}->{}x{}", out.0, out.1));
    let pixel_type = match from.channels {
        Channels::Rgb => fr::PixelType::U8x3,
        Channels::Rgba | Channels::Cmyk => fr::PixelType::U8x4,
    };
    let src = fr::images::ImageRef::new(from.width, from.height, &from.data, pixel_type).map_err(internal)?;
    let mut dst = fr::images::Image::new(out.0, out.1, pixel_type);
    let mut options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(FILTER))
        .use_alpha(from.channels == Channels::Rgba);
    if !full {
        options = options.crop(region.x, region.y, region.w, region.h);
    }
    let resized = resizer.resize(&src, &mut dst, &options).map_err(internal);
    // The resizer keeps its intermediate image (and, with alpha, a premultiplied copy of the
    // source) for the next call: as big as the output, or the source. Free them now rather than
    // keep them through the encodes.
    resizer.reset_internal_buffers();
    resized?;
    Ok(Pixels::new(out.0, out.1, from.channels, dst.into_vec()))
}

/// Applies EXIF orientation `o` (2..=8) to pixels stored as the file has them.
pub(super) fn orient(px: &Pixels, o: u16) -> Pixels {
    let n = px.channels.count();
    let (sw, sh) = (px.width as usize, px.height as usize);
    let (dw, dh) = if o >= 5 { (sh, sw) } else { (sw, sh) };
    let mut out = vec![0u8; px.data.len()];
    for dy in 0..dh {
        let row = &mut out[dy * dw * n..(dy + 1) * dw * n];
        for (dx, dst) in row.chunks_exact_mut(n).enumerate() {
            let (sx, sy) = match o {
                2 => (sw - 1 - dx, dy),
                3 => (sw - 1 - dx, sh - 1 - dy),
                4 => (dx, sh - 1 - dy),
                5 => (dy, dx),
                6 => (dy, sh - 1 - dx),
                7 => (sw - 1 - dy, sh - 1 - dx),
                8 => (sw - 1 - dy, dx),
                _ => (dx, dy),
            };
            let at = (sy * sw + sx) * n;
            dst.copy_from_slice(&px.data[at..at + n]);
        }
    }
    Pixels::new(dw as u32, dh as u32, px.channels, out)
}

/// RGBA onto an opaque background (for JPEG, which has no alpha); other pixels unchanged.
pub(super) fn flatten(px: Pixels, background: [u8; 3]) -> Pixels {
    if px.channels != Channels::Rgba {
        return px;
    }
    let rgb = px
        .data
        .chunks_exact(4)
        .flat_map(|p| {
            let a = u32::from(p[3]);
            // c*a + bg*(1-a), rounded, in 0..=255.
            let mix = |c: u8, bg: u8| ((u32::from(c) * a + u32::from(bg) * (255 - a) + 127) / 255) as u8;
            [mix(p[0], background[0]), mix(p[1], background[1]), mix(p[2], background[2])]
        })
        .collect();
    Pixels::new(px.width, px.height, Channels::Rgb, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_is_flattened_onto_the_background() {
        let rgba = Pixels::new(3, 1, Channels::Rgba, vec![0, 0, 0, 0, 0, 0, 0, 255, 100, 0, 0, 128]);
        assert_eq!(flatten(rgba.clone(), [255, 255, 255]).data, [255, 255, 255, 0, 0, 0, 177, 127, 127]);
        assert_eq!(flatten(rgba, [0, 0, 0]).data[..3], [0, 0, 0]);
    }
}
