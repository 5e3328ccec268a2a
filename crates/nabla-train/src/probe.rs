//! Probes: what happens inside each layer while a network learns.
//!
//! A probe takes a fixed sample of the training set (seeded, the same at
//! every measurement, so measurements compare), runs the model's forward and
//! backward on it on a tape of its own, and reads:
//!
//! - per parameter tensor: the norm of its gradient on the sample, its own
//!   norm, the update-to-weight ratio `‖Δw‖ / ‖w‖` per step since the last
//!   probe, and the fractions of exactly zero and near-zero weights
//!   (`|w| ≤ 10⁻³ · max|w|`);
//! - per activation on the forward pass (every ReLU, sigmoid and tanh, in
//!   order, named `relu 1`, `sigmoid 2`, …): the mean and standard deviation
//!   of its outputs; for a ReLU the fraction of *dead* units (features, or
//!   channels of an image, never positive on any probe sample); for a
//!   sigmoid or tanh the fraction of *saturated* outputs, those where the
//!   local derivative is below 5% of its peak (sigmoid `y(1 − y) < 0.0125`,
//!   tanh `1 − y² < 0.05`).
//!
//! It then says in words when a pattern appears ([`ProbeReport::warnings`]).
//! The model is probed in evaluation mode (no dropout, batch norm's running
//! statistics, which stay as they are), nothing of the training run is
//! touched — not its weights, optimiser, generators or batches — so a run
//! with probes ends with the same bits as one without.

use crate::loss::{Loss, Targets};
use crate::Result;
use nabla_autograd::{Tape, Target};
use nabla_data::{class_labels, gather_inputs, gather_targets, Dataset, Task};
use nabla_nn::Module;
use nabla_tensor::{Rng, Tensor};
use serde::{Deserialize, Serialize};

/// How probes are taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeConfig {
    /// Training samples probed (a seeded sample, the same every time).
    pub samples: usize,
    /// Also probe every this many steps (besides the end of each epoch).
    pub every: Option<usize>,
    /// Seed of the sample.
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            samples: 256,
            every: None,
            seed: 0x009e_0be5,
        }
    }
}

/// A layer's gradient is vanishing when its norm is below this fraction of
/// the output layer's.
pub const VANISHING: f64 = 1e-3;
/// A layer's gradient is exploding when its norm is above this multiple of
/// the output layer's.
pub const EXPLODING: f64 = 1e3;
/// An update-to-weight ratio per step above this suggests too large a
/// learning rate (the rule of thumb is about 10⁻³).
pub const RATIO_TOO_LARGE: f64 = 1e-2;
/// An update-to-weight ratio per step below this, for every tensor,
/// suggests too small a learning rate.
pub const RATIO_TOO_SMALL: f64 = 1e-5;
/// Warn when more than this fraction of a ReLU's units are dead, or of a
/// sigmoid's or tanh's outputs are saturated.
pub const UNIT_FRACTION: f64 = 0.5;

/// What a probe measured of one parameter tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamProbe {
    /// Its name, e.g. `0.weight`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// `‖∂loss/∂w‖` on the probe sample.
    pub grad_norm: f64,
    /// `‖w‖`.
    pub weight_norm: f64,
    /// `‖Δw‖ / ‖w‖` per step since the previous probe (none at the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_ratio: Option<f64>,
    /// Fraction of weights exactly 0.
    pub zero_fraction: f64,
    /// Fraction of weights with `|w| ≤ 10⁻³ · max|w|`.
    pub near_zero_fraction: f64,
}

/// What a probe measured of one activation of the forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationProbe {
    /// `relu 1`, `sigmoid 2`, … (the op and its place among the activations).
    pub name: String,
    /// Mean output.
    pub mean: f64,
    /// Standard deviation of the outputs.
    pub std: f64,
    /// ReLU: fraction of units never positive on the probe sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_fraction: Option<f64>,
    /// Sigmoid or tanh: fraction of outputs where the derivative is below 5% of its peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturated_fraction: Option<f64>,
}

/// One probe: the measurements and what they suggest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Training steps taken when it was measured.
    pub step: u64,
    /// The loss on the probe sample.
    pub loss: f64,
    /// Per parameter tensor, in the model's order.
    pub params: Vec<ParamProbe>,
    /// Per activation, in forward order.
    pub activations: Vec<ActivationProbe>,
    /// Plain-language warnings, each naming the layer.
    pub warnings: Vec<String>,
    /// What the probe itself took, in seconds (its cost to the run).
    #[serde(default)]
    pub seconds: f64,
}

