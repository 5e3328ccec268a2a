//! `nabla trace`: the material's graphs and one pass of a model, printed
//! and drawn.

mod common;

use common::{fails_with, nabla, stderr, stdout};

#[test]
fn the_apple_graph_is_printed_and_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let o = nabla(&["trace", "apple"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "220",
        "2.2",
        "110",
        "200",
        "mul: ∂/∂a = b",
        "wrote apple.dot and apple.svg",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    let svg = std::fs::read_to_string(dir.path().join("apple.svg")).unwrap();
    assert!(svg.contains(">2.2</text>"));
    let o = nabla(&["trace", "oranges", "--out", "fruit"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("715"));
    assert!(dir.path().join("fruit.dot").exists() && dir.path().join("fruit.svg").exists());
    fails_with(
        &nabla(&["trace", "banana"], dir.path()),
        "banana: expected apple or oranges",
    );
    fails_with(
        &nabla(&["trace", "apple", "--target", "3"], dir.path()),
        "--target is for a model's trace",
    );
}

#[test]
fn a_model_on_one_image_is_traced_layer_by_layer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = nabla(
        &[
            "train",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            "m.safetensors",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if (10..18).contains(&x) && (4..24).contains(&y) {
            255
        } else {
            0
        }])
    })
    .save(d.join("one.png"))
    .unwrap();
    let o = nabla(
        &[
            "trace",
            "--model",
            "m.safetensors",
            "one.png",
            "--target",
            "1",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "loss against class 1",
        "0: Linear(784 → 8)",
        "1: Relu",
        "2: Linear(8 → 10)",
        "0.weight",
        "2.bias",
        "softmax_cross_entropy",
        "wrote one.trace.dot and one.trace.svg",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    let svg = std::fs::read_to_string(d.join("one.trace.svg")).unwrap();
    assert_eq!(
        svg.matches("class=\"scope\"").count(),
        3,
        "one box per layer"
    );
    let dot = std::fs::read_to_string(d.join("one.trace.dot")).unwrap();
    assert_eq!(dot.matches("subgraph cluster_").count(), 3);
    fails_with(
        &nabla(
            &[
                "trace",
                "--model",
                "m.safetensors",
                "one.png",
                "--target",
                "10",
            ],
            d,
        ),
        "--target 10: the model has 10 classes (0 to 9)",
    );
    fails_with(
        &nabla(&["trace", "--model", "m.safetensors", "missing.png"], d),
        "missing.png",
    );
}
