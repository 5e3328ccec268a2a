//! 08 — Regression: the identity output and the squared error.
//!
//! The material's regression case: the network's last layer is left as it
//! is (no softmax) and the loss is the squared error `E = ½·Σ(y − t)²`,
//! here averaged over the batch and written as a closure. The data are the
//! 442 diabetes patients of Efron et al. (2004), `data/diabetes.csv`: ten
//! baseline measurements, and the disease's progression a year later to
//! predict. A linear model fitted exactly by least squares on the same
//! training rows is the baseline; the example prints the loss curve.
//!
//! Run: `cargo run --example 08_regression`

use nabla::data::{Standardizer, Table, TaskChoice, TensorDataset};
use nabla::prelude::*;
use nabla::train::EpochMetrics;
use std::path::{Path, PathBuf};

/// The shipped table, from the workspace root.
pub fn diabetes_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/diabetes.csv")
}

/// Test figures in the target's own units.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    /// Root mean squared error.
    pub rmse: f64,
    /// Coefficient of determination.
    pub r2: f64,
}

/// What the example measured.
pub struct Outcome {
    /// The network.
    pub network: Fit,
    /// Least squares on the same features.
    pub linear: Fit,
    /// The loss of every epoch.
    pub history: Vec<EpochMetrics>,
}

/// RMSE and R² of predictions `y` against targets `t`.
fn fit_of(y: &[f64], t: &[f64]) -> Fit {
    let n = t.len() as f64;
    let mean = t.iter().sum::<f64>() / n;
    let sse: f64 = y.iter().zip(t).map(|(a, b)| (a - b).powi(2)).sum();
    let sst: f64 = t.iter().map(|b| (b - mean).powi(2)).sum();
    Fit {
        rmse: (sse / n).sqrt(),
        r2: 1.0 - sse / sst,
    }
}

/// Least squares with an intercept, by the normal equations `(XᵀX) w = Xᵀt`
/// solved by Gaussian elimination in f64: the exact linear baseline.
fn least_squares(x: &[f32], t: &[f32], features: usize) -> Vec<f64> {
    let k = features + 1;
    let mut a = vec![0.0f64; k * (k + 1)];
    for (row, &target) in x.chunks(features).zip(t) {
        let v: Vec<f64> = std::iter::once(1.0)
            .chain(row.iter().map(|&x| f64::from(x)))
            .collect();
        for i in 0..k {
            for j in 0..k {
                a[i * (k + 1) + j] += v[i] * v[j];
            }
            a[i * (k + 1) + k] += v[i] * f64::from(target);
        }
    }
    for c in 0..k {
        let pivot = (c..k)
            .max_by(|&p, &q| {
                a[p * (k + 1) + c]
                    .abs()
                    .total_cmp(&a[q * (k + 1) + c].abs())
            })
            .unwrap_or(c);
        for j in 0..=k {
            a.swap(c * (k + 1) + j, pivot * (k + 1) + j);
        }
        for r in 0..k {
            if r != c {
                let f = a[r * (k + 1) + c] / a[c * (k + 1) + c];
                for j in c..=k {
                    a[r * (k + 1) + j] -= f * a[c * (k + 1) + j];
                }
            }
        }
    }
    (0..k)
        .map(|i| a[i * (k + 1) + k] / a[i * (k + 1) + i])
        .collect()
}

/// Trains for `epochs`; returns the network's and the baseline's test figures.
pub fn run(epochs: usize) -> Result<Outcome, Box<dyn std::error::Error>> {
    let table = Table::read(&diabetes_path())?;
    let data = table.to_data("progression", Some(TaskChoice::Regress))?;
    let features = data.features.len();
    let (rest, mut test) = data.data.split(0.2, 2026)?;
    let (mut train, mut val) = rest.split(0.1, 2027)?;
    // Inputs and target standardised with the training rows' statistics.
    let inputs = Standardizer::fit(train.inputs().data(), features)?;
    let target = Standardizer::fit(train.targets().data(), 1)?;
    for set in [&mut train, &mut val, &mut test] {
        set.standardize_inputs(&inputs)?;
        set.standardize_targets(&target)?;
    }
    let in_units = |set: &TensorDataset, y: &[f32]| -> Result<Fit, Box<dyn std::error::Error>> {
        let (mut y, mut t) = (y.to_vec(), set.targets().data().to_vec());
        target.invert(&mut y)?;
        target.invert(&mut t)?;
        let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
        Ok(fit_of(&f(y), &f(t)))
    };

    // The material's E = ½·Σ(y − t)², averaged over the samples of a batch.
    let half_squared_error = loss_fn(|y, t| {
        let n = y.shape().dims()[0] as f64;
        Ok(loss::sum_squared_error(y, t.values()?)?.mul_scalar(1.0 / n)?)
    });
    let net = MlpConfig::new(features, &[32], 1)
        .activation(Activation::Tanh)
        .with_init(Init::Xavier)
        .init::<f32>(&mut Rng::seed(5))?;
    let config = TrainConfig {
        epochs,
        batch_size: 32,
        seed: 5,
        schedule: LrSchedule::Cosine {
            t_max: epochs,
            eta_min: 0.0,
        },
        ..Default::default()
    };
    let optimizer = OptimizerConfig::new(Method::adam(), 3e-3)
        .weight_decay(1e-3)
        .init();
    let mut trainer = Trainer::new(net, optimizer, half_squared_error, config);
    trainer.fit(&train, Some(&val), Some(&test), &mut Silent)?;
    let network = in_units(&test, trainer.model.predict(test.inputs())?.data())?;

    let w = least_squares(train.inputs().data(), train.targets().data(), features);
    let linear_y: Vec<f32> = test
        .inputs()
        .data()
        .chunks(features)
        .map(|row| {
            (w[0]
                + row
                    .iter()
                    .zip(&w[1..])
                    .map(|(&x, w)| f64::from(x) * w)
                    .sum::<f64>()) as f32
        })
        .collect();
    let linear = in_units(&test, &linear_y)?;
    Ok(Outcome {
        network,
        linear,
        history: trainer.history().to_vec(),
    })
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs = 150;
    let out = run(epochs)?;
    println!(
        "diabetes: 10-32-1 tanh network, loss ½·Σ(y − t)² per sample, Adam 3e-3, {epochs} epochs"
    );
    println!("loss curve (training loss, standardised units; validation RMSE):");
    let max = out.history.iter().map(|m| m.train_loss).fold(0.0, f64::max);
    for m in out
        .history
        .iter()
        .filter(|m| m.epoch == 1 || m.epoch % 10 == 0)
    {
        let bar = "#".repeat((40.0 * m.train_loss / max).round() as usize);
        let val = m.val.as_ref().and_then(|s| s.rmse).unwrap_or(f64::NAN);
        println!(
            "  epoch {:>3}  {:.4}  val {:.3}  {bar}",
            m.epoch, m.train_loss, val
        );
    }
    println!(
        "test: network RMSE {:.1}, R² {:.3}; least squares RMSE {:.1}, R² {:.3}",
        out.network.rmse, out.network.r2, out.linear.rmse, out.linear.r2
    );
    Ok(())
}
