//! Batch normalisation for dense (`[N, F]`) and convolutional (`[N, C, H, W]`) inputs.

use crate::{join_name, Module};
use nabla_autograd::ops::norm::channel_moments;
use nabla_autograd::{BatchPart, Error, Param, Result, Var};
use nabla_tensor::{Float, Tensor};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Running statistics: what evaluation normalises with.
#[derive(Debug, Clone)]
struct Running<T: Float> {
    mean: Tensor<T>,
    var: Tensor<T>,
    /// Training batches seen (PyTorch's `num_batches_tracked`), as a rank-0 tensor.
    batches: Tensor<T>,
    /// The moments of the parts of a cut batch that have run so far, by
    /// part, until every part has brought its own.
    parts: Parts<T>,
}

/// One pass's statistics: per-channel mean and biased variance over `count` values.
#[derive(Debug, Clone)]
struct Moments<T: Float> {
    mean: Tensor<T>,
    var: Tensor<T>,
    count: usize,
}

/// The moments of the parts of one batch, waiting to be combined.
#[derive(Debug, Clone, Default)]
struct Parts<T: Float> {
    batch: u64,
    /// One queue per part; a layer called twice in a pass queues twice.
    waiting: Vec<VecDeque<Moments<T>>>,
}

impl<T: Float> Parts<T> {
    /// Queues `m` for `part`; once every part of the batch has queued, the
    /// moments of all the rows together, combined in part order (so the
    /// same whatever order the parts ran in).
    fn add(&mut self, part: BatchPart, m: Moments<T>) -> Result<Option<Moments<T>>> {
        if self.batch != part.batch || self.waiting.len() != part.count {
            // A new batch; parts of an earlier one that failed are dropped.
            // The queues keep their memory from batch to batch.
            self.batch = part.batch;
            self.waiting.resize_with(part.count, VecDeque::new);
            self.waiting.iter_mut().for_each(VecDeque::clear);
        }
        self.waiting[part.index].push_back(m);
        if self.waiting.iter().any(VecDeque::is_empty) {
            return Ok(None);
        }
        let parts: Vec<Moments<T>> = self
            .waiting
            .iter_mut()
            .filter_map(VecDeque::pop_front)
            .collect();
        combine(&parts).map(Some)
    }
}

/// The mean and biased variance of the union of `parts` (each `Σ (x − μ)²`
/// is `n·(σ² + (μ_part − μ)²)` for its part), in f64.
fn combine<T: Float>(parts: &[Moments<T>]) -> Result<Moments<T>> {
    let count: usize = parts.iter().map(|p| p.count).sum();
    let n = count as f64;
    let channels = parts[0].mean.len();
    let mut mean = vec![0.0f64; channels];
    for p in parts {
        let w = p.count as f64 / n;
        for (m, v) in mean.iter_mut().zip(p.mean.data()) {
            *m += w * v.to_f64();
        }
    }
    let mut var = vec![0.0f64; channels];
    for p in parts {
        let w = p.count as f64 / n;
        for ((s, (pm, pv)), m) in var
            .iter_mut()
            .zip(p.mean.data().iter().zip(p.var.data()))
            .zip(&mean)
        {
            let d = pm.to_f64() - m;
            *s += w * (pv.to_f64() + d * d);
        }
    }
    Ok(Moments {
        mean: Tensor::from_iter_exact(&[channels], mean.into_iter().map(T::from_f64))?,
        var: Tensor::from_iter_exact(&[channels], var.into_iter().map(T::from_f64))?,
        count,
    })
}

/// Batch normalisation over channel axis 1, as `torch.nn.BatchNorm1d` (for
/// `[N, F]`) and `torch.nn.BatchNorm2d` (for `[N, C, H, W]`) with their defaults.
///
/// - Training: normalise with the batch's own mean and (biased) variance,
///   and update the running statistics:
///   `running = (1 − momentum) · running + momentum · batch`, the variance
///   entering unbiased (`· m/(m − 1)`), exactly as PyTorch does.
/// - Training on a batch cut into parts (the tape's [`BatchPart`]): each
///   part normalises with its own rows' statistics ("ghost batch
///   normalisation", Hoffer et al. 2017, and what PyTorch's
///   `DistributedDataParallel` does without `SyncBatchNorm`). The running
///   statistics are updated once per batch, when its last part has run,
///   from all the parts' rows together, combined in part order: the same
///   update as for the whole batch, whatever order the parts ran in.
/// - Evaluation: normalise with the running statistics.
///
/// Parameters `weight` (γ, ones) and `bias` (β, zeros); buffers
/// `running_mean`, `running_var` and `num_batches_tracked`, PyTorch's names.
#[derive(Debug)]
pub struct BatchNorm<T: Float = f32> {
    /// Scale γ, `[C]`.
    pub weight: Param<T>,
    /// Shift β, `[C]`.
    pub bias: Param<T>,
    running: Mutex<Running<T>>,
    eps: f64,
    momentum: f64,
    training: bool,
}

