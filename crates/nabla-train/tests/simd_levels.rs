//! Training at every SIMD level this CPU has, against the plain path: the
//! same networks trained a few steps at each level (every kernel family on
//! the way: dot products, transposed products, axpy, the sigmoid, the direct
//! convolutions and their gradients, the optimiser's update, the gathering
//! of pixels), in f32 and f64, on odd sizes.
//!
//! What the kernels promise, and what is checked:
//! - f64 runs on the plain path at every level: bit-identical gradients;
//! - the vector sigmoid (a polynomial `exp`) within 4 ulp of the plain
//!   path's (the library's `exp`); the optimiser's update and the pixel
//!   conversion are elementwise and give the same bits (their unit tests
//!   compare the two paths directly);
//! - sums in f32 may be grouped and fused differently (eight or sixteen
//!   lanes, fused multiply-adds): after the steps below, each weight within
//!   1e-5 (momentum) or 5e-3 (Adam) relative of the plain path's (relative
//!   to at least 5e-3), and some bits differ, or the level was not applied.
//!
//! At each level, 1 and 2 threads give the same bits, and AVX-512 gives
//! AVX2's bits (its kernels promise it; their unit tests call both).
//!
//! The level is a process-wide setting: the tests of this binary take turns
//! (a lock), and no other test binary sets it.

use nabla_autograd::{Reduction, Tape, Target};
use nabla_data::{embedded_mnist, ImageDataset};
use nabla_nn::{Init, MlpConfig, Module, NetSpec, Sequential};
use nabla_optim::{Method, OptimizerConfig};
use nabla_tensor::{detected_simd_level, limit_simd_level, Float, Kernel, Rng, SimdLevel, Tensor};
use nabla_train::{Silent, StandardLoss, TrainConfig, Trainer};

fn data(n: usize) -> ImageDataset {
    let s = embedded_mnist().unwrap();
    s.train.subset(&(0..n).collect::<Vec<_>>()).unwrap()
}

/// The networks: a sigmoid MLP of odd widths, and a convnet whose channel
/// counts do and do not fill a vector block.
fn networks<T: Float>() -> Vec<(&'static str, Sequential<T>)> {
    let mut rng = Rng::seed(5);
    let mlp = MlpConfig::new(784, &[37, 13], 10)
        .activation(nabla_nn::Activation::Sigmoid)
        .init::<T>(&mut rng)
        .unwrap();
    let cnn = NetSpec::parse(
        &[1, 28, 28],
        "conv5k5,relu,maxpool2,conv11k3p1,relu,maxpool2,flatten,linear19,sigmoid,linear10",
    )
    .unwrap()
    .build::<T>(Init::He, &mut rng)
    .unwrap();
    vec![("mlp", mlp), ("cnn", cnn)]
}

/// Each f32 network's weights after a few steps at the current level.
fn trained(train: &ImageDataset, method: Method) -> Vec<(&'static str, Vec<f64>)> {
    networks::<f32>()
        .into_iter()
        .map(|(name, net)| {
            let config = TrainConfig {
                epochs: 1,
                batch_size: 100,
                seed: 3,
                checkpoint: None,
                ..Default::default()
            };
            let opt = OptimizerConfig::new(method, 0.01).init();
            let mut t = Trainer::new(net, opt, StandardLoss::CrossEntropy, config);
            t.fit(train, None, None, &mut Silent).unwrap();
            (name, values(&t.model))
        })
        .collect()
}