/// Takes probes of one run: keeps the sample and the previous measurement.
pub struct Prober {
    config: ProbeConfig,
    indices: Vec<usize>,
    previous: Option<(u64, f64, Vec<Tensor<f32>>)>,
}

impl Prober {
    /// A prober over a data set of `len` samples.
    pub fn new(config: ProbeConfig, len: usize) -> Self {
        let mut order: Vec<usize> = (0..len).collect();
        Rng::seed(config.seed).shuffle(&mut order);
        order.truncate(config.samples.clamp(1, len.max(1)));
        order.sort_unstable();
        Prober {
            config,
            indices: order,
            previous: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Probes `model` (which should be in evaluation mode) after `step`
    /// training steps.
    ///
    /// # Errors
    /// Errors of the data set, the model or the loss.
    pub fn measure<M: Module<f32> + ?Sized>(
        &mut self,
        model: &M,
        loss: &dyn Loss,
        data: &dyn Dataset,
        step: u64,
    ) -> Result<ProbeReport> {
        let started = std::time::Instant::now();
        let tape = Tape::new();
        tape.seed_rng(self.config.seed);
        let x = gather_inputs(data, &self.indices)?;
        let y = model.forward(tape.constant(x))?;
        let targets = match data.task() {
            Task::Classify { .. } => {
                Targets::Classes(Target::Indices(class_labels(data, &self.indices)?))
            }
            Task::Regress { .. } => {
                Targets::Values(tape.constant(gather_targets(data, &self.indices)?))
            }
        };
        let l = loss.loss(y, targets)?;
        let grads = tape.backward(l)?;
        let loss_value = l.item()? as f64;
        let activations = activation_probes(&tape);
        let named = model.named_params();
        let mut params = Vec::with_capacity(named.len());
        for (k, (name, p)) in named.iter().enumerate() {
            let w = p.value();
            let weight_norm = norm(w.data());
            let update_ratio = self.previous.as_ref().and_then(|(s, _, old)| {
                let steps = step.checked_sub(*s).filter(|&d| d > 0)?;
                let old = old.get(k)?;
                let moved: f64 = w
                    .data()
                    .iter()
                    .zip(old.data())
                    .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let base = norm(old.data());
                (base > 0.0).then(|| moved / base / steps as f64)
            });
            let max = w
                .data()
                .iter()
                .fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
            let n = w.len().max(1) as f64;
            params.push(ParamProbe {
                name: name.clone(),
                shape: w.dims().to_vec(),
                grad_norm: grads.param(p).map_or(0.0, |g| norm(g.data())),
                weight_norm,
                update_ratio,
                zero_fraction: w.data().iter().filter(|&&v| v == 0.0).count() as f64 / n,
                near_zero_fraction: w
                    .data()
                    .iter()
                    .filter(|&&v| f64::from(v).abs() <= 1e-3 * max)
                    .count() as f64
                    / n,
            });
        }
        let previous_loss = self.previous.as_ref().map(|(_, l, _)| *l);
        let warnings = warnings(&params, &activations, loss_value, previous_loss);
        self.previous = Some((
            step,
            loss_value,
            named.iter().map(|(_, p)| p.value().clone()).collect(),
        ));
        Ok(ProbeReport {
            step,
            loss: loss_value,
            params,
            activations,
            warnings,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

/// The activations recorded on `tape`, in order.
fn activation_probes(tape: &Tape<f32>) -> Vec<ActivationProbe> {
    let mut out = Vec::new();
    tape.visit_nodes(|node| {
        let Some(op) = node
            .op
            .filter(|o| matches!(*o, "relu" | "sigmoid" | "tanh"))
        else {
            return;
        };
        let v = node.value.data();
        let n = v.len().max(1) as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        let (dead_fraction, saturated_fraction) = match op {
            "relu" => (Some(dead_units(node.value)), None),
            "sigmoid" => (None, Some(fraction(v, |y| y * (1.0 - y) < 0.0125))),
            _ => (None, Some(fraction(v, |y| 1.0 - y * y < 0.05))),
        };
        out.push(ActivationProbe {
            name: format!("{op} {}", out.len() + 1),
            mean,
            std: var.sqrt(),
            dead_fraction,
            saturated_fraction,
        });
    });
    out
}

fn fraction(v: &[f32], f: impl Fn(f64) -> bool) -> f64 {
    v.iter().filter(|&&y| f(f64::from(y))).count() as f64 / v.len().max(1) as f64
}

/// Fraction of units never positive over the batch: a unit is a feature
/// of `[N, F]`, or a channel of `[N, C, …]`.
fn dead_units(t: &Tensor<f32>) -> f64 {
    let dims = t.dims();
    let (n, units) = match dims {
        [n, c, ..] => (*n, *c),
        _ => return 0.0,
    };
    let per_unit = t.len() / (n * units).max(1);
    let mut alive = vec![false; units];
    for (k, &v) in t.data().iter().enumerate() {
        if v > 0.0 {
            alive[(k / per_unit) % units] = true;
        }
    }
    alive.iter().filter(|a| !**a).count() as f64 / units.max(1) as f64
}

/// What the measurements suggest, in words.
fn warnings(
    params: &[ParamProbe],
    activations: &[ActivationProbe],
    loss: f64,
    previous_loss: Option<f64>,
) -> Vec<String> {
    let mut out = Vec::new();
    // Weights (tensors of more than one axis), from the input side to the output.
    let weights: Vec<&ParamProbe> = params.iter().filter(|p| p.shape.len() > 1).collect();
    if let Some(last) = weights.last().filter(|l| l.grad_norm > 0.0) {
        if let Some(p) = weights
            .iter()
            .find(|p| p.grad_norm < VANISHING * last.grad_norm)
        {
            out.push(format!(
                "vanishing gradients: {}'s gradient norm is {:.1e}, {:.0e} times smaller than the output layer's ({}, {:.1e}); the layers near the input barely learn (saturated sigmoids or too small an initialisation; try ReLU and He initialisation)",
                p.name,
                p.grad_norm,
                last.grad_norm / p.grad_norm.max(f64::MIN_POSITIVE),
                last.name,
                last.grad_norm
            ));
        }
        if let Some(p) = weights
            .iter()
            .find(|p| !p.grad_norm.is_finite() || p.grad_norm > EXPLODING * last.grad_norm)
        {
            out.push(format!(
                "exploding gradients: {}'s gradient norm is {:.1e}, over {EXPLODING:.0e} times the output layer's ({}); try a smaller learning rate, gradient clipping (--clip-norm) or batch norm",
                p.name, p.grad_norm, last.name
            ));
        }
    }
    let ratios: Vec<(&str, f64)> = params
        .iter()
        .filter_map(|p| Some((p.name.as_str(), p.update_ratio?)))
        .collect();
    let rising = previous_loss.is_some_and(|p| loss > 1.1 * p);
    if let Some((name, r)) = ratios.iter().copied().find(|(_, r)| *r > RATIO_TOO_LARGE) {
        out.push(format!(
            "the learning rate looks too large: {name} moves by {r:.1e} of its norm per step (about 1e-3 is usual){}",
            if rising { ", and the loss is rising" } else { "" }
        ));
    } else if rising {
        out.push(format!(
            "the loss on the probe sample rose from {:.4} to {loss:.4}: the learning rate may be too large",
            previous_loss.unwrap_or(0.0)
        ));
    }
    if !ratios.is_empty() && ratios.iter().all(|(_, r)| *r < RATIO_TOO_SMALL) {
        out.push(format!(
            "the learning rate looks too small: every tensor moves by less than {RATIO_TOO_SMALL:.0e} of its norm per step"
        ));
    }
    for a in activations {
        if let Some(d) = a.dead_fraction.filter(|&d| d > UNIT_FRACTION) {
            out.push(format!(
                "{}: {:.0}% of its units are dead (never positive on the probe sample) and pass no gradient; try a smaller learning rate or He initialisation",
                a.name,
                100.0 * d
            ));
        }
        if let Some(s) = a.saturated_fraction.filter(|&s| s > UNIT_FRACTION) {
            out.push(format!(
                "{}: {:.0}% of its outputs are saturated (derivative under 5% of its peak), so little gradient passes",
                a.name,
                100.0 * s
            ));
        }
    }
    out
}
