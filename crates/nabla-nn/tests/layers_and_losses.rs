//! Layers and losses against central differences in f64 (two shapes or more
//! each), hand-derived values, PyTorch-compatible names, and the model check.

use nabla_autograd::{
    gradcheck, smallvec, GradcheckOptions, InputGrads, Param, Reduction, Result, Tape, Target, Var,
};
use nabla_nn::{
    check_layer_gradients, check_model_gradients, loss, Activation, Init, Linear, MlpConfig,
    ModelCheckOptions, Module, Relu, Sequential, Sigmoid, Softmax, Tanh,
};
use nabla_tensor::{Rng, Tensor};

fn randn(rng: &mut Rng, dims: &[usize]) -> Tensor<f64> {
    rng.normal(dims, 0.0, 1.0)
}

/// Checks a layer's input gradient and its parameter gradients.
fn check_layer(layer: &mut dyn Module<f64>, x: &Tensor<f64>) {
    let report = check_layer_gradients(layer, x, &ModelCheckOptions::default()).unwrap();
    assert!(report.passed(), "{}:\n{report}", layer.describe());
    assert_eq!(report.tensors.last().unwrap().name, "input");
}

#[test]
fn linear_on_matrices_and_flattened_images() {
    let mut rng = Rng::seed(1);
    // 5 input features, 3 outputs: the material's example shapes.
    let mut fc = Linear::<f64>::new(5, 3, Init::Normal { std: 0.5 }, &mut rng);
    fc.bias
        .as_mut()
        .unwrap()
        .set(randn(&mut rng, &[3]))
        .unwrap();
    check_layer(&mut fc, &randn(&mut rng, &[4, 5]));
    check_layer(&mut fc, &randn(&mut rng, &[1, 5]));
    let mut conv_like = Linear::<f64>::new(12, 2, Init::Xavier, &mut rng);
    check_layer(&mut conv_like, &randn(&mut rng, &[3, 1, 3, 4]));
    assert_eq!(
        fc.weight.value().dims(),
        &[3, 5],
        "weight is [out, in] as in PyTorch"
    );
}

#[test]
fn linear_hand_values() {
    // W = [[1, 2]], b = [0.5], x = [[3, 4]]: out = 3 + 8 + 0.5 = 11.5;
    // with L = out: dW = doutᵀ·x = [[3, 4]], db = 1, dx = dout·W = [[1, 2]].
    let fc = Linear::from_tensors(
        Tensor::<f64>::from_f64s(&[1., 2.], &[1, 2]).unwrap(),
        Some(Tensor::from_f64s(&[0.5], &[1]).unwrap()),
    )
    .unwrap();
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_f64s(&[3., 4.], &[1, 2]).unwrap());
    let y = fc.forward(x).unwrap();
    assert_eq!(y.value().data(), &[11.5]);
    let g = tape.backward(y.sum().unwrap()).unwrap();
    assert_eq!(g.param(&fc.weight).unwrap().data(), &[3., 4.]);
    assert_eq!(g.param(fc.bias.as_ref().unwrap()).unwrap().data(), &[1.]);
    assert_eq!(g.get(x).unwrap().data(), &[1., 2.]);
    // A 1-D input is a batch of one.
    let tape = Tape::<f64>::new();
    assert_eq!(
        fc.forward(tape.constant(Tensor::from_f64s(&[3., 4.], &[2]).unwrap()))
            .unwrap()
            .value()
            .dims(),
        &[1, 1]
    );
    // A wrong feature count is an error naming the layer.
    let err = fc
        .forward(tape.constant(Tensor::zeros(&[2, 3])))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Linear: Linear(2 → 1) got input of shape [2, 3] (3 features)"
    );
}

#[test]
fn activation_layers() {
    let mut rng = Rng::seed(2);
    for dims in [vec![3, 4], vec![2, 6]] {
        let x = randn(&mut rng, &dims).map(|v| if v.abs() < 0.1 { 0.5 } else { v });
        check_layer(&mut Relu, &x);
        check_layer(&mut Sigmoid, &x);
        check_layer(&mut Tanh, &x);
        check_layer(&mut Softmax, &x);
    }
}

