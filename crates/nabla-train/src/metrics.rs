//! What is measured: per-epoch metrics and a full evaluation, for classes
//! (accuracy, cross-entropy, confusion) and for values (RMSE, MAE, R²).

use crate::{Result, TrainError};
use nabla_autograd::{Reduction, Tape, Target};
use nabla_data::{class_labels, gather_inputs, gather_targets, Dataset, ShiftViews, Task};
use nabla_nn::{Module, Sequential};
use nabla_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How well a model does on a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Mean cross-entropy (classes) or mean squared error (values).
    pub loss: f64,
    /// Fraction classified correctly (classes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Root mean squared error (values), in the data set's units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Mean absolute error (values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Coefficient of determination `1 − SSE/SST` (values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
}

impl Score {
    /// The number early stopping maximises: the accuracy, or minus the RMSE.
    pub fn selection(&self) -> f64 {
        match (self.accuracy, self.rmse) {
            (Some(a), _) => a,
            (None, Some(r)) => -r,
            (None, None) => -self.loss,
        }
    }
}

/// One epoch's record (also the JSON line written per epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Accuracy on the training batches as they were seen (weights moving), for classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f64>,
    /// The held-out validation set, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<Score>,
    /// The test set, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Score>,
    /// Learning rate used in the epoch.
    pub lr: f64,
    /// Wall time of the training part of the epoch, in seconds.
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_second: f64,
    /// Probes taken in the epoch (every K steps, if asked, and at its end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<crate::ProbeReport>,
}

impl EpochMetrics {
    /// Validation accuracy, for classes.
    pub fn val_accuracy(&self) -> Option<f64> {
        self.val.as_ref().and_then(|s| s.accuracy)
    }

    /// Test accuracy, for classes.
    pub fn test_accuracy(&self) -> Option<f64> {
        self.test.as_ref().and_then(|s| s.accuracy)
    }
}

/// A model's performance on a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Samples evaluated.
    pub samples: usize,
    /// The scores.
    #[serde(flatten)]
    pub score: Score,
    /// `confusion[true][predicted]` counts (classes; empty for values).
    pub confusion: Vec<Vec<usize>>,
    /// Accuracy per true class (classes; empty for values).
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

/// Class probabilities (the softmax of the logits) of a classifier for a
/// batch of prepared inputs, by inference without a graph.
///
/// # Errors
/// Inputs the model cannot take.
pub fn probabilities(model: &dyn Module<f32>, x: &Tensor<f32>) -> Result<Tensor<f32>> {
    use nabla_autograd::Op;
    let logits = model.predict(x)?;
    Ok(nabla_autograd::ops::softmax::Softmax.forward(&[&logits])?)
}

/// Evaluates a model in no-grad mode, in batches of `batch_size`: accuracy,
/// cross-entropy and the confusion matrix for classes; MSE, RMSE, MAE and R²
/// for values.
///
/// # Errors
/// A model whose outputs do not fit the data set's classes or values, or a
/// data error.
pub fn evaluate(
    model: &dyn Module<f32>,
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<Evaluation> {
    evaluate_views(model, data, batch_size, None)
}

/// [`evaluate`], with test-time augmentation when `views` are given: the
/// model sees every view of each input and its answers are averaged (class
/// probabilities, or values), one forward pass per view.
///
/// # Errors
/// As [`evaluate`]; also inputs that are not images of the views' size.
pub fn evaluate_views(
    model: &dyn Module<f32>,
    data: &dyn Dataset,
    batch_size: usize,
    views: Option<&ShiftViews>,
) -> Result<Evaluation> {
    let outputs = data.task().model_outputs();
    let mut acc = Accumulator::new(data.task());
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let x = gather_inputs(data, chunk)?;
        let tape = Tape::new();
        tape.set_grad_enabled(false);
        let y = match views {
            None => model.forward(tape.constant(x))?,
            Some(v) => {
                let averaged = average_over_views(model, &x, v, data.task())?;
                tape.constant(averaged)
            }
        };
        let dims = y.shape().dims().to_vec();
        if dims != [chunk.len(), outputs] {
            return Err(TrainError::Config(format!(
                "the model gives outputs of shape {dims:?} for {} samples; the data set needs [{}, {outputs}] ({})",
                chunk.len(),
                chunk.len(),
                match data.task() {
                    Task::Classify { classes } => format!("{} classes", classes.len()),
                    Task::Regress { outputs } => format!("{outputs} value(s) per sample"),
                }
            )));
        }
        match data.task() {
            Task::Classify { .. } => {
                let labels = class_labels(data, chunk)?;
                let loss =
                    y.softmax_cross_entropy(Target::Indices(labels.clone()), Reduction::Sum)?;
                acc.loss += loss.item()? as f64;
                let predicted = y.value().argmax_axis(1)?;
                for (&t, &p) in labels.iter().zip(&predicted) {
                    acc.confusion[t][p] += 1;
                }
            }
            Task::Regress { .. } => {
                let t = gather_targets(data, chunk)?;
                acc.add_values(y.value().data(), t.data(), outputs);
            }
        }
    }
    Ok(acc.finish(data.len()))
}