impl<T: Float> Clone for BatchNorm<T> {
    fn clone(&self) -> Self {
        BatchNorm {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            running: Mutex::new(self.running().clone()),
            eps: self.eps,
            momentum: self.momentum,
            training: self.training,
        }
    }
}

impl<T: Float> BatchNorm<T> {
    /// PyTorch's default `eps`.
    pub const EPS: f64 = 1e-5;
    /// PyTorch's default `momentum`.
    pub const MOMENTUM: f64 = 0.1;

    /// A layer for `channels` channels, in training mode, with PyTorch's defaults.
    pub fn new(channels: usize) -> Self {
        BatchNorm {
            weight: Param::new(Tensor::ones(&[channels])),
            bias: Param::new(Tensor::zeros(&[channels])),
            running: Mutex::new(Running {
                mean: Tensor::zeros(&[channels]),
                var: Tensor::ones(&[channels]),
                batches: Tensor::scalar(T::ZERO),
                parts: Parts::default(),
            }),
            eps: Self::EPS,
            momentum: Self::MOMENTUM,
            training: true,
        }
    }

    /// Channels normalised.
    pub fn channels(&self) -> usize {
        self.weight.value().len()
    }

    /// The running mean and variance (copies).
    pub fn running_stats(&self) -> (Tensor<T>, Tensor<T>) {
        let r = self.running();
        (r.mean.clone(), r.var.clone())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running<T>> {
        // A panic elsewhere cannot leave the statistics half-updated (each
        // update assigns whole tensors), so a poisoned lock is still usable.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `running = (1 − momentum) · running + momentum · batch`.
    fn update_running(&self, r: &mut Running<T>, batch: &Moments<T>) -> Result<()> {
        let m = T::from_f64(self.momentum);
        let keep = T::ONE - m;
        let unbias = T::from_f64(batch.count as f64 / (batch.count as f64 - 1.0));
        r.mean = r
            .mean
            .zip_with(&batch.mean, "BatchNorm", |old, new| keep * old + m * new)?;
        r.var = r.var.zip_with(&batch.var, "BatchNorm", |old, new| {
            keep * old + m * new * unbias
        })?;
        r.batches = r.batches.map(|b| b + T::ONE);
        Ok(())
    }

    fn inv_std(&self, var: &Tensor<T>) -> Tensor<T> {
        let eps = T::from_f64(self.eps);
        var.map(|v| T::ONE / (v + eps).sqrt())
    }
}

impl<T: Float> Module<T> for BatchNorm<T> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let shape = x.shape();
        if shape.rank() < 2 || shape.dims()[1] != self.channels() {
            return Err(Error::invalid(
                "BatchNorm",
                format!("{} got input of shape {shape}", self.describe()),
            ));
        }
        let tape = x.tape();
        let (gamma, beta) = (tape.param(&self.weight), tape.param(&self.bias));
        if !self.training {
            let (mean, var) = self.running_stats();
            return x.batch_norm(gamma, beta, mean, self.inv_std(&var), false);
        }
        let (mean, var, count) = channel_moments(&x.value())?;
        if count < 2 {
            return Err(Error::invalid(
                "BatchNorm",
                format!(
                    "training needs more than one value per channel, got input of shape {shape}"
                ),
            ));
        }
        let moments = Moments {
            mean: mean.clone(),
            var: var.clone(),
            count,
        };
        {
            let mut r = self.running();
            let whole = match tape.batch_part() {
                Some(part) if part.count > 1 => r.parts.add(part, moments)?,
                _ => Some(moments),
            };
            if let Some(batch) = whole {
                self.update_running(&mut r, &batch)?;
            }
        }
        let inv_std = self.inv_std(&var);
        x.batch_norm(gamma, beta, mean, inv_std, true)
    }

    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a Param<T>)) {
        f(join_name(prefix, "weight"), &self.weight);
        f(join_name(prefix, "bias"), &self.bias);
    }

    fn visit_params_mut<'a>(
        &'a mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, &'a mut Param<T>),
    ) {
        f(join_name(prefix, "weight"), &mut self.weight);
        f(join_name(prefix, "bias"), &mut self.bias);
    }

    fn for_each_param_mut(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        f(&mut self.weight);
        f(&mut self.bias);
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, Tensor<T>)) {
        let r = self.running().clone();
        f(join_name(prefix, "running_mean"), r.mean);
        f(join_name(prefix, "running_var"), r.var);
        f(join_name(prefix, "num_batches_tracked"), r.batches);
    }

    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Tensor<T>)) {
        let r = self.running.get_mut().unwrap_or_else(|e| e.into_inner());
        f(join_name(prefix, "running_mean"), &mut r.mean);
        f(join_name(prefix, "running_var"), &mut r.var);
        f(join_name(prefix, "num_batches_tracked"), &mut r.batches);
    }

    fn couples_batch(&self) -> bool {
        self.training
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    fn describe(&self) -> String {
        format!("BatchNorm({})", self.channels())
    }
}
