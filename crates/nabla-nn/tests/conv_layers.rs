//! The convolutional toolkit's layers: each checked against numerical
//! gradients in f64 (input and parameters) on several shapes, a whole
//! convnet checked end to end, and the train/eval behaviour of dropout and
//! batch norm.

use nabla_autograd::{Reduction, Tape, Target};
use nabla_nn::{
    check_layer_gradients, check_model_gradients, loss, AvgPool2d, BatchNorm, Conv2d, Dropout,
    Flatten, Init, MaxPool2d, ModelCheckOptions, Module, NetSpec,
};
use nabla_tensor::{Rng, Tensor};

fn check_layer(layer: &mut dyn Module<f64>, x: &Tensor<f64>) {
    let report = check_layer_gradients(layer, x, &ModelCheckOptions::default()).unwrap();
    assert!(report.passed(), "{}:\n{report}", layer.describe());
}

/// Distinct values 0.05 apart in random order: pooling windows hold no ties.
fn distinct(rng: &mut Rng, dims: &[usize]) -> Tensor<f64> {
    let n: usize = dims.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.05 - n as f64 * 0.025).collect();
    rng.shuffle(&mut v);
    Tensor::from_vec(v, dims).unwrap()
}

#[test]
fn conv2d_layers_of_several_shapes() {
    let mut rng = Rng::seed(1);
    for (c, o, k, s, p, bias, hw) in [
        (1, 3, 3, 1, 1, true, (6, 6)),
        (2, 4, 3, 2, 0, true, (7, 5)),
        (3, 2, 5, 1, 2, false, (5, 5)),
        (2, 2, 1, 1, 0, true, (3, 4)),
    ] {
        let mut conv = Conv2d::<f64>::new(c, o, k, s, p, bias, Init::He, &mut rng).unwrap();
        if let Some(b) = &mut conv.bias {
            *b.value_mut() = rng.normal(&[o], 0.0, 1.0);
        }
        let x = rng.normal(&[2, c, hw.0, hw.1], 0.0, 1.0);
        check_layer(&mut conv, &x);
    }
    assert!(Conv2d::<f64>::new(0, 4, 3, 1, 0, true, Init::He, &mut rng).is_err());
}

#[test]
fn pooling_and_flatten_layers() {
    let mut rng = Rng::seed(2);
    for (dims, k, s, p) in [(vec![2, 3, 4, 4], 2, 2, 0), (vec![1, 2, 7, 5], 3, 2, 1)] {
        let x = distinct(&mut rng, &dims);
        check_layer(
            &mut MaxPool2d {
                kernel: k,
                stride: s,
                padding: p,
            },
            &x,
        );
        check_layer(
            &mut AvgPool2d {
                kernel: k,
                stride: s,
                padding: p,
            },
            &x,
        );
        check_layer(&mut Flatten, &x);
    }
}

#[test]
fn batch_norm_in_training_and_in_evaluation() {
    let mut rng = Rng::seed(3);
    for dims in [vec![8, 5], vec![4, 3, 3, 3]] {
        let c = dims[1];
        let mut bn = BatchNorm::<f64>::new(c);
        *bn.weight.value_mut() = rng.uniform(&[c], 0.5, 1.5);
        *bn.bias.value_mut() = rng.normal(&[c], 0.0, 1.0);
        let x = rng.normal(&dims, 1.0, 2.0);
        assert!(bn.couples_batch());
        check_layer(&mut bn, &x);
        bn.set_training(false);
        assert!(!bn.couples_batch());
        check_layer(&mut bn, &x);
    }
}

/// A batch cut into parts: each part is normalised with its own rows'
/// statistics, and the running statistics are updated once, when the last
/// part has run, from all the rows together, whatever order the parts ran in.
#[test]
fn batch_norm_on_a_batch_cut_into_parts() {
    use nabla_autograd::BatchPart;
    let mut rng = Rng::seed(5);
    let x = rng.normal(&[10, 3, 2, 2], 1.0, 2.0);
    let rows = |r: std::ops::Range<usize>| {
        let per = 3 * 2 * 2;
        Tensor::from_f64s(&x.data()[r.start * per..r.end * per], &[r.len(), 3, 2, 2]).unwrap()
    };
    let parts = [0..4, 4..10];
    let whole = BatchNorm::<f64>::new(3);
    let tape = Tape::new();
    whole.forward(tape.constant(x.clone())).unwrap();
    for order in [[0, 1], [1, 0]] {
        let bn = BatchNorm::<f64>::new(3);
        for (k, &i) in order.iter().enumerate() {
            let tape = Tape::new();
            tape.set_batch_part(Some(BatchPart {
                batch: 7,
                index: i,
                count: 2,
            }));
            let y = bn.forward(tape.constant(rows(parts[i].clone()))).unwrap();
            // The part alone, normalised with its own statistics.
            let alone = BatchNorm::<f64>::new(3);
            let tape = Tape::new();
            let expected = alone
                .forward(tape.constant(rows(parts[i].clone())))
                .unwrap();
            assert!(y.value().allclose(&expected.value(), 1e-12, 1e-12));
            let batches = bn.named_buffers()[2].1.item().unwrap();
            assert_eq!(batches, k as f64, "updated only once every part has run");
        }
        let ((m, v), (wm, wv)) = (bn.running_stats(), whole.running_stats());
        assert!(m.allclose(&wm, 1e-12, 1e-12), "{m:?} against {wm:?}");
        assert!(v.allclose(&wv, 1e-12, 1e-12), "{v:?} against {wv:?}");
    }
    // A part of a new batch drops what an unfinished earlier batch left.
    let bn = BatchNorm::<f64>::new(3);
    for (batch, index) in [(1, 0), (2, 0), (2, 1)] {
        let tape = Tape::new();
        tape.set_batch_part(Some(BatchPart {
            batch,
            index,
            count: 2,
        }));
        bn.forward(tape.constant(rows(parts[index].clone())))
            .unwrap();
    }
    assert!(bn
        .running_stats()
        .0
        .allclose(&whole.running_stats().0, 1e-12, 1e-12));
    assert_eq!(bn.named_buffers()[2].1.item().unwrap(), 1.0);
}

