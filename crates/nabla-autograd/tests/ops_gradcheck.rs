//! Every op's backward against central differences in f64, on at least two
//! shapes each (broadcasting included where it applies), plus hand-derived values.

use nabla_autograd::{
    gradcheck, smallvec, GradcheckOptions, InputGrads, Reduction, Result, Tape, Target, Var,
};
use nabla_tensor::{Rng, Tensor};

fn randn(rng: &mut Rng, dims: &[usize]) -> Tensor<f64> {
    rng.normal(dims, 0.0, 1.0)
}

/// Values bounded away from 0 (for log, sqrt, div, abs, relu kinks).
fn positive(rng: &mut Rng, dims: &[usize]) -> Tensor<f64> {
    rng.uniform(dims, 0.5, 2.0)
}

/// Values with |x| ≥ 0.2, so no kink (relu, abs) lies within eps.
fn away_from_zero(rng: &mut Rng, dims: &[usize]) -> Tensor<f64> {
    randn(rng, dims).map(|v| {
        if v.abs() < 0.2 {
            v.signum() * 0.2 + v
        } else {
            v
        }
    })
}

fn check<F>(f: F, inputs: &[Tensor<f64>])
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let report = gradcheck(f, inputs, &GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "gradient check failed:\n{report}");
}

fn scalar_grad(f: impl for<'t> Fn(Var<'t, f64>) -> Result<Var<'t, f64>>, x: f64) -> (f64, f64) {
    let tape = Tape::<f64>::new();
    let v = tape.var(Tensor::scalar(x));
    let y = f(v).unwrap();
    let g = tape.backward(y).unwrap();
    (y.item().unwrap(), g.get(v).unwrap().item().unwrap())
}

#[test]
fn add_sub_mul_div_with_broadcasting() {
    let mut rng = Rng::seed(1);
    for (a, b) in [
        (vec![3, 4], vec![3, 4]),
        (vec![5, 3], vec![3]),
        (vec![2, 1, 3], vec![4, 1]),
    ] {
        let x = randn(&mut rng, &a);
        let y = positive(&mut rng, &b);
        check(|v| v[0].add(v[1]), &[x.clone(), y.clone()]);
        check(|v| v[0].sub(v[1]), &[x.clone(), y.clone()]);
        check(|v| v[0].mul(v[1]), &[x.clone(), y.clone()]);
        check(|v| v[0].div(v[1]), &[x.clone(), y.clone()]);
    }
    // d(a/b)/db = -a/b²: at a = 3, b = 2 that is -0.75.
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::scalar(3.0));
    let b = tape.var(Tensor::scalar(2.0));
    let g = tape.backward(a.div(b).unwrap()).unwrap();
    assert_eq!(g.get(b).unwrap().item().unwrap(), -0.75);
    assert_eq!(g.get(a).unwrap().item().unwrap(), 0.5);
}

#[test]
fn neg_and_scalar_ops() {
    let mut rng = Rng::seed(2);
    for dims in [vec![4], vec![2, 3]] {
        let x = randn(&mut rng, &dims);
        check(|v| v[0].neg(), std::slice::from_ref(&x));
        check(|v| v[0].add_scalar(2.5), std::slice::from_ref(&x));
        check(|v| v[0].mul_scalar(-1.5), std::slice::from_ref(&x));
    }
    // d(3x + 1)/dx = 3.
    assert_eq!(
        scalar_grad(|x| x.mul_scalar(3.0)?.add_scalar(1.0), 2.0),
        (7.0, 3.0)
    );
}

#[test]
fn matmul_in_every_transpose() {
    let mut rng = Rng::seed(3);
    for (m, k, n) in [(2, 3, 4), (5, 1, 3), (1, 6, 1)] {
        let a = randn(&mut rng, &[m, k]);
        let b = randn(&mut rng, &[k, n]);
        let bt = randn(&mut rng, &[n, k]);
        check(|v| v[0].matmul(v[1]), &[a.clone(), b.clone()]);
        check(|v| v[0].matmul_t(v[1]), &[a.clone(), bt.clone()]);
    }
    // d(sum(A·B))/dA = 1·Bᵀ: for A = [[1, 2]], B = [[3], [4]] the gradient is [3, 4].
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::from_f64s(&[1., 2.], &[1, 2]).unwrap());
    let b = tape.var(Tensor::from_f64s(&[3., 4.], &[2, 1]).unwrap());
    let y = a.matmul(b).unwrap();
    assert_eq!(y.item().unwrap(), 11.0);
    let g = tape.backward(y.sum().unwrap()).unwrap();
    assert_eq!(g.get(a).unwrap().data(), &[3., 4.]);
    assert_eq!(g.get(b).unwrap().data(), &[1., 2.]);
}

