//! Test-time augmentation: the same images seen moved by whole pixels.
//!
//! A classifier trained on shifted images can be asked about an image several
//! times, moved a pixel each way, and its answers averaged: the votes of one
//! model over views of one input. It costs one forward pass per view at
//! evaluation and nothing in training.

use crate::{DataError, Result};
use nabla_tensor::Tensor;

/// The views of a test-time augmentation: every shift `(dy, dx)` with both
/// offsets in `-reach..=reach` whole pixels, `(2·reach + 1)²` views in all
/// (the unshifted image first). Pixels that move in from outside are
/// background (0), as in training's augmentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftViews {
    height: usize,
    width: usize,
    shifts: Vec<(isize, isize)>,
}

impl ShiftViews {
    /// The views of `height × width` images within `reach` pixels.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for an empty image, or a reach of half the image
    /// or more (such views hold little of the image).
    pub fn square(height: usize, width: usize, reach: usize) -> Result<Self> {
        if height == 0 || width == 0 {
            return Err(DataError::invalid(
                "test-time shifts",
                format!("images of {height}×{width} pixels have nothing to shift"),
            ));
        }
        if reach.saturating_mul(2) >= height.min(width) {
            return Err(DataError::invalid(
                format!("test-time shift of {reach} pixels"),
                format!("must be under half the {height}×{width} image"),
            ));
        }
        let r = reach as isize;
        let mut shifts = vec![(0, 0)];
        for dy in -r..=r {
            for dx in -r..=r {
                if (dy, dx) != (0, 0) {
                    shifts.push((dy, dx));
                }
            }
        }
        Ok(ShiftViews {
            height,
            width,
            shifts,
        })
    }

    /// The shifts `(dy, dx)`, the unshifted view first.
    pub fn shifts(&self) -> &[(isize, isize)] {
        &self.shifts
    }

    /// How many views each image gets.
    pub fn len(&self) -> usize {
        self.shifts.len()
    }

    /// Always false: there is at least the unshifted view.
    pub fn is_empty(&self) -> bool {
        self.shifts.is_empty()
    }

    /// A batch moved down by `dy` and right by `dx` pixels (negative: up,
    /// left). Every `height × width` plane of every sample moves (a sample
    /// may hold several channels); the shape is kept.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if the samples are not whole planes.
    pub fn shift(&self, batch: &Tensor<f32>, dy: isize, dx: isize) -> Result<Tensor<f32>> {
        let (h, w) = (self.height, self.width);
        let plane = h * w;
        let rows = batch.dims().first().copied().unwrap_or(0);
        if batch.rank() < 2 || rows == 0 || !batch.len().is_multiple_of(rows * plane) {
            return Err(DataError::invalid(
                "test-time shifts",
                format!(
                    "need samples of whole {h}×{w} images, got a batch of shape {}",
                    batch.shape()
                ),
            ));
        }
        Tensor::from_fill(batch.dims(), |out| {
            for src in batch.data().chunks_exact(plane) {
                for y in 0..h as isize {
                    let sy = y - dy;
                    for x in 0..w as isize {
                        let sx = x - dx;
                        let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                        out.push(match inside {
                            true => src[sy as usize * w + sx as usize],
                            false => 0.0,
                        });
                    }
                }
            }
        })
        .map_err(|e| DataError::invalid("test-time shifts", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_views_are_the_square_of_shifts_the_identity_first() {
        let v = ShiftViews::square(28, 28, 1).unwrap();
        assert_eq!(v.len(), 9);
        assert_eq!(v.shifts()[0], (0, 0));
        assert!(v.shifts().contains(&(-1, 1)) && v.shifts().contains(&(1, -1)));
        assert_eq!(ShiftViews::square(28, 28, 0).unwrap().len(), 1);
        assert_eq!(ShiftViews::square(28, 28, 2).unwrap().len(), 25);
        assert!(ShiftViews::square(4, 9, 2).is_err());
        assert!(ShiftViews::square(0, 9, 0).is_err());
        assert!(ShiftViews::square(28, 28, usize::MAX).is_err());
    }

    #[test]
    fn a_shift_moves_every_plane_and_fills_with_background() {
        // Two samples of two 2×3 channels each.
        let data: Vec<f32> = (1..=24).map(|v| v as f32).collect();
        let batch = Tensor::from_vec(data, &[2, 2, 2, 3]).unwrap();
        let v = ShiftViews::square(2, 3, 0).unwrap();
        assert_eq!(v.shift(&batch, 0, 0).unwrap(), batch);
        let moved = v.shift(&batch, 1, -1).unwrap();
        assert_eq!(moved.dims(), batch.dims());
        // Plane [1 2 3; 4 5 6] moved down 1, left 1: [0 0 0; 2 3 0].
        assert_eq!(&moved.data()[..6], &[0.0, 0.0, 0.0, 2.0, 3.0, 0.0]);
        assert_eq!(&moved.data()[18..], &[0.0, 0.0, 0.0, 20.0, 21.0, 0.0]);
        // Flat samples of one plane work too; rows of another length do not.
        let flat = Tensor::from_vec((1..=6).map(|v| v as f32).collect(), &[1, 6]).unwrap();
        assert_eq!(
            v.shift(&flat, 0, 1).unwrap().data(),
            &[0.0, 1.0, 2.0, 0.0, 4.0, 5.0]
        );
        let odd = Tensor::from_vec(vec![0.0; 7], &[1, 7]).unwrap();
        assert!(v.shift(&odd, 0, 1).is_err());
    }
}
