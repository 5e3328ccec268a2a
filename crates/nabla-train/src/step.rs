//! One training step, split into shards that run in parallel.
//!
//! A batch of `B` rows is cut into `⌈B / SHARD_ROWS⌉` shards of (nearly)
//! equal size. Each shard runs its own forward and backward pass on its own
//! tape, on whichever thread is free; the shards' parameter gradients are then
//! added in shard order. The cut depends only on `B`, never on the number of
//! threads, and each shard's arithmetic is sequential, so a step gives
//! bit-identical weights on 1 thread or on 16. One coarse task per shard also
//! costs far less synchronisation than splitting every small GEMM.
//!
//! A [`Stepper`] keeps each shard's tape and gradient store from one step to
//! the next; with tensor buffers cached by the pool, a steady-state step
//! allocates nothing.

use crate::Result;
use nabla_autograd::{Gradients, Reduction, Tape, Target};
use nabla_data::{Batches, Dataset};
use nabla_nn::{Module, Sequential};
use nabla_optim::Optimizer;
use nabla_tensor::Tensor;
use rayon::prelude::*;
use std::ops::Range;
use std::sync::Arc;

/// Rows per shard at most.
pub const SHARD_ROWS: usize = 64;

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy over the batch (before the update).
    pub loss: f64,
    /// Rows classified correctly (before the update).
    pub correct: usize,
}

/// The row ranges of the shards of a batch of `rows`.
pub fn shard_ranges(rows: usize) -> Vec<Range<usize>> {
    let shards = shard_count(rows);
    (0..shards).map(|s| shard_range(rows, shards, s)).collect()
}

fn shard_count(rows: usize) -> usize {
    rows.div_ceil(SHARD_ROWS).max(1)
}

fn shard_range(rows: usize, shards: usize, s: usize) -> Range<usize> {
    s * rows / shards..(s + 1) * rows / shards
}

/// Runs training steps, reusing each shard's tape and gradients between steps.
#[derive(Default)]
pub struct Stepper {
    shards: Vec<Shard>,
}

/// The state one shard keeps from step to step.
#[derive(Default)]
struct Shard {
    tape: Tape<f32>,
    grads: Gradients<f32>,
    outcome: Option<Result<StepOutcome>>,
}

impl Stepper {
    /// A stepper with no shard state yet (made on the first step).
    pub fn new() -> Self {
        Self::default()
    }

    /// Forward, softmax cross-entropy (mean over the batch), backward and one
    /// optimiser update of a batch of `rows` rows, split into shards run in
    /// parallel. Each shard gets its rows from `fetch(range)`: the inputs and
    /// their class indices (`Target::Indices` or `Target::Shared`; one-hot
    /// rows are an error), so that assembling the batch runs in parallel too.
    ///
    /// # Errors
    /// Errors from `fetch`, the model, the loss or the optimiser.
    pub fn step(
        &mut self,
        model: &mut Sequential<f32>,
        optimizer: &mut Optimizer<f32>,
        rows: usize,
        fetch: impl Fn(Range<usize>) -> Result<(Tensor<f32>, Target<f32>)> + Sync,
    ) -> Result<StepOutcome> {
        let count = shard_count(rows);
        if self.shards.len() < count {
            self.shards.resize_with(count, Shard::default);
        }
        let scale = 1.0 / rows.max(1) as f64;
        let net: &Sequential<f32> = model;
        let run = |s: usize, shard: &mut Shard| {
            let range = shard_range(rows, count, s);
            shard.outcome = Some(shard.run(net, fetch(range), scale));
        };
        let shards = &mut self.shards[..count];
        if count == 1 {
            run(0, &mut shards[0]);
        } else {
            shards
                .par_iter_mut()
                .enumerate()
                .for_each(|(s, sh)| run(s, sh));
        }
        // Combine in shard order: the sum does not depend on which thread ran what.
        let (first, rest) = shards.split_first_mut().expect("at least one shard");
        let mut total = first.outcome.take().expect("every shard ran")?;
        for shard in rest.iter_mut() {
            let outcome = shard.outcome.take().expect("every shard ran")?;
            first.grads.add_param_grads(&shard.grads)?;
            total.loss += outcome.loss;
            total.correct += outcome.correct;
        }
        optimizer.step_each(&first.grads, |f| model.for_each_param_mut(f))?;
        Ok(total)
    }
}