#[test]
fn mlp_names_sizes_and_whole_model_check() {
    let mut rng = Rng::seed(3);
    let net = MlpConfig::new(784, &[16, 16], 10)
        .activation(Activation::Sigmoid)
        .init::<f32>(&mut rng)
        .unwrap();
    assert_eq!(net.num_params(), 13_002);
    let names: Vec<String> = net.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    );

    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
        let mut net = MlpConfig::new(6, &[5, 4], 3)
            .activation(act)
            .with_init(Init::Xavier)
            .init::<f64>(&mut rng)
            .unwrap();
        let x = randn(&mut rng, &[4, 6]);
        let target = Target::Indices(vec![0, 2, 1, 2]);
        let report = check_model_gradients(
            &mut net,
            move |y| loss::softmax_cross_entropy(y, target.clone(), Reduction::Mean),
            &x,
            &ModelCheckOptions::default(),
        )
        .unwrap();
        assert!(report.passed(), "{act}:\n{report}");
    }
    // Sampling: k coordinates per tensor on a 784-100-10 network.
    let mut big = MlpConfig::new(784, &[100], 10)
        .init::<f64>(&mut rng)
        .unwrap();
    let x: Tensor<f64> = rng.uniform(&[3, 784], 0.0, 1.0);
    let opts = ModelCheckOptions {
        samples_per_tensor: Some(20),
        ..Default::default()
    };
    let report = check_model_gradients(
        &mut big,
        |y| loss::softmax_cross_entropy(y, Target::Indices(vec![1, 5, 9]), Reduction::Mean),
        &x,
        &opts,
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.report.tensors.iter().all(|t| t.checked <= 20));
    assert_eq!(report.report.tensors[0].name, "0.weight");
}

/// A layer whose backward is wrong: forward x², backward claims x (not 2x).
struct BrokenSquare;

impl nabla_autograd::Op<f64> for BrokenSquare {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn forward(&mut self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(|v| v * v))
    }
    fn backward(
        &self,
        x: &[&Tensor<f64>],
        _: &Tensor<f64>,
        g: &Tensor<f64>,
        _: &[bool],
    ) -> Result<InputGrads<f64>> {
        Ok(smallvec![Some(g.mul(x[0])?)])
    }
}

struct BrokenLayer;

impl Module<f64> for BrokenLayer {
    fn forward<'t>(&self, x: Var<'t, f64>) -> Result<Var<'t, f64>> {
        x.tape().apply(BrokenSquare, &[x])
    }
    fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(String, &'a Param<f64>)) {}
    fn visit_params_mut<'a>(&'a mut self, _: &str, _: &mut dyn FnMut(String, &'a mut Param<f64>)) {}
    fn describe(&self) -> String {
        "BrokenLayer".into()
    }
}

#[test]
fn the_model_check_names_the_first_bad_layer() {
    let mut rng = Rng::seed(4);
    let mut net = Sequential::new()
        .push(Linear::<f64>::new(4, 5, Init::Xavier, &mut rng))
        .push(Tanh)
        .push(BrokenLayer)
        .push(Linear::<f64>::new(5, 2, Init::Xavier, &mut rng));
    let x = randn(&mut rng, &[3, 4]);
    let report = check_model_gradients(
        &mut net,
        |y| loss::softmax_cross_entropy(y, Target::Indices(vec![0, 1, 1]), Reduction::Mean),
        &x,
        &ModelCheckOptions::default(),
    )
    .unwrap();
    assert!(!report.passed());
    assert_eq!(report.first_bad_layer.as_deref(), Some("2 (BrokenLayer)"));
    assert!(
        report
            .report
            .first_failure()
            .unwrap()
            .name
            .starts_with("0."),
        "the first Linear's weights are affected"
    );
}

fn check_loss<F>(f: F, inputs: &[Tensor<f64>])
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let report = gradcheck(f, inputs, &GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
}

/// The value of a loss of constant inputs.
fn value<F>(f: F, inputs: &[Tensor<f64>]) -> f64
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let tape = Tape::<f64>::new();
    let vars: Vec<Var<'_, f64>> = inputs.iter().map(|t| tape.constant(t.clone())).collect();
    f(&vars).unwrap().item().unwrap()
}

fn t(values: &[f64], dims: &[usize]) -> Tensor<f64> {
    Tensor::from_f64s(values, dims).unwrap()
}

