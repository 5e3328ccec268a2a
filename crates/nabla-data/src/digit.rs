//! Turning a person's drawing into an MNIST-like digit.
//!
//! MNIST digits were size-normalised to fit a 20×20 box keeping their aspect
//! ratio (anti-aliased), then centred in a 28×28 image by their centre of mass
//! (LeCun et al., the MNIST page). A photo or a drawing is brought to the
//! same form: grayscale, ink bright on a zero background (dark-on-light input
//! is inverted, detected from the border), cropped to the ink, fitted into
//! 20×20, and placed so that its centre of mass lies at the centre.

use crate::{DataError, Result};
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, Luma};
use std::path::Path;

const SIDE: usize = 28;
const BOX: u32 = 20;
/// A pixel counts as ink when it is brighter than this fraction of the brightest.
const INK_FRACTION: f32 = 0.2;

/// Reads a PNG or JPEG (see [`crate::open_image`]: its format is guessed
/// from the content, and images claiming over [`crate::MAX_PIXELS`] are
/// refused before decoding) and preprocesses it (see [`preprocess_digit`]).
///
/// # Errors
/// [`DataError::Image`] or [`DataError::Invalid`] naming the file.
pub fn preprocess_digit_file(path: &Path) -> Result<[f32; SIDE * SIDE]> {
    let img = crate::open_image(path)?;
    preprocess_digit(&img).map_err(|e| match e {
        DataError::Invalid { reason, .. } => DataError::invalid(path.display().to_string(), reason),
        other => other,
    })
}

/// Preprocesses an image of one digit into 784 values in `[0, 1]`, row-major,
/// ink bright on black, as MNIST.
///
/// # Errors
/// [`DataError::Invalid`] for an empty image or one with no ink.
pub fn preprocess_digit(img: &DynamicImage) -> Result<[f32; SIDE * SIDE]> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(DataError::invalid("image", "it has no pixels"));
    }
    let ink = ink_map(img);
    let max = ink.iter().copied().fold(0.0f32, f32::max);
    if max <= 0.0 {
        return Err(DataError::invalid(
            "image",
            "no ink found: the image is a single flat colour",
        ));
    }
    // Bounding box of the ink.
    let threshold = INK_FRACTION * max;
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if ink[y * w + x] > threshold {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let mut crop = GrayImage::new(cw as u32, ch as u32);
    for y in 0..ch {
        for x in 0..cw {
            let v = (ink[(y0 + y) * w + x0 + x] / max * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8;
            crop.put_pixel(x as u32, y as u32, Luma([v]));
        }
    }
    // Fit into 20×20 keeping the aspect ratio.
    let scale = BOX as f32 / cw.max(ch) as f32;
    let nw = ((cw as f32 * scale).round() as u32).clamp(1, BOX);
    let nh = ((ch as f32 * scale).round() as u32).clamp(1, BOX);
    let fitted = image::imageops::resize(&crop, nw, nh, FilterType::Triangle);
    // Centre of mass of the fitted digit.
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in fitted.enumerate_pixels() {
        let v = p.0[0] as f64;
        mass += v;
        mx += v * x as f64;
        my += v * y as f64;
    }
    let (cx, cy) = if mass > 0.0 {
        (mx / mass, my / mass)
    } else {
        (nw as f64 / 2.0, nh as f64 / 2.0)
    };
    // Offset so the centre of mass lands on (14, 14), keeping the digit inside the frame.
    let centre = (SIDE / 2) as f64;
    let ox = ((centre - cx).round() as i64).clamp(0, (SIDE as u32 - nw) as i64);
    let oy = ((centre - cy).round() as i64).clamp(0, (SIDE as u32 - nh) as i64);
    let mut out = [0.0f32; SIDE * SIDE];
    for (x, y, p) in fitted.enumerate_pixels() {
        out[(oy as usize + y as usize) * SIDE + ox as usize + x as usize] = p.0[0] as f32 / 255.0;
    }
    Ok(out)
}

/// Ink intensity per pixel, 0 for background. With a transparent background
/// the ink is the opacity; otherwise the distance from the background level
/// (the median of the border), so dark-on-light and light-on-dark both work.
fn ink_map(img: &DynamicImage) -> Vec<f32> {
    let rgba = img.to_rgba8();
    let has_transparency = rgba.pixels().any(|p| p.0[3] < 250);
    if has_transparency {
        return rgba.pixels().map(|p| p.0[3] as f32).collect();
    }
    let gray = img.to_luma8();
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let mut border: Vec<u8> = Vec::new();
    for x in 0..w {
        border.push(gray.get_pixel(x as u32, 0).0[0]);
        border.push(gray.get_pixel(x as u32, (h - 1) as u32).0[0]);
    }
    for y in 0..h {
        border.push(gray.get_pixel(0, y as u32).0[0]);
        border.push(gray.get_pixel((w - 1) as u32, y as u32).0[0]);
    }
    border.sort_unstable();
    let background = border[border.len() / 2] as f32;
    let light_background = background > 127.0;
    gray.pixels()
        .map(|p| {
            let v = p.0[0] as f32;
            let ink = if light_background {
                background - v
            } else {
                v - background
            };
            ink.max(0.0)
        })
        .collect()
}
