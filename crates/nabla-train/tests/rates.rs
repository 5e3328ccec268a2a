//! The learning rate over a run: a linear warm-up per step, and the range
//! test that suggests a rate and leaves the weights as they were.

use nabla_data::{embedded_mnist, ImageDataset};
use nabla_nn::{state_dict, MlpConfig, Sequential};
use nabla_optim::{Method, OptimizerConfig};
use nabla_tensor::Rng;
use nabla_train::{lr_find, LrFindConfig, Silent, StandardLoss, TrainConfig, Trainer};

fn digits(n: usize) -> ImageDataset {
    embedded_mnist()
        .unwrap()
        .train
        .subset(&(0..n).collect::<Vec<_>>())
        .unwrap()
}

fn net() -> Sequential<f32> {
    MlpConfig::new(784, &[32], 10)
        .init(&mut Rng::seed(2))
        .unwrap()
}

fn weights_after(
    lr: f64,
    warmup_steps: usize,
    samples: usize,
) -> Vec<(String, nabla_tensor::Tensor<f32>)> {
    let mut t = Trainer::new(
        net(),
        OptimizerConfig::new(Method::Sgd, lr).init(),
        StandardLoss::CrossEntropy,
        TrainConfig {
            epochs: 1,
            batch_size: 100,
            warmup_steps,
            ..Default::default()
        },
    );
    t.fit(&digits(samples), None, None, &mut Silent).unwrap();
    state_dict(&t.model)
}

#[test]
fn warm_up_scales_the_first_steps_linearly() {
    // One step with a warm-up of 4 steps is one step at a quarter of the rate.
    assert_eq!(weights_after(0.1, 4, 100), weights_after(0.025, 0, 100));
    assert_ne!(weights_after(0.1, 4, 100), weights_after(0.1, 0, 100));
    // After the warm-up the rate is the schedule's again: with a warm-up of
    // one step nothing changes.
    assert_eq!(weights_after(0.1, 1, 300), weights_after(0.1, 0, 300));
}

#[test]
fn the_range_test_suggests_a_rate_and_restores_the_weights() {
    let data = digits(3000);
    let mut model = net();
    let before = state_dict(&model);
    let found = lr_find(
        &mut model,
        OptimizerConfig::new(Method::Sgd, 0.1),
        &StandardLoss::CrossEntropy,
        &data,
        LrFindConfig {
            steps: 30,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(state_dict(&model), before, "the weights are restored");
    assert!(found.points.len() >= 20 && found.points.len() <= 30);
    // The rates grow by the same factor every step, from 1e-7.
    let p = &found.points;
    assert!((p[0].lr - 1e-7).abs() < 1e-20);
    let ratio = p[1].lr / p[0].lr;
    assert!(p
        .windows(2)
        .all(|w| (w[1].lr / w[0].lr - ratio).abs() < 1e-9));
    let lr = found.suggestion.expect("a falling curve suggests a rate");
    assert!((1e-3..=2.0).contains(&lr), "suggested {lr}");
    let bad = lr_find(
        &mut model,
        OptimizerConfig::new(Method::Sgd, 0.1),
        &StandardLoss::CrossEntropy,
        &data,
        LrFindConfig {
            start: 1.0,
            end: 0.1,
            ..Default::default()
        },
    );
    assert!(bad.is_err());
}