#[test]
fn reductions() {
    let mut rng = Rng::seed(4);
    for dims in [vec![3, 4], vec![2, 3, 2]] {
        let x = randn(&mut rng, &dims);
        check(|v| v[0].sum(), std::slice::from_ref(&x));
        check(|v| v[0].mean(), std::slice::from_ref(&x));
        for axis in 0..dims.len() {
            check(
                move |v| v[0].sum_axis(axis, false),
                std::slice::from_ref(&x),
            );
            check(
                move |v| v[0].mean_axis(axis, true),
                std::slice::from_ref(&x),
            );
        }
    }
    // d(mean of 4 values)/dx_i = 1/4.
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_f64s(&[1., 2., 3., 4.], &[2, 2]).unwrap());
    let g = tape.backward(x.mean().unwrap()).unwrap();
    assert_eq!(g.get(x).unwrap().data(), &[0.25; 4]);
}

#[test]
fn elementwise_functions() {
    let mut rng = Rng::seed(5);
    for dims in [vec![5], vec![3, 4]] {
        let x = randn(&mut rng, &dims);
        let p = positive(&mut rng, &dims);
        let k = away_from_zero(&mut rng, &dims);
        check(|v| v[0].exp(), std::slice::from_ref(&x));
        check(|v| v[0].log(), std::slice::from_ref(&p));
        check(|v| v[0].sqrt(), std::slice::from_ref(&p));
        check(|v| v[0].pow(3.0), std::slice::from_ref(&x));
        check(|v| v[0].pow(-0.5), std::slice::from_ref(&p));
        check(|v| v[0].abs(), std::slice::from_ref(&k));
    }
    // Hand values: d e^x = e^x; d ln x = 1/x; d √x = 1/(2√x); d x³ = 3x².
    let (_, d) = scalar_grad(|x| x.exp(), 1.0);
    assert!((d - std::f64::consts::E).abs() < 1e-15);
    assert_eq!(scalar_grad(|x| x.log(), 4.0).1, 0.25);
    assert_eq!(scalar_grad(|x| x.sqrt(), 4.0).1, 0.25);
    assert_eq!(scalar_grad(|x| x.pow(3.0), 2.0).1, 12.0);
    assert_eq!(scalar_grad(|x| x.abs(), -2.0).1, -1.0);
    assert_eq!(scalar_grad(|x| x.abs(), 0.0).1, 0.0);
}

#[test]
fn activations() {
    let mut rng = Rng::seed(6);
    for dims in [vec![7], vec![4, 5]] {
        let x = randn(&mut rng, &dims);
        let k = away_from_zero(&mut rng, &dims);
        check(|v| v[0].relu(), std::slice::from_ref(&k));
        check(|v| v[0].sigmoid(), std::slice::from_ref(&x));
        check(|v| v[0].tanh(), std::slice::from_ref(&x));
    }
    // ReLU'(x) is 1 for x > 0, and 0 for x < 0 *and at x = 0* (stated convention).
    assert_eq!(scalar_grad(|x| x.relu(), 2.0), (2.0, 1.0));
    assert_eq!(scalar_grad(|x| x.relu(), -2.0), (0.0, 0.0));
    assert_eq!(scalar_grad(|x| x.relu(), 0.0), (0.0, 0.0));
    // sigmoid(0) = 0.5 and its derivative y(1-y) = 0.25.
    assert_eq!(scalar_grad(|x| x.sigmoid(), 0.0), (0.5, 0.25));
    // tanh'(0) = 1 - 0² = 1.
    assert_eq!(scalar_grad(|x| x.tanh(), 0.0), (0.0, 1.0));
    // Sigmoid does not overflow for large inputs.
    assert_eq!(scalar_grad(|x| x.sigmoid(), -1000.0), (0.0, 0.0));
}

