//! Every optimiser against values computed by hand from PyTorch's formulas.

use nabla_autograd::{Gradients, Param, ParamGrad, Tape};
use nabla_optim::{clip_grad_norm, Method, OptimizerConfig};
use nabla_tensor::Tensor;

/// Gradients for `L = g·w` (so ∂L/∂w = g) for each parameter.
fn grads_of(params: &[&Param<f64>], g: &[f64]) -> Gradients<f64> {
    let tape = Tape::<f64>::new();
    let mut loss = tape.constant(Tensor::scalar(0.0));
    for (p, &gi) in params.iter().zip(g) {
        loss = loss
            .add(tape.param(p).mul_scalar(gi).unwrap().sum().unwrap())
            .unwrap();
    }
    tape.backward(loss).unwrap()
}

/// Runs `steps` steps from w = 1 with constant gradient 0.5; returns w after each.
fn run(config: OptimizerConfig, steps: usize) -> Vec<f64> {
    let mut w = Param::new(Tensor::<f64>::scalar(1.0));
    let mut opt = config.init::<f64>();
    (0..steps)
        .map(|_| {
            let g = grads_of(&[&w], &[0.5]);
            opt.step(&mut [&mut w], &g).unwrap();
            w.value().item().unwrap()
        })
        .collect()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
    }
}

#[test]
fn sgd() {
    // w ← 1 - 0.1·0.5 = 0.95, then 0.90.
    close(
        &run(OptimizerConfig::new(Method::Sgd, 0.1), 2),
        &[0.95, 0.90],
    );
}

#[test]
fn momentum_and_nesterov() {
    // v₁ = 0.5, w₁ = 0.95; v₂ = 0.9·0.5 + 0.5 = 0.95, w₂ = 0.95 - 0.095 = 0.855.
    close(
        &run(OptimizerConfig::new(Method::momentum(), 0.1), 2),
        &[0.95, 0.855],
    );
    // Nesterov: v₁ = 0.5, w₁ = 1 - 0.1·(0.5 + 0.45) = 0.905;
    // v₂ = 0.95, w₂ = 0.905 - 0.1·(0.5 + 0.855) = 0.7695.
    close(
        &run(OptimizerConfig::new(Method::nesterov(), 0.1), 2),
        &[0.905, 0.7695],
    );
}

#[test]
fn adagrad_and_rmsprop() {
    // AdaGrad: h₁ = 0.25, w₁ = 1 - 0.1·0.5/0.5 = 0.9; h₂ = 0.5, w₂ = 0.9 - 0.05/√0.5.
    let w2 = 0.9 - 0.05 / 0.5f64.sqrt();
    close(
        &run(OptimizerConfig::new(Method::AdaGrad { eps: 0.0 }, 0.1), 2),
        &[0.9, w2],
    );
    // RMSProp (α = 0.99): h₁ = 0.0025, w₁ = 1 - 0.1·0.5/0.05 = 0.
    close(
        &run(
            OptimizerConfig::new(
                Method::RmsProp {
                    alpha: 0.99,
                    eps: 0.0,
                },
                0.1,
            ),
            1,
        ),
        &[0.0],
    );
}

#[test]
fn adam_and_adamw() {
    // With a constant gradient, bias-corrected m̂ = g and v̂ = g², so every step is
    // lr·g/|g| = lr: w = 0.9, 0.8, 0.7.
    close(
        &run(
            OptimizerConfig::new(
                Method::Adam {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 0.0,
                },
                0.1,
            ),
            3,
        ),
        &[0.9, 0.8, 0.7],
    );
    // AdamW (λ = 0.1): w ← w - lr·λ·w first: 1 - 0.01 = 0.99, then - 0.1 = 0.89.
    let c = OptimizerConfig::new(
        Method::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 0.0,
        },
        0.1,
    )
    .weight_decay(0.1);
    close(&run(c, 1), &[0.89]);
}

