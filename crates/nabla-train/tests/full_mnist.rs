//! The long checks: train on the full MNIST set and assert accuracy floors —
//! an MLP, the `cnn` preset (≥ 99.0% within 3 epochs), the `deep-cnn`
//! preset (≥ 99.4%) and 4 epochs of the `best-cnn` recipe (≥ 99.3%), each with the settings of the documented `nabla train`
//! command, so they reproduce its numbers exactly — and the same MLP on the
//! same images written as folders of PNGs, against the IDX run.
//!
//! Marked `#[ignore]` so the default test command stays fast. Run them with
//! the directory holding the four standard files:
//!
//! ```sh
//! NABLA_MNIST_DIR=path/to/mnist cargo test --release -p nabla-train --test full_mnist -- --ignored --test-threads 1
//! ```

use nabla_data::{
    load_image_folder, Augment, Dataset, DatasetKind, ImageDataset, ImageFolderOptions, Splits,
};
use nabla_nn::{preset, Init, MlpConfig, NetSpec};
use nabla_optim::{LrSchedule, Method, OptimizerConfig};
use nabla_tensor::Rng;
use nabla_train::{Silent, StandardLoss, TrainConfig, Trainer};
use std::path::PathBuf;

/// Three epochs of 784-128-64-10 (Adam 1e-3, constant rate, batch 100,
/// seed 1); the test accuracy after the last.
fn three_epochs_of_mlp(train: &dyn Dataset, test: &dyn Dataset) -> f64 {
    let mlp = MlpConfig::new(784, &[128, 64], 10);
    let model = mlp.init::<f32>(&mut Rng::seed(1)).unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 100,
        seed: 1,
        schedule: LrSchedule::Constant,
        ..Default::default()
    };
    let mut trainer = Trainer::new(
        model,
        OptimizerConfig::new(Method::adam(), 1e-3).init(),
        StandardLoss::CrossEntropy,
        config,
    );
    trainer.fit(train, None, Some(test), &mut Silent).unwrap();
    trainer.history().last().unwrap().test_accuracy().unwrap()
}

#[test]
#[ignore = "needs the full MNIST files: set NABLA_MNIST_DIR and pass --ignored"]
fn three_epochs_of_full_mnist_reach_96_percent() {
    let splits = full_mnist();
    let acc = three_epochs_of_mlp(&splits.train, &splits.test);
    println!(
        "full MNIST, 784-128-64-10 relu, Adam 1e-3, 3 epochs: test accuracy {:.2}%",
        100.0 * acc
    );
    assert!(acc >= 0.96, "test accuracy {acc} is below the 96% floor");
}

/// Writes a data set's images as `dir/<class>/<index>.png`.
fn write_folder(data: &ImageDataset, dir: &std::path::Path) {
    for name in data.classes() {
        std::fs::create_dir_all(dir.join(name)).unwrap();
    }
    let (h, w) = data.image_dims();
    for i in 0..data.len() {
        let class = &data.classes()[data.label(i)];
        image::GrayImage::from_raw(w as u32, h as u32, data.pixels(i).to_vec())
            .unwrap()
            .save(dir.join(class).join(format!("{i:05}.png")))
            .unwrap();
    }
}

#[test]
#[ignore = "needs the full MNIST files: set NABLA_MNIST_DIR and pass --ignored"]
fn the_same_images_as_png_folders_train_as_well_as_the_idx_files() {
    let splits = full_mnist();
    let dir = tempfile::tempdir().unwrap();
    write_folder(&splits.train, &dir.path().join("train"));
    write_folder(&splits.test, &dir.path().join("test"));
    let read = |split: &str| {
        load_image_folder(&dir.path().join(split), ImageFolderOptions::default()).unwrap()
    };
    let (train, test) = (read("train"), read("test"));
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.classes(), splits.train.classes());
    assert_eq!(train.sample_shape(), &[1, 28, 28]);
    let folder = three_epochs_of_mlp(&train, &test);
    let idx = three_epochs_of_mlp(&splits.train, &splits.test);
    println!(
        "784-128-64-10, 3 epochs: IDX files {:.2}%, PNG folders {:.2}%",
        100.0 * idx,
        100.0 * folder
    );
    // The folder holds the images sorted by class, so the shuffles differ:
    // not the same bits, but the same accuracy within seed noise.
    assert!(folder >= 0.96, "PNG folders: test accuracy {folder}");
    assert!(
        (folder - idx).abs() < 0.005,
        "IDX {idx} against folders {folder}"
    );
}

