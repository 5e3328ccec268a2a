//! `nabla` on a user's own data: CSV tables (classification and regression)
//! and folders of labelled images — training, eval, predict, resume — and
//! every bad input as one line naming the file, line and column.

mod common;

use common::{fails_with, nabla, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::Output;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_str(stdout(o).trim()).expect("one JSON object")
}

#[test]
fn a_csv_of_classes_trains_evaluates_and_predicts_by_column_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let iris = shipped("iris.csv");
    let iris = iris.to_str().unwrap();
    let o = nabla(
        &[
            "train", "--csv", iris, "--target", "species", "--epochs", "60",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("task: classify (inferred) — column 'species' holds 3 classes: setosa, versicolor, virginica"),
        "{text}"
    );
    assert!(
        text.contains("150 rows; 108 training, 12 validation, 30 test (seed 42)"),
        "{text}"
    );
    assert!(text.contains("mlp 4-32-3 relu"), "{text}");
    let s = json(&nabla(
        &[
            "train",
            "--csv",
            iris,
            "--target",
            "species",
            "--json",
            "--out",
            "j.safetensors",
        ],
        d,
    ));
    assert!(s["test_accuracy"].as_f64().unwrap() >= 0.85, "{s}");
    assert_eq!(s["test_samples"], 30);

    let o = nabla(&["eval", "--model", "model.safetensors", "--csv", iris], d);
    assert!(stdout(&o).contains("per-class accuracy"), "{}", stderr(&o));

    // New rows, columns in another order and without the target: the same
    // predictions as in the file's order.
    std::fs::write(
        d.join("rows.csv"),
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
    )
    .unwrap();
    std::fs::write(
        d.join("shuffled.csv"),
        "petal_width,sepal_width,petal_length,sepal_length\n0.2,3.5,1.4,5.1\n2.3,3.0,5.2,6.7\n",
    )
    .unwrap();
    let a = nabla(
        &[
            "predict",
            "--model",
            "model.safetensors",
            "--csv",
            "rows.csv",
        ],
        d,
    );
    let b = nabla(
        &[
            "predict",
            "--model",
            "model.safetensors",
            "--csv",
            "shuffled.csv",
        ],
        d,
    );
    assert_eq!(stdout(&a), stdout(&b));
    let lines: Vec<String> = stdout(&a).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("row 1: setosa"), "{lines:?}");
    assert!(lines[1].starts_with("row 2: virginica"), "{lines:?}");

    std::fs::write(
        d.join("short.csv"),
        "sepal_length,sepal_width,petal_length\n5.1,3.5,1.4\n",
    )
    .unwrap();
    fails_with(
        &nabla(
            &[
                "predict",
                "--model",
                "model.safetensors",
                "--csv",
                "short.csv",
            ],
            d,
        ),
        "short.csv: the model needs column 'petal_width', which the file lacks",
    );
    std::fs::write(
        d.join("extra.csv"),
        "sepal_length,sepal_width,petal_length,petal_width,colour\n5.1,3.5,1.4,0.2,7\n",
    )
    .unwrap();
    fails_with(
        &nabla(
            &[
                "predict",
                "--model",
                "model.safetensors",
                "--csv",
                "extra.csv",
            ],
            d,
        ),
        "extra.csv: column 'colour' is not one of the model's columns",
    );
    fails_with(
        &nabla(&["eval", "--model", "model.safetensors"], d),
        "trained on a CSV table: pass --csv FILE",
    );
    // A CSV model refuses images, and a digit model refuses rows.
    fails_with(
        &nabla(&["predict", "--model", "model.safetensors", "x.png"], d),
        "pass --csv FILE of rows",
    );
}

