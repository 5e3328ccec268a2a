//! Weight initialisation schemes.

use nabla_tensor::{Float, Rng, Tensor};

/// How a layer's weights are drawn. Biases always start at zero.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Init {
    /// `N(0, std²)`; the material uses `std = 0.01`.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Xavier/Glorot (normal variant): `std = √(2 / (fan_in + fan_out))`,
    /// suited to sigmoid and tanh (Glorot & Bengio, 2010).
    Xavier,
    /// He/Kaiming (normal variant): `std = √(2 / fan_in)`, suited to ReLU (He et al., 2015).
    #[default]
    He,
}

impl Init {
    /// The standard deviation this scheme uses for the given fans.
    pub fn std(&self, fan_in: usize, fan_out: usize) -> f64 {
        match *self {
            Init::Normal { std } => std,
            Init::Xavier => (2.0 / (fan_in + fan_out).max(1) as f64).sqrt(),
            Init::He => (2.0 / fan_in.max(1) as f64).sqrt(),
        }
    }

    /// Draws a weight tensor of `shape` for a layer with these fans.
    pub fn sample<T: Float>(
        &self,
        rng: &mut Rng,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
    ) -> Tensor<T> {
        rng.normal(shape, 0.0, self.std(fan_in, fan_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_deviations_follow_the_formulas() {
        assert_eq!(Init::Normal { std: 0.01 }.std(784, 100), 0.01);
        assert!((Init::Xavier.std(100, 100) - 0.1).abs() < 1e-12);
        assert!((Init::He.std(50, 10) - 0.2).abs() < 1e-12);
        let w: Tensor<f64> = Init::He.sample(&mut Rng::seed(0), &[200, 200], 200, 200);
        let std = w.map(|v| v * v).mean_all().unwrap().sqrt();
        assert!((std - 0.1).abs() < 0.005, "sample std {std}");
    }
}
