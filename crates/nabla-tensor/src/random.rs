//! Seeded random numbers: ChaCha8, so a seed gives the same stream on every
//! platform and every version of this library.

use crate::{Float, Tensor};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// A reproducible random generator.
pub struct Rng(ChaCha8Rng);

/// Bytes in [`Rng::state`]: seed (32), stream (8), word position (16).
pub const RNG_STATE_LEN: usize = 56;

impl Clone for Rng {
    fn clone(&self) -> Self {
        Rng::from_state(&self.state())
    }
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rng(ChaCha8, word {})", self.0.get_word_pos())
    }
}

impl Rng {
    /// A generator from a 64-bit seed.
    pub fn seed(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Samples from a normal distribution `N(mean, std²)`.
    pub fn normal<T: Float>(&mut self, shape: &[usize], mean: f64, std: f64) -> Tensor<T> {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut self.0);
                T::from_f64(mean + std * z)
            })
            .collect();
        Tensor::from_vec(data, shape).expect("length equals the product of the shape")
    }

    /// Samples uniformly from `[low, high)`.
    pub fn uniform<T: Float>(&mut self, shape: &[usize], low: f64, high: f64) -> Tensor<T> {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| T::from_f64(low + (high - low) * self.0.random::<f64>()))
            .collect();
        Tensor::from_vec(data, shape).expect("length equals the product of the shape")
    }

    /// A uniform `f64` in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// A uniform integer in `0..n` (`n` must be > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n.max(1))
    }

    /// Shuffles in place (Fisher–Yates, drawing from this generator).
    pub fn shuffle<X>(&mut self, items: &mut [X]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// The generator's full state as bytes (seed, stream, position), for checkpoints.
    pub fn state(&self) -> [u8; RNG_STATE_LEN] {
        let mut out = [0u8; RNG_STATE_LEN];
        out[..32].copy_from_slice(&self.0.get_seed());
        out[32..40].copy_from_slice(&self.0.get_stream().to_le_bytes());
        out[40..].copy_from_slice(&self.0.get_word_pos().to_le_bytes());
        out
    }

    /// Restores a generator from [`Rng::state`].
    pub fn from_state(state: &[u8; RNG_STATE_LEN]) -> Self {
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&state[..32]);
        let mut rng = ChaCha8Rng::from_seed(seed);
        let mut stream = [0u8; 8];
        stream.copy_from_slice(&state[32..40]);
        rng.set_stream(u64::from_le_bytes(stream));
        let mut word = [0u8; 16];
        word.copy_from_slice(&state[40..]);
        rng.set_word_pos(u128::from_le_bytes(word));
        Rng(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_state_round_trips() {
        let mut a = Rng::seed(42);
        let mut b = Rng::seed(42);
        let x: Tensor<f32> = a.normal(&[5], 0.0, 1.0);
        let y: Tensor<f32> = b.normal(&[5], 0.0, 1.0);
        assert_eq!(x, y);
        let saved = a.state();
        let next: Tensor<f64> = a.uniform(&[4], 0.0, 1.0);
        let mut c = Rng::from_state(&saved);
        assert_eq!(c.uniform::<f64>(&[4], 0.0, 1.0), next);
    }

    #[test]
    fn normal_has_the_requested_moments() {
        let x: Tensor<f64> = Rng::seed(3).normal(&[20000], 1.0, 0.5);
        let mean = x.mean_all().unwrap();
        let var = x.map(|v| (v - mean) * (v - mean)).mean_all().unwrap();
        assert!((mean - 1.0).abs() < 0.02 && (var.sqrt() - 0.5).abs() < 0.02);
    }
}
