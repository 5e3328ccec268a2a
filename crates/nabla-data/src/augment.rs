//! Data augmentation: small random rotations, shifts, zooms and elastic
//! distortions of training images.
//!
//! A digit turned by a few degrees, moved by a pixel or two, or written with
//! a slightly wobblier hand is still the same digit; showing the network such
//! variants every epoch is the cheapest regulariser there is for
//! convolutional networks (Simard, Steinkraus and Platt, 2003, reached 99.6%
//! on MNIST with elastic distortions, against 99.4% with affine ones alone).

use crate::{DataError, Result};
use nabla_tensor::{Rng, Tensor};
use std::cell::RefCell;

/// How far images may be moved, turned and zoomed. Each training image gets
/// its own random rotation (uniform in `±max_rotation` degrees, about the
/// centre), shift (uniform in `±max_shift` pixels on each axis) and zoom
/// (a factor uniform in `1 ± max_zoom`, about the centre), resampled
/// bilinearly; what moves in from outside the image is background (0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Largest shift, in pixels, along each axis.
    pub max_shift: f64,
    /// Largest rotation, in degrees, either way.
    pub max_rotation: f64,
    /// Largest change of size, as a fraction (0.1: from 90% to 110%).
    pub max_zoom: f64,
    /// The elastic distortion, if any.
    pub elastic: Option<Elastic>,
}

/// An elastic distortion (Simard et al., 2003): each pixel is displaced by a
/// random field — uniform noise in `[−1, 1]` per pixel and axis, smoothed by a
/// Gaussian of `sigma` pixels and scaled by `alpha` — so that strokes bend
/// without breaking. Simard et al. used `alpha` 34 and `sigma` 4 on MNIST.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elastic {
    /// The field's scale, in pixels.
    pub alpha: f64,
    /// The Gaussian's standard deviation, in pixels: larger is smoother.
    pub sigma: f64,
}

impl Default for Augment {
    /// Shifts of up to 2 pixels, rotations of up to 10°, no zoom, no elastic
    /// distortion.
    fn default() -> Self {
        Augment {
            max_shift: 2.0,
            max_rotation: 10.0,
            max_zoom: 0.0,
            elastic: None,
        }
    }
}

impl Augment {
    /// Shifts and rotations, no zoom; checks that the ranges are finite and
    /// non-negative.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the bad value.
    pub fn new(max_shift: f64, max_rotation: f64) -> Result<Self> {
        Self::with_zoom(max_shift, max_rotation, 0.0)
    }

