//! One training step, split into shards that run in parallel.
//!
//! A batch of `B` rows is cut into `⌈B / SHARD_ROWS⌉` shards of (nearly)
//! equal size. Each shard runs its own forward and backward pass on its own
//! tape, on whichever thread is free; the shards' parameter gradients are then
//! added in shard order. The cut depends only on `B`, never on the number of
//! threads, and each shard's arithmetic is sequential, so a step gives
//! bit-identical weights on 1 thread or on 16. One coarse task per shard also
//! costs far less synchronisation than splitting every small GEMM.

use crate::Result;
use nabla_autograd::{Gradients, Reduction, Tape, Target};
use nabla_nn::{Module, Sequential};
use nabla_optim::Optimizer;
use nabla_tensor::Tensor;
use rayon::prelude::*;

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
pub fn shard_ranges(rows: usize) -> Vec<std::ops::Range<usize>> {
    let shards = rows.div_ceil(SHARD_ROWS).max(1);
    (0..shards)
        .map(|s| s * rows / shards..(s + 1) * rows / shards)
        .collect()
}

/// Forward, softmax cross-entropy (mean over the batch), backward and one
/// optimiser update of a batch held in memory, split into shards run in parallel.
///
/// # Errors
/// Shape or label errors from the model or the loss.
pub fn train_step(
    model: &mut Sequential<f32>,
    optimizer: &mut Optimizer<f32>,
    x: &Tensor<f32>,
    labels: &[usize],
) -> Result<StepOutcome> {
    let rows = x.dims().first().copied().unwrap_or(0);
    let width = x.len().checked_div(rows).unwrap_or(0);
    train_step_with(model, optimizer, rows, |range| {
        if range.len() == rows {
            return Ok((x.clone(), labels.to_vec()));
        }
        let mut dims = x.dims().to_vec();
        dims[0] = range.len();
        let xs = Tensor::from_vec(
            x.data()[range.start * width..range.end * width].to_vec(),
            &dims,
        )?;
        Ok((xs, labels[range].to_vec()))
    })
}

/// [`train_step`] for a batch of `rows` rows that each shard fetches itself
/// (`fetch(range)` returns those rows and their labels), so that assembling
/// the batch runs in parallel too.
///
/// # Errors
/// Errors from `fetch`, the model or the loss.
pub fn train_step_with(
    model: &mut Sequential<f32>,
    optimizer: &mut Optimizer<f32>,
    rows: usize,
    fetch: impl Fn(std::ops::Range<usize>) -> Result<(Tensor<f32>, Vec<usize>)> + Sync,
) -> Result<StepOutcome> {
    let scale = 1.0 / rows.max(1) as f64;
    let net: &Sequential<f32> = model;
    let shard = |range: std::ops::Range<usize>| -> Result<(Gradients<f32>, f64, usize)> {
        let (xs, ys) = fetch(range)?;
        let tape = Tape::new();
        let logits = net.forward(tape.constant(xs))?;
        // Each shard contributes Σ(its losses)/B, so the shards add up to the batch mean.
        let loss = logits
            .softmax_cross_entropy(Target::Indices(ys.clone()), Reduction::Sum)?
            .mul_scalar(scale)?;
        let predicted = logits.value().argmax_axis(1)?;
        let correct = predicted.iter().zip(&ys).filter(|(p, l)| p == l).count();
        Ok((tape.backward(loss)?, loss.item()? as f64, correct))
    };
    let ranges = shard_ranges(rows);
    let mut results: Vec<Result<(Gradients<f32>, f64, usize)>> = if ranges.len() == 1 {
        ranges.into_iter().map(shard).collect()
    } else {
        ranges.into_par_iter().map(shard).collect()
    };
    // Combine in shard order: the sum does not depend on which thread ran what.
    let (mut grads, mut loss, mut correct) = results.remove(0)?;
    for r in results {
        let (g, l, c) = r?;
        grads.add_param_grads(&g)?;
        loss += l;
        correct += c;
    }
    optimizer.step(&mut model.params_mut(), &grads)?;
    Ok(StepOutcome { loss, correct })
}
