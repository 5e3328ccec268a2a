//! An exponential moving average of the weights (Polyak averaging), kept
//! beside the trained weights and used in their place for evaluation and
//! for the saved model.
//!
//! After every step each averaged parameter moves towards the trained one,
//! `a ← a + (1 − d)·(w − a)`, with the rate `d = min(decay, (1 + n)/(10 + n))`
//! after `n` earlier updates: TensorFlow's `ExponentialMovingAverage` with
//! `num_updates`, so that the first steps do not leave the average stuck
//! near the initial weights. The average smooths out the last steps' noise,
//! as PyTorch's `torch.optim.swa_utils.AveragedModel` with an EMA rule does.
//!
//! Only parameters are averaged. Buffers (batch norm's running statistics)
//! are taken from the trained model as they stand, as `AveragedModel` does
//! without `use_buffers`.
//!
//! The walk reuses the average's tensors and visits the parameters without
//! naming them, so a step allocates nothing.

use nabla_nn::Module;
use nabla_tensor::Tensor;

/// The averaged parameters of a model, in its visiting order.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightAverage {
    /// The largest rate of the average (e.g. 0.999: about the last thousand
    /// steps count).
    pub decay: f64,
    /// Updates so far.
    pub updates: u64,
    /// One tensor per parameter, in [`Module::for_each_param_mut`]'s order.
    pub params: Vec<Tensor<f32>>,
}

impl WeightAverage {
    /// An average that starts at `model`'s current weights.
    pub fn new<M: Module<f32> + ?Sized>(model: &mut M, decay: f64) -> Self {
        let mut params = Vec::new();
        model.for_each_param_mut(&mut |p| params.push(p.value().clone()));
        WeightAverage {
            decay,
            updates: 0,
            params,
        }
    }

    /// The rate of the next update.
    pub fn rate(&self) -> f64 {
        let n = self.updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// Moves the average towards `model`'s weights (after a step).
    pub fn update<M: Module<f32> + ?Sized>(&mut self, model: &mut M) {
        let step = (1.0 - self.rate()) as f32;
        let mut i = 0;
        model.for_each_param_mut(&mut |p| {
            if let Some(avg) = self.params.get_mut(i) {
                for (a, &w) in avg.data_mut().iter_mut().zip(p.value().data()) {
                    *a += step * (w - *a);
                }
            }
            i += 1;
        });
        self.updates += 1;
    }

    /// Exchanges the average with `model`'s weights: call it once to
    /// evaluate the average, and again to go back to training. Nothing is
    /// copied.
    pub fn swap<M: Module<f32> + ?Sized>(&mut self, model: &mut M) {
        let mut i = 0;
        model.for_each_param_mut(&mut |p| {
            if let Some(avg) = self.params.get_mut(i) {
                std::mem::swap(p.value_mut(), avg);
            }
            i += 1;
        });
    }

    /// True when the average has one tensor of the right shape per
    /// parameter of `model`.
    pub fn fits<M: Module<f32> + ?Sized>(&self, model: &mut M) -> bool {
        let mut i = 0;
        let mut same = true;
        model.for_each_param_mut(&mut |p| {
            same &= self
                .params
                .get(i)
                .is_some_and(|a| a.shape() == p.value().shape());
            i += 1;
        });
        same && i == self.params.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_nn::MlpConfig;
    use nabla_tensor::Rng;

    #[test]
    fn the_average_follows_the_weights_at_its_rate() {
        let mut model = MlpConfig::new(3, &[4], 2)
            .init::<f32>(&mut Rng::seed(1))
            .unwrap();
        let start: Vec<f32> = model.named_params()[0].1.value().data().to_vec();
        let mut avg = WeightAverage::new(&mut model, 0.5);
        assert!(avg.fits(&mut model));
        // The first rate is min(0.5, 1/10) = 0.1: the average moves 90% of the way.
        assert!((avg.rate() - 0.1).abs() < 1e-12);
        model.for_each_param_mut(&mut |p| p.value_mut().data_mut().fill(1.0));
        avg.update(&mut model);
        for (a, s) in avg.params[0].data().iter().zip(&start) {
            assert!((a - (s + 0.9 * (1.0 - s))).abs() < 1e-6);
        }
        // Later the rate is the decay.
        avg.updates = 100;
        assert_eq!(avg.rate(), 0.5);
        // Swapping puts the average in the model and the weights in the
        // average; swapping again undoes it.
        let averaged = avg.params[0].clone();
        avg.swap(&mut model);
        assert_eq!(model.named_params()[0].1.value(), &averaged);
        assert!(avg.params[0].data().iter().all(|&w| w == 1.0));
        avg.swap(&mut model);
        assert!(model.named_params()[0]
            .1
            .value()
            .data()
            .iter()
            .all(|&w| w == 1.0));
        assert_eq!(avg.params[0], averaged);
    }
}
