//! The optimiser: applies a [`Method`] to parameters, keeping per-parameter state.

use crate::clip::{clip_factor, grad_norm};
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
        self.ensure_state(params)?;
        self.state.step += 1;
        let c = self.config;
        let scale = match c.clip_norm {
            Some(max) => {
                let refs: Vec<&Param<T>> = params.iter().map(|p| &**p).collect();
                clip_factor(grad_norm(&refs, grads), max)
            }
            None => 1.0,
        };
        let t = self.state.step as i32;
        for (param, buffers) in params.iter_mut().zip(self.state.buffers.iter_mut()) {
            let Some(grad) = grads.param(param) else {
                continue;
            };
            let grad = grad.clone();
            let mut state: Vec<&mut [T]> = buffers.iter_mut().map(|b| b.data_mut()).collect();
            update(
                &c,
                t,
                scale,
                param.value_mut().data_mut(),
                grad.data(),
                &mut state,
            );
        }
        Ok(())
    }

    fn ensure_state(&mut self, params: &[&mut Param<T>]) -> Result<()> {
        let n = self.config.method.buffers();
        if self.state.buffers.is_empty() {
            self.state.buffers = params
                .iter()
                .map(|p| vec![p.value().zeros_like(); n])
                .collect();
            return Ok(());
        }
        if self.state.buffers.len() != params.len() {
            return Err(Error::invalid(
                "optimizer step",
                format!(
                    "got {} parameters, earlier steps had {}",
                    params.len(),
                    self.state.buffers.len()
                ),
            ));
        }
        for (i, (p, b)) in params.iter().zip(&self.state.buffers).enumerate() {
            if let Some(first) = b.first() {
                if first.shape() != p.value().shape() {
                    return Err(Error::invalid(
                        "optimizer step",
                        format!(
                            "parameter {i} has shape {}, its state has {}",
                            p.value().shape(),
                            first.shape()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Applies one step of the method to the elements of one parameter.
///
/// The regularised, clipped gradient is materialised only when regularisation
/// or clipping is on; otherwise the raw gradient is used directly. Either way
/// each method's loop is a plain zip over slices, which the compiler vectorises.
fn update<T: Float>(
    c: &OptimizerConfig,
    t: i32,
    scale: f64,
    w: &mut [T],
    grad: &[T],
    buffers: &mut [&mut [T]],
) {
    let lr = T::from_f64(c.lr);
    let decoupled = matches!(c.method, Method::AdamW { .. });
    let wd = T::from_f64(c.weight_decay);
    let l1 = T::from_f64(c.l1);
    let scale = T::from_f64(scale);
    let coupled_wd = if decoupled { T::ZERO } else { wd };
    let regularised: Option<Vec<T>> = (scale != T::ONE || coupled_wd != T::ZERO || l1 != T::ZERO)
        .then(|| {
            grad.iter()
                .zip(w.iter())
                .map(|(&g, &wi)| g * scale + coupled_wd * wi + l1 * sign(wi))
                .collect()
        });
    let g: &[T] = regularised.as_deref().unwrap_or(grad);
    match c.method {
        Method::Sgd => {
            for (wi, &gi) in w.iter_mut().zip(g) {
                *wi -= lr * gi;
            }
        }
        Method::Momentum { momentum } | Method::Nesterov { momentum } => {
            let nesterov = matches!(c.method, Method::Nesterov { .. });
            let mu = T::from_f64(momentum);
            for ((wi, &gi), vi) in w.iter_mut().zip(g).zip(buffers[0].iter_mut()) {
                *vi = mu * *vi + gi;
                *wi -= lr * if nesterov { gi + mu * *vi } else { *vi };
            }
        }
        Method::AdaGrad { eps } => {
            let eps = T::from_f64(eps);
            for ((wi, &gi), hi) in w.iter_mut().zip(g).zip(buffers[0].iter_mut()) {
                *hi += gi * gi;
                *wi -= lr * gi / (hi.sqrt() + eps);
            }
        }
        Method::RmsProp { alpha, eps } => {
            let (a, eps) = (T::from_f64(alpha), T::from_f64(eps));
            for ((wi, &gi), hi) in w.iter_mut().zip(g).zip(buffers[0].iter_mut()) {
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
            let moments = m_buf[0].iter_mut().zip(v_buf[0].iter_mut());
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
