//! Probes: they read every layer without changing a bit of the training,
//! and their warnings show the material's contrast — gradients vanish
//! through a deep sigmoid network with small initial weights, not through
//! the same network with ReLU and He initialisation.

use nabla_data::{embedded_mnist, ImageDataset};
use nabla_nn::{Activation, Init, MlpConfig, Module, Sequential};
use nabla_optim::{Method, OptimizerConfig};
use nabla_tensor::{Rng, Tensor};
use nabla_train::{ProbeConfig, ProbeReport, Silent, StandardLoss, TrainConfig, Trainer};

fn digits(n: usize) -> ImageDataset {
    embedded_mnist()
        .unwrap()
        .train
        .subset(&(0..n).collect::<Vec<_>>())
        .unwrap()
}

fn deep(activation: Activation, init: Init) -> Sequential<f32> {
    MlpConfig::new(784, &[64, 64, 64, 64], 10)
        .activation(activation)
        .with_init(init)
        .init(&mut Rng::seed(1))
        .unwrap()
}

fn train(model: Sequential<f32>, probes: Option<ProbeConfig>) -> Trainer {
    let mut t = Trainer::new(
        model,
        OptimizerConfig::new(Method::Sgd, 0.1).init(),
        StandardLoss::CrossEntropy,
        TrainConfig {
            epochs: 2,
            batch_size: 50,
            seed: 3,
            probes,
            ..Default::default()
        },
    );
    t.fit(&digits(500), None, None, &mut Silent).unwrap();
    t
}

fn last_probe(t: &Trainer) -> &ProbeReport {
    t.history().last().unwrap().probes.last().unwrap()
}

#[test]
fn probing_changes_no_bit_of_the_training() {
    let plain = train(deep(Activation::Relu, Init::He), None);
    let every = ProbeConfig {
        every: Some(3),
        samples: 64,
        ..Default::default()
    };
    let probed = train(deep(Activation::Relu, Init::He), Some(every));
    for ((n, a), (_, b)) in plain
        .model
        .named_params()
        .into_iter()
        .zip(probed.model.named_params())
    {
        assert_eq!(a.value(), b.value(), "{n} differs with probes on");
    }
    for (a, b) in plain.history().iter().zip(probed.history()) {
        assert_eq!(a.train_loss, b.train_loss);
    }
    // 10 steps an epoch: probes at steps 3, 6, 9 and the epoch's end.
    let first = &probed.history()[0].probes;
    let steps: Vec<u64> = first.iter().map(|p| p.step).collect();
    assert_eq!(steps, [3, 6, 9, 10]);
    let report = last_probe(&probed);
    let names: Vec<&str> = report.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names[..2], ["0.weight", "0.bias"]);
    assert_eq!(report.params.len(), 10);
    let acts: Vec<&str> = report.activations.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(acts, ["relu 1", "relu 2", "relu 3", "relu 4"]);
    assert!(report
        .params
        .iter()
        .all(|p| p.update_ratio.is_some() && p.grad_norm > 0.0));
    assert!(report.activations.iter().all(|a| a.dead_fraction.is_some()));
    assert!(plain.history()[0].probes.is_empty());
}

#[test]
fn gradients_vanish_through_deep_sigmoids_with_small_weights_not_through_relu_and_he() {
    let config = Some(ProbeConfig::default());
    let sigmoid = train(
        deep(Activation::Sigmoid, Init::Normal { std: 0.01 }),
        config,
    );
    let report = last_probe(&sigmoid);
    let vanishing: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| w.starts_with("vanishing gradients: 0.weight"))
        .collect();
    assert_eq!(vanishing.len(), 1, "{:#?}", report.warnings);
    // The first layer's gradient is orders of magnitude below the last's.
    let (first, last) = (&report.params[0], &report.params[8]);
    assert!(
        first.grad_norm < 1e-3 * last.grad_norm,
        "{} {}",
        first.grad_norm,
        last.grad_norm
    );

    let relu = train(deep(Activation::Relu, Init::He), config);
    let report = last_probe(&relu);
    assert!(
        report.warnings.iter().all(|w| !w.contains("vanishing")),
        "{:#?}",
        report.warnings
    );
    let (first, last) = (&report.params[0], &report.params[8]);
    assert!(
        first.grad_norm > 1e-2 * last.grad_norm,
        "{} {}",
        first.grad_norm,
        last.grad_norm
    );
}

#[test]
fn dead_relus_and_saturated_units_are_named() {
    // A first layer whose biases keep every unit below zero: all dead.
    let mut net = deep(Activation::Relu, Init::He);
    net.visit_params_mut("", &mut |name, p| {
        if name == "0.bias" {
            p.set(Tensor::full(&[64], -100.0)).unwrap();
        }
    });
    let t = train(net, Some(ProbeConfig::default()));
    let report = last_probe(&t);
    assert_eq!(report.activations[0].dead_fraction, Some(1.0));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("relu 1: 100% of its units are dead")),
        "{:#?}",
        report.warnings
    );
    // Large weights drive sigmoids into their flat tails.
    let big = deep(Activation::Sigmoid, Init::Normal { std: 1.0 });
    let t = train(big, Some(ProbeConfig::default()));
    let report = last_probe(&t);
    assert!(report.activations[0].saturated_fraction.unwrap() > 0.5);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("sigmoid 1: ") && w.contains("saturated")),
        "{:#?}",
        report.warnings
    );
}
