//! 01 — The computational graph: forward left to right, backward right to left.
//!
//! The material's shopping examples. Each multiply node passes back the
//! upstream derivative times its *other* input; each add node passes it
//! through unchanged. `nabla trace apple` draws these graphs with every
//! value and derivative on its edge.
//!
//! Run: `cargo run --example 01_computational_graph`

use nabla::prelude::*;

type Result<T> = std::result::Result<T, nabla::autograd::Error>;

/// 2 apples at 100 with a tax of 1.1, on `tape`: the price and the inputs
/// (apple price, apple count, tax).
fn apple_graph(tape: &Tape<f64>) -> Result<(Var<'_, f64>, [Var<'_, f64>; 3])> {
    let apple = tape.var(Tensor::scalar(100.0)).named("apple");
    let count = tape.var(Tensor::scalar(2.0)).named("apple count");
    let tax = tape.var(Tensor::scalar(1.1)).named("tax");
    let price = apple.mul(count)?.mul(tax)?.named("price");
    Ok((price, [apple, count, tax]))
}

/// 2 apples at 100 and 3 oranges at 150, tax 1.1, on `tape`: the total and
/// the inputs (apple price, apple count, orange price, orange count, tax).
fn fruit_graph(tape: &Tape<f64>) -> Result<(Var<'_, f64>, [Var<'_, f64>; 5])> {
    let apple = tape.var(Tensor::scalar(100.0)).named("apple");
    let apples = tape.var(Tensor::scalar(2.0)).named("apple count");
    let orange = tape.var(Tensor::scalar(150.0)).named("orange");
    let oranges = tape.var(Tensor::scalar(3.0)).named("orange count");
    let tax = tape.var(Tensor::scalar(1.1)).named("tax");
    let total = apple
        .mul(apples)?
        .add(orange.mul(oranges)?)?
        .mul(tax)?
        .named("price");
    Ok((total, [apple, apples, orange, oranges, tax]))
}

/// Price and the derivatives with respect to (apple price, apple count, tax).
pub fn apples() -> Result<(f64, [f64; 3])> {
    let tape = Tape::<f64>::new();
    let (price, inputs) = apple_graph(&tape)?;
    let g = tape.backward(price)?;
    let d = |v| g.get(v).map(|t: &Tensor<f64>| t.data()[0]).unwrap_or(0.0);
    Ok((price.item()?, inputs.map(d)))
}

/// Price and the derivatives with respect to
/// (apple price, apple count, orange price, orange count, tax).
pub fn apples_and_oranges() -> Result<(f64, [f64; 5])> {
    let tape = Tape::<f64>::new();
    let (total, inputs) = fruit_graph(&tape)?;
    let g = tape.backward(total)?;
    let d = |v| g.get(v).map(|t: &Tensor<f64>| t.data()[0]).unwrap_or(0.0);
    Ok((total.item()?, inputs.map(d)))
}

/// The recorded apple graph (`oranges`: the apples and oranges one), after
/// backward: every node's value and derivative.
pub fn trace(oranges: bool) -> Result<Trace> {
    let tape = Tape::<f64>::new();
    let price = match oranges {
        false => apple_graph(&tape)?.0,
        true => fruit_graph(&tape)?.0,
    };
    let g = tape.backward(price)?;
    Ok(Trace::of(&tape, Some(&g)))
}

pub fn main() -> Result<()> {
    let (price, [d_apple, d_count, d_tax]) = apples()?;
    println!("2 apples at 100 with tax 1.1: {price:.1}");
    println!("  d/d(apple price) = {d_apple:.1}, d/d(count) = {d_count:.1}, d/d(tax) = {d_tax:.1}");
    let (total, d) = apples_and_oranges()?;
    println!("2 apples at 100 + 3 oranges at 150, tax 1.1: {total:.1}");
    println!(
        "  d/d(apple) = {:.1}, d/d(apples) = {:.1}, d/d(orange) = {:.1}, d/d(oranges) = {:.1}, d/d(tax) = {:.1}",
        d[0], d[1], d[2], d[3], d[4]
    );
    println!(
        "\nThe apple graph as the tape recorded it:\n{}",
        trace(false)?.table()
    );
    Ok(())
}
