//! The long check: trains on the full MNIST set and asserts an accuracy floor.
//!
//! Marked `#[ignore]` so the default test command stays fast. Run it with the
//! directory holding the four standard files:
//!
//! ```sh
//! NABLA_MNIST_DIR=path/to/mnist cargo test --release -p nabla-train --test full_mnist -- --ignored
//! ```

use nabla_data::{Dataset, DatasetKind};
use nabla_nn::{Architecture, MlpConfig, ModelSpec, Preprocessing};
use nabla_optim::{LrSchedule, Method, OptimizerConfig};
use nabla_tensor::Rng;
use nabla_train::{Silent, TrainConfig, Trainer};
use std::path::PathBuf;

#[test]
#[ignore = "needs the full MNIST files: set NABLA_MNIST_DIR and pass --ignored"]
fn three_epochs_of_full_mnist_reach_96_percent() {
    let dir = PathBuf::from(
        std::env::var_os("NABLA_MNIST_DIR")
            .expect("set NABLA_MNIST_DIR to the directory with the MNIST files"),
    );
    let splits = Dataset::load_dir(&dir, DatasetKind::Mnist).unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (60_000, 10_000));
    let mlp = MlpConfig::new(784, &[128, 64], 10);
    let model = mlp.init::<f32>(&mut Rng::seed(1)).unwrap();
    let spec = ModelSpec {
        architecture: Architecture::mlp(&mlp),
        dataset: "mnist".into(),
        classes: DatasetKind::Mnist
            .class_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        preprocessing: Preprocessing::default(),
    };
    let config = TrainConfig {
        epochs: 3,
        batch_size: 100,
        seed: 1,
        schedule: LrSchedule::Constant,
        ..Default::default()
    };
    let mut trainer = Trainer::new(
        model,
        spec,
        OptimizerConfig::new(Method::adam(), 1e-3).init(),
        config,
    );
    trainer
        .fit(&splits.train, None, Some(&splits.test), &mut Silent)
        .unwrap();
    let acc = trainer.history.last().unwrap().test_accuracy.unwrap();
    println!(
        "full MNIST, 784-128-64-10 relu, Adam 1e-3, 3 epochs: test accuracy {:.2}%",
        100.0 * acc
    );
    assert!(acc >= 0.96, "test accuracy {acc} is below the 96% floor");
}
