//! 01 — The computational graph: forward left to right, backward right to left.
//!
//! The material's shopping examples. Each multiply node passes back the
//! upstream derivative times its *other* input; each add node passes it
//! through unchanged.
//!
//! Run: `cargo run --example 01_computational_graph`

use nabla::prelude::*;

/// Price and the derivatives with respect to (apple price, apple count, tax).
pub fn apples() -> Result<(f64, [f64; 3]), nabla::autograd::Error> {
    let tape = Tape::<f64>::new();
    let apple = tape.var(Tensor::scalar(100.0));
    let count = tape.var(Tensor::scalar(2.0));
    let tax = tape.var(Tensor::scalar(1.1));
    let price = apple.mul(count)?.mul(tax)?;
    let g = tape.backward(price)?;
    let d = |v| g.get(v).map(|t: &Tensor<f64>| t.data()[0]).unwrap_or(0.0);
    Ok((price.item()?, [d(apple), d(count), d(tax)]))
}

/// Price and the derivatives with respect to
/// (apple price, apple count, orange price, orange count, tax).
pub fn apples_and_oranges() -> Result<(f64, [f64; 5]), nabla::autograd::Error> {
    let tape = Tape::<f64>::new();
    let apple = tape.var(Tensor::scalar(100.0));
    let apples = tape.var(Tensor::scalar(2.0));
    let orange = tape.var(Tensor::scalar(150.0));
    let oranges = tape.var(Tensor::scalar(3.0));
    let tax = tape.var(Tensor::scalar(1.1));
    let total = apple.mul(apples)?.add(orange.mul(oranges)?)?.mul(tax)?;
    let g = tape.backward(total)?;
    let d = |v| g.get(v).map(|t: &Tensor<f64>| t.data()[0]).unwrap_or(0.0);
    Ok((
        total.item()?,
        [d(apple), d(apples), d(orange), d(oranges), d(tax)],
    ))
}

pub fn main() -> Result<(), nabla::autograd::Error> {
    let (price, [d_apple, d_count, d_tax]) = apples()?;
    println!("2 apples at 100 with tax 1.1: {price:.1}");
    println!("  d/d(apple price) = {d_apple:.1}, d/d(count) = {d_count:.1}, d/d(tax) = {d_tax:.1}");
    let (total, d) = apples_and_oranges()?;
    println!("2 apples at 100 + 3 oranges at 150, tax 1.1: {total:.1}");
    println!(
        "  d/d(apple) = {:.1}, d/d(apples) = {:.1}, d/d(orange) = {:.1}, d/d(oranges) = {:.1}, d/d(tax) = {:.1}",
        d[0], d[1], d[2], d[3], d[4]
    );
    Ok(())
}