#[test]
fn a_csv_of_values_is_regression_with_rmse_mae_and_r2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let diabetes = shipped("diabetes.csv");
    let diabetes = diabetes.to_str().unwrap();
    let o = nabla(
        &[
            "train",
            "--csv",
            diabetes,
            "--target",
            "progression",
            "--epochs",
            "40",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("task: regress (inferred)"), "{text}");
    assert!(text.contains("loss mse"), "{text}");
    assert!(text.contains("RMSE") && text.contains("R²"), "{text}");
    let s = json(&nabla(
        &[
            "train",
            "--csv",
            diabetes,
            "--target",
            "progression",
            "--epochs",
            "40",
            "--loss",
            "mae",
            "--json",
            "--out",
            "mae.safetensors",
        ],
        d,
    ));
    assert!(s["test_accuracy"].is_null());
    let (rmse, r2) = (
        s["test_rmse"].as_f64().unwrap(),
        s["test_r2"].as_f64().unwrap(),
    );
    // In the target's own units (progression 25–346, deviation about 77).
    assert!(rmse > 30.0 && rmse < 80.0 && r2 > 0.1, "{s}");
    let o = nabla(
        &["eval", "--model", "model.safetensors", "--csv", diabetes],
        d,
    );
    assert!(stdout(&o).contains("test RMSE"), "{}", stderr(&o));
    // Predictions come back in the target's units.
    std::fs::write(
        d.join("new.csv"),
        "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6\n59,2,32.1,101.0,157,93.2,38.0,4.0,4.8598,87\n",
    )
    .unwrap();
    let o = nabla(
        &[
            "predict",
            "--model",
            "model.safetensors",
            "--csv",
            "new.csv",
        ],
        d,
    );
    let line = stdout(&o);
    let value: f64 = line
        .trim()
        .strip_prefix("row 1: progression = ")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line} {}", stderr(&o)));
    assert!((25.0..400.0).contains(&value), "{value}");
    fails_with(
        &nabla(
            &[
                "train",
                "--csv",
                diabetes,
                "--target",
                "progression",
                "--loss",
                "cross-entropy",
            ],
            d,
        ),
        "--loss cross-entropy: the target holds values to regress",
    );
    // Stated as classes, progression has too few rows per class to matter, but it works.
    let o = nabla(
        &[
            "train", "--csv", diabetes, "--target", "sex", "--task", "classify", "--epochs", "2",
            "--quiet",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_csv_files_are_one_line_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("empty.csv", "", "y", "empty.csv: line 1: the file is empty"),
        (
            "ragged.csv",
            "x,y\n1,a\n2\n",
            "y",
            "ragged.csv: line 3: the row has 1 cells, the header names 2 columns",
        ),
        (
            "text.csv",
            "x,y\n1,a\nhigh,b\n",
            "y",
            "text.csv: line 3, column 'x': 'high' is not a number",
        ),
        (
            "missing.csv",
            "x,y\n1,a\n2,b\n",
            "z",
            "missing.csv: line 1, column 'z': no such column; the header names x, y",
        ),
        (
            "one.csv",
            "x,y\n1,a\n2,a\n",
            "y",
            "every row has the class 'a': classification needs at least two classes",
        ),
        (
            "blank.csv",
            "x,y\n1,a\n,b\n",
            "y",
            "blank.csv: line 3, column 'x': the cell is empty",
        ),
    ];
    for (name, text, target, needle) in cases {
        std::fs::write(d.join(name), text).unwrap();
        fails_with(
            &nabla(&["train", "--csv", name, "--target", target], d),
            needle,
        );
    }
    fails_with(
        &nabla(&["train", "--csv", "absent.csv", "--target", "y"], d),
        "absent.csv",
    );
    fails_with(&nabla(&["train", "--csv", "one.csv"], d), "--target");
    fails_with(
        &nabla(
            &[
                "train",
                "--csv",
                "text.csv",
                "--target",
                "y",
                "--test-split",
                "1.5",
            ],
            d,
        ),
        "--test-split 1.5",
    );
    assert!(
        !d.join("model.safetensors").exists(),
        "nothing half-written"
    );
}

/// Writes `n` 12×12 PNGs per class into `dir/<class>/`: class `left` is
/// bright on the left, `right` on the right, with seeded noise.
fn image_folder(dir: &Path, n: usize) {
    let mut state = 7u32;
    let mut noise = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 27) as u8
    };
    for class in ["left", "right"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            let img = image::GrayImage::from_fn(12, 12, |x, _| {
                let lit = (x < 6) == (class == "left");
                image::Luma([if lit { 200 } else { 20 } + noise()])
            });
            img.save(dir.join(class).join(format!("{i:03}.png")))
                .unwrap();
        }
    }
}

