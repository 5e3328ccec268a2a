//! One training step, split into shards that run in parallel.
//!
//! A batch of `B` rows is cut into `⌈B / SHARD_ROWS⌉` shards of (nearly)
//! equal size, at most [`MAX_SHARDS`] of them (larger batches get larger
//! shards). Each shard runs its own forward and backward pass on its own
//! tape, on whichever thread is free; the shards' parameter gradients are then
//! added in shard order. The cut depends only on `B`, never on the number of
//! threads, and each shard's arithmetic is sequential, so a step gives
//! bit-identical weights on 1 thread or on 16. One coarse task per shard also
//! costs far less synchronisation than splitting every small GEMM.
//!
//! A network whose samples see each other in training (batch norm uses the
//! statistics of the whole batch) runs each batch as one shard, so that its
//! statistics are those of the batch, as in PyTorch; its layers still split
//! their work over the threads. With [`BatchStats::Shard`] such a network is
//! cut into shards like any other, each shard normalising with its own rows'
//! statistics; every tape is told which part of the batch it computes
//! ([`nabla_autograd::BatchPart`]), so that batch norm can update its running
//! statistics from the parts in order, whatever order they ran in.
//!
//! Each shard's tape draws its random numbers (dropout masks) from a stream
//! seeded by the run's seed, the step and the shard, so those too are the
//! same on any number of threads.
//!
//! A [`Stepper`] keeps each shard's tape and gradient store from one step to
//! the next; with tensor buffers cached by the pool, a steady-state step
//! allocates nothing.

use crate::loss::{BatchTargets, Loss, Targets};
use crate::parallel::{DataParallel, Exchange};
use crate::{Result, TrainError};
use nabla_autograd::{BatchPart, Gradients, OnFinal, ParamGrad, Tape, Target};
use nabla_data::{class_labels, gather_inputs, gather_targets, Augment, Batches, Dataset, Task};
use nabla_nn::Module;
use nabla_optim::Optimizer;
use nabla_tensor::Tensor;
use rayon::prelude::*;
use smallvec::SmallVec;
use std::ops::Range;
use std::sync::Arc;

/// Rows per shard at most, in batches of up to `SHARD_ROWS · MAX_SHARDS` rows.
pub const SHARD_ROWS: usize = 64;

/// Shards per batch at most. Every shard leaves a whole copy of the
/// parameter gradients for the step to add up, and small shards make small
/// products: at batch 1000, 8 shards of 125 rows beat 16 of 62 or 63
/// (`docs/performance.md`).
pub const MAX_SHARDS: usize = 8;

/// The rows batch normalisation takes its training statistics over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchStats {
    /// The whole batch, as PyTorch does in one process: a network with
    /// batch norm runs each batch as one shard.
    #[default]
    Batch,
    /// Each shard's own rows ("ghost batch normalisation", Hoffer et al.
    /// 2017; PyTorch's `DistributedDataParallel` without `SyncBatchNorm`
    /// does the same with one shard per process): the shards run in
    /// parallel. The running statistics are still updated once per batch
    /// from all its rows. The shards depend only on the batch size (50 rows
    /// each at batch 100), so results are the same on any number of threads.
    Shard,
}

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean loss over the batch (before the update).
    pub loss: f64,
    /// Rows classified correctly (before the update); 0 for values.
    pub correct: usize,
}

/// The row ranges of the shards of a batch of `rows`.
pub fn shard_ranges(rows: usize) -> Vec<Range<usize>> {
    let shards = shard_count(rows);
    (0..shards).map(|s| shard_range(rows, shards, s)).collect()
}

fn shard_count(rows: usize) -> usize {
    rows.div_ceil(SHARD_ROWS).clamp(1, MAX_SHARDS)
}

fn shard_range(rows: usize, shards: usize, s: usize) -> Range<usize> {
    s * rows / shards..(s + 1) * rows / shards
}

