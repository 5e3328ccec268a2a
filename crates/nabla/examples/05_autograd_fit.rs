//! 05 — Autograd, the industrial way: the material's PyTorch example in nabla.
//!
//! Fit `y = w·x` to x = [1, 2, 3], y = [2, 4, 6] starting from w = 1.0: a
//! variable that requires grad, a forward `x·w`, an MSE loss, `backward()`,
//! then the update `w ← w - lr·∂L/∂w`.
//!
//! Run: `cargo run --example 05_autograd_fit`

use nabla::prelude::*;

/// Returns (w, loss) after each epoch.
pub fn fit(epochs: usize, lr: f64) -> Result<Vec<(f64, f64)>, nabla::autograd::Error> {
    let x = Tensor::from_f64s(&[1.0, 2.0, 3.0], &[3])?;
    let y = Tensor::from_f64s(&[2.0, 4.0, 6.0], &[3])?;
    let mut w = Param::new(Tensor::<f64>::scalar(1.0));
    let mut opt = OptimizerConfig::new(Method::Sgd, lr).init::<f64>();
    let mut history = Vec::new();
    for _ in 0..epochs {
        let tape = Tape::new();
        let pred = tape.constant(x.clone()).mul(tape.param(&w))?;
        let l = loss::mse(pred, tape.constant(y.clone()), Reduction::Mean)?;
        let grads = tape.backward(l)?;
        opt.step(&mut [&mut w], &grads)?;
        history.push((w.value().item()?, l.item()?));
    }
    Ok(history)
}

pub fn main() -> Result<(), nabla::autograd::Error> {
    for (epoch, (w, l)) in fit(50, 0.05)?.into_iter().enumerate() {
        let epoch = epoch + 1;
        if epoch <= 5 || epoch % 10 == 0 {
            println!("epoch {epoch:>2}: w = {w:.6}, loss = {l:.3e}");
        }
    }
    Ok(())
}