#[test]
fn l2_and_l1_regularisation() {
    // L2 λ = 0.1: g = 0.5 + 0.1·1 = 0.6, w = 1 - 0.06 = 0.94.
    close(
        &run(OptimizerConfig::new(Method::Sgd, 0.1).weight_decay(0.1), 1),
        &[0.94],
    );
    // L1 λ₁ = 0.2: g = 0.5 + 0.2·sign(1) = 0.7, w = 0.93.
    close(
        &run(OptimizerConfig::new(Method::Sgd, 0.1).l1(0.2), 1),
        &[0.93],
    );
}

#[test]
fn proximal_l1_reaches_exact_zeros_where_the_subgradient_oscillates() {
    // No data gradient; λ₁ = 1, lr 0.1: the threshold is 0.1 per step.
    let start = [0.05, -0.3, 1.0, 0.0];
    let step = |config: OptimizerConfig, steps: usize| {
        let mut w = Param::new(Tensor::<f64>::from_vec(start.to_vec(), &[4]).unwrap());
        let mut opt = config.init::<f64>();
        for _ in 0..steps {
            let g = grads_of(&[&w], &[0.0]);
            opt.step(&mut [&mut w], &g).unwrap();
        }
        w.value().to_vec()
    };
    // w ← sign(w)·max(|w| − 0.1, 0): 0.05 → 0, −0.3 → −0.2, 1 → 0.9, 0 stays 0.
    close(
        &step(OptimizerConfig::new(Method::Sgd, 0.1).l1_proximal(1.0), 1),
        &[0.0, -0.2, 0.9, 0.0],
    );
    // Four steps: −0.3 reaches 0 and stays there, as 0.05 does.
    close(
        &step(OptimizerConfig::new(Method::Sgd, 0.1).l1_proximal(1.0), 4),
        &[0.0, 0.0, 0.6, 0.0],
    );
    // The subgradient form steps over 0 and back: 0.05 → −0.05 → 0.05 …
    let sub = step(OptimizerConfig::new(Method::Sgd, 0.1).l1(1.0), 4);
    assert!(
        (sub[0] - 0.05).abs() < 1e-12 && sub[1].abs() > 0.05,
        "{sub:?}"
    );
    // With Adam too, small weights become exact zeros.
    let adam = step(
        OptimizerConfig::new(Method::adam(), 0.1).l1_proximal(1.0),
        1,
    );
    assert_eq!(adam[0], 0.0);
}

#[test]
fn clipping_by_global_norm() {
    let a = Param::new(Tensor::<f64>::scalar(0.0));
    let b = Param::new(Tensor::<f64>::scalar(0.0));
    // Gradients 3 and 4: norm 5, clipped to 1 ⇒ 0.6 and 0.8 (up to PyTorch's 1e-6).
    let mut g = grads_of(&[&a, &b], &[3.0, 4.0]);
    let norm = clip_grad_norm(&[&a, &b], &mut g, 1.0);
    assert_eq!(norm, 5.0);
    assert!((g.param(&a).unwrap().item().unwrap() - 0.6).abs() < 1e-6);
    assert!((g.param(&b).unwrap().item().unwrap() - 0.8).abs() < 1e-6);
    // The same clipping inside the optimiser: SGD lr 1 moves (a, b) by (-0.6, -0.8).
    let (mut a, mut b) = (a, b);
    let g = grads_of(&[&a, &b], &[3.0, 4.0]);
    let mut opt = OptimizerConfig::new(Method::Sgd, 1.0)
        .clip_norm(1.0)
        .init::<f64>();
    opt.step(&mut [&mut a, &mut b], &g).unwrap();
    assert!((a.value().item().unwrap() + 0.6).abs() < 1e-6);
    assert!((b.value().item().unwrap() + 0.8).abs() < 1e-6);
}