#[test]
fn an_image_folder_trains_and_predicts_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image_folder(&d.join("shapes"), 30);
    std::fs::write(d.join("shapes/notes.txt"), "not an image, ignored").unwrap();
    let s = json(&nabla(
        &[
            "train",
            "--images",
            "shapes",
            "--epochs",
            "10",
            "--batch-size",
            "8",
            "--hidden",
            "16",
            "--json",
        ],
        d,
    ));
    assert!(s["test_accuracy"].as_f64().unwrap() >= 0.9, "{s}");
    let o = nabla(
        &[
            "predict",
            "--model",
            "model.safetensors",
            "shapes/right/000.png",
        ],
        d,
    );
    assert!(
        stdout(&o).starts_with("shapes/right/000.png: right"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = nabla(
        &["eval", "--model", "model.safetensors", "--images", "shapes"],
        d,
    );
    assert!(stdout(&o).contains("test accuracy"), "{}", stderr(&o));
    // A convnet from a layer spec over [1, 12, 12], and colour.
    let o = nabla(
        &[
            "train",
            "--images",
            "shapes",
            "--epochs",
            "1",
            "--rgb",
            "--layers",
            "conv4k3,relu,flatten,linear2",
            "--quiet",
            "--out",
            "c.safetensors",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nabla(&["inspect", "--model", "c.safetensors"], d);
    assert!(stdout(&o).contains("12x12 images, RGB"), "{}", stdout(&o));

    // An image of another size is refused, naming it, unless a size is asked for.
    image::GrayImage::new(10, 12)
        .save(d.join("shapes/left/odd.png"))
        .unwrap();
    fails_with(
        &nabla(&["train", "--images", "shapes", "--epochs", "1"], d),
        "odd.png: the image is 12x10 (height x width) but",
    );
    let o = nabla(
        &[
            "train",
            "--images",
            "shapes",
            "--epochs",
            "1",
            "--image-size",
            "8x8",
            "--quiet",
            "--out",
            "r.safetensors",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nabla(
        &["predict", "--model", "r.safetensors", "shapes/left/odd.png"],
        d,
    );
    assert!(stdout(&o).contains("odd.png: "), "{}", stderr(&o));
    fails_with(
        &nabla(&["train", "--images", "shapes", "--image-size", "8by8"], d),
        "--image-size 8by8: expected HEIGHTxWIDTH",
    );
    std::fs::write(d.join("shapes/left/broken.png"), b"not a png").unwrap();
    fails_with(
        &nabla(&["train", "--images", "shapes", "--image-size", "8x8"], d),
        "broken.png: not a readable PNG or JPEG image",
    );
    std::fs::create_dir_all(d.join("single/only")).unwrap();
    fails_with(
        &nabla(&["train", "--images", "single"], d),
        "single: found 1 class folder(s)",
    );
    fails_with(&nabla(&["train", "--images", "nowhere"], d), "nowhere");
}

#[test]
fn resuming_honours_a_new_rate_and_refuses_another_optimiser_or_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let iris = shipped("iris.csv");
    let iris = iris.to_str().unwrap();
    let o = nabla(
        &[
            "train", "--csv", iris, "--target", "species", "--epochs", "2",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nabla(
        &[
            "train",
            "--csv",
            iris,
            "--target",
            "species",
            "--epochs",
            "4",
            "--lr",
            "0.01",
            "--resume",
            "model.safetensors.ckpt",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("resume: learning rate 0.001 → 0.01 from epoch 3"),
        "{}",
        stdout(&o)
    );
    fails_with(
        &nabla(
            &[
                "train",
                "--csv",
                iris,
                "--target",
                "species",
                "--epochs",
                "6",
                "--optimizer",
                "sgd",
                "--resume",
                "model.safetensors.ckpt",
            ],
            d,
        ),
        "--optimizer: cannot resume: ",
    );
    let diabetes = shipped("diabetes.csv");
    fails_with(
        &nabla(
            &[
                "train",
                "--csv",
                diabetes.to_str().unwrap(),
                "--target",
                "progression",
                "--epochs",
                "6",
                "--resume",
                "model.safetensors.ckpt",
            ],
            d,
        ),
        "cannot resume: the run was trained on iris.csv",
    );
}

/// `--preset best-cnn` is a recipe: its layers, its augmentation and its
/// epochs, each replaced by the flags given.
#[test]
fn the_best_cnn_preset_brings_its_augmentation_and_flags_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A small folder keeps the run short; the recipe is the same on any images.
    image_folder(&d.join("pics"), 10);
    let o = nabla(
        &[
            "train",
            "--images",
            "pics",
            "--image-size",
            "28x28",
            "--preset",
            "best-cnn",
            "--epochs",
            "1",
            "--augment-rotate",
            "5",
            "--augment-zoom",
            "0.2",
            "--augment-elastic",
            "20",
            "--augment-elastic-sigma",
            "5",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("model: best-cnn (conv32k3,relu,conv32k3"),
        "{out}"
    );
    assert!(
        out.contains("augmentation: each image, each epoch: shifts up to 2 px, rotations up to 5°, zooms up to 20%, elastic distortions (alpha 20 px, sigma 5 px)"),
        "{out}"
    );
    assert!(out.contains("wrote: model model.safetensors ("), "{out}");
    assert!(
        out.contains("next: nabla predict --model model.safetensors IMAGE.png"),
        "{out}"
    );
    let o = nabla(
        &[
            "train",
            "--images",
            "pics",
            "--image-size",
            "28x28",
            "--preset",
            "best-cnn",
            "--epochs",
            "1",
            "--no-augment",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("augmentation:"), "{}", stdout(&o));
    let help = stdout(&nabla(&["train", "--help"], d));
    assert!(help.contains("best-cnn"), "{help}");
    fails_with(
        &nabla(&["train", "--augment-zoom", "0.1", "--epochs", "1"], d),
        "--augment-zoom sets a range of the augmentation, which is off: add --augment",
    );
    fails_with(
        &nabla(
            &[
                "train",
                "--augment",
                "--augment-zoom",
                "1.5",
                "--epochs",
                "1",
            ],
            d,
        ),
        "augmentation zoom 1.5",
    );
    fails_with(
        &nabla(&["train", "--augment-elastic", "34", "--epochs", "1"], d),
        "--augment-elastic sets a range of the augmentation, which is off: add --augment",
    );
    fails_with(
        &nabla(
            &[
                "train",
                "--augment",
                "--augment-elastic",
                "34",
                "--augment-elastic-sigma",
                "0",
            ],
            d,
        ),
        "elastic distortion sigma 0: must be in (0, 16] pixels",
    );
    fails_with(
        &nabla(&["train", "--augment", "--augment-elastic=-3"], d),
        "elastic distortion alpha -3",
    );
    fails_with(
        &nabla(&["train", "--augment", "--no-augment"], d),
        "--no-augment",
    );
}
