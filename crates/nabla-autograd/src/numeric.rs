//! Numerical differentiation and gradient descent, as in the material (§3–4).

use crate::Result;
use nabla_tensor::{Float, Tensor};

/// The material's step for central differences: small enough to be local,
/// large enough that `f(x+h) - f(x-h)` is not swamped by rounding.
pub const DEFAULT_H: f64 = 1e-4;

/// Central difference `(f(x+h) - f(x-h)) / 2h`.
///
/// ```
/// // The material's demo: f(x) = 0.01x² + 0.1x has slope 0.2 at x = 5.
/// let f = |x: f64| 0.01 * x * x + 0.1 * x;
/// let slope = nabla_autograd::numerical_diff(f, 5.0, nabla_autograd::DEFAULT_H);
/// assert!((slope - 0.2).abs() < 1e-9);
/// ```
pub fn numerical_diff(f: impl Fn(f64) -> f64, x: f64, h: f64) -> f64 {
    (f(x + h) - f(x - h)) / (2.0 * h)
}

/// The gradient of a scalar function of a tensor of any shape, by central
/// differences with [`DEFAULT_H`]: each coordinate in turn is perturbed by
/// `±h`, `f` evaluated, and the coordinate restored.
///
/// # Errors
/// Whatever `f` returns.
pub fn numerical_gradient<T: Float>(
    f: impl FnMut(&Tensor<T>) -> Result<T>,
    x: &Tensor<T>,
) -> Result<Tensor<T>> {
    numerical_gradient_with(f, x, DEFAULT_H)
}

/// [`numerical_gradient`] with an explicit step `h`.
///
/// # Errors
/// Whatever `f` returns.
pub fn numerical_gradient_with<T: Float>(
    mut f: impl FnMut(&Tensor<T>) -> Result<T>,
    x: &Tensor<T>,
    h: f64,
) -> Result<Tensor<T>> {
    let mut work = x.clone();
    let mut grad = Vec::with_capacity(x.len());
    let h_t = T::from_f64(h);
    for i in 0..x.len() {
        let orig = work.data()[i];
        work.data_mut()[i] = orig + h_t;
        let plus = f(&work)?;
        work.data_mut()[i] = orig - h_t;
        let minus = f(&work)?;
        work.data_mut()[i] = orig;
        grad.push(T::from_f64((plus.to_f64() - minus.to_f64()) / (2.0 * h)));
    }
    Ok(Tensor::from_vec(grad, x.dims())?)
}

/// The result of [`gradient_descent`].
#[derive(Debug, Clone)]
pub struct Descent<T: Float> {
    /// The point after the last step.
    pub x: Tensor<T>,
    /// Every point visited: the start, then one per step (`steps + 1` in all).
    pub history: Vec<Tensor<T>>,
}

/// Gradient descent with numerical gradients: `x ← x - lr · ∇f(x)`, `steps` times.
///
/// # Errors
/// Whatever `f` returns.
pub fn gradient_descent<T: Float>(
    mut f: impl FnMut(&Tensor<T>) -> Result<T>,
    init: &Tensor<T>,
    lr: f64,
    steps: usize,
) -> Result<Descent<T>> {
    let mut x = init.clone();
    let mut history = vec![x.clone()];
    for _ in 0..steps {
        let grad = numerical_gradient(&mut f, &x)?;
        x.add_scaled_(T::from_f64(-lr), &grad)?;
        history.push(x.clone());
    }
    Ok(Descent { x, history })
}