#[test]
fn state_mismatch_is_an_error_and_state_round_trips() {
    let mut w = Param::new(Tensor::<f64>::zeros(&[2]));
    let mut opt = OptimizerConfig::new(Method::adam(), 0.1).init::<f64>();
    let g = grads_of(&[&w], &[1.0]);
    opt.step(&mut [&mut w], &g).unwrap();
    let mut other = Param::new(Tensor::<f64>::zeros(&[3]));
    let g2 = grads_of(&[&other], &[1.0]);
    assert!(opt.step(&mut [&mut other], &g2).is_err());
    let saved = opt.state().clone();
    assert_eq!(saved.step, 1);
    let mut fresh = OptimizerConfig::new(Method::adam(), 0.1).init::<f64>();
    fresh.load_state(saved.clone()).unwrap();
    assert_eq!(fresh.state(), &saved);
    let mut sgd = OptimizerConfig::new(Method::Sgd, 0.1).init::<f64>();
    assert!(sgd.load_state(saved).is_err());
}

#[test]
fn every_method_minimises_a_quadratic() {
    for method in Method::all() {
        let lr = if matches!(method, Method::AdaGrad { .. }) {
            0.5
        } else {
            0.05
        };
        let mut w = Param::new(Tensor::<f64>::from_f64s(&[-3.0, 4.0], &[2]).unwrap());
        let mut opt = OptimizerConfig::new(method, lr).init::<f64>();
        for _ in 0..2000 {
            let tape = Tape::<f64>::new();
            let loss = tape.param(&w).pow(2.0).unwrap().sum().unwrap();
            let g = tape.backward(loss).unwrap();
            opt.step(&mut [&mut w], &g).unwrap();
        }
        let norm: f64 = w.value().data().iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm < 0.05, "{} ended at {:?}", method.name(), w.value());
    }
}

/// Gradients of `L = Σ c·w` for a parameter of `n` elements, `c` varying by
/// element and by `seed`.
fn varied_grads(w: &Param<f32>, n: usize, seed: usize) -> Gradients<f32> {
    let c: Vec<f64> = (0..n)
        .map(|i| (((i * 7 + seed * 11) % 23) as f64 - 11.0) / 13.0)
        .collect();
    let tape = Tape::<f32>::new();
    let c = tape.constant(Tensor::from_f64s(&c, &[n]).unwrap());
    let loss = tape.param(w).mul(c).unwrap().sum().unwrap();
    tape.backward(loss).unwrap()
}

/// Stepping with the sum of shard stores is adding them into the first and
/// stepping with that, bit for bit, for every method with regularisation
/// and clipping; and a parameter large enough to be shared out between
/// threads gets the same bits on one thread and on four.
#[test]
fn a_step_with_shards_is_the_step_with_their_sum_on_any_thread_count() {
    let n = 70_001;
    let start: Vec<f64> = (0..n).map(|i| ((i % 29) as f64 - 14.0) / 9.0).collect();
    for method in Method::all() {
        let mut config = OptimizerConfig::new(method, 0.05).clip_norm(50.0);
        config.weight_decay = 0.01;
        config.l1 = 0.001;
        let run = |threads: usize, summed: bool| -> Tensor<f32> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut w = Param::new(Tensor::<f32>::from_f64s(&start, &[n]).unwrap());
                let mut opt = config.init::<f32>();
                for step in 0..3 {
                    let shards: Vec<_> =
                        (0..3).map(|s| varied_grads(&w, n, step * 3 + s)).collect();
                    if summed {
                        let mut sum = shards[0].clone();
                        for other in &shards[1..] {
                            sum.add_param_grads(other).unwrap();
                        }
                        opt.step(&mut [&mut w], &sum).unwrap();
                    } else {
                        let refs: Vec<_> = shards.iter().collect();
                        opt.step_sum(&refs, |f| f(&mut w)).unwrap();
                    }
                }
                w.value().clone()
            })
        };
        let reference = run(1, true);
        assert_eq!(run(1, false), reference, "{}: one thread", method.name());
        assert_eq!(run(4, false), reference, "{}: four threads", method.name());
    }
}

