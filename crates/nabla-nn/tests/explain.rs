//! `explain`: one sample forward and back, every layer's output and the
//! gradient reaching it, checked against numerical differentiation in f64.

use nabla_autograd::{Reduction, Tape, Target};
use nabla_nn::{explain, Init, Module, NetSpec, Sequential};
use nabla_tensor::{Rng, Tensor};

fn convnet(rng: &mut Rng) -> Sequential<f64> {
    NetSpec::parse(
        &[1, 6, 6],
        "conv2k3,relu,maxpool2,flatten,linear5,tanh,linear4",
    )
    .unwrap()
    .build(Init::He, rng)
    .unwrap()
}

/// The cross-entropy of `net` on `x` against `class`.
fn cost(net: &Sequential<f64>, x: &Tensor<f64>, class: usize) -> f64 {
    let tape = Tape::new();
    let y = net.forward(tape.constant(x.clone())).unwrap();
    let c = y
        .softmax_cross_entropy(Target::Indices(vec![class]), Reduction::Mean)
        .unwrap();
    c.value().data()[0]
}

#[test]
fn the_input_gradient_is_the_numerical_one() {
    let mut rng = Rng::seed(3);
    let net = convnet(&mut rng);
    let x = rng.normal(&[1, 36], 0.0, 1.0);
    let e = explain(&net, &x, Some(2)).unwrap();
    assert_eq!(e.target, 2);
    assert_eq!(e.input_gradient.dims(), &[36]);
    let h = 1e-6;
    for i in 0..36 {
        let mut plus = x.clone();
        plus.data_mut()[i] += h;
        let mut minus = x.clone();
        minus.data_mut()[i] -= h;
        let numeric = (cost(&net, &plus, 2) - cost(&net, &minus, 2)) / (2.0 * h);
        let analytic = e.input_gradient.data()[i];
        assert!(
            (numeric - analytic).abs() <= 1e-6 * (1.0 + numeric.abs()),
            "pixel {i}: backprop {analytic}, numerical {numeric}"
        );
    }
    assert!((e.loss - cost(&net, &x, 2)).abs() < 1e-12);
}

#[test]
fn every_layer_is_kept_with_the_gradient_that_reached_it() {
    let mut rng = Rng::seed(4);
    let net = convnet(&mut rng);
    let x = rng.normal(&[1, 36], 0.0, 1.0);
    let e = explain(&net, &x, None).unwrap();
    let shapes: Vec<Vec<usize>> = e.layers.iter().map(|l| l.output.dims().to_vec()).collect();
    assert_eq!(
        shapes,
        [
            vec![2, 4, 4],
            vec![2, 4, 4],
            vec![2, 2, 2],
            vec![8],
            vec![5],
            vec![5],
            vec![4]
        ]
    );
    assert_eq!(
        e.layers[0].name,
        "0: Conv2d(1 → 2, 3×3, stride 1, padding 0)"
    );
    for l in &e.layers {
        assert_eq!(l.output.dims(), l.gradient.dims(), "{}", l.name);
    }
    // The layers' outputs are the network's own intermediate results.
    let mut h = x.reshape(&[1, 1, 6, 6]).unwrap();
    for (layer, view) in net.layers().iter().zip(&e.layers) {
        h = layer.predict(&h).unwrap();
        assert_eq!(h.data(), view.output.data(), "{}", view.name);
    }
    // The default target is the prediction, and the wish is y − p.
    let p = &e.probabilities;
    let best = (0..4).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
    assert_eq!((e.predicted, e.target), (best, best));
    for (k, w) in e.wish.iter().enumerate() {
        let y = if k == best { 1.0 } else { 0.0 };
        assert!((w - (y - p[k])).abs() < 1e-12, "class {k}");
    }
    assert!(e.wish.iter().sum::<f64>().abs() < 1e-12);
    // The last layer's gradient is the negated wish.
    let last = e.layers.last().unwrap();
    for (g, w) in last.gradient.data().iter().zip(&e.wish) {
        assert_eq!(*g, -w);
    }
    // ReLU passes a gradient only where its input was positive.
    let (conv, relu) = (&e.layers[0], &e.layers[1]);
    for (i, &v) in conv.output.data().iter().enumerate() {
        if v <= 0.0 {
            assert_eq!(conv.gradient.data()[i], 0.0, "unit {i}");
        } else {
            assert_eq!(conv.gradient.data()[i], relu.gradient.data()[i], "unit {i}");
        }
    }
}

#[test]
fn a_batch_a_target_or_an_output_that_does_not_fit_is_refused() {
    let mut rng = Rng::seed(5);
    let net = convnet(&mut rng);
    let two = rng.normal(&[2, 36], 0.0, 1.0);
    let e = explain(&net, &two, None).unwrap_err().to_string();
    assert!(e.contains("one sample"), "{e}");
    let one = rng.normal(&[1, 36], 0.0, 1.0);
    let e = explain(&net, &one, Some(4)).unwrap_err().to_string();
    assert!(e.contains("target class 4") && e.contains("0 to 3"), "{e}");
    let empty = Sequential::<f64>::new();
    let e = explain(&empty, &one, None).unwrap_err().to_string();
    assert!(e.contains("no layers"), "{e}");
    let maps = NetSpec::parse(&[1, 6, 6], "conv2k3")
        .unwrap()
        .build::<f64>(Init::He, &mut rng)
        .unwrap();
    let e = explain(&maps, &one, None).unwrap_err().to_string();
    assert!(e.contains("expected one row of class scores"), "{e}");
}