/// Runs training steps, reusing each shard's tape and gradients between steps.
#[derive(Default)]
pub struct Stepper {
    shards: Vec<Shard>,
    seed: u64,
    steps: u64,
    /// Steps of linear learning-rate warm-up (0: none).
    warmup: u64,
    batch_stats: BatchStats,
    detect_anomaly: bool,
    /// The ranks sharing each batch, if the run is data-parallel.
    parallel: Option<DataParallel>,
    exchange: Exchange,
}

/// The state one shard keeps from step to step.
#[derive(Default)]
pub(crate) struct Shard {
    tape: Tape<f32>,
    pub(crate) grads: Gradients<f32>,
    outcome: Option<Result<StepOutcome>>,
}

impl Stepper {
    /// A stepper with no shard state yet (made on the first step).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the seed of the random streams and the number of steps already
    /// taken (a resumed run continues the streams where they were).
    pub fn set_position(&mut self, seed: u64, steps: u64) {
        self.seed = seed;
        self.steps = steps;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Warms the learning rate up linearly over the first `steps` steps of
    /// the run: in [`Stepper::epoch`], step `s` (from 0) uses the epoch's
    /// rate times `(s + 1) / steps`, so the warm-up composes with any
    /// per-epoch schedule.
    pub fn set_warmup(&mut self, steps: u64) {
        self.warmup = steps;
    }

    /// Turns anomaly detection on every shard's tape on or off (see
    /// `Tape::set_detect_anomaly`); on, the tapes also record the layers,
    /// so that the error can name the layer.
    pub fn set_detect_anomaly(&mut self, on: bool) {
        self.detect_anomaly = on;
    }

    /// Shares every batch among the ranks of `parallel` (see
    /// [`DataParallel`]): this process computes its shards only, and the
    /// ranks combine their gradients before every update.
    pub fn set_parallel(&mut self, parallel: Option<DataParallel>) {
        self.parallel = parallel;
    }

    /// Sets which rows batch normalisation takes its statistics over.
    pub fn set_batch_stats(&mut self, stats: BatchStats) {
        self.batch_stats = stats;
    }

    /// Forward, `loss` (mean over the batch), backward and one optimiser
    /// update of a batch of `rows` rows, split into shards run in parallel.
    /// Each shard gets its rows from `fetch(range)`: the inputs and their
    /// targets, so that assembling the batch runs in parallel too.
    ///
    /// A step whose loss is not finite updates nothing and returns that
    /// loss, for the caller to report.
    ///
    /// # Errors
    /// Errors from `fetch`, the model, the loss or the optimiser;
    /// [`TrainError::NonFiniteGradient`] (its epoch and batch 0) when a
    /// gradient is NaN or infinite, before any weight is updated; with
    /// anomaly detection on, the engine's `Error::Anomaly`.
    pub fn step<M: Module<f32> + ?Sized>(
        &mut self,
        model: &mut M,
        optimizer: &mut Optimizer<f32>,
        loss: &dyn Loss,
        rows: usize,
        fetch: impl Fn(Range<usize>) -> Result<(Tensor<f32>, BatchTargets)> + Sync,
    ) -> Result<StepOutcome> {
        let single = if model.couples_batch() && self.batch_stats == BatchStats::Batch {
            1
        } else {
            shard_count(rows)
        };
        let (count, owned) = match &self.parallel {
            Some(_) if model.couples_batch() => return Err(TrainError::Config(
                "batch normalisation cannot be trained data-parallel yet: its running statistics need every part of the batch in one process".into(),
            )),
            Some(dp) => dp.plan(single),
            None => (single, 0..single),
        };
        if self.shards.len() < count {
            self.shards.resize_with(count, Shard::default);
        }
        let overlap = self
            .parallel
            .as_ref()
            .is_some_and(|dp| Exchange::overlaps(dp, count));
        if let Some(dp) = &self.parallel {
            self.exchange.begin(dp, model, count);
        }
        let net: &M = model;
        let detect = self.detect_anomaly;
        let stream = mix(self.seed, self.steps);
        self.steps += 1;
        let run = |s: usize, shard: &mut Shard, observe: Option<OnFinal<'_, f32>>| {
            let range = shard_range(rows, count, s);
            // Each shard's mean weighs by its share of the batch, so the
            // shards add up to the batch mean.
            let share = range.len() as f64 / rows.max(1) as f64;
            let part = BatchPart {
                batch: stream,
                index: s,
                count,
            };
            if range.is_empty() {
                // More ranks than rows: this shard has nothing to add.
                shard.grads.clear();
                shard.outcome = Some(Ok(StepOutcome {
                    loss: 0.0,
                    correct: 0,
                }));
                return;
            }
            shard.tape.set_detect_anomaly(detect);
            shard.tape.set_record_scopes(detect);
            shard.outcome = Some(shard.run(net, loss, fetch(range), share, part, observe));
        };
        // One shard's weight gradients at batch 1 are outer products, which
        // plain SGD applies without forming them; with several shards the
        // optimiser adds formed gradients.
        let keep_outer = count == 1 && self.parallel.is_none() && optimizer.takes_outer_products();
        let mine = &mut self.shards[owned.clone()];
        for shard in mine.iter_mut() {
            shard.grads.keep_outer_products(keep_outer);
        }
        match &self.parallel {
            Some(dp) if overlap => {
                // At most one shard here: its gradients leave as backward
                // finishes them.
                self.exchange.overlapped(dp, |on_final| {
                    if let Some(shard) = mine.first_mut() {
                        run(owned.start, shard, Some(on_final));
                    }
                })?;
            }
            _ if mine.len() == 1 => run(owned.start, &mut mine[0], None),
            _ => mine
                .par_iter_mut()
                .enumerate()
                .for_each(|(s, sh)| run(owned.start + s, sh, None)),
        }
        // Combine in shard order: the sum does not depend on which thread ran what.
        let mut total = StepOutcome {
            loss: 0.0,
            correct: 0,
        };
        let mut failure = None;
        for shard in mine.iter_mut() {
            match shard.outcome.take().expect("every shard ran") {
                Ok(outcome) => {
                    total.loss += outcome.loss;
                    total.correct += outcome.correct;
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(dp) = &self.parallel {
            total = self.exchange.outcome(dp, total, failure)?;
        } else if let Some(e) = failure {
            return Err(e);
        }
        // A loss that is not finite is the caller's to report (the run
        // diverged); the weights are left as they were.
        if !total.loss.is_finite() {
            return Ok(total);
        }
        let used = match &self.parallel {
            Some(dp) => {
                self.exchange
                    .combine(dp, model, &mut self.shards[..count], owned, overlap)?
            }
            None => count,
        };
        let shards = &self.shards[..used];
        // A gradient that is not finite would spoil every weight it
        // reaches: stop before the update and say which parameter.
        if let Some(bad) = shards.iter().find(|s| !s.grads.params_finite()) {
            let param = model
                .named_params()
                .into_iter()
                .find(|(_, p)| bad.grads.param_grad(p).is_some_and(|g| !finite(g)))
                .map_or_else(|| "a parameter".to_string(), |(name, _)| name);
            return Err(TrainError::NonFiniteGradient {
                epoch: 0,
                batch: 0,
                param,
            });
        }
        // The optimiser adds the shards' gradients as it updates, in shard
        // order, with the threads sharing out the elements of large weights.
        let grads: SmallVec<[&Gradients<f32>; 32]> = shards.iter().map(|s| &s.grads).collect();
        optimizer.step_sum(&grads, |f| model.for_each_param_mut(f))?;
        Ok(total)
    }
}

impl Stepper {
    /// One pass over `batches` of `data`: a [`Stepper::step`] per batch, each
    /// shard gathering its own samples; `after(batch index, rows, outcome,
    /// model)` runs after each step (the model updated) and may stop the
    /// pass with an error.
    ///
    /// With `augment = Some((augment, seed))` every image is randomly moved
    /// and turned first (grayscale images only), the image at position `i`
    /// of the epoch's order drawing from a generator seeded by `(seed, i)`.
    ///
    /// # Errors
    /// Errors from the steps or from `after`; augmentation of samples that
    /// are not grayscale images.
    #[allow(clippy::too_many_arguments)]
    pub fn epoch<M: Module<f32> + ?Sized>(
        &mut self,
        model: &mut M,
        optimizer: &mut Optimizer<f32>,
        loss: &dyn Loss,
        data: &dyn Dataset,
        batches: &Batches,
        augment: Option<(&Augment, u64)>,
        mut after: impl FnMut(usize, usize, StepOutcome, &mut M) -> Result<()>,
    ) -> Result<()> {
        let dims = match augment {
            Some(_) => Some(data.grayscale_dims().ok_or_else(|| {
                TrainError::Config(format!(
                    "augmentation moves and turns grayscale images; these samples have shape {:?}",
                    data.sample_shape()
                ))
            })?),
            None => None,
        };
        // Class labels in shuffled order, once per epoch, shared by every shard.
        let labels: Option<Arc<[usize]>> = match data.task() {
            Task::Classify { .. } => Some(class_labels(data, batches.order())?.into()),
            Task::Regress { .. } => None,
        };
        // The epoch's rate, which a warm-up scales step by step.
        let epoch_lr = optimizer.learning_rate();
        for (b, indices) in batches.iter().enumerate() {
            let start = b * batches.batch_size();
            if self.steps < self.warmup {
                optimizer
                    .set_learning_rate(epoch_lr * (self.steps + 1) as f64 / self.warmup as f64);
            } else if self.warmup > 0 {
                optimizer.set_learning_rate(epoch_lr);
            }
            let outcome = self.step(model, optimizer, loss, indices.len(), |r| {
                let rows = &indices[r.clone()];
                let mut x = gather_inputs(data, rows)?;
                if let (Some((aug, seed)), Some((height, width))) = (augment, dims) {
                    let first = (start + r.start) as u64;
                    x = aug.apply_batch(&x, height, width, |i| mix(seed, first + i as u64))?;
                }
                let targets = match &labels {
                    Some(l) => BatchTargets::Classes(Target::Shared(
                        l.clone(),
                        start + r.start..start + r.end,
                    )),
                    None => BatchTargets::Values(gather_targets(data, rows)?),
                };
                Ok((x, targets))
            })?;
            after(b, indices.len(), outcome, model)?;
        }
        Ok(())
    }
}

impl Shard {
    /// Forward and backward of one shard; leaves the parameter gradients
    /// (the shard's mean loss times its share of the batch, so the shards
    /// add up to the batch mean) in `self.grads` and nothing on the tape.
    fn run<M: Module<f32> + ?Sized>(
        &mut self,
        net: &M,
        loss: &dyn Loss,
        input: Result<(Tensor<f32>, BatchTargets)>,
        share: f64,
        part: BatchPart,
        observe: Option<OnFinal<'_, f32>>,
    ) -> Result<StepOutcome> {
        self.grads.clear();
        self.tape.reset();
        self.tape.seed_rng(mix(part.batch, part.index as u64));
        self.tape.set_batch_part(Some(part));
        let outcome = self.forward_backward(net, loss, input, share, observe);
        // Release the values the tape holds (the parameters among them), so
        // that the optimiser updates the weights in place instead of copying.
        self.tape.reset();
        self.grads.clear_nodes();
        outcome
    }

    fn forward_backward<M: Module<f32> + ?Sized>(
        &mut self,
        net: &M,
        loss: &dyn Loss,
        input: Result<(Tensor<f32>, BatchTargets)>,
        share: f64,
        observe: Option<OnFinal<'_, f32>>,
    ) -> Result<StepOutcome> {
        let (x, targets) = input?;
        let tape = &self.tape;
        let y = net.forward(tape.constant(x))?;
        let (targets, correct) = match targets {
            BatchTargets::Classes(t) => {
                let correct = match t.as_indices() {
                    Ok(labels) => count_correct(&y.value(), labels),
                    Err(_) => count_correct(&y.value(), &t.indices()?),
                };
                (Targets::Classes(t), correct)
            }
            BatchTargets::Values(v) => (Targets::Values(tape.constant(v)), 0),
        };
        let mean = loss.loss(y, targets)?;
        let weighted = mean.mul_scalar(share)?;
        match observe {
            Some(on_final) => tape.backward_into_observed(weighted, &mut self.grads, on_final)?,
            None => tape.backward_into(weighted, &mut self.grads)?,
        }
        Ok(StepOutcome {
            loss: weighted.item()? as f64,
            correct,
        })
    }
}

/// Whether every element of a parameter's gradient is finite.
fn finite(g: ParamGrad<'_, f32>) -> bool {
    let all = nabla_autograd::all_finite::<f32>;
    match g {
        ParamGrad::Dense(t) => all(t.data()),
        ParamGrad::Outer(o) => all(o.u()) && all(o.v()),
    }
}

/// A well-mixed 64-bit value from two (SplitMix64's finaliser), to derive
/// independent seeds from a seed and a counter.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_add(0x9e37_79b9_7f4a_7c15)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Rows whose largest score (the first, on ties) is at the target class.
fn count_correct(logits: &Tensor<f32>, labels: &[usize]) -> usize {
    let classes = logits.dims().last().copied().unwrap_or(0).max(1);
    logits
        .data()
        .chunks(classes)
        .zip(labels)
        .filter(|(row, &label)| {
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = k;
                }
            }
            best == label
        })
        .count()
}

/// [`Stepper::step`] on a batch of class-labelled rows held in memory, with
/// softmax cross-entropy and a fresh stepper: simple, but it allocates the
/// shard state every call. Loops should keep a [`Stepper`].
///
/// # Errors
/// Shape or label errors from the model or the loss.
pub fn train_step<M: Module<f32> + ?Sized>(
    model: &mut M,
    optimizer: &mut Optimizer<f32>,
    x: &Tensor<f32>,
    labels: &[usize],
) -> Result<StepOutcome> {
    let labels: Arc<[usize]> = labels.into();
    Stepper::new().step(
        model,
        optimizer,
        &crate::StandardLoss::CrossEntropy,
        x.dims().first().copied().unwrap_or(0),
        |r| {
            let xs = rows_of(x, r.clone())?;
            Ok((xs, BatchTargets::Classes(Target::Shared(labels.clone(), r))))
        },
    )
}

/// Rows `range` of a batch `x` (copied into a pooled buffer, unless they are
/// all of it).
///
/// # Errors
/// If `x` has fewer rows than `range` needs.
pub fn rows_of(x: &Tensor<f32>, range: Range<usize>) -> Result<Tensor<f32>> {
    let rows = x.dims().first().copied().unwrap_or(0);
    let width = x.len().checked_div(rows).unwrap_or(0);
    let mut dims = nabla_tensor::Dims::from_slice(x.dims());
    if let Some(first) = dims.first_mut() {
        *first = range.len();
    }
    let values = x
        .data()
        .get(range.start * width..range.end * width)
        .ok_or_else(|| {
            nabla_autograd::Error::invalid(
                "batch rows",
                format!("rows {range:?} of a batch of {rows}"),
            )
        })?;
    Ok(if range.len() == rows {
        x.clone()
    } else {
        Tensor::from_fill(&dims, |v| v.extend_from_slice(values))?
    })
}
