//! 04 — The gradient of a network: the material's `simpleNet`.
//!
//! W is 2×3, x = [0.6, 0.9], t = [0, 0, 1], loss = cross-entropy of softmax(x·W).
//! The gradient from `numerical_gradient` and the one from backprop agree; the
//! fixed W is the one printed in *Deep Learning from Scratch* (§4.4.2), whose
//! gradient there is [[0.2192, 0.1436, -0.3628], [0.3289, 0.2153, -0.5442]].
//!
//! Run: `cargo run --example 04_simple_net`

use nabla::prelude::*;

const W: [f64; 6] = [
    0.47355232, 0.9977393, 0.84668094, 0.85557411, 0.03563661, 0.69422093,
];

/// The loss of simpleNet for weights `w`, computed in the graph.
fn loss_of<'t>(
    tape: &'t Tape<f64>,
    w: Var<'t, f64>,
) -> Result<Var<'t, f64>, nabla::autograd::Error> {
    let x = tape.constant(Tensor::from_f64s(&[0.6, 0.9], &[1, 2])?);
    let t = Target::OneHot(Tensor::from_f64s(&[0.0, 0.0, 1.0], &[1, 3])?);
    let probs = x.matmul(w)?.softmax()?;
    loss::cross_entropy(probs, &t, Reduction::Mean)
}

/// (loss, numerical gradient, backprop gradient).
pub fn gradients() -> Result<(f64, Tensor<f64>, Tensor<f64>), nabla::autograd::Error> {
    let w0 = Tensor::from_f64s(&W, &[2, 3])?;
    let numeric = numerical_gradient(
        |w: &Tensor<f64>| {
            let tape = Tape::new();
            let w = tape.constant(w.clone());
            loss_of(&tape, w)?.item()
        },
        &w0,
    )?;
    let tape = Tape::new();
    let w = tape.var(w0);
    let l = loss_of(&tape, w)?;
    let grads = tape.backward(l)?;
    let backprop = grads
        .get(w)
        .cloned()
        .unwrap_or_else(|| Tensor::zeros(&[2, 3]));
    Ok((l.item()?, numeric, backprop))
}

pub fn main() -> Result<(), nabla::autograd::Error> {
    let (l, numeric, backprop) = gradients()?;
    println!("loss = {l:.10}");
    println!("numerical gradient: {:?}", numeric.data());
    println!("backprop gradient:  {:?}", backprop.data());
    Ok(())
}
