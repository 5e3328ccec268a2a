//! `Module::predict`, inference without a graph: the values of `forward`,
//! on dense inputs and on images (whose first layer multiplies against a
//! transposed copy of its weights), for networks whose layers override it
//! and for those that fall back to a tape; the copy follows the weights.

use nabla_autograd::Tape;
use nabla_nn::{preset, Activation, Init, Linear, MlpConfig, Module, NetSpec, Sequential};
use nabla_tensor::{input_major_pays, Float, Rng, Tensor};

fn forward<T: Float>(model: &dyn Module<T>, x: &Tensor<T>) -> Tensor<T> {
    let tape = Tape::new();
    tape.set_grad_enabled(false);
    model.forward(tape.constant(x.clone())).unwrap().value()
}

/// `rows` images of 28 × 28 that look like digits to the kernels: blank but
/// for a ring of lit pixels, 16% of them, with grey values.
fn images(rows: usize) -> Tensor<f32> {
    let mut x = vec![0.0f32; rows * 784];
    for (r, image) in x.chunks_mut(784).enumerate() {
        for (p, v) in image.iter_mut().enumerate() {
            let (y, x) = ((p / 28) as f32 - 13.5, (p % 28) as f32 - 13.5 + r as f32);
            let d = (x * x + y * y).sqrt();
            if (5.0..9.0).contains(&d) {
                *v = ((p * 7 + r) % 255 + 1) as f32 / 255.0;
            }
        }
    }
    Tensor::from_vec(x, &[rows, 784]).unwrap()
}

fn mlp<T: Float>(activation: Activation, seed: u64) -> Sequential<T> {
    MlpConfig::new(784, &[100, 30], 10)
        .activation(activation)
        .with_init(Init::Xavier)
        .init(&mut Rng::seed(seed))
        .unwrap()
}

fn assert_close(got: &Tensor<f32>, want: &Tensor<f32>, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}");
    assert!(
        got.allclose(want, 1e-5, 1e-6),
        "{what}: {got:?} vs {want:?}"
    );
}

#[test]
fn predict_gives_the_values_of_forward_on_images_and_dense_rows() {
    for activation in [Activation::Sigmoid, Activation::Relu, Activation::Tanh] {
        let net = mlp::<f32>(activation, 3);
        for rows in [1, 3, 4, 5, 63, 64, 100] {
            let x = images(rows);
            // A few images, or a batch of 64 or more, through the copy.
            assert_eq!(
                input_major_pays(&x),
                rows <= 4 || rows >= 64,
                "{rows} images"
            );
            let what = format!("{activation} on {rows} images");
            assert_close(&net.predict(&x).unwrap(), &forward(&net, &x), &what);
        }
        let dense: Tensor<f32> = Rng::seed(4).normal(&[2, 784], 0.0, 1.0);
        assert!(!input_major_pays(&dense));
        assert_close(
            &net.predict(&dense).unwrap(),
            &forward(&net, &dense),
            "dense",
        );
    }
}

/// A layer gives each image of a batch the bits it gives that image alone:
/// the batch goes through the tiled kernel, one image through the
/// row-by-row one, and both add the same products in the same order.
#[test]
fn a_layer_gives_an_image_in_a_batch_its_bits_alone() {
    let layer = Linear::<f32>::new(784, 100, Init::Xavier, &mut Rng::seed(9));
    let batch = images(300);
    assert!(input_major_pays(&batch));
    let all = layer.predict(&batch).unwrap();
    for i in [0, 1, 150, 299] {
        let image = Tensor::from_vec(batch.data()[i * 784..][..784].to_vec(), &[1, 784]).unwrap();
        assert_eq!(
            layer.predict(&image).unwrap().data(),
            &all.data()[i * 100..][..100],
            "image {i}"
        );
    }
}

#[test]
fn predict_in_f64_is_forward_to_the_bit() {
    let net = mlp::<f64>(Activation::Sigmoid, 5);
    let x: Tensor<f64> = images(2).cast();
    assert_eq!(net.predict(&x).unwrap().data(), forward(&net, &x).data());
}

#[test]
fn layers_without_their_own_predict_run_forward_on_a_tape() {
    let spec = NetSpec::parse(&[1, 28, 28], preset("lenet").unwrap()).unwrap();
    let net = spec.build::<f32>(Init::He, &mut Rng::seed(2)).unwrap();
    let x = images(2);
    assert_eq!(net.predict(&x).unwrap().data(), forward(&net, &x).data());
}

#[test]
fn the_transposed_weights_follow_every_change_of_the_weights() {
    let mut net = mlp::<f32>(Activation::Relu, 6);
    let x = images(1);
    let before = net.predict(&x).unwrap();
    // Through the optimisers' route, in place.
    for p in net.params_mut() {
        for v in p.value_mut().data_mut() {
            *v *= 0.5;
        }
    }
    let halved = net.predict(&x).unwrap();
    assert_close(&halved, &forward(&net, &x), "after an update in place");
    assert!(!halved.allclose(&before, 1e-3, 1e-3));
    // Through `Param::set`.
    let fresh = mlp::<f32>(Activation::Relu, 7);
    for (p, q) in net.params_mut().into_iter().zip(fresh.named_params()) {
        p.set(q.1.value().clone()).unwrap();
    }
    assert_close(
        &net.predict(&x).unwrap(),
        &fresh.predict(&x).unwrap(),
        "after set",
    );
    // A clone has parameters of its own, and a copy of its own.
    let mut copy = Linear::<f32>::new(784, 10, Init::Xavier, &mut Rng::seed(8));
    let original = copy.clone();
    let y = original.predict(&x).unwrap();
    copy.weight.value_mut().data_mut().fill(0.0);
    assert_eq!(copy.predict(&x).unwrap().data(), &[0.0; 10]);
    assert_eq!(original.predict(&x).unwrap().data(), y.data());
}

#[test]
fn predict_names_a_wrong_input() {
    let net = mlp::<f32>(Activation::Relu, 1);
    let err = net
        .predict(&Tensor::zeros(&[2, 783]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Linear(784 → 100)") && err.contains("783"),
        "{err}"
    );
    let err = net.predict(&Tensor::scalar(1.0)).unwrap_err().to_string();
    assert!(err.contains("scalar"), "{err}");
    // One image as a vector, or as a 28 × 28 image, is a batch of one.
    let x = images(1);
    let want = net.predict(&x).unwrap();
    for dims in [&[784][..], &[1, 28, 28]] {
        let got = net.predict(&x.reshape(dims).unwrap()).unwrap();
        assert_eq!(got.data(), want.data(), "{dims:?}");
    }
}
