//! 07 — Your own network on your own data: a module by `#[derive(Module)]`,
//! trained on a CSV table with the trainer, saved, loaded and used.
//!
//! The table is Fisher's iris measurements (`data/iris.csv`, 150 flowers, 4
//! measurements, 3 species). A fifth of the rows is held out for the test,
//! a tenth of the rest for validation, both seeded; the features are
//! standardised with the training rows' statistics only.
//!
//! Run: `cargo run --example 07_custom_module`

use nabla::data::{Dataset, Standardizer, Table, Task};
use nabla::prelude::*;
use std::path::{Path, PathBuf};

/// Four measurements in, a score per species out. The derive writes the
/// parameter visitors (`fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`,
/// as PyTorch names them) and everything else that only walks fields;
/// `forward` is the network's own.
#[derive(Module)]
struct IrisNet {
    fc1: Linear,
    fc2: Linear,
}

impl IrisNet {
    fn new(hidden: usize, classes: usize, rng: &mut Rng) -> Self {
        IrisNet {
            fc1: Linear::new(4, hidden, Init::He, rng),
            fc2: Linear::new(hidden, classes, Init::Xavier, rng),
        }
    }

    fn forward<'t>(&self, x: Var<'t, f32>) -> nabla::autograd::Result<Var<'t, f32>> {
        self.fc2.forward(self.fc1.forward(x)?.relu()?)
    }
}

/// Hidden units.
const HIDDEN: usize = 32;

/// The shipped table, from the workspace root.
pub fn iris_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/iris.csv")
}

/// What the example measured.
pub struct Outcome {
    /// Test accuracy of the trained network.
    pub accuracy: f64,
    /// Test accuracy of the same network saved and loaded into a fresh one.
    pub accuracy_after_loading: f64,
    /// Held-out rows.
    pub test_rows: usize,
    /// The species predicted for the first test row, and its true species.
    pub first: (String, String),
}

/// Trains for `epochs` and saves into `dir`.
pub fn run(epochs: usize, dir: &Path) -> Result<Outcome, Box<dyn std::error::Error>> {
    let table = Table::read(&iris_path())?;
    let data = table.to_data("species", None)?; // text classes: classification
    let Task::Classify { classes } = data.data.task().clone() else {
        return Err("iris is a classification table".into());
    };
    let (rest, mut test) = data.data.split(0.2, 2026)?;
    let (mut train, mut val) = rest.split(0.1, 2027)?;
    let scaler = Standardizer::fit(train.inputs().data(), data.features.len())?;
    for set in [&mut train, &mut val, &mut test] {
        set.standardize_inputs(&scaler)?;
    }

    let net = IrisNet::new(HIDDEN, classes.len(), &mut Rng::seed(7));
    let config = TrainConfig {
        epochs,
        batch_size: 16,
        seed: 7,
        schedule: LrSchedule::Cosine {
            t_max: epochs,
            eta_min: 0.0,
        },
        ..Default::default()
    };
    let optimizer = OptimizerConfig::new(Method::adam(), 3e-3).init();
    let mut trainer = Trainer::new(net, optimizer, StandardLoss::CrossEntropy, config);
    trainer.fit(&train, Some(&val), Some(&test), &mut Silent)?;
    let accuracy = trainer.evaluate(&test)?.score.accuracy.unwrap_or(0.0);

    // One call to save, one to load: the state dict by name, checked strictly.
    let path = dir.join("iris.safetensors");
    save_state(&path, &trainer.model, Default::default())?;
    let mut loaded = IrisNet::new(HIDDEN, classes.len(), &mut Rng::seed(99));
    load_state(&path, &mut loaded)?;
    let accuracy_after_loading = evaluate(&loaded, &test, 100)?.score.accuracy.unwrap_or(0.0);

    // Predict the first test row: standardised features in, scores out.
    let row = Tensor::from_vec(test.inputs().data()[..4].to_vec(), &[1, 4])?;
    let scores = loaded.predict(&row)?;
    let best = scores.argmax_axis(1)?[0];
    let truth = test.targets().data()[0] as usize;
    Ok(Outcome {
        accuracy,
        accuracy_after_loading,
        test_rows: test.len(),
        first: (classes[best].clone(), classes[truth].clone()),
    })
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("nabla-07-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = run(200, &dir)?;
    println!(
        "iris: 4-{HIDDEN}-3 network, Adam 3e-3 with cosine decay, 200 epochs of batches of 16"
    );
    println!(
        "test accuracy {:.2}% on {} held-out flowers; after save and load {:.2}%",
        100.0 * out.accuracy,
        out.test_rows,
        100.0 * out.accuracy_after_loading
    );
    println!(
        "first test flower: predicted {}, truly {}",
        out.first.0, out.first.1
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