#[test]
fn batch_norm_tracks_running_statistics_as_pytorch_does() {
    // torch.nn.BatchNorm1d(2) after one training batch [[1, 2], [3, 6]]:
    // running_mean = 0.9·0 + 0.1·[2, 4] = [0.2, 0.4];
    // running_var = 0.9·1 + 0.1·unbiased var [2, 8] = [1.1, 1.7].
    let bn = BatchNorm::<f64>::new(2);
    let tape = Tape::new();
    let x = Tensor::from_f64s(&[1.0, 2.0, 3.0, 6.0], &[2, 2]).unwrap();
    let y = bn.forward(tape.constant(x.clone())).unwrap().value();
    // Normalised with the batch's biased variance [1, 4]: ±1 per column.
    assert!(y.allclose(
        &Tensor::from_f64s(&[-1.0, -1.0, 1.0, 1.0], &[2, 2]).unwrap(),
        1e-4,
        1e-4
    ));
    let (mean, var) = bn.running_stats();
    assert!(mean.allclose(&Tensor::from_f64s(&[0.2, 0.4], &[2]).unwrap(), 1e-12, 1e-12));
    assert!(var.allclose(&Tensor::from_f64s(&[1.1, 1.7], &[2]).unwrap(), 1e-12, 1e-12));
    let buffers = bn.named_buffers();
    let names: Vec<&str> = buffers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["running_mean", "running_var", "num_batches_tracked"]
    );
    assert_eq!(buffers[2].1.item().unwrap(), 1.0);
    // One value per channel cannot be normalised in training.
    let one = tape.constant(Tensor::zeros(&[1, 2]));
    assert!(bn
        .forward(one)
        .unwrap_err()
        .to_string()
        .contains("more than one value"));
}

#[test]
fn dropout_is_the_identity_in_evaluation_and_seeded_in_training() {
    let mut d = Dropout::new(0.5).unwrap();
    let x = Tensor::<f64>::ones(&[4, 50]);
    let run = |d: &Dropout, seed: u64| {
        let tape = Tape::new();
        tape.seed_rng(seed);
        <Dropout as Module<f64>>::forward(d, tape.constant(x.clone()))
            .unwrap()
            .value()
    };
    let a = run(&d, 1);
    assert_eq!(a, run(&d, 1));
    assert_ne!(a, run(&d, 2));
    assert!(a.data().contains(&0.0) && a.data().contains(&2.0));
    Module::<f64>::set_training(&mut d, false);
    assert_eq!(run(&d, 1), x);
    assert!(Dropout::new(1.0).is_err());
}

#[test]
fn whole_convnets_pass_the_model_gradient_check() {
    let mut rng = Rng::seed(4);
    for spec in [
        "conv3k3p1,relu,maxpool2,conv4k3,tanh,flatten,linear5",
        "conv2k3s2p1,bn,sigmoid,avgpool2,flatten,bn,linear3,dropout0.5,linear4",
    ] {
        let net = NetSpec::parse(&[2, 8, 8], spec).unwrap();
        let mut model = net.build::<f64>(Init::He, &mut rng).unwrap();
        // Evaluation mode keeps dropout out of the check (its masks differ
        // between passes); batch norm is checked in training mode above.
        model.set_training(false);
        let x = rng.normal(&[3, 2 * 8 * 8], 0.0, 1.0); // flat rows, viewed as [3, 2, 8, 8]
        let classes = *net.output_shape().unwrap().last().unwrap();
        let report = check_model_gradients(
            &mut model,
            move |y| {
                loss::softmax_cross_entropy(
                    y,
                    Target::Indices(vec![0, 1, classes - 1]),
                    Reduction::Mean,
                )
            },
            &x,
            &ModelCheckOptions::default(),
        )
        .unwrap();
        assert!(report.passed(), "{spec}:\n{report}");
    }
}
