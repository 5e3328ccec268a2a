//! 03 — Gradient descent: `x ← x - lr·∇f(x)`, and what the learning rate does.
//!
//! Minimising `f(x₀, x₁) = x₀² + x₁²` from (-3, 4): lr 0.1 reaches (0, 0); the
//! material's lr 0.9 oscillates around the minimum but still converges;
//! lr 10 diverges; lr 1e-10 barely moves. (`nabla demo descent` draws the path.)
//!
//! Run: `cargo run --example 03_gradient_descent`

use nabla::autograd::{gradient_descent, Descent};
use nabla::prelude::*;

/// Descends `x₀² + x₁²` from (-3, 4).
pub fn descend(lr: f64, steps: usize) -> Result<Descent<f64>, nabla::autograd::Error> {
    let init = Tensor::from_f64s(&[-3.0, 4.0], &[2])?;
    gradient_descent(
        |x: &Tensor<f64>| Ok(x.data().iter().map(|v| v * v).sum()),
        &init,
        lr,
        steps,
    )
}

pub fn main() -> Result<(), nabla::autograd::Error> {
    for (lr, steps) in [(0.1, 100), (0.9, 200), (10.0, 100), (1e-10, 100)] {
        let d = descend(lr, steps)?;
        println!("lr {lr:<6} {steps} steps: x = {:?}", d.x.data());
    }
    Ok(())
}
