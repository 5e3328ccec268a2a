//! What the output wants, for one input: a forward pass that keeps every
//! layer's output, and a backward pass from the cross-entropy against a
//! chosen class that keeps the gradient reaching each layer and the input.
//!
//! This is the material's picture of backpropagation for a single image.
//! The output layer's *wish* is `−∂C/∂z` for its scores `z`. With softmax
//! and cross-entropy that is `y − p`: raise the chosen class by how far its
//! probability is from 1, lower every other class by its probability. The
//! wish then flows back through every layer, and at the input it says which
//! pixels, made brighter or darker, would serve it most.

use crate::Sequential;
use nabla_autograd::ops::softmax::Softmax;
use nabla_autograd::{Error, Op, Reduction, Result, Tape, Target, Var};
use nabla_tensor::{Float, Tensor};

/// One layer's part in an [`Explanation`].
#[derive(Debug, Clone)]
pub struct LayerView<T: Float> {
    /// `"{index}: {layer}"`, as the tape's scopes name it (`0: Linear(784 → 100)`).
    pub name: String,
    /// The layer's output for the one sample, without the batch axis.
    pub output: Tensor<T>,
    /// `∂C/∂output`: the gradient that reached the layer's output, same shape.
    pub gradient: Tensor<T>,
}

/// One forward and backward pass of a classifier on one sample.
#[derive(Debug, Clone)]
pub struct Explanation<T: Float> {
    /// Every layer, in order; the last one's output is the scores.
    pub layers: Vec<LayerView<T>>,
    /// `∂C/∂x` at the input, in the shape `x` was given without its batch axis.
    pub input_gradient: Tensor<T>,
    /// The softmax of the scores.
    pub probabilities: Vec<T>,
    /// The class with the highest score (the first, on a tie).
    pub predicted: usize,
    /// The class the cost was taken against.
    pub target: usize,
    /// The cross-entropy `C = −ln p[target]`.
    pub loss: T,
    /// `−∂C/∂z` per score: `1 − p` for the target, `−p` for the others.
    pub wish: Vec<T>,
}

/// Runs `net` on one sample `x` (a batch of one, `[1, …]`) and back from
/// the cross-entropy against `target`, or against the prediction when
/// `target` is `None`. The network runs as it is set: call
/// `set_training(false)` first for dropout and batch norm in evaluation
/// form (a loaded model is already so).
///
/// # Errors
/// A batch other than one sample, a network whose output is not one row
/// of scores, a target past the classes, or a layer's own error.
pub fn explain<T: Float>(
    net: &Sequential<T>,
    x: &Tensor<T>,
    target: Option<usize>,
) -> Result<Explanation<T>> {
    if x.dims().first() != Some(&1) {
        return Err(Error::invalid(
            "explain",
            format!("expected one sample, a batch [1, …]; got {:?}", x.dims()),
        ));
    }
    let tape = Tape::<T>::new();
    tape.set_record_scopes(true);
    let input = tape.var(x.clone());
    let outputs = net.forward_layers(input)?;
    let scores = *outputs
        .last()
        .ok_or_else(|| Error::invalid("explain", "the network has no layers"))?;
    let classes = match *scores.shape().dims() {
        [1, c] if c > 0 => c,
        ref dims => {
            return Err(Error::invalid(
                "explain",
                format!("expected one row of class scores, got {dims:?}"),
            ))
        }
    };
    let probabilities = Softmax.forward(&[&scores.value()])?.data().to_vec();
    let predicted = first_max(&probabilities);
    let target = target.unwrap_or(predicted);
    if target >= classes {
        return Err(Error::invalid(
            "explain",
            format!(
                "target class {target}: the network has {classes} classes (0 to {})",
                classes - 1
            ),
        ));
    }
    let loss = scores.softmax_cross_entropy(Target::Indices(vec![target]), Reduction::Mean)?;
    let grads = tape.backward(loss)?;
    let gradient_of = |v: Var<'_, T>| -> Result<Tensor<T>> {
        let shape = v.shape();
        let sample = &shape.dims()[1..];
        match grads.get(v) {
            Some(g) => Ok(g.reshape(sample)?),
            // A layer the cost does not depend on (none in a chain).
            None => Ok(Tensor::zeros(sample)),
        }
    };
    let mut layers = Vec::with_capacity(outputs.len());
    for (i, &out) in outputs.iter().enumerate() {
        let name = format!("{i}: {}", net.layers()[i].describe());
        let shape = out.shape();
        let sample = &shape.dims()[1..];
        layers.push(LayerView {
            name,
            output: out.value().reshape(sample)?,
            gradient: gradient_of(out)?,
        });
    }
    let wish = gradient_of(scores)?.data().iter().map(|&g| -g).collect();
    Ok(Explanation {
        layers,
        input_gradient: gradient_of(input)?,
        probabilities,
        predicted,
        target,
        loss: loss.value().data()[0],
        wish,
    })
}

/// The index of the first largest value (0 for an empty or all-NaN slice).
fn first_max<T: Float>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}