/// The class probabilities of a classifier for a batch, averaged over the
/// views of each input (one forward pass per view).
///
/// # Errors
/// Inputs that are not images of the views' size, or that the model cannot take.
pub fn view_probabilities(
    model: &dyn Module<f32>,
    x: &Tensor<f32>,
    views: &ShiftViews,
) -> Result<Tensor<f32>> {
    mean_over_views(views, x, |moved| probabilities(model, moved))
}

/// The model's answers for a batch averaged over the views: for classes
/// the log of the mean probabilities (a logit whose softmax is that mean,
/// as [`Ensemble`](nabla_nn::Ensemble) gives), for values the mean values.
fn average_over_views(
    model: &dyn Module<f32>,
    x: &Tensor<f32>,
    views: &ShiftViews,
    task: &Task,
) -> Result<Tensor<f32>> {
    if let Task::Regress { .. } = task {
        return mean_over_views(views, x, |moved| Ok(model.predict(moved)?));
    }
    let mut mean = view_probabilities(model, x, views)?;
    mean.data_mut()
        .iter_mut()
        .for_each(|p| *p = (*p + 1e-10).ln());
    Ok(mean)
}

/// The mean of `answer` over the views of `x`.
fn mean_over_views(
    views: &ShiftViews,
    x: &Tensor<f32>,
    answer: impl Fn(&Tensor<f32>) -> Result<Tensor<f32>>,
) -> Result<Tensor<f32>> {
    let mut sum: Option<Tensor<f32>> = None;
    for &(dy, dx) in views.shifts() {
        let a = answer(&views.shift(x, dy, dx)?)?;
        match &mut sum {
            None => sum = Some(a),
            Some(s) if s.dims() == a.dims() => s
                .data_mut()
                .iter_mut()
                .zip(a.data())
                .for_each(|(s, a)| *s += a),
            Some(s) => {
                return Err(TrainError::Config(format!(
                    "the model's outputs change shape between views: {} and {}",
                    s.shape(),
                    a.shape()
                )))
            }
        }
    }
    let mut mean = sum.ok_or_else(|| TrainError::Config("no test-time views".into()))?;
    let k = views.len() as f32;
    mean.data_mut().iter_mut().for_each(|v| *v /= k);
    Ok(mean)
}

/// Sums over the batches of an evaluation.
struct Accumulator {
    classes: bool,
    loss: f64,
    confusion: Vec<Vec<usize>>,
    sse: f64,
    sae: f64,
    /// Per output: Σt and Σt².
    sums: Vec<(f64, f64)>,
}

impl Accumulator {
    fn new(task: &Task) -> Self {
        let (classes, n) = match task {
            Task::Classify { classes } => (true, classes.len()),
            Task::Regress { outputs } => (false, *outputs),
        };
        Accumulator {
            classes,
            loss: 0.0,
            confusion: if classes {
                vec![vec![0; n]; n]
            } else {
                Vec::new()
            },
            sse: 0.0,
            sae: 0.0,
            sums: if classes {
                Vec::new()
            } else {
                vec![(0.0, 0.0); n]
            },
        }
    }

    fn add_values(&mut self, y: &[f32], t: &[f32], outputs: usize) {
        for (k, (&y, &t)) in y.iter().zip(t).enumerate() {
            let (y, t) = (f64::from(y), f64::from(t));
            self.sse += (y - t).powi(2);
            self.sae += (y - t).abs();
            let s = &mut self.sums[k % outputs.max(1)];
            s.0 += t;
            s.1 += t * t;
        }
    }

    fn finish(self, samples: usize) -> Evaluation {
        let n = samples.max(1) as f64;
        if self.classes {
            let correct: usize = (0..self.confusion.len())
                .map(|c| self.confusion[c][c])
                .sum();
            let per_class_accuracy = self
                .confusion
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
            return Evaluation {
                samples,
                score: Score {
                    loss: self.loss / n,
                    accuracy: Some(correct as f64 / n),
                    rmse: None,
                    mae: None,
                    r2: None,
                },
                confusion: self.confusion,
                per_class_accuracy,
            };
        }
        let values = n * self.sums.len().max(1) as f64;
        let sst: f64 = self.sums.iter().map(|(s, s2)| s2 - s * s / n).sum();
        let mse = self.sse / values;
        Evaluation {
            samples,
            score: Score {
                loss: mse,
                accuracy: None,
                rmse: Some(mse.sqrt()),
                mae: Some(self.sae / values),
                r2: Some(if sst > 0.0 { 1.0 - self.sse / sst } else { 0.0 }),
            },
            confusion: Vec::new(),
            per_class_accuracy: Vec::new(),
        }
    }
}
