//! The moving average of the weights: it changes no bit of training, the
//! run hands back the average, and an interrupted run resumes it exactly.

use nabla_data::{embedded_mnist, ImageDataset};
use nabla_nn::{MlpConfig, Module, Sequential};
use nabla_optim::{Method, OptimizerConfig};
use nabla_tensor::{Rng, Tensor};
use nabla_train::{load_checkpoint, Silent, StandardLoss, TrainConfig, TrainError, Trainer};
use std::path::Path;

fn data() -> ImageDataset {
    let s = embedded_mnist().unwrap();
    s.train.subset(&(0..600).collect::<Vec<_>>()).unwrap()
}

fn mlp() -> Sequential<f32> {
    MlpConfig::new(784, &[32], 10)
        .init::<f32>(&mut Rng::seed(5))
        .unwrap()
}

fn config(epochs: usize, average: Option<f64>, checkpoint: &Path) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 50,
        seed: 3,
        weight_average: average,
        checkpoint: Some(checkpoint.to_path_buf()),
        ..Default::default()
    }
}

fn opt() -> OptimizerConfig {
    OptimizerConfig::new(Method::adam(), 0.01)
}

fn weights(model: &dyn Module<f32>) -> Vec<Tensor<f32>> {
    model
        .named_params()
        .into_iter()
        .map(|(_, p)| p.value().clone())
        .collect()
}

#[test]
fn the_average_changes_no_step_and_is_what_the_run_hands_back() {
    let train = data();
    let dir = tempfile::tempdir().unwrap();
    let plain_ckpt = dir.path().join("plain.ckpt");
    let mut plain = Trainer::new(
        mlp(),
        opt().init(),
        StandardLoss::CrossEntropy,
        config(3, None, &plain_ckpt),
    );
    plain.fit(&train, None, Some(&train), &mut Silent).unwrap();
    let averaged_ckpt = dir.path().join("averaged.ckpt");
    let mut averaged = Trainer::new(
        mlp(),
        opt().init(),
        StandardLoss::CrossEntropy,
        config(3, Some(0.9), &averaged_ckpt),
    );
    averaged
        .fit(&train, None, Some(&train), &mut Silent)
        .unwrap();

    // Training saw the same weights: the same losses, and the checkpoint's
    // trained weights are the plain run's, bit for bit.
    for (p, a) in plain.history().iter().zip(averaged.history()) {
        assert_eq!(p.train_loss, a.train_loss);
    }
    let ckpt = load_checkpoint(&averaged_ckpt).unwrap();
    let trained = weights(&plain.model);
    let names: Vec<String> = plain
        .model
        .named_params()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for (name, w) in names.iter().zip(&trained) {
        assert_eq!(&ckpt.model[name], w, "{name}");
    }
    // The model handed back is the average the checkpoint keeps beside them,
    // and it was what the epochs were evaluated with.
    let avg = ckpt.run.average.expect("the checkpoint keeps the average");
    assert_eq!((avg.decay, avg.updates), (0.9, 36));
    assert_eq!(weights(&averaged.model), avg.params);
    assert_ne!(weights(&averaged.model), trained);
    let test = averaged.history()[2].test.as_ref().unwrap();
    assert_eq!(
        test.accuracy,
        averaged.evaluate(&train).unwrap().score.accuracy
    );
}

#[test]
fn an_interrupted_run_resumes_its_average_exactly() {
    let train = data();
    let dir = tempfile::tempdir().unwrap();
    let straight_ckpt = dir.path().join("straight.ckpt");
    let mut straight = Trainer::new(
        mlp(),
        opt().init(),
        StandardLoss::CrossEntropy,
        config(3, Some(0.95), &straight_ckpt),
    );
    straight.fit(&train, None, None, &mut Silent).unwrap();

    let ckpt = dir.path().join("interrupted.ckpt");
    let mut first = Trainer::new(
        mlp(),
        opt().init(),
        StandardLoss::CrossEntropy,
        config(1, Some(0.95), &ckpt),
    );
    first.fit(&train, None, None, &mut Silent).unwrap();
    drop(first);
    let (mut resumed, _) = Trainer::resume(
        mlp(),
        opt().init(),
        StandardLoss::CrossEntropy,
        config(3, Some(0.95), &ckpt),
        load_checkpoint(&ckpt).unwrap(),
    )
    .unwrap();
    resumed.fit(&train, None, None, &mut Silent).unwrap();
    assert_eq!(weights(&straight.model), weights(&resumed.model));

    // A second `fit` on the same trainer trains on from the trained
    // weights, not from the average it handed back.
    let mut more = Trainer::new(
        mlp(),
        opt().init(),
        StandardLoss::CrossEntropy,
        config(1, Some(0.95), &dir.path().join("more.ckpt")),
    );
    more.fit(&train, None, None, &mut Silent).unwrap();
    more.config.epochs = 3;
    more.fit(&train, None, None, &mut Silent).unwrap();
    assert_eq!(weights(&straight.model), weights(&more.model));
}

#[test]
fn a_decay_outside_zero_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for decay in [0.0, 1.0, f64::NAN] {
        let mut t = Trainer::new(
            mlp(),
            opt().init(),
            StandardLoss::CrossEntropy,
            config(1, Some(decay), &dir.path().join("x.ckpt")),
        );
        let err = t.fit(&data(), None, None, &mut Silent).unwrap_err();
        assert!(matches!(err, TrainError::Config(_)), "{err}");
        assert!(err.to_string().contains("decay"), "{err}");
    }
}
