//! The nabla side of each workload.

use anyhow::Result;
use nabla::autograd::Target;
use nabla::nn::{preset, Activation, Init, LayerSpec, MlpConfig, NetSpec, Sequential};
use nabla::optim::{Method, Optimizer, OptimizerConfig};
use nabla::tensor::{gemm_into, Rng, Tensor, Transpose};
use nabla_data::{Batches, ImageDataset};
use nabla_train::{rows_of, BatchTargets, StandardLoss, Stepper};
use std::sync::Arc;
use std::time::Instant;

/// A benchmark workload, named as in the PyTorch script.
pub enum Workload {
    Epoch {
        name: &'static str,
        hidden: &'static [usize],
        activation: Activation,
    },
    Step {
        name: &'static str,
        batch: usize,
    },
    Inference {
        name: &'static str,
        batch: usize,
    },
    /// An epoch of batch 100 of a network given as a layer spec, over the
    /// first `images` training images.
    ConvEpoch {
        name: &'static str,
        spec: &'static str,
        images: usize,
        method: Method,
        lr: f64,
    },
}

/// A median time and the FLOPs the work needs.
pub struct Measured {
    pub seconds: f64,
    pub flops: f64,
}

impl Workload {
    pub fn all() -> Vec<Workload> {
        vec![
            Workload::Epoch {
                name: "epoch 784-100-10 sigmoid",
                hidden: &[100],
                activation: Activation::Sigmoid,
            },
            Workload::Epoch {
                name: "epoch 784-128-64-10 relu",
                hidden: &[128, 64],
                activation: Activation::Relu,
            },
            Workload::Step {
                name: "step batch 1",
                batch: 1,
            },
            Workload::Step {
                name: "step batch 10",
                batch: 10,
            },
            Workload::Step {
                name: "step batch 100",
                batch: 100,
            },
            Workload::Step {
                name: "step batch 1000",
                batch: 1000,
            },
            Workload::Inference {
                name: "inference batch 1",
                batch: 1,
            },
            Workload::Inference {
                name: "inference batch 1000",
                batch: 1000,
            },
            Workload::ConvEpoch {
                name: "epoch lenet (SGD momentum)",
                spec: preset("lenet").expect("a preset"),
                images: 60_000,
                method: Method::Momentum { momentum: 0.9 },
                lr: 0.01,
            },
            Workload::ConvEpoch {
                name: "10k images cnn (Adam)",
                spec: preset("cnn").expect("a preset"),
                images: 10_000,
                method: Method::adam(),
                lr: 0.001,
            },
            Workload::ConvEpoch {
                name: "10k images deep-cnn (Adam)",
                spec: preset("deep-cnn").expect("a preset"),
                images: 10_000,
                method: Method::adam(),
                lr: 0.001,
            },
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Workload::Epoch { name, .. }
            | Workload::Step { name, .. }
            | Workload::Inference { name, .. }
            | Workload::ConvEpoch { name, .. } => name,
        }
    }

    pub fn run(&self, data: &ImageDataset, repeats: usize) -> Result<Measured> {
        match *self {
            Workload::Epoch {
                hidden, activation, ..
            } => {
                let mut net = network(hidden, activation)?;
                let mut opt = OptimizerConfig::new(Method::Sgd, 0.1).init();
                let mut rng = Rng::seed(0);
                let mut stepper = Stepper::new();
                let seconds = median(repeats, || {
                    epoch(&mut stepper, &mut net, &mut opt, data, &mut rng)
                })?;
                Ok(Measured {
                    seconds,
                    flops: data.len() as f64 * train_flops_per_sample(hidden),
                })
            }
            Workload::Step { batch, .. } => {
                let mut net = network(&[100], Activation::Sigmoid)?;
                let mut opt = OptimizerConfig::new(Method::Sgd, 0.1).init();
                let b = data.batch(&(0..batch.min(data.len())).collect::<Vec<_>>())?;
                let labels: Arc<[usize]> = b.labels.into();
                let mut stepper = Stepper::new();
                let steps = (2000 / batch).max(20);
                let seconds = median(repeats, || {
                    for _ in 0..steps {
                        step(&mut stepper, &mut net, &mut opt, &b.x, &labels)?;
                    }
                    Ok(())
                })? / steps as f64;
                Ok(Measured {
                    seconds,
                    flops: batch as f64 * train_flops_per_sample(&[100]),
                })
            }
            Workload::Inference { batch, .. } => {
                let net = network(&[100], Activation::Sigmoid)?;
                let b = data.batch(&(0..batch.min(data.len())).collect::<Vec<_>>())?;
                let calls = (20_000 / batch).max(20);
                let seconds = median(repeats, || {
                    for _ in 0..calls {
                        infer(&net, &b.x)?;
                    }
                    Ok(())
                })? / calls as f64;
                Ok(Measured {
                    seconds,
                    flops: batch as f64 * 2.0 * weights(&[100]),
                })
            }
            Workload::ConvEpoch {
                spec,
                images,
                method,
                lr,
                ..
            } => {
                let net = NetSpec::parse(&[1, 28, 28], spec)?;
                let mut model = net.build::<f32>(Init::He, &mut Rng::seed(1))?;
                let mut opt = OptimizerConfig::new(method, lr).init();
                let subset = data.subset(&(0..images.min(data.len())).collect::<Vec<_>>())?;
                let mut rng = Rng::seed(0);
                let mut stepper = Stepper::new();
                let seconds = median(repeats, || {
                    epoch(&mut stepper, &mut model, &mut opt, &subset, &mut rng)
                })?;
                Ok(Measured {
                    seconds,
                    flops: subset.len() as f64 * conv_train_flops_per_sample(&net)?,
                })
            }
        }
    }
}

