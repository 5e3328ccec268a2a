//! Checking backprop against numerical differentiation, in f64.

use crate::{Gradients, Result, Tape, Var};
use nabla_tensor::{Rng, Shape, Tensor};
use std::fmt;

/// Step and tolerances of a gradient check. The defaults are PyTorch's
/// `torch.autograd.gradcheck`: `eps = 1e-6`, `atol = 1e-5`, `rtol = 1e-3`;
/// a coordinate passes when `|analytic - numeric| <= atol + rtol · |numeric|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckOptions {
    /// Central-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Seed of the random projection of non-scalar outputs.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            seed: 0,
        }
    }
}

/// How backprop and central differences compare on one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorReport {
    /// The tensor's name (`input 0`, `fc1.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Shape,
    /// Coordinates compared (all, or a sample).
    pub checked: usize,
    /// Largest `|analytic - numeric|`.
    pub max_abs_diff: f64,
    /// Mean `|analytic - numeric|` over the checked coordinates.
    pub mean_abs_diff: f64,
    /// Largest `|analytic - numeric| / max(|numeric|, tiny)`.
    pub max_rel_err: f64,
    /// Multi-index of the coordinate with the largest tolerance-scaled error.
    pub worst_index: Vec<usize>,
    /// Backprop's value there.
    pub analytic: f64,
    /// The numerical value there.
    pub numeric: f64,
    /// Whether every checked coordinate is within tolerance.
    pub passed: bool,
}

/// The per-tensor reports of one gradient check.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// One report per checked tensor, in order.
    pub tensors: Vec<TensorReport>,
}

impl GradcheckReport {
    /// True when every tensor passed.
    pub fn passed(&self) -> bool {
        self.tensors.iter().all(|t| t.passed)
    }

    /// The first tensor that failed.
    pub fn first_failure(&self) -> Option<&TensorReport> {
        self.tensors.iter().find(|t| !t.passed)
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<20} {:>14} {:>8} {:>11} {:>11} {:>11}  {:<12} result",
            "tensor", "shape", "checked", "max |diff|", "mean |diff|", "max rel", "worst at"
        )?;
        for t in &self.tensors {
            writeln!(
                f,
                "{:<20} {:>14} {:>8} {:>11.3e} {:>11.3e} {:>11.3e}  {:<12} {}",
                t.name,
                t.shape.to_string(),
                t.checked,
                t.max_abs_diff,
                t.mean_abs_diff,
                t.max_rel_err,
                format!("{:?}", t.worst_index),
                if t.passed { "ok" } else { "FAILED" }
            )?;
        }
        Ok(())
    }
}

/// Compares an analytic gradient with numerical values at some coordinates
/// (`(flat index, numeric value)` pairs).
pub fn compare_gradients(
    name: &str,
    analytic: &Tensor<f64>,
    numeric: &[(usize, f64)],
    opts: &GradcheckOptions,
) -> TensorReport {
    let mut report = TensorReport {
        name: name.to_string(),
        shape: analytic.shape().clone(),
        checked: numeric.len(),
        max_abs_diff: 0.0,
        mean_abs_diff: 0.0,
        max_rel_err: 0.0,
        worst_index: vec![],
        analytic: 0.0,
        numeric: 0.0,
        passed: true,
    };
    let mut worst_score = f64::NEG_INFINITY;
    let mut sum = 0.0;
    for &(i, num) in numeric {
        let ana = analytic.data()[i];
        let diff = (ana - num).abs();
        let diff = if diff.is_nan() { f64::INFINITY } else { diff };
        sum += diff;
        report.max_abs_diff = report.max_abs_diff.max(diff);
        report.max_rel_err = report.max_rel_err.max(diff / num.abs().max(1e-12));
        let allowed = opts.atol + opts.rtol * num.abs();
        if diff > allowed {
            report.passed = false;
        }
        let score = diff / allowed;
        if score > worst_score {
            worst_score = score;
            report.worst_index = unravel(i, analytic.dims());
            report.analytic = ana;
            report.numeric = num;
        }
    }
    if !numeric.is_empty() {
        report.mean_abs_diff = sum / numeric.len() as f64;
    }
    report
}

fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut index = vec![0; dims.len()];
    for (slot, &d) in index.iter_mut().zip(dims).rev() {
        *slot = flat % d.max(1);
        flat /= d.max(1);
    }
    index
}

/// Checks the backward of `f` against central differences, for every input.
///
/// A non-scalar output is reduced to `Σ out ⊙ r` with a fixed random `r`, so
/// the check sees `Jᵀr` — a plain sum would hide errors that cancel (the
/// gradient of `Σ softmax(x)` is zero whatever backward says).
///
/// ```
/// use nabla_autograd::{gradcheck, GradcheckOptions};
/// use nabla_tensor::Tensor;
/// let x = Tensor::<f64>::from_f64s(&[0.3, -1.2, 2.0], &[3])?;
/// let report = gradcheck(|v| v[0].tanh(), &[x], &GradcheckOptions::default())?;
/// assert!(report.passed(), "{report}");
/// # Ok::<(), nabla_autograd::Error>(())
/// ```
///
/// # Errors
/// Whatever `f` returns.
pub fn gradcheck<F>(
    f: F,
    inputs: &[Tensor<f64>],
    opts: &GradcheckOptions,
) -> Result<GradcheckReport>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    // Analytic: one backward pass seeded with the projection r.
    let tape = Tape::<f64>::new();
    let vars: Vec<Var<'_, f64>> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let out = f(&vars)?;
    let out_shape = out.shape();
    let projection: Tensor<f64> = if out_shape.numel() == 1 {
        Tensor::ones(out_shape.dims())
    } else {
        Rng::seed(opts.seed).normal(out_shape.dims(), 0.0, 1.0)
    };
    let mut grads = Gradients::new();
    tape.backward_with_into(out, projection.clone(), &mut grads)?;
    let analytic: Vec<Tensor<f64>> = vars
        .iter()
        .zip(inputs)
        .map(|(&v, t)| grads.get(v).cloned().unwrap_or_else(|| t.zeros_like()))
        .collect();

    // Numeric: perturb one coordinate of one input at a time.
    let eval = |xs: &[Tensor<f64>]| -> Result<f64> {
        let tape = Tape::<f64>::new();
        let vars: Vec<Var<'_, f64>> = xs.iter().map(|t| tape.constant(t.clone())).collect();
        let out = f(&vars)?.value();
        Ok(out
            .data()
            .iter()
            .zip(projection.data())
            .map(|(a, b)| a * b)
            .sum())
    };
    let mut work: Vec<Tensor<f64>> = inputs.to_vec();
    let mut tensors = Vec::with_capacity(inputs.len());
    for k in 0..inputs.len() {
        let mut numeric = Vec::with_capacity(inputs[k].len());
        for i in 0..inputs[k].len() {
            let orig = inputs[k].data()[i];
            work[k].data_mut()[i] = orig + opts.eps;
            let plus = eval(&work)?;
            work[k].data_mut()[i] = orig - opts.eps;
            let minus = eval(&work)?;
            work[k].data_mut()[i] = orig;
            numeric.push((i, (plus - minus) / (2.0 * opts.eps)));
        }
        tensors.push(compare_gradients(
            &format!("input {k}"),
            &analytic[k],
            &numeric,
            opts,
        ));
    }
    Ok(GradcheckReport { tensors })
}
