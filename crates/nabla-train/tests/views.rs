//! Test-time augmentation: evaluating over shifted views averages what the
//! model answers for each view, and no views is the plain evaluation.

use nabla_data::{class_labels, embedded_mnist, gather_inputs, ImageDataset, ShiftViews};
use nabla_nn::{preset, Init, NetSpec};
use nabla_tensor::Rng;
use nabla_train::{evaluate, evaluate_views, probabilities};

fn test_digits(n: usize) -> ImageDataset {
    let s = embedded_mnist().unwrap();
    s.test.subset(&(0..n).collect::<Vec<_>>()).unwrap()
}

fn lenet(seed: u64) -> nabla_nn::Sequential<f32> {
    let spec = NetSpec::parse(&[1, 28, 28], preset("lenet").unwrap()).unwrap();
    spec.build::<f32>(Init::He, &mut Rng::seed(seed)).unwrap()
}

#[test]
fn one_view_is_the_plain_evaluation() {
    let (model, data) = (lenet(3), test_digits(120));
    let views = ShiftViews::square(28, 28, 0).unwrap();
    let plain = evaluate(&model, &data, 50).unwrap();
    let one = evaluate_views(&model, &data, 50, Some(&views)).unwrap();
    assert_eq!(one.confusion, plain.confusion);
    let (a, b) = (one.score.loss, plain.score.loss);
    assert!((a - b).abs() <= 1e-5 * b, "loss {a} against {b}");
}

#[test]
fn nine_views_average_the_probabilities_of_the_shifted_digits() {
    let (model, data) = (lenet(5), test_digits(60));
    let views = ShiftViews::square(28, 28, 1).unwrap();
    let got = evaluate_views(&model, &data, 25, Some(&views)).unwrap();

    // By hand: every digit moved by each shift, the nine softmaxes averaged.
    let all: Vec<usize> = (0..60).collect();
    let x = gather_inputs(&data, &all).unwrap();
    let labels = class_labels(&data, &all).unwrap();
    let mut mean = vec![0.0f64; 60 * 10];
    for &(dy, dx) in views.shifts() {
        let p = probabilities(&model, &views.shift(&x, dy, dx).unwrap()).unwrap();
        for (m, &v) in mean.iter_mut().zip(p.data()) {
            *m += f64::from(v) / 9.0;
        }
    }
    let (mut correct, mut loss) = (0, 0.0);
    for (row, &label) in mean.chunks(10).zip(&labels) {
        let best = (0..10).fold(0, |b, k| if row[k] > row[b] { k } else { b });
        correct += usize::from(best == label);
        loss -= row[label].ln();
    }
    assert_eq!(got.score.accuracy, Some(correct as f64 / 60.0));
    let want = loss / 60.0;
    assert!(
        (got.score.loss - want).abs() <= 1e-4 * want,
        "loss {} against {want}",
        got.score.loss
    );
    // The views change the answers of an untrained net: the average is not one view's.
    let plain = evaluate(&model, &data, 25).unwrap();
    assert_ne!(got.score.loss, plain.score.loss);
}

#[test]
fn views_of_another_image_size_are_an_error() {
    let (model, data) = (lenet(1), test_digits(10));
    let views = ShiftViews::square(10, 10, 1).unwrap();
    let err = evaluate_views(&model, &data, 10, Some(&views)).unwrap_err();
    assert!(err.to_string().contains("10×10"), "{err}");
}