    /// Shifts, rotations and zooms; the zoom must lie in `[0, 1)`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the bad value.
    pub fn with_zoom(max_shift: f64, max_rotation: f64, max_zoom: f64) -> Result<Self> {
        for (what, v) in [("shift", max_shift), ("rotation", max_rotation)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(DataError::invalid(
                    format!("augmentation {what} {v}"),
                    "must be a non-negative number",
                ));
            }
        }
        if !(0.0..1.0).contains(&max_zoom) {
            return Err(DataError::invalid(
                format!("augmentation zoom {max_zoom}"),
                "must be a fraction in [0, 1), e.g. 0.1 for sizes from 90% to 110%",
            ));
        }
        Ok(Augment {
            max_shift,
            max_rotation,
            max_zoom,
            elastic: None,
        })
    }

    /// These ranges with an elastic distortion of `alpha` and `sigma` pixels
    /// added (an `alpha` of 0 takes it away).
    ///
    /// # Errors
    /// [`DataError::Invalid`] for a negative or non-finite `alpha`, or a
    /// `sigma` outside `(0, 16]`.
    pub fn with_elastic(self, alpha: f64, sigma: f64) -> Result<Self> {
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(DataError::invalid(
                format!("elastic distortion alpha {alpha}"),
                "must be a non-negative number of pixels, e.g. 34",
            ));
        }
        if !(sigma > 0.0 && sigma <= 16.0) {
            return Err(DataError::invalid(
                format!("elastic distortion sigma {sigma}"),
                "must be in (0, 16] pixels, e.g. 4",
            ));
        }
        let elastic = (alpha > 0.0).then_some(Elastic { alpha, sigma });
        Ok(Augment { elastic, ..self })
    }

    /// Transforms one `height × width` image, drawing its rotation, shift
    /// and zoom from `rng`, and appends the result to `out`.
    pub fn apply(
        &self,
        image: &[f32],
        height: usize,
        width: usize,
        rng: &mut Rng,
        out: &mut Vec<f32>,
    ) {
        let angle = (rng.next_f64() * 2.0 - 1.0) * self.max_rotation.to_radians();
        let dy = (rng.next_f64() * 2.0 - 1.0) * self.max_shift;
        let dx = (rng.next_f64() * 2.0 - 1.0) * self.max_shift;
        // Drawn last, so that runs without zoom keep the streams they had.
        let zoom = match self.max_zoom > 0.0 {
            true => 1.0 + (rng.next_f64() * 2.0 - 1.0) * self.max_zoom,
            false => 1.0,
        };
        // Drawn after the zoom, and only when asked for, for the same reason.
        FIELD.with_borrow_mut(|[field, scratch, padded, kernel]| {
            field.clear();
            if let Some(e) = &self.elastic {
                e.draw(height, width, rng, field, [scratch, padded, kernel]);
            }
            self.resample(image, height, width, (angle, dy, dx, zoom), field, out);
        });
    }

    /// Writes the image seen through the inverse map of the rotation,
    /// shift and zoom, at the points the elastic `field` (two planes, `y`
    /// then `x` displacements; empty for none) moves each pixel to.
    fn resample(
        &self,
        image: &[f32],
        height: usize,
        width: usize,
        (angle, dy, dx, zoom): (f64, f64, f64, f64),
        field: &[f64],
        out: &mut Vec<f32>,
    ) {
        let (sin, cos) = angle.sin_cos();
        let (sin, cos) = (sin / zoom, cos / zoom);
        let (cy, cx) = ((height as f64 - 1.0) / 2.0, (width as f64 - 1.0) / 2.0);
        let pixel = |y: isize, x: isize| -> f64 {
            if y < 0 || x < 0 || y >= height as isize || x >= width as isize {
                0.0
            } else {
                image[y as usize * width + x as usize] as f64
            }
        };
        let plane = height * width;
        for y in 0..height {
            for x in 0..width {
                // The inverse map: where in the source this output pixel comes from.
                let (mut oy, mut ox) = (y as f64 - cy - dy, x as f64 - cx - dx);
                if !field.is_empty() {
                    oy += field[y * width + x];
                    ox += field[plane + y * width + x];
                }
                let sy = cos * oy + sin * ox + cy;
                let sx = -sin * oy + cos * ox + cx;
                let (y0, x0) = (sy.floor(), sx.floor());
                let (fy, fx) = (sy - y0, sx - x0);
                let (y0, x0) = (y0 as isize, x0 as isize);
                let v = (1.0 - fy) * ((1.0 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1))
                    + fy * ((1.0 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1));
                out.push(v as f32);
            }
        }
    }

    /// Transforms every image of a `[N, height·width]` or `[N, 1, height,
    /// width]` batch (the shape is kept); image `i` draws
    /// from a generator seeded by `seeds(i)`, so a run is reproducible
    /// however its batches are split.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if the rows are not `height·width` long.
    pub fn apply_batch(
        &self,
        batch: &Tensor<f32>,
        height: usize,
        width: usize,
        seeds: impl Fn(usize) -> u64,
    ) -> Result<Tensor<f32>> {
        let len = height * width;
        let rows = batch.dims().first().copied().unwrap_or(0);
        if batch.rank() < 2 || batch.len() != rows * len {
            return Err(DataError::invalid(
                "augmentation",
                format!(
                    "{height}×{width} images, got a batch of shape {}",
                    batch.shape()
                ),
            ));
        }
        Tensor::from_fill(batch.dims(), |out| {
            for (i, image) in batch.data().chunks_exact(len.max(1)).enumerate() {
                self.apply(image, height, width, &mut Rng::seed(seeds(i)), out);
            }
        })
        .map_err(|e| DataError::invalid("augmentation", e.to_string()))
    }
}

thread_local! {
    /// The elastic field, the smoothing's scratch, padded row and kernel, kept between images so
    /// that a steady-state step allocates nothing.
    static FIELD: RefCell<[Vec<f64>; 4]> = const { RefCell::new([const { Vec::new() }; 4]) };
}