impl Stepper {
    /// One pass over `batches` of `data`: a [`Stepper::step`] per batch, each
    /// shard gathering its own images; `after(batch index, rows, outcome)`
    /// runs after each step and may stop the pass with an error.
    ///
    /// # Errors
    /// Errors from the steps or from `after`.
    pub fn epoch(
        &mut self,
        model: &mut Sequential<f32>,
        optimizer: &mut Optimizer<f32>,
        data: &Dataset,
        batches: &Batches,
        mut after: impl FnMut(usize, usize, StepOutcome) -> Result<()>,
    ) -> Result<()> {
        // The labels in shuffled order, once per epoch, shared by every shard.
        let labels: Arc<[usize]> = batches.order().iter().map(|&i| data.label(i)).collect();
        for (b, indices) in batches.iter().enumerate() {
            let start = b * batches.batch_size();
            let outcome = self.step(model, optimizer, indices.len(), |r| {
                let x = data.images(&indices[r.clone()])?;
                Ok((
                    x,
                    Target::Shared(labels.clone(), start + r.start..start + r.end),
                ))
            })?;
            after(b, indices.len(), outcome)?;
        }
        Ok(())
    }
}

impl Shard {
    /// Forward and backward of one shard; leaves the parameter gradients
    /// (each shard's loss is Σ(its losses)/B, so the shards add up to the
    /// batch mean) in `self.grads` and nothing on the tape.
    fn run(
        &mut self,
        net: &Sequential<f32>,
        input: Result<(Tensor<f32>, Target<f32>)>,
        scale: f64,
    ) -> Result<StepOutcome> {
        self.grads.clear();
        self.tape.reset();
        let outcome = self.forward_backward(net, input, scale);
        // Release the values the tape holds (the parameters among them), so
        // that the optimiser updates the weights in place instead of copying.
        self.tape.reset();
        self.grads.clear_nodes();
        outcome
    }

    fn forward_backward(
        &mut self,
        net: &Sequential<f32>,
        input: Result<(Tensor<f32>, Target<f32>)>,
        scale: f64,
    ) -> Result<StepOutcome> {
        let (x, target) = input?;
        let tape = &self.tape;
        let logits = net.forward(tape.constant(x))?;
        // Accuracy needs class indices; a one-hot target is an error here.
        let correct = count_correct(&logits.value(), target.as_indices()?);
        let loss = logits
            .softmax_cross_entropy(target, Reduction::Sum)?
            .mul_scalar(scale)?;
        tape.backward_into(loss, &mut self.grads)?;
        Ok(StepOutcome {
            loss: loss.item()? as f64,
            correct,
        })
    }
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

/// [`Stepper::step`] on a batch held in memory, with a fresh stepper: simple,
/// but it allocates the shard state every call. Loops should keep a
/// [`Stepper`].
///
/// # Errors
/// Shape or label errors from the model or the loss.
pub fn train_step(
    model: &mut Sequential<f32>,
    optimizer: &mut Optimizer<f32>,
    x: &Tensor<f32>,
    labels: &[usize],
) -> Result<StepOutcome> {
    let labels: Arc<[usize]> = labels.into();
    Stepper::new().step(
        model,
        optimizer,
        x.dims().first().copied().unwrap_or(0),
        |r| rows_of(x, labels.clone(), r),
    )
}

/// Rows `range` of a batch `x` (copied into a pooled buffer) with their labels.
///
/// # Errors
/// If `x` has fewer rows than `range` needs.
pub fn rows_of(
    x: &Tensor<f32>,
    labels: Arc<[usize]>,
    range: Range<usize>,
) -> Result<(Tensor<f32>, Target<f32>)> {
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
    let xs = if range.len() == rows {
        x.clone()
    } else {
        Tensor::from_iter_exact(&dims, values.iter().copied())?
    };
    Ok((xs, Target::Shared(labels, range)))
}
