//! The learning-rate range test (L. N. Smith, "Cyclical Learning Rates for
//! Training Neural Networks", 2017; fastai's `lr_find`): train for one
//! pass with the rate growing exponentially from a small to a large value,
//! record the loss at each rate, and read a good rate off the curve.
//!
//! The loss is smoothed by an exponential moving average (factor 0.98,
//! bias-corrected, as fastai does); the pass stops early once the smoothed
//! loss exceeds 4 times its lowest value. The suggestion is the rate where
//! the smoothed loss falls fastest against the logarithm of the rate (the
//! steepest descent, each slope taken over two points either side), among
//! the rates before the lowest loss and after the first tenth of the curve. The model's
//! weights and buffers are restored afterwards.

use crate::loss::{BatchTargets, Loss};
use crate::step::{rows_of, Stepper};
use crate::{Result, TrainError};
use nabla_autograd::Target;
use nabla_data::{class_labels, gather_inputs, gather_targets, Batches, Dataset, Task};
use nabla_nn::file::load_params;
use nabla_nn::{state_dict, Module};
use nabla_optim::OptimizerConfig;
use nabla_tensor::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// How the range test runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrFindConfig {
    /// The first rate.
    pub start: f64,
    /// The last rate.
    pub end: f64,
    /// Steps from `start` to `end` (at most one pass over the data).
    pub steps: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Seed of the order of the samples.
    pub seed: u64,
}

impl Default for LrFindConfig {
    fn default() -> Self {
        LrFindConfig {
            start: 1e-7,
            end: 10.0,
            steps: 100,
            batch_size: 100,
            seed: 0,
        }
    }
}

/// One step of the test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrPoint {
    /// The rate used.
    pub lr: f64,
    /// The batch's loss.
    pub loss: f64,
    /// The smoothed loss.
    pub smoothed: f64,
}

/// The curve and the rate it suggests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrFinding {
    /// Every step, in order.
    pub points: Vec<LrPoint>,
    /// The rate of steepest descent of the smoothed loss, if the curve has one.
    pub suggestion: Option<f64>,
    /// The rate of the lowest smoothed loss.
    pub lowest: f64,
}

/// Runs the range test on `model` with `optimizer`'s method (its rate is
/// replaced at every step) and restores the model afterwards.
///
/// # Errors
/// A bad configuration, or errors of the data, the model or the loss.
pub fn lr_find<M: Module<f32>>(
    model: &mut M,
    optimizer: OptimizerConfig,
    loss: &dyn Loss,
    data: &dyn Dataset,
    config: LrFindConfig,
) -> Result<LrFinding> {
    let LrFindConfig {
        start,
        end,
        steps,
        batch_size,
        seed,
    } = config;
    if !(start > 0.0 && end > start && start.is_finite() && end.is_finite()) {
        return Err(TrainError::Config(format!(
            "the rates must grow from a positive start: {start} to {end}"
        )));
    }
    let batches = Batches::new(data.len(), batch_size, true, Some(&mut Rng::seed(seed)))?;
    let steps = steps.min(batches.len());
    if steps < 2 {
        return Err(TrainError::Config(format!(
            "{} samples make fewer than two batches of {batch_size}",
            data.len()
        )));
    }
    let saved = state_dict(&*model);
    let mut opt = optimizer.init::<f32>();
    let mut stepper = Stepper::new();
    let growth = (end / start).powf(1.0 / (steps - 1) as f64);
    let (mut average, mut best) = (0.0, f64::INFINITY);
    let mut points = Vec::with_capacity(steps);
    model.set_training(true);
    let mut run = || -> Result<()> {
        for (k, indices) in batches.iter().take(steps).enumerate() {
            let lr = start * growth.powi(k as i32);
            opt.set_learning_rate(lr);
            let x = gather_inputs(data, indices)?;
            let targets = match data.task() {
                Task::Classify { .. } => {
                    let labels: Arc<[usize]> = class_labels(data, indices)?.into();
                    Targets::Shared(labels)
                }
                Task::Regress { .. } => Targets::Values(gather_targets(data, indices)?),
            };
            let outcome = match stepper.step(model, &mut opt, loss, indices.len(), |r| {
                let xs = rows_of(&x, r.clone())?;
                Ok((xs, targets.rows(r)?))
            }) {
                // A gradient that is not finite: the rate is past any use,
                // and the test ends there as it does at a NaN loss.
                Err(TrainError::NonFiniteGradient { .. }) => break,
                other => other?,
            };
            let l = outcome.loss;
            average = 0.98 * average + 0.02 * l;
            let smoothed = average / (1.0 - 0.98f64.powi(k as i32 + 1));
            points.push(LrPoint {
                lr,
                loss: l,
                smoothed,
            });
            if !l.is_finite() || smoothed > 4.0 * best {
                break;
            }
            best = best.min(smoothed);
        }
        Ok(())
    };
    let outcome = run();
    // The weights as they were, whatever happened.
    let state: BTreeMap<String, _> = saved.into_iter().collect();
    load_params(
        Path::new("the weights before the range test"),
        &mut *model,
        &state,
        "",
    )?;
    model.set_training(false);
    outcome?;
    Ok(suggest(points))
}

/// What a batch's targets are, before a shard takes its rows.
enum Targets {
    Shared(Arc<[usize]>),
    Values(nabla_tensor::Tensor<f32>),
}

impl Targets {
    fn rows(&self, r: std::ops::Range<usize>) -> Result<BatchTargets> {
        Ok(match self {
            Targets::Shared(l) => BatchTargets::Classes(Target::Shared(l.clone(), r)),
            Targets::Values(v) => BatchTargets::Values(rows_of(v, r)?),
        })
    }
}

/// The steepest descent of the smoothed loss against log(rate), before its minimum.
fn suggest(points: Vec<LrPoint>) -> LrFinding {
    let finite: Vec<&LrPoint> = points.iter().filter(|p| p.smoothed.is_finite()).collect();
    let lowest_at = finite
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.smoothed.total_cmp(&b.1.smoothed))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let lowest = finite.get(lowest_at).map_or(f64::NAN, |p| p.lr);
    // The first tenth of the curve (at least 5 points) is skipped: the
    // average has seen too few batches there to be smooth. Slopes are taken
    // over 2 points either side.
    let skip = (finite.len() / 10).max(5);
    let w = 2;
    let suggestion = (skip.max(w)..lowest_at.min(finite.len().saturating_sub(w)))
        .map(|i| {
            let (a, b) = (finite[i - w], finite[i + w]);
            let slope = (b.smoothed - a.smoothed) / (b.lr.ln() - a.lr.ln());
            (slope, finite[i].lr)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(slope, _)| *slope < 0.0)
        .map(|(_, lr)| lr);
    LrFinding {
        points,
        suggestion,
        lowest,
    }
}