/// Training FLOPs per sample of a layer-spec network: for each convolution
/// and dense layer, 2 per multiply-add of forward, of the weight gradient
/// and (but for the first layer) of the input gradient.
fn conv_train_flops_per_sample(net: &NetSpec) -> Result<f64> {
    let mut total = 0.0;
    for (i, p) in net.plan()?.iter().enumerate() {
        let macs = match p.layer {
            LayerSpec::Conv { out, kernel, .. } => {
                (out * p.input[0] * kernel * kernel * p.output[1] * p.output[2]) as f64
            }
            LayerSpec::Linear { out, .. } => (out * p.input[0]) as f64,
            _ => 0.0,
        };
        total += macs * if i == 0 { 4.0 } else { 6.0 };
    }
    Ok(total)
}

fn network(hidden: &[usize], activation: Activation) -> Result<Sequential<f32>> {
    Ok(MlpConfig::new(784, hidden, 10)
        .activation(activation)
        .with_init(Init::Xavier)
        .init(&mut Rng::seed(1))?)
}

/// Multiply-adds per sample of all layers, counted once.
fn weights(hidden: &[usize]) -> f64 {
    let sizes: Vec<usize> = std::iter::once(784)
        .chain(hidden.iter().copied())
        .chain([10])
        .collect();
    sizes.windows(2).map(|p| (p[0] * p[1]) as f64).sum()
}

/// Training FLOPs per sample: forward (2 per weight), the weight gradient (2),
/// and the input gradient (2) for every layer but the first.
fn train_flops_per_sample(hidden: &[usize]) -> f64 {
    let first = 784.0 * *hidden.first().unwrap_or(&10) as f64;
    6.0 * weights(hidden) - 2.0 * first
}

fn median(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// One training step, exactly as the trainer runs it (sharded, in parallel).
pub fn step(
    stepper: &mut Stepper,
    net: &mut Sequential<f32>,
    opt: &mut Optimizer<f32>,
    x: &Tensor<f32>,
    labels: &Arc<[usize]>,
) -> Result<()> {
    let rows = x.dims()[0];
    stepper.step(net, opt, &StandardLoss::CrossEntropy, rows, |r| {
        Ok((
            rows_of(x, r.clone())?,
            BatchTargets::Classes(Target::Shared(labels.clone(), r)),
        ))
    })?;
    Ok(())
}

/// One epoch of batch 100, exactly as the trainer runs it.
fn epoch(
    stepper: &mut Stepper,
    net: &mut Sequential<f32>,
    opt: &mut Optimizer<f32>,
    data: &ImageDataset,
    rng: &mut Rng,
) -> Result<()> {
    let batches = Batches::new(data.len(), 100, false, Some(rng))?;
    stepper.epoch(
        net,
        opt,
        &StandardLoss::CrossEntropy,
        data,
        &batches,
        None,
        |_, _, _, _| Ok(()),
    )?;
    Ok(())
}

/// Inference as a user runs it: the network's `predict`, without a graph.
fn infer(net: &Sequential<f32>, x: &Tensor<f32>) -> Result<Tensor<f32>> {
    Ok(net.predict(x)?)
}

/// nabla's sgemm rate on 1024³ in GFLOP/s (median of `repeats` runs of 10 products).
pub fn sgemm_rate(repeats: usize) -> Result<f64> {
    let mut rng = Rng::seed(3);
    let a: Tensor<f32> = rng.normal(&[1024, 1024], 0.0, 1.0);
    let b: Tensor<f32> = rng.normal(&[1024, 1024], 0.0, 1.0);
    let mut c = Tensor::zeros(&[1024, 1024]);
    let t = median(repeats, || {
        for _ in 0..10 {
            gemm_into(&mut c, &a, Transpose::No, &b, Transpose::No, false)?;
        }
        Ok(())
    })? / 10.0;
    Ok(2.0 * 1024f64.powi(3) / t / 1e9)
}

/// Allocations made by one training step of an epoch after five warm-up
/// steps (the mean): (outside the `gemm` library, inside it).
pub fn allocations_per_step(
    data: &ImageDataset,
    counter: impl Fn() -> (u64, u64),
) -> Result<(f64, f64)> {
    let mut net = network(&[100], Activation::Sigmoid)?;
    let mut opt = OptimizerConfig::new(Method::Sgd, 0.1).init();
    let mut rng = Rng::seed(0);
    let batches = Batches::new(data.len(), 100, false, Some(&mut rng))?;
    let mut stepper = Stepper::new();
    let mut steps = 0;
    let mut before = (0, 0);
    // Steps of a real epoch (shuffled batches gathered by the shards); the
    // count starts after five warm-up steps.
    stepper.epoch(
        &mut net,
        &mut opt,
        &StandardLoss::CrossEntropy,
        data,
        &batches,
        None,
        |b, _, _, _| {
            if b == 4 {
                before = counter();
            }
            steps = b.saturating_sub(4);
            Ok(())
        },
    )?;
    let after = counter();
    let per_step = |a: u64, b: u64| (a - b) as f64 / steps.max(1) as f64;
    Ok((per_step(after.0, before.0), per_step(after.1, before.1)))
}
