//! 06 — A two-layer network learns a problem no straight line can solve.
//!
//! Two interleaved half-moons (a standard synthetic set, generated here with a
//! seed): a 2-16-2 tanh network trained with Adam on mini-batches reaches
//! 100% accuracy; a network with no hidden layer (a linear classifier) cannot.
//!
//! Run: `cargo run --example 06_two_layer_net`

use nabla::prelude::*;

/// `n` points on two interleaved half-circles with a little noise, and their labels.
pub fn two_moons(n: usize, noise: f64, rng: &mut Rng) -> (Tensor<f32>, Vec<usize>) {
    let mut xs = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2;
        let angle = std::f64::consts::PI * rng.next_f64();
        let (x, y) = if class == 0 {
            (angle.cos(), angle.sin())
        } else {
            (1.0 - angle.cos(), 0.5 - angle.sin())
        };
        xs.push((x + noise * (rng.next_f64() - 0.5)) as f32);
        xs.push((y + noise * (rng.next_f64() - 0.5)) as f32);
        labels.push(class);
    }
    (
        Tensor::from_vec(xs, &[n, 2]).expect("2 values per point"),
        labels,
    )
}

/// Trains an MLP with the given hidden sizes; returns the final training accuracy.
pub fn train(hidden: &[usize], epochs: usize) -> Result<f64, nabla::autograd::Error> {
    let mut rng = Rng::seed(7);
    let (x, labels) = two_moons(200, 0.1, &mut rng);
    let mut net = MlpConfig::new(2, hidden, 2)
        .activation(Activation::Tanh)
        .with_init(Init::Xavier)
        .init::<f32>(&mut rng)?;
    let mut opt = OptimizerConfig::new(Method::adam(), 0.02).init::<f32>();
    let batch = 50;
    let mut order: Vec<usize> = (0..labels.len()).collect();
    for _ in 0..epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(batch) {
            let xb: Vec<f32> = chunk
                .iter()
                .flat_map(|&i| x.data()[2 * i..2 * i + 2].to_vec())
                .collect();
            let yb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
            let tape = Tape::new();
            let logits = net.forward(tape.constant(Tensor::from_vec(xb, &[chunk.len(), 2])?))?;
            let l = loss::softmax_cross_entropy(logits, Target::Indices(yb), Reduction::Mean)?;
            let grads = tape.backward(l)?;
            opt.step(&mut net.params_mut(), &grads)?;
        }
    }
    // Inference: no graph, no gradients.
    let predicted = net.predict(&x)?.argmax_axis(1)?;
    let correct = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    Ok(correct as f64 / labels.len() as f64)
}

pub fn main() -> Result<(), nabla::autograd::Error> {
    println!(
        "linear classifier (no hidden layer): {:.1}% of the moons",
        100.0 * train(&[], 200)?
    );
    println!(
        "2-16-2 tanh network:                 {:.1}% of the moons",
        100.0 * train(&[16], 200)?
    );
    Ok(())
}
