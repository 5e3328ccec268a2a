//! What is measured: per-epoch metrics and a full evaluation.

use crate::Result;
use nabla_autograd::{Reduction, Tape, Target};
use nabla_data::Dataset;
use nabla_nn::{Module, Sequential};
use serde::{Deserialize, Serialize};

/// One epoch's record (also the JSON line written per epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's training batches.
    pub train_loss: f64,
    /// Accuracy on the training batches as they were seen (weights moving).
    pub train_accuracy: f64,
    /// Accuracy on the held-out validation set, if any.
    pub val_accuracy: Option<f64>,
    /// Accuracy on the test set, if one was given.
    pub test_accuracy: Option<f64>,
    /// Learning rate used in the epoch.
    pub lr: f64,
    /// Wall time of the training part of the epoch, in seconds.
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_second: f64,
}

/// A model's performance on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub samples: usize,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub mean_loss: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Accuracy per true class.
    pub per_class_accuracy: Vec<f64>,
}

/// A batch size for evaluating `model` that keeps memory bounded. A no-grad
/// pass still holds every layer's output until its batch is done, and a
/// convolutional network's outputs are tens of times its input (`deep-cnn`:
/// about 300 KB per image), so networks that view their input as images
/// evaluate 100 images at a time, and others 1000.
pub fn eval_batch_size(model: &Sequential<f32>) -> usize {
    if model.input_shape().len() > 1 {
        100
    } else {
        1000
    }
}

/// Evaluates a classifier in no-grad mode, in batches of `batch_size`.
///
/// # Errors
/// A model whose outputs do not match the dataset's classes, or a zero batch size.
pub fn evaluate(model: &dyn Module<f32>, data: &Dataset, batch_size: usize) -> Result<Evaluation> {
    let classes = nabla_data::DatasetKind::class_names(data.kind()).len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut total_loss = 0.0;
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = data.batch(chunk)?;
        let tape = Tape::new();
        tape.set_grad_enabled(false);
        let logits = model.forward(tape.constant(batch.x))?;
        let loss =
            logits.softmax_cross_entropy(Target::Indices(batch.labels.clone()), Reduction::Sum)?;
        total_loss += loss.item()? as f64;
        let predicted = logits.value().argmax_axis(1)?;
        for (&t, &p) in batch.labels.iter().zip(&predicted) {
            confusion[t][p] += 1;
        }
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let n = data.len().max(1) as f64;
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let total: usize = row.iter().sum();
            if total == 0 {
                0.0
            } else {
                row[c] as f64 / total as f64
            }
        })
        .collect();
    Ok(Evaluation {
        samples: data.len(),
        accuracy: correct as f64 / n,
        mean_loss: total_loss / n,
        confusion,
        per_class_accuracy,
    })
}