fn full_mnist() -> Splits {
    let dir = PathBuf::from(
        std::env::var_os("NABLA_MNIST_DIR")
            .expect("set NABLA_MNIST_DIR to the directory with the MNIST files"),
    );
    let splits = ImageDataset::load_dir(&dir, DatasetKind::Mnist).unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (60_000, 10_000));
    splits
}

/// `nabla train --data-dir DIR --preset NAME --epochs E [--augment …]` with
/// every other flag at its default (He init, Adam 1e-3, cosine decay, batch
/// 100, seed 42); returns the test accuracy after each epoch.
fn train_preset(name: &str, epochs: usize, augment: Option<Augment>) -> Vec<f64> {
    let splits = full_mnist();
    let net = NetSpec::parse(&[1, 28, 28], preset(name).unwrap()).unwrap();
    let model = net.build::<f32>(Init::He, &mut Rng::seed(42)).unwrap();
    let config = TrainConfig {
        epochs,
        batch_size: 100,
        seed: 42,
        schedule: LrSchedule::Cosine {
            t_max: epochs,
            eta_min: 0.0,
        },
        augment,
        ..Default::default()
    };
    let mut trainer = Trainer::new(
        model,
        OptimizerConfig::new(Method::adam(), 1e-3).init(),
        StandardLoss::CrossEntropy,
        config,
    );
    trainer
        .fit(&splits.train, None, Some(&splits.test), &mut Silent)
        .unwrap();
    for m in trainer.history() {
        println!(
            "{name}: epoch {} test accuracy {:.2}% ({:.1} s)",
            m.epoch,
            100.0 * m.test_accuracy().unwrap(),
            m.seconds
        );
    }
    trainer
        .history()
        .iter()
        .map(|m| m.test_accuracy().unwrap())
        .collect()
}

#[test]
#[ignore = "needs the full MNIST files: set NABLA_MNIST_DIR and pass --ignored"]
fn the_cnn_preset_reaches_99_percent_within_3_epochs() {
    let acc = train_preset("cnn", 3, None);
    assert!(
        acc[2] >= 0.99,
        "cnn: test accuracy {} is below 99.0%",
        acc[2]
    );
}

#[test]
#[ignore = "needs the full MNIST files: set NABLA_MNIST_DIR and pass --ignored"]
fn the_deep_cnn_preset_reaches_99_4_percent() {
    let acc = train_preset("deep-cnn", DEEP_CNN_EPOCHS, Some(Augment::default()));
    let last = *acc.last().unwrap();
    assert!(
        last >= 0.994,
        "deep-cnn: test accuracy {last} is below 99.4%"
    );
}

/// Epochs of the documented deep-cnn run.
const DEEP_CNN_EPOCHS: usize = 12;

/// The whole `best-cnn` recipe (`nabla train --preset best-cnn`: shifts of
/// 2 px, turns of 10°, 24 epochs) takes about 15 minutes on 2 cores; CI runs
/// its layers and augmentation for 4 epochs (a cosine over 4), which must
/// reach 99.3% (`deep-cnn` reaches 99.4% in 12). Builds whose gradients
/// round differently have ended these 4 epochs at 99.38–99.40%, so the
/// floor leaves a tenth of a point for rounding; the whole recipe's
/// figures are in `docs/convnets.md`.
#[test]
#[ignore = "needs the full MNIST files: set NABLA_MNIST_DIR and pass --ignored"]
fn four_epochs_of_the_best_cnn_recipe_reach_99_3_percent() {
    let acc = train_preset("best-cnn", 4, Some(Augment::default()));
    let last = *acc.last().unwrap();
    assert!(
        last >= 0.993,
        "best-cnn, 4 epochs: test accuracy {last} is below 99.3%"
    );
}
