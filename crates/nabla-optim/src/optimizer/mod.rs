//! The optimiser: applies a [`Method`] to parameters, keeping per-parameter state.

//!
//! The floor plan: this file is the plumbing (state, checks, which
//! parameters and gradients); `parts` carries out one parameter's update
//! (the shards' sum, regularisation, threads); `rules` holds the methods'
//! update rules; `outer_sgd` applies plain SGD to a gradient kept as an
//! outer product.

mod outer_sgd;
mod parts;
mod rules;

use crate::clip::clip_factor;
use crate::{Method, OptimizerConfig};
use nabla_autograd::{Error, Gradients, Param, ParamGrad, Result};
use nabla_tensor::{Float, Tensor};
use outer_sgd::sgd_outer_widest;
use parts::{update_in_parts, StepSettings};
use smallvec::SmallVec;
use std::borrow::Cow;

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

    /// Whether a step applies a gradient held as an outer product (see
    /// [`Gradients::keep_outer_products`]) without forming it: plain SGD
    /// without regularisation or clipping, whose update of row `i` of a
    /// weight is `w -= lr · (uᵢ · v)`, one pass over the weight instead of
    /// one to form the gradient and one to read it back. Other methods and
    /// settings form such a gradient first (correct, but it allocates).
    pub fn takes_outer_products(&self) -> bool {
        let c = &self.config;
        c.method == Method::Sgd && c.weight_decay == 0.0 && c.l1 == 0.0 && c.clip_norm.is_none()
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
    /// If the parameters' number or shapes differ from earlier steps, or a
    /// gradient's shape differs from its parameter's.
    pub fn step_each(
        &mut self,
        grads: &Gradients<T>,
        visit: impl FnMut(&mut dyn FnMut(&mut Param<T>)),
    ) -> Result<()> {
        self.step_sum(&[grads], visit)
    }

    /// [`Optimizer::step_each`] with the sum of several gradient stores (the
    /// shards of one batch), added element by element in the order given, as
    /// adding them into the first store and stepping with it would, but
    /// without writing the sum anywhere.
    ///
    /// With several stores, a large parameter's update is shared out between
    /// the threads of the current pool by element ranges: the threads have
    /// just computed the shards, so they are awake, and each updates a part
    /// of the weights as fast as one thread would update them all (writing
    /// weights the other cores have read is what costs). With one store it
    /// runs on the calling thread: waking idle threads would cost more than
    /// the update. Every element's arithmetic is the same either way, so the
    /// weights are the same bits on any number of threads.
    ///
    /// # Errors
    /// As [`Optimizer::step_each`].
    pub fn step_sum(
        &mut self,
        grads: &[&Gradients<T>],
        mut visit: impl FnMut(&mut dyn FnMut(&mut Param<T>)),
    ) -> Result<()> {
        let plain_sgd = self.takes_outer_products();
        let fresh = self.state.buffers.is_empty();
        let per_param = self.config.method.buffers();
        let clip = self.config.clip_norm;
        let (mut count, mut mismatch, mut squares) = (0usize, None, 0.0f64);
        let buffers = &mut self.state.buffers;
        visit(&mut |param| {
            let shape = param.value().shape();
            if fresh {
                buffers.push(vec![param.value().zeros_like(); per_param]);
            } else if !buffers
                .get(count)
                .is_some_and(|b| b.first().is_none_or(|first| first.shape() == shape))
            {
                mismatch.get_or_insert(format!(
                    "parameter {count} has shape {shape}, unlike its state from earlier steps"
                ));
            }
            let parts = shard_grads(grads, param);
            if let Some(g) = parts.iter().find(|g| g.len() != param.value().len()) {
                mismatch.get_or_insert(format!(
                    "parameter {count} has shape {shape} but a gradient of {} elements",
                    g.len()
                ));
            } else if clip.is_some() && !parts.is_empty() {
                let parts = formed(&parts);
                let parts: SmallVec<[&[T]; 32]> = parts.iter().map(|p| p.data()).collect();
                for i in 0..param.value().len() {
                    let v = parts[1..].iter().fold(parts[0][i], |acc, g| acc + g[i]);
                    squares += v.to_f64() * v.to_f64();
                }
            }
            count += 1;
        });
        if let Some(message) = mismatch {
            return Err(Error::invalid("optimizer step", message));
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
        let threads = if grads.len() > 1 {
            rayon::current_num_threads().max(1)
        } else {
            1
        };
        let mut index = 0;
        visit(&mut |param| {
            let parts = shard_grads(grads, param);
            match parts[..] {
                [] => {}
                [ParamGrad::Outer(o)] if plain_sgd => sgd_outer_widest(
                    T::from_f64(settings.config.lr),
                    param.value_mut().data_mut(),
                    o,
                ),
                _ => {
                    let parts = formed(&parts);
                    let parts: SmallVec<[&[T]; 32]> = parts.iter().map(|p| p.data()).collect();
                    update_in_parts(
                        settings,
                        param.value_mut().data_mut(),
                        &parts,
                        &mut buffers[index],
                        threads,
                    );
                }
            }
            index += 1;
        });
        Ok(())
    }
}

/// The gradients of `param` in the stores that have one, in store order
/// (inline up to 32 stores; a training step has at most 8 shards).
fn shard_grads<'a, T: Float>(
    grads: &[&'a Gradients<T>],
    param: &Param<T>,
) -> SmallVec<[ParamGrad<'a, T>; 32]> {
    grads.iter().filter_map(|g| g.param_grad(param)).collect()
}

/// Every gradient's elements: formed ones as they are, outer products
/// formed now (only where the method cannot apply them as they are).
fn formed<'a, T: Float>(parts: &[ParamGrad<'a, T>]) -> SmallVec<[Cow<'a, Tensor<T>>; 32]> {
    parts
        .iter()
        .map(|p| match *p {
            ParamGrad::Dense(t) => Cow::Borrowed(t),
            ParamGrad::Outer(o) => Cow::Owned(o.to_dense()),
        })
        .collect()
}