#[test]
fn softmax_and_log_softmax() {
    let mut rng = Rng::seed(7);
    for dims in [vec![4], vec![3, 5], vec![2, 2, 3]] {
        let x = randn(&mut rng, &dims);
        check(|v| v[0].softmax(), std::slice::from_ref(&x));
        check(|v| v[0].log_softmax(), std::slice::from_ref(&x));
    }
    // Subtracting the row max keeps huge logits finite: softmax([1000, 1000]) = [0.5, 0.5].
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_f64s(&[1000., 1000.], &[1, 2]).unwrap());
    assert_eq!(x.softmax().unwrap().value().data(), &[0.5, 0.5]);
    let ls = x.log_softmax().unwrap().value();
    assert!((ls.data()[0] + std::f64::consts::LN_2).abs() < 1e-12);
}

#[test]
fn reshape_flatten_permute_transpose_gather() {
    let mut rng = Rng::seed(8);
    let x = randn(&mut rng, &[2, 3, 4]);
    check(|v| v[0].reshape(&[6, 4]), std::slice::from_ref(&x));
    check(|v| v[0].flatten(), std::slice::from_ref(&x));
    check(|v| v[0].permute(&[2, 0, 1]), std::slice::from_ref(&x));
    check(|v| v[0].transpose(), std::slice::from_ref(&x));
    let m = randn(&mut rng, &[4, 3]);
    check(|v| v[0].transpose(), std::slice::from_ref(&m));
    check(
        |v| v[0].gather_rows(&[2, 0, 1, 2]),
        std::slice::from_ref(&m),
    );
    check(|v| v[0].gather_rows(&[1]), &[randn(&mut rng, &[1, 5])]);
    // Gather scatters its gradient: d(x[0,2] + x[1,0])/dx is 1 at those two places.
    let tape = Tape::<f64>::new();
    let v = tape.var(Tensor::zeros(&[2, 3]));
    let g = tape
        .backward(v.gather_rows(&[2, 0]).unwrap().sum().unwrap())
        .unwrap();
    assert_eq!(g.get(v).unwrap().data(), &[0., 0., 1., 1., 0., 0.]);
}

#[test]
fn fused_softmax_cross_entropy() {
    let mut rng = Rng::seed(9);
    for (n, c) in [(1, 3), (4, 5), (6, 10)] {
        let x = randn(&mut rng, &[n, c]);
        let labels: Vec<usize> = (0..n).map(|i| (i * 7 + 1) % c).collect();
        let onehot = Tensor::<f64>::one_hot(&labels, c).unwrap();
        for red in [Reduction::Mean, Reduction::Sum] {
            let l = labels.clone();
            check(
                move |v| v[0].softmax_cross_entropy(Target::Indices(l.clone()), red),
                std::slice::from_ref(&x),
            );
            let h = onehot.clone();
            check(
                move |v| v[0].softmax_cross_entropy(Target::OneHot(h.clone()), red),
                std::slice::from_ref(&x),
            );
        }
    }
    // Hand value: zero logits over 4 classes give y = 1/4 everywhere, loss ln 4,
    // and gradient (y - t)/N: with N = 2, (0.25 - 1)/2 = -0.375 at the label, 0.125 elsewhere.
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros(&[2, 4]));
    let loss = x
        .softmax_cross_entropy(Target::Indices(vec![1, 3]), Reduction::Mean)
        .unwrap();
    assert!((loss.item().unwrap() - 4f64.ln()).abs() < 1e-12);
    let g = tape.backward(loss).unwrap();
    assert_eq!(
        g.get(x).unwrap().data(),
        &[0.125, -0.375, 0.125, 0.125, 0.125, 0.125, 0.125, -0.375]
    );
    // Same result from one-hot targets.
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros(&[2, 4]));
    let t = Tensor::one_hot(&[1, 3], 4).unwrap();
    let g = tape
        .backward(
            x.softmax_cross_entropy(Target::OneHot(t), Reduction::Mean)
                .unwrap(),
        )
        .unwrap();
    assert_eq!(g.get(x).unwrap().data()[1], -0.375);
}

