//! The defects a reliability run found, tried as a hostile (or unlucky) user
//! would: each is one clean line now, or a quiet exit, never a panic.

mod common;

use common::{fails_with, nabla, stderr, stdout};
use nabla::nn::file::{atomic_write, encode_tensors, read_tensors};
use std::path::{Path, PathBuf};

/// A model of 784-2-10 trained for one epoch on the embedded digits: its
/// first layer has fewer outputs than a vector has lanes.
fn narrow_model(dir: &Path) -> PathBuf {
    let out = dir.join("h2.safetensors");
    let o = nabla(
        &[
            "train",
            "--hidden",
            "2",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

/// A drawing whose ink, once centred by its centre of mass, reaches the
/// bottom-right corner of the 28×28 digit: a heavy blob at the top left
/// and a thin stroke down to the far corner.
fn corner_drawing(path: &Path) {
    let img = image::GrayImage::from_fn(100, 100, |x, y| {
        let blob = x < 40 && y < 40;
        let stroke = x == y || x == y + 1;
        image::Luma([if blob || stroke { 255 } else { 0 }])
    });
    img.save(path).unwrap();
}

#[test]
fn predict_with_a_two_unit_layer_on_ink_in_the_corner() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = narrow_model(d);
    corner_drawing(&d.join("corner.png"));
    let o = nabla(
        &["predict", "--model", model.to_str().unwrap(), "corner.png"],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("corner.png: "), "{}", stdout(&o));
}

#[test]
fn non_finite_weights_are_refused_on_load_and_can_be_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = narrow_model(d);
    let (mut tensors, metadata) = read_tensors::<f32>(&model).unwrap();
    tensors.get_mut("0.weight").unwrap().data_mut()[5] = f32::NAN;
    let named: Vec<(String, &_)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    let nan = d.join("nan.safetensors");
    atomic_write(&nan, &encode_tensors(&nan, &named, metadata).unwrap()).unwrap();
    let m = nan.to_str().unwrap();
    corner_drawing(&d.join("digit.png"));
    let needle = "tensor '0.weight' holds NaN at index 5";
    fails_with(&nabla(&["predict", "--model", m, "digit.png"], d), needle);
    fails_with(&nabla(&["eval", "--model", m], d), needle);
    fails_with(&nabla(&["gradcheck", "--model", m], d), needle);
    fails_with(&nabla(&["inspect", "--model", m], d), needle);
    fails_with(
        &nabla(
            &["train", "--init-weights", m, "--epochs", "1", "--quiet"],
            d,
        ),
        needle,
    );
    assert!(!d.join("model.safetensors").exists(), "nothing was trained");
    let o = nabla(&["inspect", "--model", m, "--allow-non-finite"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 not finite"), "{}", stdout(&o));
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = narrow_model(d);
    corner_drawing(&d.join("digit.png"));
    // `true` reads nothing and exits: every line nabla prints meets a closed pipe.
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#""$0" predict --model "$1" --json digit.png digit.png digit.png 2> err.txt | true; "$0" eval --model "$1" 2>> err.txt | true"#)
        .arg(env!("CARGO_BIN_EXE_nabla"))
        .arg(&model)
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = std::fs::read_to_string(d.join("err.txt")).unwrap();
    assert!(
        !err.contains("panicked")
            && !err.contains("Broken pipe")
            && !err.contains("internal error"),
        "{err}"
    );
}

#[test]
fn errors_come_before_training_once_and_name_what_the_user_gave() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An --out that is a directory is refused before the run, not after it.
    std::fs::create_dir(d.join("models")).unwrap();
    fails_with(
        &nabla(&["train", "--epochs", "1", "--out", "models"], d),
        "--out models: is a directory",
    );
    fails_with(
        &nabla(&["train", "--epochs", "1", "--checkpoint", "models"], d),
        "--checkpoint models: is a directory",
    );
    // An OS error is said once.
    let o = nabla(&["eval", "--model", "absent.safetensors"], d);
    fails_with(&o, "absent.safetensors");
    assert_eq!(
        stderr(&o).matches("No such file or directory").count(),
        1,
        "{}",
        stderr(&o)
    );
    // A checkpoint is not a model, and the message says what to do with it.
    let model = narrow_model(d);
    let ckpt = format!("{}.ckpt", model.display());
    for command in ["eval", "inspect"] {
        fails_with(
            &nabla(&[command, "--model", &ckpt], d),
            "this is a checkpoint of a training run, not a model",
        );
    }
    // An image's format comes from its bytes, not its name.
    corner_drawing(&d.join("drawing.png"));
    std::fs::rename(d.join("drawing.png"), d.join("drawing.dat")).unwrap();
    let o = nabla(
        &["predict", "--model", model.to_str().unwrap(), "drawing.dat"],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // No temporary file is left beside the model.
    let temps: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

/// What a new user notices first: numbers as written by hand, the data
/// sets in `download --help`.
#[test]
fn first_run_cosmetics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = nabla(
        &["train", "--lr", "1e30", "--epochs", "1", "--hidden", "4"],
        d,
    );
    assert!(
        stdout(&o).contains("optimiser adam lr 1e30;"),
        "{}",
        stdout(&o)
    );
    let help = stdout(&nabla(&["download", "--help"], d));
    assert!(
        help.contains("mnist") && help.contains("fashion-mnist"),
        "{help}"
    );
    let o = nabla(
        &[
            "train",
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--batch-size",
            "10000",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("batch 10000 → 1 iteration/epoch"),
        "{}",
        stdout(&o)
    );
}

/// `--lr 1e12` makes the weights overflow within three steps: the plain
/// run stops at the NaN loss and points to `--detect-anomaly`, which names
/// the op, the layer, the step and what overflowed. Nothing is written.
#[test]
fn a_diverging_run_names_the_op_with_detect_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "train",
        "--hidden",
        "32",
        "--epochs",
        "1",
        "--optimizer",
        "sgd",
        "--lr",
        "1e12",
        "--out",
        "x.safetensors",
    ];
    fails_with(
        &nabla(&args, d),
        "training diverged at epoch 1, batch 3: the loss is NaN",
    );
    fails_with(&nabla(&args, d), "rerun with --detect-anomaly");
    let o = nabla(&[&args[..], &["--detect-anomaly"]].concat(), d);
    fails_with(
        &o,
        "epoch 1, batch 3 (step 3): anomaly in the forward pass of matmul (node 8, layer 2: Linear(32 → 10))",
    );
    assert!(
        stderr(&o).contains("overflow: the largest input magnitude is"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("x.safetensors").exists());
}
