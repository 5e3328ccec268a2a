//! 02 — Numerical differentiation: the central difference and the tangent line.
//!
//! `f(x) = 0.01x² + 0.1x` has derivative `0.02x + 0.1`: 0.2 at x = 5, 0.3 at x = 10.
//! The tangent at x = 5 is `y = 0.2x - 0.25`. (`nabla demo tangent` draws it.)
//!
//! Run: `cargo run --example 02_numerical_diff`

use nabla::autograd::{numerical_diff, numerical_gradient, DEFAULT_H};
use nabla::prelude::*;

/// The material's function.
pub fn f(x: f64) -> f64 {
    0.01 * x * x + 0.1 * x
}

/// (slope, intercept) of the tangent of `f` at `x`, by central difference.
pub fn tangent(x: f64) -> (f64, f64) {
    let slope = numerical_diff(f, x, DEFAULT_H);
    (slope, f(x) - slope * x)
}

/// ∂f/∂x₀ and ∂f/∂x₁ of `x₀² + x₁²` at (3, 4), by perturbing one coordinate at a time.
pub fn partials() -> Result<Tensor<f64>, nabla::autograd::Error> {
    let x = Tensor::from_f64s(&[3.0, 4.0], &[2])?;
    numerical_gradient(
        |x: &Tensor<f64>| Ok(x.data().iter().map(|v| v * v).sum()),
        &x,
    )
}

pub fn main() -> Result<(), nabla::autograd::Error> {
    for x in [5.0, 10.0] {
        let (slope, intercept) = tangent(x);
        let sign = if intercept < 0.0 { '−' } else { '+' };
        println!(
            "f'({x}) ≈ {slope:.10}   tangent: y = {slope:.4}x {sign} {:.4}",
            intercept.abs()
        );
    }
    println!("∇(x0² + x1²) at (3, 4) ≈ {:?}", partials()?.data());
    Ok(())
}