impl Elastic {
    /// Fills `field` with a `height × width` displacement plane for `y` and
    /// one for `x`: uniform noise, smoothed along rows and then columns by
    /// the Gaussian cut at 3σ (the noise mirrored at the edges), scaled by
    /// `alpha`.
    fn draw(
        &self,
        height: usize,
        width: usize,
        rng: &mut Rng,
        field: &mut Vec<f64>,
        [scratch, padded, kernel]: [&mut Vec<f64>; 3],
    ) {
        let plane = height * width;
        field.extend((0..2 * plane).map(|_| rng.next_f64() * 2.0 - 1.0));
        let radius = (3.0 * self.sigma).ceil() as isize;
        kernel.clear();
        kernel.extend(
            (-radius..=radius).map(|k| (-((k * k) as f64) / (2.0 * self.sigma * self.sigma)).exp()),
        );
        let total: f64 = kernel.iter().sum();
        kernel.iter_mut().for_each(|w| *w /= total);
        // Rows padded by mirroring them about their edges (as scipy's
        // `gaussian_filter` does by default), so that the inner loops run over
        // plain slices and vectorise. Repeating the edge pixel instead would
        // give the one noise value there most of the kernel's weight, and
        // the border displacements many pixels.
        let r = radius as usize;
        let clamp = |v: usize, n: usize| {
            // Index v − r of the sequence a b c … | … c b a | a b c …
            let i = (v as isize - r as isize).rem_euclid(2 * n as isize) as usize;
            if i < n {
                i
            } else {
                2 * n - 1 - i
            }
        };
        for noise in field.chunks_exact_mut(plane.max(1)) {
            // Along the rows, for the rows above and below repeated too.
            scratch.clear();
            scratch.resize((height + 2 * r) * width, 0.0);
            for (py, blurred) in scratch.chunks_exact_mut(width).enumerate() {
                let row = &noise[clamp(py, height) * width..][..width];
                padded.clear();
                padded.extend((0..width + 2 * r).map(|px| row[clamp(px, width)]));
                for (k, w) in kernel.iter().enumerate() {
                    for (b, p) in blurred.iter_mut().zip(&padded[k..]) {
                        *b += w * p;
                    }
                }
            }
            // Down the columns.
            for (y, out) in noise.chunks_exact_mut(width).enumerate() {
                out.fill(0.0);
                for (k, w) in kernel.iter().enumerate() {
                    for (o, b) in out.iter_mut().zip(&scratch[(y + k) * width..]) {
                        *o += w * b;
                    }
                }
                out.iter_mut().for_each(|o| *o *= self.alpha);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Vec<f32> {
        // A 3×3 bright square in the middle of a 9×9 image.
        (0..81)
            .map(|i| {
                if (3..6).contains(&(i / 9)) && (3..6).contains(&(i % 9)) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn no_rotation_and_no_shift_is_the_identity() {
        let mut out = Vec::new();
        Augment::new(0.0, 0.0)
            .unwrap()
            .apply(&square(), 9, 9, &mut Rng::seed(1), &mut out);
        assert_eq!(out, square());
    }

    #[test]
    fn shifts_move_the_ink_and_keep_it() {
        let aug = Augment::new(2.0, 0.0).unwrap();
        let mut moved = 0;
        for seed in 0..20 {
            let mut out = Vec::new();
            aug.apply(&square(), 9, 9, &mut Rng::seed(seed), &mut out);
            let ink: f32 = out.iter().sum();
            assert!(
                (ink - 9.0).abs() < 1e-4,
                "a shift inside the frame keeps the ink: {ink}"
            );
            // The ink's centre of mass moves by the shift, at most 2 pixels per axis.
            let (cy, cx) = out.iter().enumerate().fold((0.0, 0.0), |(y, x), (i, &v)| {
                (y + v * (i / 9) as f32, x + v * (i % 9) as f32)
            });
            let (dy, dx) = (cy / ink - 4.0, cx / ink - 4.0);
            assert!(
                dy.abs() <= 2.0 + 1e-4 && dx.abs() <= 2.0 + 1e-4,
                "moved by ({dy}, {dx})"
            );
            if dy.abs() > 0.1 || dx.abs() > 0.1 {
                moved += 1;
            }
        }
        assert!(moved >= 15, "only {moved} of 20 images moved");
    }

    #[test]
    fn zooms_scale_the_ink_about_the_centre() {
        // Without shift or rotation, a zoom by z scales the square's area by z².
        let aug = Augment::with_zoom(0.0, 0.0, 0.3).unwrap();
        let (mut larger, mut smaller) = (0, 0);
        for seed in 0..20 {
            let mut out = Vec::new();
            aug.apply(&square(), 9, 9, &mut Rng::seed(seed), &mut out);
            let ink: f32 = out.iter().sum();
            assert!(
                (9.0 * 0.6 * 0.6..=9.0 * 1.4 * 1.4).contains(&ink),
                "ink {ink}"
            );
            // Symmetric about the centre pixel: the image equals its mirror.
            let mirrored: Vec<f32> = out.iter().rev().copied().collect();
            for (a, b) in out.iter().zip(&mirrored) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "a zoom about the centre keeps the symmetry"
                );
            }
            match ink > 9.0 {
                true => larger += 1,
                false => smaller += 1,
            }
        }
        assert!(
            larger >= 4 && smaller >= 4,
            "{larger} larger, {smaller} smaller"
        );
        assert!(Augment::with_zoom(0.0, 0.0, 1.0).is_err());
        assert!(Augment::with_zoom(0.0, 0.0, -0.1).is_err());
        // No zoom draws nothing more: the streams of shift-and-rotation runs are kept.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Augment::new(2.0, 10.0)
            .unwrap()
            .apply(&square(), 9, 9, &mut Rng::seed(3), &mut a);
        Augment::with_zoom(2.0, 10.0, 0.0).unwrap().apply(
            &square(),
            9,
            9,
            &mut Rng::seed(3),
            &mut b,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn rotations_are_seeded_and_vary() {
        let aug = Augment::default();
        let batch = Tensor::from_vec([square(), square()].concat(), &[2, 81]).unwrap();
        let a = aug.apply_batch(&batch, 9, 9, |i| i as u64).unwrap();
        let b = aug.apply_batch(&batch, 9, 9, |i| i as u64).unwrap();
        assert_eq!(a, b, "same seeds, same images");
        assert_ne!(
            a.data()[..81],
            a.data()[81..],
            "different seeds, different images"
        );
        assert!(a.data().iter().all(|v| (0.0..=1.0 + 1e-6).contains(v)));
        assert!(aug.apply_batch(&batch, 8, 8, |i| i as u64).is_err());
        assert!(Augment::new(-1.0, 0.0).is_err());
        assert!(Augment::new(1.0, f64::NAN).is_err());
    }

    #[test]
    fn elastic_fields_are_smooth_seeded_and_scaled_by_alpha() {
        let e = Elastic {
            alpha: 34.0,
            sigma: 4.0,
        };
        let draw = |e: &Elastic, seed| {
            let (mut f, mut s, mut p, mut k) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            e.draw(
                28,
                28,
                &mut Rng::seed(seed),
                &mut f,
                [&mut s, &mut p, &mut k],
            );
            f
        };
        let f = draw(&e, 7);
        assert_eq!(f.len(), 2 * 28 * 28);
        assert_eq!(f, draw(&e, 7), "same seed, same field");
        let rms = (f.iter().map(|v| v * v).sum::<f64>() / f.len() as f64).sqrt();
        // Uniform noise (sd 1/√3) through a normalised 2-D Gaussian keeps about
        // 1/(2σ√π) of its sd: 34 · 0.577 · 0.0705 ≈ 1.4 px.
        assert!((0.7..2.8).contains(&rms), "rms displacement {rms}");
        // Smooth: neighbours move nearly alike.
        let step = (0..28 * 27)
            .map(|i| (f[i + 28] - f[i]).powi(2))
            .sum::<f64>()
            / (28.0 * 27.0);
        assert!(
            step.sqrt() < 0.3 * rms,
            "neighbour step {} against {rms}",
            step.sqrt()
        );
        // Alpha scales the field, nothing else.
        let half = draw(&Elastic { alpha: 17.0, ..e }, 7);
        for (a, b) in f.iter().zip(&half) {
            assert!((a - 2.0 * b).abs() < 1e-12);
        }
    }

    #[test]
    fn elastic_distortion_bends_the_digit_and_keeps_its_ink() {
        let aug = Augment::new(0.0, 0.0)
            .unwrap()
            .with_elastic(34.0, 4.0)
            .unwrap();
        let mut image = vec![0.0f32; 28 * 28];
        for y in 6..22 {
            for x in 12..16 {
                image[y * 28 + x] = 1.0; // a thick vertical stroke, a "1"
            }
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        aug.apply(&image, 28, 28, &mut Rng::seed(4), &mut a);
        aug.apply(&image, 28, 28, &mut Rng::seed(4), &mut b);
        assert_eq!(a, b, "seeded");
        assert_ne!(a, image, "the stroke bends");
        let ink = |v: &[f32]| v.iter().sum::<f32>();
        let ratio = ink(&a) / ink(&image);
        assert!((0.7..1.3).contains(&ratio), "ink kept: {ratio}");
        // Without it (alpha 0), the streams and results of plain runs are kept.
        let plain = Augment::default();
        let off = plain.with_elastic(0.0, 4.0).unwrap();
        assert_eq!(off, plain);
        let (mut c, mut d) = (Vec::new(), Vec::new());
        plain.apply(&image, 28, 28, &mut Rng::seed(9), &mut c);
        off.apply(&image, 28, 28, &mut Rng::seed(9), &mut d);
        assert_eq!(c, d);
        assert!(plain.with_elastic(-1.0, 4.0).is_err());
        assert!(plain.with_elastic(f64::NAN, 4.0).is_err());
        assert!(plain.with_elastic(34.0, 0.0).is_err());
        assert!(plain.with_elastic(34.0, 17.0).is_err());
    }
}