#[test]
fn label_smoothing() {
    let mut rng = Rng::seed(11);
    for (n, c) in [(1, 3), (4, 5), (6, 10)] {
        let x = randn(&mut rng, &[n, c]);
        let labels: Vec<usize> = (0..n).map(|i| (i * 3 + 2) % c).collect();
        let onehot = Tensor::<f64>::one_hot(&labels, c).unwrap();
        for red in [Reduction::Mean, Reduction::Sum] {
            for eps in [0.1, 0.35] {
                let l = labels.clone();
                check(
                    move |v| {
                        v[0].softmax_cross_entropy_smoothed(Target::Indices(l.clone()), red, eps)
                    },
                    std::slice::from_ref(&x),
                );
                let h = onehot.clone();
                check(
                    move |v| {
                        v[0].softmax_cross_entropy_smoothed(Target::OneHot(h.clone()), red, eps)
                    },
                    std::slice::from_ref(&x),
                );
            }
        }
        // The same loss and gradient as the plain loss against the smoothed
        // rows q = (1 - ε)·t + ε/C given as probabilities.
        let eps = 0.2;
        let q = onehot.map(|t| (1.0 - eps) * t + eps / c as f64);
        let tape = Tape::<f64>::new();
        let a = tape.var(x.clone());
        let smoothed = a
            .softmax_cross_entropy_smoothed(Target::Indices(labels.clone()), Reduction::Mean, eps)
            .unwrap();
        let b = tape.var(x.clone());
        let explicit = b
            .softmax_cross_entropy(Target::OneHot(q), Reduction::Mean)
            .unwrap();
        assert!((smoothed.item().unwrap() - explicit.item().unwrap()).abs() < 1e-12);
        let ga = tape.backward(smoothed).unwrap().get(a).unwrap().clone();
        let gb = tape.backward(explicit).unwrap().get(b).unwrap().clone();
        for (u, v) in ga.data().iter().zip(gb.data()) {
            assert!((u - v).abs() < 1e-15, "{u} vs {v}");
        }
    }
    // ε = 0 is the plain loss, bit for bit; ε outside [0, 1] is an error.
    let x = randn(&mut rng, &[3, 4]);
    let tape = Tape::<f64>::new();
    let v = tape.var(x);
    let t = || Target::Indices(vec![0, 3, 1]);
    let plain = v.softmax_cross_entropy(t(), Reduction::Mean).unwrap();
    let zero = v
        .softmax_cross_entropy_smoothed(t(), Reduction::Mean, 0.0)
        .unwrap();
    assert_eq!(plain.item().unwrap(), zero.item().unwrap());
    let err = v
        .softmax_cross_entropy_smoothed(t(), Reduction::Mean, 1.5)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "softmax_cross_entropy: label smoothing 1.5 is not in [0, 1]"
    );
}

#[test]
fn shape_errors_are_values_not_panics() {
    let tape = Tape::<f32>::new();
    let a = tape.var(Tensor::zeros(&[2, 3]));
    let b = tape.var(Tensor::zeros(&[4]));
    assert_eq!(
        a.add(b).unwrap_err().to_string(),
        "add: shapes [2, 3] and [4] are not compatible"
    );
    assert!(a.matmul(a).is_err());
    assert!(a.gather_rows(&[5, 0]).is_err());
    assert!(a
        .softmax_cross_entropy(Target::Indices(vec![0]), Reduction::Mean)
        .is_err());
    assert!(a.sum_axis(3, false).is_err());
    assert!(a.reshape(&[7]).is_err());
    let other = Tape::<f32>::new();
    let c = other.var(Tensor::zeros(&[2, 3]));
    assert!(a.add(c).is_err());
    assert!(
        tape.backward(a).is_err(),
        "backward of a non-scalar needs an explicit seed"
    );
}

/// An op with a deliberately wrong backward (claims d(x²)/dx = x): the check must catch it.
struct BrokenSquare;

impl nabla_autograd::Op<f64> for BrokenSquare {
    fn name(&self) -> &'static str {
        "broken_square"
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

#[test]
fn gradcheck_catches_a_wrong_backward_and_points_at_it() {
    let x = Tensor::<f64>::from_f64s(&[0.1, 3.0, -0.2], &[3]).unwrap();
    let report = gradcheck(
        |v| v[0].tape().apply(BrokenSquare, &[v[0]]),
        &[x],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(!report.passed());
    let t = report.first_failure().unwrap();
    assert_eq!(
        t.worst_index,
        vec![1],
        "the largest error is at x = 3 (analytic 3, numeric 6)"
    );
    // The wrong backward is off by x·r (r: the random projection), far beyond tolerance.
    assert!(t.max_abs_diff > 0.1, "{}", t.max_abs_diff);
    assert!(report.to_string().contains("FAILED"));
}
