//! Mini-batches: a seeded shuffle per epoch, then consecutive slices.

use crate::{DataError, Result};
use nabla_tensor::{Rng, Tensor};

/// One mini-batch: `[n, 784]` pixels in `[0, 1]` and the `n` labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Images, one row each.
    pub x: Tensor<f32>,
    /// Class indices.
    pub labels: Vec<usize>,
}

impl Batch {
    /// The labels as one-hot rows `[n, classes]`.
    ///
    /// # Errors
    /// A label ≥ `classes`.
    pub fn one_hot(&self, classes: usize) -> Result<Tensor<f32>> {
        Tensor::one_hot(&self.labels, classes)
            .map_err(|e| DataError::invalid("one_hot", e.to_string()))
    }
}

/// Mini-batches per epoch: `⌈N/B⌉` with the last, partial batch kept, or
/// `⌊N/B⌋` when it is dropped. Never an empty batch.
///
/// The material counts `N//B + 1` (2000 samples, batch 64 → 32 batches, the
/// last of 16); that agrees with `⌈N/B⌉` except when `B` divides `N`, where it
/// would add an empty batch (2000 samples, batch 100 → 20, not 21).
pub fn batches_per_epoch(n: usize, batch_size: usize, drop_last: bool) -> usize {
    if batch_size == 0 {
        return 0;
    }
    if drop_last {
        n / batch_size
    } else {
        n.div_ceil(batch_size)
    }
}

/// The batches of one epoch: a permutation of `0..n`, cut into slices.
#[derive(Debug, Clone)]
pub struct Batches {
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
}

impl Batches {
    /// A fresh permutation of `0..n` drawn from `rng` (or `0..n` in order
    /// when `rng` is `None`), cut into batches of `batch_size`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for a zero batch size.
    pub fn new(
        n: usize,
        batch_size: usize,
        drop_last: bool,
        rng: Option<&mut Rng>,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::invalid("batch size", "must be at least 1"));
        }
        let mut order: Vec<usize> = (0..n).collect();
        if let Some(rng) = rng {
            rng.shuffle(&mut order);
        }
        Ok(Batches {
            order,
            batch_size,
            drop_last,
        })
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        batches_per_epoch(self.order.len(), self.batch_size, self.drop_last)
    }

    /// True when there are no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole permutation; batch `b` is `order()[b * batch_size..]`, cut
    /// to its length.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The index slices, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[usize]> {
        self.order.chunks(self.batch_size).take(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_materials_example_and_the_divisible_case() {
        // 2000 samples, batch 64: 32 batches, the last with 16; 10 epochs = 320 iterations.
        assert_eq!(batches_per_epoch(2000, 64, false), 32);
        let b = Batches::new(2000, 64, false, Some(&mut Rng::seed(0))).unwrap();
        let sizes: Vec<usize> = b.iter().map(|s| s.len()).collect();
        assert_eq!(sizes.len(), 32);
        assert_eq!(*sizes.last().unwrap(), 16);
        assert_eq!(sizes.iter().sum::<usize>(), 2000);
        // When B divides N there is no empty batch: 60000/100 = 600.
        assert_eq!(batches_per_epoch(60000, 100, false), 600);
        assert_eq!(
            Batches::new(60000, 100, false, None)
                .unwrap()
                .iter()
                .count(),
            600
        );
        // Dropping the partial batch.
        assert_eq!(batches_per_epoch(2000, 64, true), 31);
        assert!(Batches::new(2000, 64, true, None)
            .unwrap()
            .iter()
            .all(|s| s.len() == 64));
        assert!(Batches::new(10, 0, false, None).is_err());
    }

    #[test]
    fn every_epoch_is_a_permutation_and_seeded() {
        let mut a = Rng::seed(5);
        let mut b = Rng::seed(5);
        let e1: Vec<usize> = Batches::new(50, 8, false, Some(&mut a))
            .unwrap()
            .iter()
            .flatten()
            .copied()
            .collect();
        let e2: Vec<usize> = Batches::new(50, 8, false, Some(&mut a))
            .unwrap()
            .iter()
            .flatten()
            .copied()
            .collect();
        let again: Vec<usize> = Batches::new(50, 8, false, Some(&mut b))
            .unwrap()
            .iter()
            .flatten()
            .copied()
            .collect();
        assert_ne!(e1, e2, "reshuffled every epoch");
        assert_eq!(e1, again, "same seed, same order");
        let mut sorted = e1.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