#[test]
fn regression_losses() {
    let mut rng = Rng::seed(5);
    for dims in [vec![4], vec![3, 2]] {
        let y = randn(&mut rng, &dims);
        let t = randn(&mut rng, &dims);
        for red in [Reduction::Mean, Reduction::Sum] {
            check_loss(move |v| loss::mse(v[0], v[1], red), &[y.clone(), t.clone()]);
            check_loss(move |v| loss::l1(v[0], v[1], red), &[y.clone(), t.clone()]);
        }
        check_loss(
            |v| loss::sum_squared_error(v[0], v[1]),
            &[y.clone(), t.clone()],
        );
    }
    // The book's example: t = 2 (one-hot), y = [0.1, 0.05, 0.6, 0, 0.05, 0.1, 0, 0.1, 0, 0]
    // gives 0.5·Σ(y-t)² = 0.0975.
    let y = [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0];
    let target = [0., 0., 1., 0., 0., 0., 0., 0., 0., 0.];
    let e = value(
        |v| loss::sum_squared_error(v[0], v[1]),
        &[t(&y, &[10]), t(&target, &[10])],
    );
    assert!((e - 0.0975).abs() < 1e-12);
    // MSE mean of (1, 3) vs (0, 0) = (1 + 9)/2 = 5; L1 mean = 2.
    let pair = [t(&[1., 3.], &[2]), Tensor::zeros(&[2])];
    assert_eq!(
        value(|v| loss::mse(v[0], v[1], Reduction::Mean), &pair),
        5.0
    );
    assert_eq!(value(|v| loss::l1(v[0], v[1], Reduction::Mean), &pair), 2.0);
}

#[test]
fn classification_losses() {
    let mut rng = Rng::seed(6);
    for (n, c) in [(1, 4), (5, 3)] {
        let probs = rng.uniform::<f64>(&[n, c], 0.05, 1.0);
        let labels: Vec<usize> = (0..n).map(|i| (i + 1) % c).collect();
        let l = labels.clone();
        check_loss(
            move |v| loss::cross_entropy(v[0], &Target::Indices(l.clone()), Reduction::Mean),
            std::slice::from_ref(&probs),
        );
        let h = Tensor::one_hot(&labels, c).unwrap();
        check_loss(
            move |v| loss::cross_entropy(v[0], &Target::OneHot(h.clone()), Reduction::Sum),
            std::slice::from_ref(&probs),
        );
        let logits = randn(&mut rng, &[n, c]);
        let l = labels.clone();
        check_loss(
            move |v| loss::softmax_cross_entropy(v[0], Target::Indices(l.clone()), Reduction::Mean),
            &[logits],
        );
        let p = rng.uniform::<f64>(&[n, c], 0.05, 0.95);
        let x = randn(&mut rng, &[n, c]);
        let t = rng.uniform::<f64>(&[n, c], 0.0, 1.0);
        check_loss(
            |v| loss::binary_cross_entropy(v[0], v[1], Reduction::Mean),
            &[p, t.clone()],
        );
        check_loss(
            |v| loss::binary_cross_entropy_with_logits(v[0], v[1], Reduction::Sum),
            &[x, t],
        );
    }
    // The book's example: y[2] = 0.6 ⇒ -log(0.6 + 1e-10) = 0.5108256236 (the book
    // prints 0.510825457 because its guard is 1e-7; the material's is 1e-10).
    // One-hot and index targets agree.
    let y = [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0];
    let onehot = Tensor::one_hot(&[2], 10).unwrap();
    let yt = [t(&y, &[10])];
    let a = value(
        |v| loss::cross_entropy(v[0], &Target::OneHot(onehot.clone()), Reduction::Mean),
        &yt,
    );
    let b = value(
        |v| loss::cross_entropy(v[0], &Target::Indices(vec![2]), Reduction::Mean),
        &yt,
    );
    assert!((a - 0.510_825_623_599_324).abs() < 1e-12 && a == b, "{a}");
    // A zero probability is guarded: -ln(1e-10) = 23.03, not infinity.
    let z = value(
        |v| loss::cross_entropy(v[0], &Target::Indices(vec![3]), Reduction::Mean),
        &yt,
    );
    assert!((z - 23.025_850_929_940_457).abs() < 1e-6);
    // BCE with logits at x = 0, t = 1 is ln 2, and matches BCE of sigmoid(0) = 0.5.
    let bl = value(
        |v| loss::binary_cross_entropy_with_logits(v[0], v[1], Reduction::Mean),
        &[Tensor::zeros(&[1]), Tensor::ones(&[1])],
    );
    assert!((bl - std::f64::consts::LN_2).abs() < 1e-12);
    // Stable for huge logits.
    let big = value(
        |v| loss::binary_cross_entropy_with_logits(v[0], v[1], Reduction::Mean),
        &[Tensor::full(&[1], 1000.0), Tensor::zeros(&[1])],
    );
    assert!((big - 1000.0).abs() < 1e-9);
    // Mismatched shapes are errors.
    let tape = Tape::<f64>::new();
    assert!(loss::mse(
        tape.constant(Tensor::zeros(&[2])),
        tape.constant(Tensor::zeros(&[3])),
        Reduction::Mean
    )
    .is_err());
}
