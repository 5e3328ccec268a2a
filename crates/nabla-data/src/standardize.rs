//! Standardisation: each feature to mean 0 and standard deviation 1, with
//! the statistics of the training split only, kept so that new data gets
//! the same transform.

use crate::{DataError, Result};
use serde::{Deserialize, Serialize};

/// Per-feature `(x − mean) / std`, fitted on a training split.
///
/// A feature that is constant in the training split has its standard
/// deviation recorded as 1, so it is only centred (never divided by 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Mean of each feature.
    pub mean: Vec<f64>,
    /// Population standard deviation of each feature (1 where it was 0).
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Fits the statistics of `rows`, `width` values per row (in f64).
    ///
    /// # Errors
    /// No rows, or a length that is not a whole number of rows.
    pub fn fit(rows: &[f32], width: usize) -> Result<Self> {
        if width == 0 || rows.is_empty() || !rows.len().is_multiple_of(width) {
            return Err(DataError::invalid(
                "standardise",
                format!("{} values are not rows of {width}", rows.len()),
            ));
        }
        let n = (rows.len() / width) as f64;
        let mut mean = vec![0.0; width];
        for row in rows.chunks_exact(width) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; width];
        for row in rows.chunks_exact(width) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        let std = var
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 0.0 && sd.is_finite() {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Standardizer { mean, std })
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    fn check(&self, rows: &[f32]) -> Result<()> {
        if self.width() == 0
            || !rows.len().is_multiple_of(self.width())
            || self.std.len() != self.width()
        {
            return Err(DataError::invalid(
                "standardise",
                format!(
                    "{} values are not rows of the {} features it was fitted on",
                    rows.len(),
                    self.width()
                ),
            ));
        }
        Ok(())
    }

    /// `x ← (x − mean) / std`, row by row.
    ///
    /// # Errors
    /// Rows of another width.
    pub fn apply(&self, rows: &mut [f32]) -> Result<()> {
        self.check(rows)?;
        for row in rows.chunks_exact_mut(self.width()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = ((f64::from(*v) - m) / s) as f32;
            }
        }
        Ok(())
    }

    /// `x ← x · std + mean`: back to the original units.
    ///
    /// # Errors
    /// Rows of another width.
    pub fn invert(&self, rows: &mut [f32]) -> Result<()> {
        self.check(rows)?;
        for row in rows.chunks_exact_mut(self.width()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (f64::from(*v) * s + m) as f32;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_statistics_and_the_round_trip() {
        // Feature 0: 1, 2, 3 (mean 2, population std √(2/3)); feature 1 constant.
        let rows = [1.0, 5.0, 2.0, 5.0, 3.0, 5.0];
        let s = Standardizer::fit(&rows, 2).unwrap();
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert!((s.std[0] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.std[1], 1.0, "a constant feature is only centred");
        let mut x = rows;
        s.apply(&mut x).unwrap();
        assert!((x[0] + 1.224_744_9).abs() < 1e-6 && x[1] == 0.0);
        s.invert(&mut x).unwrap();
        assert!(x.iter().zip(&rows).all(|(a, b)| (a - b).abs() < 1e-6));
        assert!(s.apply(&mut [1.0, 2.0, 3.0]).is_err());
        assert!(Standardizer::fit(&[], 2).is_err());
    }
}
