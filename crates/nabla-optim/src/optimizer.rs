//! The optimiser: applies a [`Method`] to parameters, keeping per-parameter state.

use crate::clip::clip_factor;
use crate::{Method, OptimizerConfig};
use nabla_autograd::{Error, Gradients, Param, Result};
use nabla_tensor::{Float, Tensor};

/// An optimiser built from an [`OptimizerConfig`].
///
/// State (momentum, squared-gradient averages) is kept per parameter, by
/// position in the slice passed to [`Optimizer::step`]: pass the parameters in
/// the same order every step (a model's `params_mut()` does).
#[derive(Debug, Clone)]
pub struct Optimizer<T: Float = f32> {
    config: OptimizerConfig,
    state: OptimizerState<T>,
}

/// The mutable state of an optimiser, for checkpoints.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState<T: Float = f32> {
    /// Steps taken so far (Adam's bias correction uses it).
    pub step: u64,
    /// Per parameter, the method's buffers (`v`; or `m`, `v`), created on the first step.
    pub buffers: Vec<Vec<Tensor<T>>>,
}

impl<T: Float> Optimizer<T> {
    /// A fresh optimiser.
    pub fn new(config: OptimizerConfig) -> Self {
        Optimizer {
            config,
            state: OptimizerState {
                step: 0,
                buffers: Vec::new(),
            },
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate (schedules call this between epochs).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// The state, for saving.
    pub fn state(&self) -> &OptimizerState<T> {
        &self.state
    }

    /// Restores a saved state.
    ///
    /// # Errors
    /// If the state does not have this method's number of buffers per parameter.
    pub fn load_state(&mut self, state: OptimizerState<T>) -> Result<()> {
        let want = self.config.method.buffers();
        if let Some(bad) = state.buffers.iter().find(|b| b.len() != want) {
            return Err(Error::invalid(
                "optimizer state",
                format!(
                    "{} keeps {want} buffers per parameter, the saved state has {}",
                    self.config.method.name(),
                    bad.len()
                ),
            ));
        }
        self.state = state;
        Ok(())
    }

    /// One update of every parameter that has a gradient in `grads`.
    ///
    /// # Errors
    /// If the parameters' number or shapes differ from earlier steps.
    pub fn step(&mut self, params: &mut [&mut Param<T>], grads: &Gradients<T>) -> Result<()> {
        self.step_each(grads, |f| params.iter_mut().for_each(|p| f(p)))
    }

    /// [`Optimizer::step`] over the parameters that `visit` passes to its
    /// callback (e.g. `|f| model.for_each_param_mut(f)`), in the same order
    /// every step. `visit` is called twice: once to check the state (and sum
    /// the squared gradients when clipping), once to update. After the first
    /// step this allocates nothing.
    ///
    /// # Errors
    /// If the parameters' number or shapes differ from earlier steps.
    pub fn step_each(
        &mut self,
        grads: &Gradients<T>,
        mut visit: impl FnMut(&mut dyn FnMut(&mut Param<T>)),
    ) -> Result<()> {
        let fresh = self.state.buffers.is_empty();
        let per_param = self.config.method.buffers();
        let clip = self.config.clip_norm;
        let (mut count, mut mismatch, mut squares) = (0usize, None, 0.0f64);
        let buffers = &mut self.state.buffers;
        visit(&mut |param| {
            if fresh {
                buffers.push(vec![param.value().zeros_like(); per_param]);
            } else if !buffers.get(count).is_some_and(|b| {
                b.first()
                    .is_none_or(|first| first.shape() == param.value().shape())
            }) {
                mismatch.get_or_insert((count, param.value().shape().clone()));
            }
            if clip.is_some() {
                for &v in grads.param(param).map_or(&[][..], |g| g.data()) {
                    squares += v.to_f64() * v.to_f64();
                }
            }
            count += 1;
        });
        if let Some((i, shape)) = mismatch {
            return Err(Error::invalid(
                "optimizer step",
                format!("parameter {i} has shape {shape}, unlike its state from earlier steps"),
            ));
        }
        if count != buffers.len() {
            return Err(Error::invalid(
                "optimizer step",
                format!(
                    "got {count} parameters, earlier steps had {}",
                    buffers.len()
                ),
            ));
        }
        let scale = clip.map_or(1.0, |max| clip_factor(squares.sqrt(), max));
        self.state.step += 1;
        let t = self.state.step as i32;
        let settings = StepSettings {
            config: &self.config,
            t,
            scale,
        };
        let mut index = 0;
        visit(&mut |param| {
            if let Some(grad) = grads.param(param) {
                update_widest(settings, param, grad, &mut buffers[index]);
            }
            index += 1;
        });
        Ok(())
    }
}

/// What one step's updates share: the config, the step number (from 1)
/// and the factor clipping scales the gradients by.
#[derive(Clone, Copy)]
struct StepSettings<'a> {
    config: &'a OptimizerConfig,
    t: i32,
    scale: f64,
}

/// [`update`] in eight-lane vectors where the CPU has AVX2 (the baseline
/// x86-64 build has four). Every loop in it is elementwise, and the compiler
/// never reorders a sum nor fuses a multiply with an add, so the result is
/// the same bits either way (tested below); only the speed changes.
fn update_widest<T: Float>(
    s: StepSettings<'_>,
    param: &mut Param<T>,
    grad: &Tensor<T>,
    buffers: &mut [Tensor<T>],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn wide<T: Float>(
            s: StepSettings<'_>,
            param: &mut Param<T>,
            grad: &Tensor<T>,
            buffers: &mut [Tensor<T>],
        ) {
            update(s, param, grad, buffers);
        }
        // SAFETY: the CPU has AVX2.
        return unsafe { wide(s, param, grad, buffers) };
    }
    update(s, param, grad, buffers);
}