fn values<T: Float>(net: &Sequential<T>) -> Vec<f64> {
    net.named_params()
        .iter()
        .flat_map(|(_, p)| {
            p.value()
                .data()
                .iter()
                .map(|v| v.to_f64())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Each f64 network's loss and parameter gradients on a batch of 7.
fn gradients_f64() -> Vec<Vec<f64>> {
    let mut rng = Rng::seed(9);
    let x: Tensor<f64> = rng.normal(&[7, 784], 0.0, 1.0);
    networks::<f64>()
        .into_iter()
        .map(|(_, net)| {
            let tape = Tape::new();
            let loss = net
                .forward(tape.constant(x.clone()))
                .and_then(|y| {
                    y.softmax_cross_entropy(
                        Target::Indices(vec![3, 1, 4, 1, 5, 9, 2]),
                        Reduction::Mean,
                    )
                })
                .unwrap();
            let grads = tape.backward(loss).unwrap();
            let mut out = vec![loss.value().data()[0]];
            for (_, p) in net.named_params() {
                out.extend_from_slice(grads.param(p).unwrap().data());
            }
            out
        })
        .collect()
}

/// The sigmoid of odd-length vectors (the vector tail and the plain one).
fn sigmoids() -> Vec<Vec<f32>> {
    [1usize, 7, 8, 9, 31, 100]
        .iter()
        .map(|&n| {
            let x: Tensor<f32> = Rng::seed(n as u64).normal(&[n], 0.0, 4.0);
            x.sigmoid().data().to_vec()
        })
        .collect()
}

#[test]
fn every_level_agrees_with_the_plain_path() {
    let _guard = LIMIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let train = data(150);
    let top = detected_simd_level();
    let levels: Vec<SimdLevel> = SimdLevel::ALL.into_iter().filter(|&l| l <= top).collect();
    let mut runs = Vec::new();
    for &level in &levels {
        limit_simd_level(Some(level));
        // At a given level the threads change no bit (batch 100: two shards).
        let on = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| trained(&train, Method::adam()))
        };
        assert_eq!(on(1), on(2), "{level}: 1 and 2 threads differ");
        runs.push((
            level,
            trained(&train, Method::adam()),
            trained(&train, Method::momentum()),
            gradients_f64(),
            sigmoids(),
        ));
    }
    limit_simd_level(None);
    let (_, plain_adam, plain_momentum, plain_f64, plain_sigmoid) = &runs[0];
    for (level, adam, momentum, f64s, sigmoid) in &runs[1..] {
        let ulps = sigmoid
            .iter()
            .flatten()
            .zip(plain_sigmoid.iter().flatten())
            .map(|(a, b)| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs())
            .max()
            .unwrap_or(0);
        println!("{level}: sigmoid within {ulps} ulp of the plain path's");
        assert!(
            ulps <= 4,
            "{level}: the sigmoid is {ulps} ulp from the plain path's"
        );
        for (k, (a, b)) in f64s.iter().zip(plain_f64).enumerate() {
            assert!(
                a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{level}: network {k}'s f64 gradients differ from the plain path's"
            );
        }
        // Adam divides by the root of the squared gradients, so a last-bit
        // difference in a tiny gradient moves its step far more than
        // momentum's (3.5e-4 seen with AVX2): momentum's bound is the tight
        // check of the kernels, Adam's a check of its vector update.
        let mut moved = ulps > 0;
        for (what, runs, plain, bound) in [
            ("adam", adam, plain_adam, 5e-3),
            ("momentum", momentum, plain_momentum, 1e-5),
        ] {
            for ((name, a), (_, b)) in runs.iter().zip(plain) {
                let worst = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs() / y.abs().max(5e-3))
                    .fold(0.0f64, f64::max);
                println!("{level}: f32 {name} with {what}: max relative difference {worst:.2e}");
                moved |= worst > 0.0;
                assert!(
                    worst < bound,
                    "{level}: f32 {name} with {what} differs from the plain path by {worst:.2e} relative"
                );
            }
        }
        // The f32 kernels at this level group their sums differently from
        // the plain ones: if nothing moved, the limit did not take effect.
        assert!(
            moved,
            "{level}: the same bits as the plain path: was the level applied?"
        );
    }
    // AVX-512 against AVX2: every family promises the same bits (the
    // blocked kernels sum what AVX2's eight lanes sum, in larger blocks or
    // in sixteen lanes that are each one of AVX2's lane sums; the
    // sigmoid does the same IEEE operations per lane at sixteen lanes; the
    // streaming elementwise families stop at AVX2).
    let at = |l: SimdLevel| runs.iter().find(|r| r.0 == l);
    if let (Some(avx2), Some(avx512)) = (at(SimdLevel::Avx2), at(SimdLevel::Avx512)) {
        assert!(
            avx2.1 == avx512.1,
            "avx512: Adam's f32 weights differ from avx2's"
        );
        assert!(
            avx2.2 == avx512.2,
            "avx512: momentum's f32 weights differ from avx2's"
        );
        let bits =
            |v: &Vec<Vec<f32>>| -> Vec<u32> { v.iter().flatten().map(|x| x.to_bits()).collect() };
        assert!(
            bits(&avx2.4) == bits(&avx512.4),
            "avx512: the sigmoid differs from avx2's"
        );
        println!("avx512: the same bits as avx2");
    }
    println!("levels compared: {levels:?}");
}

#[test]
fn the_limit_is_reported_and_undone() {
    let _guard = LIMIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for level in SimdLevel::ALL {
        assert_eq!(SimdLevel::from_name(level.name()), Some(level));
    }
    assert_eq!(SimdLevel::from_name("sse"), None);
    let before = limit_simd_level(Some(SimdLevel::Plain));
    assert_eq!(nabla_tensor::simd_level(), SimdLevel::Plain);
    assert!(Kernel::ALL.iter().all(|k| k.level() == SimdLevel::Plain));
    let text = nabla_tensor::cpu_description();
    assert!(text.contains("SIMD plain"), "{text}");
    if detected_simd_level() > SimdLevel::Plain {
        assert!(text.contains("limited"), "{text}");
    }
    assert_eq!(limit_simd_level(before), Some(SimdLevel::Plain));
    assert_eq!(nabla_tensor::simd_level(), detected_simd_level());
    assert!(!nabla_tensor::cpu_description().contains("limited"));
    let report = nabla_tensor::kernel_levels();
    for k in Kernel::ALL {
        assert_eq!(k.level(), detected_simd_level().min(k.widest()));
        assert!(
            report.contains(&format!("{} {}", k.name(), k.level())),
            "{report}"
        );
    }
}

/// The level is one setting for the whole process: the tests take turns.
static LIMIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
