//! A steady-state training step makes no allocation of its own: every buffer
//! comes from the tensor pool, and tapes, gradient stores and shard state are
//! reused. Counted by a global allocator on every thread. The one exception is
//! inside the `gemm` library, which allocates its packing buffers on every
//! product; those are counted apart (and reported), not hidden.
//!
//! Four steps are checked, one after another (the counters are global): an
//! MLP on MNIST digits, two convnets on the same (LeNet, and 3×3 layers
//! whose backward pass runs Winograd's F(2×2, 3×3)), and a regression MLP on
//! a table of features held in memory (what a CSV becomes).

use nabla_data::{embedded_mnist, Batches, Dataset, TensorDataset};
use nabla_nn::{preset, Activation, Init, MlpConfig, Module, NetSpec};
use nabla_optim::{Method, OptimizerConfig};
use nabla_tensor::{Rng, Tensor};
use nabla_train::{Loss, StandardLoss, Stepper};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static GEMM_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static TRACE: AtomicBool = AtomicBool::new(false);

thread_local! {
    static IN_TRACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        if TRACE.load(Ordering::Relaxed)
            && !nabla_tensor::in_gemm_library()
            && !IN_TRACE.with(|t| t.replace(true))
        {
            eprintln!(
                "allocation of {} bytes:\n{}",
                layout.size(),
                std::backtrace::Backtrace::force_capture()
            );
            IN_TRACE.with(|t| t.set(false));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    if nabla_tensor::in_gemm_library() {
        GEMM_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    } else {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_steady_state_training_step_allocates_nothing() {
    let digits = embedded_mnist()
        .unwrap()
        .train
        .subset(&(0..1200).collect::<Vec<_>>())
        .unwrap();
    let mlp = MlpConfig::new(784, &[32], 10)
        .activation(Activation::Relu)
        .with_init(Init::He)
        .init(&mut Rng::seed(1))
        .unwrap();
    steady_state("mlp on digits", mlp, &digits, &StandardLoss::CrossEntropy);

    let convnet = NetSpec::parse(&[1, 28, 28], preset("lenet").unwrap())
        .unwrap()
        .build::<f32>(Init::He, &mut Rng::seed(1))
        .unwrap();
    steady_state(
        "lenet on digits",
        convnet,
        &digits,
        &StandardLoss::CrossEntropy,
    );

    // A 32→32 3×3 layer on 26×26: its backward pass runs Winograd's F(2×2, 3×3).
    let winograd = NetSpec::parse(
        &[1, 28, 28],
        "conv8k3,relu,conv32k3,relu,conv32k3,relu,maxpool4,flatten,linear10",
    )
    .unwrap()
    .build::<f32>(Init::He, &mut Rng::seed(1))
    .unwrap();
    steady_state(
        "3×3 convolutions on digits",
        winograd,
        &digits,
        &StandardLoss::CrossEntropy,
    );

    // A table: 1200 rows of 8 standard normal features, one value to regress.
    let mut rng = Rng::seed(3);
    let x: Tensor<f32> = rng.normal(&[1200, 8], 0.0, 1.0);
    let y = Tensor::from_vec(
        x.data().chunks(8).map(|r| r.iter().sum::<f32>()).collect(),
        &[1200],
    )
    .unwrap();
    let table = TensorDataset::regression(x, y).unwrap();
    let regressor = MlpConfig::new(8, &[16], 1).init(&mut Rng::seed(1)).unwrap();
    steady_state("mlp on a table", regressor, &table, &StandardLoss::Mse);
}

/// Trains `net` on `data` until an epoch's steps (from the fourth on) make
/// no allocation outside the gemm library; fails after three epochs that do.
fn steady_state(what: &str, mut net: impl Module<f32>, data: &dyn Dataset, loss: &dyn Loss) {
    let mut opt = OptimizerConfig::new(
        Method::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        1e-3,
    )
    .init();
    let mut stepper = Stepper::new();
    let batches = Batches::new(data.len(), 100, false, Some(&mut Rng::seed(2))).unwrap();
    // Warm-up: a whole epoch. The pool ends up holding as many buffers of
    // each size as were ever alive at once. With two shards on two threads
    // that peak depends on timing: a step that meets a new peak takes one
    // more buffer, once, and keeps it. So the steady state is reached when
    // an epoch's steps take no buffer at all; that must happen within a few
    // epochs (a step that allocated every time would never get there).
    stepper
        .epoch(
            &mut net,
            &mut opt,
            loss,
            data,
            &batches,
            None,
            |_, _, _, _| Ok(()),
        )
        .unwrap();
    let mut per_epoch = Vec::new();
    for _ in 0..3 {
        let (mut before, mut gemm_before, mut counted) = (0, 0, 0);
        stepper
            .epoch(
                &mut net,
                &mut opt,
                loss,
                data,
                &batches,
                None,
                |b, _, _, _| {
                    if b == 3 {
                        TRACE.store(
                            std::env::var_os("NABLA_TRACE_ALLOCATIONS").is_some(),
                            Ordering::Relaxed,
                        );
                        before = ALLOCATIONS.load(Ordering::Relaxed);
                        gemm_before = GEMM_ALLOCATIONS.load(Ordering::Relaxed);
                    }
                    counted = b.saturating_sub(3);
                    Ok(())
                },
            )
            .unwrap();
        TRACE.store(false, Ordering::Relaxed);
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        let in_gemm = GEMM_ALLOCATIONS.load(Ordering::Relaxed) - gemm_before;
        println!("{what}: {allocations} allocations by nabla, {in_gemm} inside the gemm library, in {counted} steps");
        assert!(counted >= 8);
        per_epoch.push(allocations);
        if allocations == 0 {
            return;
        }
    }
    panic!("{what}: allocations in the steady-state steps of each of three epochs: {per_epoch:?}");
}