/// Applies one step of the method to the elements of one parameter.
///
/// The regularised, clipped gradient is materialised only when regularisation
/// or clipping is on; otherwise the raw gradient is used directly. Either way
/// each method's loop is a plain zip over slices, which the compiler vectorises.
#[inline(always)]
fn update<T: Float>(
    StepSettings {
        config: c,
        t,
        scale,
    }: StepSettings<'_>,
    param: &mut Param<T>,
    grad: &Tensor<T>,
    buffers: &mut [Tensor<T>],
) {
    let w = param.value_mut().data_mut();
    let grad = grad.data();
    let lr = T::from_f64(c.lr);
    let decoupled = matches!(c.method, Method::AdamW { .. });
    let wd = T::from_f64(c.weight_decay);
    let l1 = T::from_f64(c.l1);
    let scale = T::from_f64(scale);
    let coupled_wd = if decoupled { T::ZERO } else { wd };
    let regularised: Option<Tensor<T>> =
        (scale != T::ONE || coupled_wd != T::ZERO || l1 != T::ZERO).then(|| {
            let values = grad
                .iter()
                .zip(w.iter())
                .map(|(&g, &wi)| g * scale + coupled_wd * wi + l1 * sign(wi));
            Tensor::from_iter_exact(&[grad.len()], values).expect("one value per element")
        });
    let g: &[T] = regularised.as_ref().map_or(grad, |r| r.data());
    match c.method {
        Method::Sgd => {
            for (wi, &gi) in w.iter_mut().zip(g) {
                *wi -= lr * gi;
            }
        }
        Method::Momentum { momentum } | Method::Nesterov { momentum } => {
            let nesterov = matches!(c.method, Method::Nesterov { .. });
            let mu = T::from_f64(momentum);
            for ((wi, &gi), vi) in w.iter_mut().zip(g).zip(buffers[0].data_mut()) {
                *vi = mu * *vi + gi;
                *wi -= lr * if nesterov { gi + mu * *vi } else { *vi };
            }
        }
        Method::AdaGrad { eps } => {
            let eps = T::from_f64(eps);
            for ((wi, &gi), hi) in w.iter_mut().zip(g).zip(buffers[0].data_mut()) {
                *hi += gi * gi;
                *wi -= lr * gi / (hi.sqrt() + eps);
            }
        }
        Method::RmsProp { alpha, eps } => {
            let (a, eps) = (T::from_f64(alpha), T::from_f64(eps));
            for ((wi, &gi), hi) in w.iter_mut().zip(g).zip(buffers[0].data_mut()) {
                *hi = a * *hi + (T::ONE - a) * gi * gi;
                *wi -= lr * gi / (hi.sqrt() + eps);
            }
        }
        Method::Adam { beta1, beta2, eps } | Method::AdamW { beta1, beta2, eps } => {
            let (b1, b2, eps) = (T::from_f64(beta1), T::from_f64(beta2), T::from_f64(eps));
            let c1 = T::ONE / (T::ONE - T::from_f64(beta1.powi(t)));
            let c2 = T::ONE / (T::ONE - T::from_f64(beta2.powi(t)));
            // AdamW's decay multiplies w by (1 - lr·λ) before the Adam step.
            let keep = if decoupled { T::ONE - lr * wd } else { T::ONE };
            let (m_buf, v_buf) = buffers.split_at_mut(1);
            let moments = m_buf[0].data_mut().iter_mut().zip(v_buf[0].data_mut());
            for ((wi, &gi), (mi, vi)) in w.iter_mut().zip(g).zip(moments) {
                *mi = b1 * *mi + (T::ONE - b1) * gi;
                *vi = b2 * *vi + (T::ONE - b2) * gi * gi;
                *wi = *wi * keep - lr * (*mi * c1) / ((*vi * c2).sqrt() + eps);
            }
        }
    }
}

fn sign<T: Float>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else if x < T::ZERO {
        -T::ONE
    } else {
        T::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 copy of the update gives the baseline's bits, for every
    /// method, with regularisation and a clipping factor (whose loop builds
    /// the regularised gradient), over a length no vector width divides.
    #[test]
    fn the_wide_update_gives_the_same_bits() {
        let values = |seed: usize| -> Tensor<f32> {
            let v = (0..37).map(|i| (((i * 13 + seed * 5) % 17) as f64 - 8.0) / 7.0);
            Tensor::from_f64s(&v.collect::<Vec<_>>(), &[37]).unwrap()
        };
        for method in [
            Method::Sgd,
            Method::momentum(),
            Method::nesterov(),
            Method::adagrad(),
            Method::rmsprop(),
            Method::adam(),
            Method::adamw(),
        ] {
            let mut config = OptimizerConfig::new(method, 0.05);
            config.weight_decay = 0.01;
            config.l1 = 0.001;
            let (mut plain, mut wide) = (Param::new(values(1)), Param::new(values(1)));
            let state = || vec![values(3).map(f32::abs), values(4).map(f32::abs)];
            let (mut plain_buf, mut wide_buf) = (state(), state());
            for t in 1..=3 {
                let grad = values(t as usize + 5);
                let s = StepSettings {
                    config: &config,
                    t,
                    scale: 0.75,
                };
                update(s, &mut plain, &grad, &mut plain_buf);
                update_widest(s, &mut wide, &grad, &mut wide_buf);
            }
            assert_eq!(plain.value(), wide.value(), "{}: weights", method.name());
            assert_eq!(plain_buf, wide_buf, "{}: state", method.name());
        }
    }
}