#[test]
fn a_gradient_of_the_wrong_size_is_an_error() {
    let mut w = Param::new(Tensor::<f32>::zeros(&[4]));
    let other = Param::new(Tensor::<f32>::zeros(&[3]));
    let mut g = varied_grads(&w, 4, 0);
    // Put a 3-element gradient under w's id.
    let wrong = varied_grads(&other, 3, 1);
    *g.param_mut(&w).unwrap() = wrong.param(&other).unwrap().clone();
    let mut opt = OptimizerConfig::new(Method::Sgd, 0.1).init::<f32>();
    let err = opt.step(&mut [&mut w], &g).unwrap_err().to_string();
    assert!(err.contains("gradient of 3 elements"), "{err}");
    assert_eq!(w.value().data(), &[0.0; 4], "nothing was updated");
}

/// A parameter the loss does not depend on has no gradient: with clipping on
/// it is left as it is, and the others are updated.
#[test]
fn a_parameter_without_a_gradient_is_skipped_with_clipping_on() {
    let mut used = Param::new(Tensor::<f32>::zeros(&[4]));
    let mut unused = Param::new(Tensor::<f32>::ones(&[3]));
    let g = varied_grads(&used, 4, 2);
    let mut opt = OptimizerConfig::new(Method::Sgd, 0.1)
        .clip_norm(1.0)
        .init::<f32>();
    opt.step(&mut [&mut used, &mut unused], &g).unwrap();
    assert_eq!(unused.value().data(), &[1.0; 3]);
    assert!(used.value().data().iter().any(|&v| v != 0.0));
}

/// The gradient of `L = Σ sigmoid(x · Wᵀ)` for one row `x` (seeded), in a
/// store that keeps outer products or one that forms them.
fn one_row_grads(w: &Param<f32>, seed: u64, keep: bool) -> Gradients<f32> {
    let inputs = w.value().dims()[1];
    let mut x: Tensor<f32> = nabla_tensor::Rng::seed(seed).normal(&[1, inputs], 0.0, 1.0);
    // From the second step on, zeros in whole strips of eight columns (and
    // one more), as in an image, which the one-pass update skips.
    if seed > 0 {
        for (j, v) in x.data_mut().iter_mut().enumerate() {
            if j / 8 % 2 == 1 || j == 2 {
                *v = 0.0;
            }
        }
    }
    let tape = Tape::<f32>::new();
    let loss = tape
        .constant(x)
        .matmul_t(tape.param(w))
        .unwrap()
        .sigmoid()
        .unwrap()
        .sum()
        .unwrap();
    let mut grads = Gradients::new();
    grads.keep_outer_products(keep);
    tape.backward_into(loss, &mut grads).unwrap();
    grads
}

/// Plain SGD applies a gradient kept as an outer product in one pass, with
/// the bits of stepping with the formed gradient; every other method and
/// setting forms it first, with the same bits too.
#[test]
fn a_gradient_kept_as_an_outer_product_steps_as_the_formed_one() {
    let start = nabla_tensor::Rng::seed(4).normal::<f32>(&[13, 37], 0.0, 0.5);
    let plain = OptimizerConfig::new(Method::Sgd, 0.1);
    assert!(plain.init::<f32>().takes_outer_products());
    let mut configs = vec![plain];
    for method in Method::all() {
        let mut regularised = OptimizerConfig::new(method, 0.05).clip_norm(0.5);
        regularised.weight_decay = 0.01;
        assert!(!regularised.init::<f32>().takes_outer_products());
        configs.push(OptimizerConfig::new(method, 0.05));
        configs.push(regularised);
    }
    for config in configs {
        let run = |keep: bool| {
            let mut w = Param::new(start.clone());
            let mut opt = config.init::<f32>();
            for step in 0..3 {
                let grads = one_row_grads(&w, step, keep);
                let kept = matches!(grads.param_grad(&w), Some(ParamGrad::Outer(_)));
                assert_eq!(kept, keep, "the store keeps what it was told to");
                opt.step(&mut [&mut w], &grads).unwrap();
            }
            w.value().clone()
        };
        let (kept, formed) = (run(true), run(false));
        assert_ne!(formed, start, "the steps moved the weights");
        assert_eq!(kept, formed, "{config:?}");
    }
}
