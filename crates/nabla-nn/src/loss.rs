//! Loss functions, composed from graph ops (only the softmax-with-loss is a
//! fused op with its own backward).
//!
//! # Conventions
//! - [`Reduction::Mean`] divides by the batch size `N` for the classification
//!   losses (per-sample losses averaged) and by the element count for the
//!   elementwise ones (MSE, MAE, binary cross-entropy), as PyTorch does.
//! - Logarithms of probabilities are guarded with `+1e-10` ([`LOG_GUARD`]), the
//!   material's protection against `log(0)`; the losses from logits need no guard.
//! - A 1-D input is a single sample: a batch of one.
//! - One-hot targets of [`cross_entropy`] are turned into indices with argmax.

use nabla_autograd::{Error, Reduction, Result, Target, Var};
use nabla_tensor::{Float, Tensor};

/// Added inside `log(·)` of probabilities so that a zero probability gives a
/// large finite loss instead of infinity.
pub const LOG_GUARD: f64 = 1e-10;

fn reduce<'t, T: Float>(per_element: Var<'t, T>, reduction: Reduction) -> Result<Var<'t, T>> {
    match reduction {
        Reduction::Mean => per_element.mean(),
        Reduction::Sum => per_element.sum(),
    }
}

fn same_shape<T: Float>(op: &'static str, y: Var<'_, T>, t: Var<'_, T>) -> Result<()> {
    if y.shape() != t.shape() {
        return Err(Error::invalid(
            op,
            format!(
                "prediction has shape {}, target has shape {}",
                y.shape(),
                t.shape()
            ),
        ));
    }
    Ok(())
}

/// As a batch of one when 1-D.
fn as_batch<T: Float>(y: Var<'_, T>) -> Result<Var<'_, T>> {
    let s = y.shape();
    if s.rank() == 1 {
        y.reshape(&[1, s.dims()[0]])
    } else {
        Ok(y)
    }
}

/// Mean squared error `Σ (y - t)²`, averaged over elements for `Mean`.
///
/// # Errors
/// If the shapes differ.
pub fn mse<'t, T: Float>(y: Var<'t, T>, t: Var<'t, T>, reduction: Reduction) -> Result<Var<'t, T>> {
    same_shape("mse", y, t)?;
    reduce(y.sub(t)?.pow(2.0)?, reduction)
}

/// The material's `E = 0.5 · Σ (y - t)²` (the book calls it mean squared
/// error although it is a halved sum; its gradient is simply `y - t`).
///
/// # Errors
/// If the shapes differ.
pub fn sum_squared_error<'t, T: Float>(y: Var<'t, T>, t: Var<'t, T>) -> Result<Var<'t, T>> {
    same_shape("sum_squared_error", y, t)?;
    y.sub(t)?.pow(2.0)?.sum()?.mul_scalar(0.5)
}

/// Mean absolute error (L1 loss) `Σ |y - t|`; the derivative of `|·|` at 0 is 0.
///
/// # Errors
/// If the shapes differ.
pub fn l1<'t, T: Float>(y: Var<'t, T>, t: Var<'t, T>, reduction: Reduction) -> Result<Var<'t, T>> {
    same_shape("l1", y, t)?;
    reduce(y.sub(t)?.abs()?, reduction)
}

/// Cross-entropy of probabilities: `E = -Σ_i log(y[i, t_i] + 1e-10)`, divided
/// by `N` for `Mean` (the material's formula).
///
/// # Errors
/// A bad label, a one-hot target of the wrong shape, or `y` not `[N, C]`/`[C]`.
pub fn cross_entropy<'t, T: Float>(
    probs: Var<'t, T>,
    target: &Target<T>,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    let probs = as_batch(probs)?;
    let labels = target.indices()?;
    let picked = probs.gather_rows(&labels)?.add_scalar(LOG_GUARD)?.log()?;
    let total = picked.sum()?.neg()?;
    match reduction {
        Reduction::Mean => total.mul_scalar(1.0 / labels.len().max(1) as f64),
        Reduction::Sum => Ok(total),
    }
}

/// Cross-entropy of logits through the fused softmax-with-loss op: backward is
/// `(softmax(x) - t) / N`.
///
/// # Errors
/// A bad label or a target of the wrong shape.
pub fn softmax_cross_entropy<'t, T: Float>(
    logits: Var<'t, T>,
    target: Target<T>,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    as_batch(logits)?.softmax_cross_entropy(target, reduction)
}

/// [`softmax_cross_entropy`] against targets smoothed by `smoothing` (ε):
/// `q = (1 - ε)·t + ε/C` over the `C` classes (PyTorch's
/// `CrossEntropyLoss(label_smoothing=ε)`); backward `(softmax(x) - q) / N`.
///
/// # Errors
/// A bad label, a target of the wrong shape, or an ε outside `[0, 1]`.
pub fn softmax_cross_entropy_smoothed<'t, T: Float>(
    logits: Var<'t, T>,
    target: Target<T>,
    reduction: Reduction,
    smoothing: T,
) -> Result<Var<'t, T>> {
    as_batch(logits)?.softmax_cross_entropy_smoothed(target, reduction, smoothing)
}

/// Binary cross-entropy of probabilities `p` against targets `t` in `[0, 1]`:
/// `-[t·log(p + 1e-10) + (1 - t)·log(1 - p + 1e-10)]`, averaged over elements for `Mean`.
///
/// # Errors
/// If the shapes differ.
pub fn binary_cross_entropy<'t, T: Float>(
    p: Var<'t, T>,
    t: Var<'t, T>,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    same_shape("binary_cross_entropy", p, t)?;
    let tape = p.tape();
    let one = tape.constant(Tensor::scalar(T::ONE));
    let pos = t.mul(p.add_scalar(LOG_GUARD)?.log()?)?;
    let neg = one.sub(t)?.mul(one.sub(p)?.add_scalar(LOG_GUARD)?.log()?)?;
    reduce(pos.add(neg)?.neg()?, reduction)
}

/// Binary cross-entropy of logits, in the stable form
/// `max(x, 0) - x·t + log(1 + e^-|x|)` (no overflow, no guard needed).
///
/// # Errors
/// If the shapes differ.
pub fn binary_cross_entropy_with_logits<'t, T: Float>(
    x: Var<'t, T>,
    t: Var<'t, T>,
    reduction: Reduction,
) -> Result<Var<'t, T>> {
    same_shape("binary_cross_entropy_with_logits", x, t)?;
    let softplus = x.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?;
    reduce(x.relu()?.sub(x.mul(t)?)?.add(softplus)?, reduction)
}
