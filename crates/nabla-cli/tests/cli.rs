//! The `nabla` binary end to end: every command, and every user error as one
//! line on stderr with a non-zero exit (never a panic).

mod common;

use common::{fails_with, nabla, stderr, stdout};
use std::path::{Path, PathBuf};

/// Trains a one-epoch classifier of the shipped iris table into `out`; gives the table's path.
fn iris_model(dir: &Path, out: &str) -> PathBuf {
    let iris = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/iris.csv");
    let o = nabla(
        &[
            "train",
            "--csv",
            iris.to_str().unwrap(),
            "--target",
            "species",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            out,
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    iris
}

/// Trains a small model once per test (1 epoch of 784-32-10 on the embedded subset).
fn small_model(dir: &Path) -> PathBuf {
    let out = dir.join("m.safetensors");
    let o = nabla(
        &[
            "train",
            "--hidden",
            "32",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
            "--metrics-out",
            "metrics.jsonl",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn train_eval_inspect_gradcheck_plot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = nabla(
        &[
            "train",
            "--hidden",
            "32",
            "--epochs",
            "2",
            "--json",
            "--out",
            "j.safetensors",
            "--val-split",
            "0.1",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(stdout(&o).trim()).expect("one JSON object on stdout");
    let acc = summary["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "{acc}");
    assert_eq!(summary["history"].as_array().unwrap().len(), 2);
    assert!(summary["history"][1]["val"]["accuracy"].as_f64().is_some());
    assert!(d.join("j.safetensors").is_file() && d.join("j.safetensors.ckpt").is_file());

    let model = small_model(d);
    assert_eq!(
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    let m = model.to_str().unwrap();
    let o = nabla(&["eval", "--model", m, "--json", "--plot-dir", "plots"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(eval["samples"], 2000);
    assert!(d.join("plots/confusion.png").is_file() && d.join("plots/confusion.svg").is_file());
    assert!(image::open(d.join("plots/misclassified.png")).is_ok());

    let o = nabla(&["eval", "--model", m], d);
    assert!(stdout(&o).contains("confusion matrix") && stdout(&o).contains("per-class accuracy"));

    let o = nabla(&["inspect", "--model", m], d);
    let text = stdout(&o);
    assert!(
        text.contains("mlp 784-32-10 relu")
            && text.contains("0.weight")
            && text.contains("[32, 784]"),
        "{text}"
    );
    assert!(text.contains("total: 25450 parameters"), "{text}");

    let o = nabla(
        &["gradcheck", "--model", m, "--samples", "10", "--batch", "3"],
        d,
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("all parameter gradients agree"));

    let o = nabla(&["plot", "metrics.jsonl", "--out-dir", "curves"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["loss.png", "loss.svg", "accuracy.png", "accuracy.svg"] {
        assert!(d.join("curves").join(f).is_file(), "{f}");
    }
}

#[test]
fn predict_reads_drawn_digits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = small_model(d);
    // Test digits drawn as a person would: dark ink on white paper, 4× larger, off-centre.
    let test = nabla_data::embedded_mnist().unwrap().test;
    let mut paths = vec![];
    for i in 0..10 {
        let mut img = image::GrayImage::from_pixel(140, 120, image::Luma([235]));
        for (j, &v) in test.pixels(i).iter().enumerate() {
            let (x, y) = ((j % 28) as u32, (j / 28) as u32);
            for dy in 0..4 {
                for dx in 0..4 {
                    img.put_pixel(
                        20 + 4 * x + dx,
                        5 + 4 * y + dy,
                        image::Luma([235 - (v as u32 * 235 / 255) as u8]),
                    );
                }
            }
        }
        let p = d.join(format!("digit{i}.png"));
        img.save(&p).unwrap();
        paths.push(p);
    }
    let mut args = vec!["predict", "--json", "--model", model.to_str().unwrap()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let o = nabla(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut right = 0;
    for (i, line) in stdout(&o).lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let probs: Vec<f64> = v["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        if v["class"].as_u64().unwrap() as usize == test.label(i) {
            right += 1;
        }
    }
    assert!(right >= 8, "only {right}/10 drawn digits read correctly");
    let o = nabla(
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            paths[0].to_str().unwrap(),
        ],
        d,
    );
    assert!(stdout(&o).contains("digit0.png: ") && stdout(&o).contains('%'));
}

#[test]
fn predict_and_eval_use_the_shipped_models_without_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let test = nabla_data::embedded_mnist().unwrap().test;
    let mut args = vec!["predict".to_string(), "--json".to_string()];
    for i in 0..10 {
        let mut img = image::GrayImage::from_pixel(56, 56, image::Luma([255]));
        for (j, &v) in test.pixels(i).iter().enumerate() {
            let (x, y) = ((j % 28) as u32, (j / 28) as u32);
            for (dx, dy) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                img.put_pixel(2 * x + dx, 2 * y + dy, image::Luma([255 - v]));
            }
        }
        let p = d.join(format!("d{i}.png"));
        img.save(&p).unwrap();
        args.push(p.to_str().unwrap().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = nabla(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let right = stdout(&o)
        .lines()
        .enumerate()
        .filter(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["class"].as_u64().unwrap() as usize == test.label(*i)
        })
        .count();
    assert!(right >= 9, "the shipped cnn read {right} of 10");
    let o = nabla(&["eval", "--shipped", "mlp", "--json"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > 0.97, "the shipped mlp: {acc}");
    let o = nabla(&["eval"], d);
    assert!(
        stdout(&o).contains("model: the shipped cnn model (conv16k5"),
        "{}",
        stdout(&o)
    );
    fails_with(
        &nabla(
            &[
                "predict",
                "--shipped",
                "cnn",
                "--model",
                "m.safetensors",
                "d0.png",
            ],
            d,
        ),
        "cannot be used with",
    );
}

#[test]
fn resume_continues_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = nabla(
        &[
            "train",
            "--hidden",
            "16",
            "--epochs",
            "1",
            "--out",
            "r.safetensors",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nabla(
        &[
            "train",
            "--hidden",
            "16",
            "--epochs",
            "2",
            "--out",
            "r.safetensors",
            "--resume",
            "r.safetensors.ckpt",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("resuming at epoch 2"), "{}", stdout(&o));
    assert!(stdout(&o).contains("epoch   2/2"));
    // --init-weights starts a new run from a saved model (its architecture wins over --hidden).
    let o = nabla(
        &[
            "train",
            "--hidden",
            "99",
            "--epochs",
            "1",
            "--init-weights",
            "r.safetensors",
            "--out",
            "w.safetensors",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("mlp 784-16-10 relu"), "{}", stdout(&o));
    // A model file is not a checkpoint.
    let o = nabla(&["train", "--epochs", "3", "--resume", "r.safetensors"], d);
    fails_with(&o, "not a checkpoint");
}

#[test]
fn demos_print_the_materials_numbers_and_draw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = nabla(&["demo", "apple"], d);
    assert!(
        stdout(&o).contains("220.0")
            && stdout(&o).contains("715.0")
            && stdout(&o).contains("650.0"),
        "{}",
        stdout(&o)
    );
    let o = nabla(&["demo", "tangent", "--out-dir", "pics"], d);
    assert!(
        o.status.success() && stdout(&o).contains("f'(5)"),
        "{}",
        stderr(&o)
    );
    assert!(
        image::open(d.join("pics/tangent.png")).is_ok() && d.join("pics/tangent.svg").is_file()
    );
    let o = nabla(&["demo", "descent", "--out-dir", "pics"], d);
    assert!(o.status.success());
    assert!(image::open(d.join("pics/descent.png")).is_ok());
    assert!(stdout(&nabla(&["demo", "simplenet"], d)).contains("backprop gradient"));
    assert!(stdout(&nabla(&["demo", "autograd"], d)).contains("w = 2.000000"));
}

#[test]
fn user_errors_are_one_line_and_nothing_is_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails_with(
        &nabla(&["train", "--hidden", "12,abc"], d),
        "--hidden 12,abc: 'abc' is not a positive layer size",
    );
    fails_with(&nabla(&["train", "--lr=-1"], d), "--lr -1");
    fails_with(&nabla(&["train", "--batch-size", "0"], d), "--batch-size 0");
    fails_with(
        &nabla(&["train", "--hidden", "100000000,100000000"], d),
        "refusing to allocate",
    );
    fails_with(
        &nabla(&["train", "--data-dir", "/nonexistent"], d),
        "/nonexistent/train-images-idx3-ubyte.gz",
    );
    fails_with(
        &nabla(&["train", "--out", "no/such/dir/m.safetensors"], d),
        "does not exist",
    );
    fails_with(
        &nabla(&["train", "--val-split", "1.5"], d),
        "1.5 is not in [0, 1)",
    );
    fails_with(
        &nabla(&["train", "--early-stop", "2", "--epochs", "1"], d),
        "needs a validation split",
    );
    fails_with(
        &nabla(&["train", "--dataset", "fashion-mnist"], d),
        "fashion-mnist is not embedded",
    );
    fails_with(
        &nabla(&["eval", "--model", "missing.safetensors"], d),
        "missing.safetensors",
    );
    std::fs::write(d.join("junk.safetensors"), b"not a model").unwrap();
    fails_with(
        &nabla(&["inspect", "--model", "junk.safetensors"], d),
        "junk.safetensors: not a valid safetensors file",
    );
    let model = small_model(d);
    std::fs::write(d.join("note.png"), b"hello").unwrap();
    fails_with(
        &nabla(
            &["predict", "--model", model.to_str().unwrap(), "note.png"],
            d,
        ),
        "note.png: not a readable PNG or JPEG",
    );
    fails_with(
        &nabla(
            &["predict", "--model", model.to_str().unwrap(), "absent.png"],
            d,
        ),
        "absent.png",
    );
    std::fs::write(d.join("bad.jsonl"), b"{\"epoch\": 1}\n").unwrap();
    fails_with(
        &nabla(&["plot", "bad.jsonl"], d),
        "bad.jsonl: line 1: not a metrics record",
    );
    fails_with(
        &nabla(&["download", "--dataset", "cifar"], d),
        "invalid value 'cifar' for '--dataset <DATASET>'; [possible values: mnist, fashion-mnist]",
    );
    // A failed run leaves no model file behind.
    assert!(!d.join("model.safetensors").exists());
    // Argument errors found by the parser are one line too, with the choices.
    fails_with(
        &nabla(&["train", "--optimizer", "lbfgs"], d),
        "invalid value 'lbfgs'",
    );
    assert!(stderr(&nabla(&["train", "--optimizer", "lbfgs"], d)).contains("possible values: sgd"));
    fails_with(&nabla(&["train", "--epochs", "many"], d), "--epochs");
    fails_with(&nabla(&["evaluate"], d), "unrecognized subcommand");
    assert!(nabla(&["--help"], d).status.success());
}

/// A convnet with every kind of layer, trained briefly from a layer spec:
/// then eval, predict, inspect (with its PyTorch module), gradcheck,
/// filters, and a resumed run all work on it.
#[test]
fn convnets_from_a_layer_spec_work_with_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec =
        "conv4k5s2p2,batchnorm,relu,maxpool2,conv6k3p1,relu,avgpool2,flatten,dropout0.25,linear10";
    let o = nabla(
        &[
            "train",
            "--layers",
            spec,
            "--epochs",
            "1",
            "--batch-size",
            "50",
            "--lr",
            "0.01",
            "--augment",
            "--quiet",
            "--out",
            "cnn.safetensors",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nabla(&["eval", "--model", "cnn.safetensors", "--json"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(eval["accuracy"].as_f64().unwrap() > 0.8, "{eval}");

    // predict: a test digit, drawn dark on light at 3× size.
    let test = nabla_data::embedded_mnist().unwrap().test;
    let mut img = image::GrayImage::from_pixel(84, 84, image::Luma([255]));
    for (j, &v) in test.pixels(0).iter().enumerate() {
        for k in 0..9 {
            let (x, y) = (3 * (j % 28) as u32 + k % 3, 3 * (j / 28) as u32 + k / 3);
            img.put_pixel(x, y, image::Luma([255 - v]));
        }
    }
    img.save(d.join("digit.png")).unwrap();
    let o = nabla(
        &[
            "predict",
            "--json",
            "--model",
            "cnn.safetensors",
            "digit.png",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["probabilities"].as_array().unwrap().len(), 10, "{v}");

    let o = nabla(&["inspect", "--model", "cnn.safetensors"], d);
    let text = stdout(&o);
    for needle in [
        "Conv2d(1 → 4, 5×5, stride 2, padding 2)",
        "BatchNorm(4)",
        "1.running_var",
        "1.num_batches_tracked",
        "Dropout(0.25)",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    let o = nabla(&["inspect", "--model", "cnn.safetensors", "--pytorch"], d);
    let py = stdout(&o);
    assert!(
        py.contains("nn.BatchNorm2d(4)") && py.contains("nn.Linear(54, 10, bias=True)"),
        "{py}"
    );

    let o = nabla(
        &["gradcheck", "--model", "cnn.safetensors", "--samples", "8"],
        d,
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));

    let o = nabla(
        &["filters", "--model", "cnn.safetensors", "--out", "f.png"],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let png = image::open(d.join("f.png")).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (4 * 82 + 2, 82 + 2),
        "4 filters of 5×5 at 16 px, 2 px gaps"
    );
    fails_with(
        &nabla(&["filters", "--model", "cnn.safetensors", "--conv", "3"], d),
        "has 2 convolutional layer(s)",
    );
    fails_with(
        &nabla(
            &[
                "filters",
                "--model",
                "cnn.safetensors",
                "--zoom",
                "4000000000",
            ],
            d,
        ),
        "too large to draw",
    );

    // A second epoch from the checkpoint (running statistics included).
    let o = nabla(
        &[
            "train",
            "--layers",
            spec,
            "--epochs",
            "2",
            "--batch-size",
            "50",
            "--lr",
            "0.01",
            "--quiet",
            "--resume",
            "cnn.safetensors.ckpt",
            "--out",
            "cnn2.safetensors",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_layer_specs_are_one_line_errors_naming_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = |layers: &str| {
        nabla(
            &[
                "train",
                "--layers",
                layers,
                "--epochs",
                "1",
                "--out",
                "x.safetensors",
            ],
            d,
        )
    };
    fails_with(&train("conv8k3,relu,linear10"), "layer 2 'linear10'");
    fails_with(&train("conv8k3,relu,pool2"), "unknown layer 'pool'");
    fails_with(&train("conv8k40"), "does not fit");
    // Sizes that would overflow are refused, not wrapped around.
    fails_with(
        &train("conv8k3p9223372036854775807,flatten,linear10"),
        "too large",
    );
    fails_with(
        &train("conv8k3p4294967295,flatten,linear10"),
        "layer 0 'conv8k3p4294967295': its output [8, 8589934616, 8589934616] has more than 67108864 values per sample",
    );
    fails_with(&train("flatten,linear7"), "end with linear10");
    fails_with(&train("flatten,dropout1.5,linear10"), "probability");
    fails_with(
        &nabla(
            &["train", "--layers", "flatten,linear10", "--hidden", "32"],
            d,
        ),
        "cannot be used with",
    );
    fails_with(
        &nabla(&["train", "--preset", "cnn", "--hidden", "32"], d),
        "--hidden and --activation describe the mlp preset",
    );
    assert!(!d.join("x.safetensors").exists(), "nothing written");
}

#[test]
fn probes_warn_in_words_and_are_plotted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = nabla(
        &[
            "train",
            "--hidden",
            "32,32,32",
            "--activation",
            "sigmoid",
            "--init",
            "normal",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--epochs",
            "1",
            "--probes",
            "--probe-every",
            "40",
            "--metrics-out",
            "probes.jsonl",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("warning (epoch 1): vanishing gradients: 0.weight"),
        "{}",
        stdout(&o)
    );
    let line = std::fs::read_to_string(d.join("probes.jsonl")).unwrap();
    let m: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    // 100 steps: probes at steps 40 and 80, and at the end.
    let steps: Vec<u64> = m["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [40, 80, 100]);
    assert_eq!(m["probes"][2]["activations"][0]["name"], "sigmoid 1");
    let o = nabla(&["plot", "probes.jsonl", "--out-dir", "plots"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("plots/gradients.png").is_file() && d.join("plots/units.svg").is_file());
    fails_with(
        &nabla(&["train", "--probes", "--probe-every", "0"], d),
        "--probe-every and --probe-samples must be at least 1",
    );
    fails_with(&nabla(&["train", "--probe-every", "5"], d), "--probes");
}

#[test]
fn proximal_l1_makes_weights_exactly_zero_and_says_how_many() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |mode: &str| {
        nabla(
            &[
                "train",
                "--hidden",
                "32",
                "--epochs",
                "1",
                "--l1",
                "0.3",
                "--l1-mode",
                mode,
                "--json",
                "--out",
                "l1.safetensors",
            ],
            d,
        )
    };
    let o = run("proximal");
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let zeros = s["sparsity"]["0.weight"].as_f64().unwrap();
    assert!(zeros > 0.1, "{s}");
    let o = nabla(&["inspect", "--model", "l1.safetensors"], d);
    assert!(stdout(&o).contains("zeros"), "{}", stdout(&o));
    let o = run("subgradient");
    let s: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(s["sparsity"]["0.weight"].as_f64().unwrap() < zeros);
}

#[test]
fn compare_pairs_configurations_on_the_same_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "compare",
        "--seeds",
        "2",
        "--json",
        "--config",
        "--activation sigmoid",
        "--config",
        "--activation relu",
        "--",
        "--hidden",
        "16",
        "--epochs",
        "1",
    ];
    let o = nabla(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(s["metric"], "accuracy");
    assert_eq!(s["seeds"], serde_json::json!([1, 2]));
    let b = &s["configs"][1];
    let (va, vb) = (&s["configs"][0]["values"], &b["values"]);
    let d0 = vb[0].as_f64().unwrap() - va[0].as_f64().unwrap();
    let d1 = vb[1].as_f64().unwrap() - va[1].as_f64().unwrap();
    assert!(
        (b["difference"].as_f64().unwrap() - (d0 + d1) / 2.0).abs() < 1e-9,
        "{s}"
    );
    // The same seed gives the same run: compare is reproducible.
    let again = nabla(&args, d);
    let t: serde_json::Value = serde_json::from_str(stdout(&again).trim()).unwrap();
    assert_eq!(s["configs"][0]["values"], t["configs"][0]["values"]);
    fails_with(
        &nabla(&["compare", "--config", "--hidden 8"], d),
        "give two or more configurations",
    );
    fails_with(
        &nabla(
            &["compare", "--config", "--seed 3", "--config", "--hidden 8"],
            d,
        ),
        "configuration '--seed 3': --seed is set by compare itself",
    );
    fails_with(
        &nabla(
            &["compare", "--config", "--hiden 8", "--config", "--hidden 8"],
            d,
        ),
        "configuration '--hiden 8': unexpected argument '--hiden'",
    );
}

#[test]
fn label_smoothing_and_weight_averaging_train_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--hidden", "16", "--epochs", "2", "--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", "m.safetensors"]);
        nabla(&args, d)
    };
    let summary = |o: &std::process::Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", stderr(o));
        serde_json::from_str(stdout(o).trim()).unwrap()
    };
    let plain = summary(&train(&[]));
    let smoothed = summary(&train(&["--label-smoothing", "0.1"]));
    assert_ne!(plain["test_accuracy"], smoothed["test_accuracy"]);
    // The average changes no step of training, only what is evaluated.
    let averaged = summary(&train(&["--ema", "0.99"]));
    assert_ne!(plain["test_accuracy"], averaged["test_accuracy"]);
    for (flags, error) in [
        (
            &["--label-smoothing", "1"][..],
            "--label-smoothing 1: must be in [0, 1)",
        ),
        (&["--ema", "1.5"], "--ema 1.5: the decay must be in (0, 1)"),
        (&["--ema", "x"], "invalid value 'x' for '--ema <DECAY>'"),
    ] {
        fails_with(&train(flags), error);
    }
    let diabetes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/diabetes.csv");
    fails_with(
        &nabla(
            &[
                "train",
                "--csv",
                diabetes.to_str().unwrap(),
                "--target",
                "progression",
                "--label-smoothing",
                "0.1",
            ],
            d,
        ),
        "--label-smoothing 0.1: smooths class targets, and the target holds values to regress",
    );
    // compare keeps its runs' models when asked.
    let o = nabla(
        &[
            "compare",
            "--seeds",
            "1",
            "--keep",
            "kept",
            "--config",
            "",
            "--config",
            "--ema 0.9",
            "--",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--val-split",
            "0.1",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for c in 0..2 {
        assert!(d.join(format!("kept/config{c}-seed1.safetensors")).exists());
    }
}

#[test]
fn lr_find_suggests_a_rate_and_draws_the_curve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = nabla(
        &[
            "lr-find",
            "--hidden",
            "16",
            "--lr-steps",
            "40",
            "--plot",
            "curve",
            "--json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let lr = s["suggestion"].as_f64().unwrap();
    assert!((1e-5..1.0).contains(&lr), "{s}");
    assert!(d.join("curve.png").is_file() && d.join("curve.svg").is_file());
    assert!(
        !d.join("model.safetensors").exists(),
        "nothing is trained for keeps"
    );
    fails_with(
        &nabla(&["lr-find", "--start-lr", "1", "--end-lr", "0.1"], d),
        "the rates must grow from a positive start",
    );
    // The warm-up is a flag of train.
    let o = nabla(
        &[
            "train", "--hidden", "16", "--epochs", "1", "--warmup", "20", "--quiet",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn search_draws_trials_selects_on_validation_and_resumes_after_an_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("space.toml"),
        "lr = { log = [1e-4, 1e-1] }\nhidden = { choice = [\"16\", \"32,16\"] }\n",
    )
    .unwrap();
    let args = [
        "search",
        "--space",
        "space.toml",
        "--trials",
        "4",
        "--halving",
        "--eta",
        "2",
        "--",
        "--epochs",
        "2",
    ];
    let o = nabla(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("successive halving (keep 1/2 each rung): 4 trials × 1 epochs, then 2 trials × 2 epochs"),
        "{text}"
    );
    assert!(
        text.contains("training it again on all the training data: nabla train"),
        "{text}"
    );
    assert!(text.contains("(the test set used once, here)"), "{text}");
    assert!(d.join("best.safetensors").is_file() && d.join("search-lr.png").is_file());
    let table = std::fs::read_to_string(d.join("search.csv")).unwrap();
    assert_eq!(table.lines().count(), 1 + 4 + 2, "{table}");
    assert!(
        table.starts_with("rung,trial,epochs,val_accuracy,seconds,hidden,lr"),
        "{table}"
    );
    // Interrupted after two trials, mid-line: the same command finishes it
    // with the same results.
    let jsonl = std::fs::read_to_string(d.join("search.jsonl")).unwrap();
    let kept: Vec<&str> = jsonl.lines().take(3).collect();
    std::fs::write(
        d.join("search.jsonl"),
        format!("{}\n{{\"rung\": 0, \"tri", kept.join("\n")),
    )
    .unwrap();
    let o = nabla(&args, d);
    assert!(
        stdout(&o).contains("resuming: 2 trials already in search.jsonl"),
        "{}",
        stdout(&o)
    );
    let strip = |csv: &str| -> Vec<String> {
        // Everything but the seconds, which vary.
        csv.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                [&f[..4], &f[5..]].concat().join(",")
            })
            .collect()
    };
    let again = std::fs::read_to_string(d.join("search.csv")).unwrap();
    assert_eq!(strip(&table), strip(&again));
    // Another search over the same results file is refused.
    fails_with(
        &nabla(
            &[
                "search",
                "--param",
                "lr=log:1e-3:1e-2",
                "--trials",
                "2",
                "--",
                "--epochs",
                "1",
            ],
            d,
        ),
        "search.jsonl: holds another search",
    );
    fails_with(
        &nabla(
            &["search", "--param", "lr=normal:0:1", "--results", "other"],
            d,
        ),
        "--param lr: 'normal:0:1': unknown kind",
    );
    fails_with(
        &nabla(
            &[
                "search",
                "--param",
                "lr=log:1e-3:1e-2",
                "--results",
                "other",
                "--",
                "--val-split",
                "0",
            ],
            d,
        ),
        "search selects on the validation split",
    );
}

#[test]
fn several_models_evaluate_and_predict_as_an_ensemble() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for seed in ["1", "2"] {
        let out = format!("m{seed}.safetensors");
        let o = nabla(
            &[
                "train", "--hidden", "16", "--epochs", "1", "--seed", seed, "--quiet", "--out",
                &out,
            ],
            d,
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let acc = |models: &[&str]| {
        let mut args = vec!["eval", "--json"];
        for m in models {
            args.extend(["--model", m]);
        }
        let o = nabla(&args, d);
        assert!(o.status.success(), "{}", stderr(&o));
        let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        e["accuracy"].as_f64().unwrap()
    };
    let (a, b, both) = (
        acc(&["m1.safetensors"]),
        acc(&["m2.safetensors"]),
        acc(&["m1.safetensors", "m2.safetensors"]),
    );
    assert!(both > 0.8 && both != a && both != b, "{a} {b} {both}");
    let o = nabla(
        &[
            "eval",
            "--model",
            "m1.safetensors",
            "--model",
            "m2.safetensors",
        ],
        d,
    );
    assert!(stdout(&o).contains("an ensemble of 2"), "{}", stdout(&o));
    iris_model(d, "t.safetensors");
    fails_with(
        &nabla(
            &[
                "eval",
                "--model",
                "m1.safetensors",
                "--model",
                "t.safetensors",
            ],
            d,
        ),
        "t.safetensors: trained on other data than m1.safetensors",
    );
}

#[test]
fn an_mpi_launch_the_binary_cannot_serve_is_refused() {
    if cfg!(feature = "mpi") {
        return; // scripts/test_mpi.sh runs that binary under mpirun
    }
    let dir = tempfile::tempdir().unwrap();
    // As one of two ranks of an Open MPI job (what mpirun sets).
    let as_rank = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nabla"))
            .args(args)
            .current_dir(dir.path())
            .env("OMPI_COMM_WORLD_SIZE", "2")
            .output()
            .unwrap()
    };
    fails_with(&as_rank(&["train", "--epochs", "1"]), "built without MPI");
    fails_with(&as_rank(&["eval"]), "built without MPI");
    assert!(!dir.path().join("model.safetensors").exists());
    let o = nabla(&["train", "--epochs", "1", "--bucket-mb", "0"], dir.path());
    fails_with(&o, "--bucket-mb 0");
}

#[test]
fn test_time_shifts_average_the_views_of_each_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let json = |args: &[&str]| {
        let o = nabla(args, d);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(stdout(&o).trim()).unwrap()
    };
    let plain = json(&["eval", "--shipped", "cnn", "--json"]);
    let views = json(&["eval", "--shipped", "cnn", "--tta-shift", "1", "--json"]);
    let (a, b) = (
        views["accuracy"].as_f64().unwrap(),
        views["loss"].as_f64().unwrap(),
    );
    assert!(a > 0.97, "the shipped cnn over 9 views: {a}");
    assert_ne!(
        b,
        plain["loss"].as_f64().unwrap(),
        "the views change the answers"
    );
    let o = nabla(&["eval", "--shipped", "cnn", "--tta-shift", "1"], d);
    assert!(
        stdout(&o).contains("test-time augmentation: each image seen 9 times"),
        "{}",
        stdout(&o)
    );

    let test = nabla_data::embedded_mnist().unwrap().test;
    let mut img = image::GrayImage::from_pixel(28, 28, image::Luma([255]));
    for (j, &v) in test.pixels(0).iter().enumerate() {
        img.put_pixel((j % 28) as u32, (j / 28) as u32, image::Luma([255 - v]));
    }
    img.save(d.join("d.png")).unwrap();
    let p = json(&[
        "predict",
        "--shipped",
        "cnn",
        "--tta-shift",
        "1",
        "--json",
        "d.png",
    ]);
    assert_eq!(p["class"].as_u64().unwrap() as usize, test.label(0));
    let sum: f64 = p["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!(
        (sum - 1.0).abs() < 1e-4,
        "averaged probabilities sum to {sum}"
    );

    fails_with(
        &nabla(&["eval", "--shipped", "cnn", "--tta-shift", "14"], d),
        "test-time shift of 14 pixels: must be under half the 28×28 image",
    );
    let iris = iris_model(d, "t.safetensors");
    fails_with(
        &nabla(
            &[
                "eval",
                "--model",
                "t.safetensors",
                "--tta-shift",
                "1",
                "--csv",
                iris.to_str().unwrap(),
            ],
            d,
        ),
        "--tta-shift 1: t.safetensors does not read images",
    );
}
