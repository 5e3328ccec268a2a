//! The trainer: it learns, it resumes exactly, it stops early, it refuses bad configs.

use nabla_data::{embedded_mnist, ImageDataset};
use nabla_nn::{preset, Init, MlpConfig, Module, NetSpec};
use nabla_optim::{Method, OptimizerConfig};
use nabla_tensor::Rng;
use nabla_train::{
    evaluate, load_checkpoint, BatchStats, Observer, RunInfo, Silent, StandardLoss, TrainConfig,
    TrainError, Trainer,
};

fn data(n: usize) -> (ImageDataset, ImageDataset) {
    let s = embedded_mnist().unwrap();
    let idx: Vec<usize> = (0..n).collect();
    (
        s.train.subset(&idx).unwrap(),
        s.test.subset(&(0..500).collect::<Vec<_>>()).unwrap(),
    )
}

fn trainer(opt: OptimizerConfig, config: TrainConfig) -> Trainer {
    Trainer::new(
        mlp(config.seed),
        opt.init(),
        StandardLoss::CrossEntropy,
        config,
    )
}

fn mlp(seed: u64) -> nabla_nn::Sequential<f32> {
    MlpConfig::new(784, &[32], 10)
        .init::<f32>(&mut Rng::seed(seed))
        .unwrap()
}

#[derive(Default)]
struct Record {
    start: Option<String>,
    batches: usize,
    epochs: usize,
}

impl Observer for Record {
    fn started(&mut self, info: &RunInfo) {
        self.start = Some(info.to_string());
    }
    fn batch_done(&mut self, _: usize, _: usize, _: usize, _: f64, _: Option<f64>) {
        self.batches += 1;
    }
    fn epoch_done(&mut self, _: &nabla_train::EpochMetrics) {
        self.epochs += 1;
    }
}

#[test]
fn it_learns_and_reports() {
    let (train, test) = data(2000);
    let mut t = trainer(
        OptimizerConfig::new(Method::Sgd, 0.1),
        TrainConfig {
            epochs: 3,
            batch_size: 64,
            ..Default::default()
        },
    );
    let mut rec = Record::default();
    t.fit(&train, None, Some(&test), &mut rec).unwrap();
    assert_eq!(
        rec.start.as_deref(),
        Some("2000 samples, batch 64 → 32 iterations/epoch")
    );
    assert_eq!((rec.batches, rec.epochs), (96, 3));
    assert_eq!(t.history().len(), 3);
    assert!(t.history()[2].train_loss < t.history()[0].train_loss);
    let eval = evaluate(&t.model, &test, 128).unwrap();
    let accuracy = eval.score.accuracy.unwrap();
    assert!(accuracy > 0.8, "{accuracy}");
    assert_eq!(Some(accuracy), t.history()[2].test_accuracy());
    assert_eq!(eval.confusion.iter().flatten().sum::<usize>(), 500);
}

#[test]
fn an_interrupted_and_resumed_run_ends_with_the_same_weights() {
    let (train, _) = data(600);
    let dir = tempfile::tempdir().unwrap();
    for method in [Method::momentum(), Method::adam()] {
        let opt = OptimizerConfig::new(method, 0.01);
        let straight_ckpt = dir.path().join("straight.ckpt");
        let config = |epochs, path: &std::path::Path| TrainConfig {
            epochs,
            batch_size: 50,
            seed: 11,
            checkpoint: Some(path.to_path_buf()),
            ..Default::default()
        };
        let mut straight = trainer(opt, config(3, &straight_ckpt));
        straight.fit(&train, None, None, &mut Silent).unwrap();

        let ckpt = dir.path().join("interrupted.ckpt");
        let mut first = trainer(opt, config(1, &ckpt));
        first.fit(&train, None, None, &mut Silent).unwrap();
        drop(first); // the process "dies" here
        let (mut resumed, changes) = Trainer::resume(
            mlp(11),
            opt.init(),
            StandardLoss::CrossEntropy,
            config(3, &ckpt),
            load_checkpoint(&ckpt).unwrap(),
        )
        .unwrap();
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(resumed.epochs_done(), 1);
        resumed.fit(&train, None, None, &mut Silent).unwrap();

        for ((name, a), (_, b)) in straight
            .model
            .named_params()
            .into_iter()
            .zip(resumed.model.named_params())
        {
            assert_eq!(
                a.value(),
                b.value(),
                "{}: {name} differs after resume",
                method.name()
            );
        }
        assert_eq!(straight.history().len(), resumed.history().len());
        assert_eq!(
            straight.history()[2].train_loss,
            resumed.history()[2].train_loss
        );
        // The checkpoint of the straight run equals the resumed one's, weight for weight.
        let a = load_checkpoint(&straight_ckpt).unwrap();
        let b = load_checkpoint(&ckpt).unwrap();
        assert_eq!(a.optimizer_state, b.optimizer_state);
    }
}

#[test]
fn resuming_with_another_optimiser_is_refused() {
    let (train, _) = data(100);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("c.ckpt");
    let mut t = trainer(
        OptimizerConfig::new(Method::adam(), 0.01),
        TrainConfig {
            epochs: 1,
            batch_size: 50,
            checkpoint: Some(ckpt.clone()),
            ..Default::default()
        },
    );
    t.fit(&train, None, None, &mut Silent).unwrap();
    let err = Trainer::resume(
        mlp(0),
        OptimizerConfig::new(Method::Sgd, 0.1).init(),
        StandardLoss::CrossEntropy,
        TrainConfig::default(),
        load_checkpoint(&ckpt).unwrap(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            TrainError::Resume {
                setting: "optimizer",
                ..
            }
        ) && err
            .to_string()
            .contains("written with the adam optimiser, this run uses sgd"),
        "{err}"
    );
    // Another learning rate and batch size are honoured, and said so.
    let resume = |lr: f64, batch_size: usize| {
        Trainer::resume(
            mlp(0),
            OptimizerConfig::new(Method::adam(), lr).init(),
            StandardLoss::CrossEntropy,
            TrainConfig {
                epochs: 2,
                batch_size,
                ..Default::default()
            },
            load_checkpoint(&ckpt).unwrap(),
        )
        .unwrap()
    };
    let (mut t, changes) = resume(0.001, 25);
    assert_eq!(
        changes,
        [
            "learning rate 0.01 → 0.001 from epoch 2",
            "batch size 50 → 25 from epoch 2"
        ]
    );
    t.fit(&train, None, None, &mut Silent).unwrap();
    assert_eq!(t.history()[1].lr, 0.001, "the new rate is used");
    // Another data set is refused.
    let (mut t, _) = resume(0.01, 50);
    let (other, _) = data(60);
    let err = t.fit(&other, None, None, &mut Silent).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Resume {
                setting: "data",
                ..
            }
        ) && err
            .to_string()
            .contains("trained on 100 samples, this data set has 60"),
        "{err}"
    );
    std::fs::write(&ckpt, b"garbage").unwrap();
    assert!(load_checkpoint(&ckpt).is_err());
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    let (train, val) = data(300);
    // Learning rate 0: validation accuracy never improves after epoch 1.
    let mut t = trainer(
        OptimizerConfig::new(Method::Sgd, 0.0),
        TrainConfig {
            epochs: 10,
            batch_size: 100,
            early_stop: Some(2),
            ..Default::default()
        },
    );
    struct Stopped(Option<usize>);
    impl Observer for Stopped {
        fn stopped_early(&mut self, best: usize) {
            self.0 = Some(best);
        }
    }
    let mut obs = Stopped(None);
    t.fit(&train, Some(&val), None, &mut obs).unwrap();
    assert_eq!(t.history().len(), 3);
    assert_eq!(obs.0, Some(1));
}

#[test]
fn bad_configurations_are_errors() {
    let (train, val) = data(100);
    let mut t = trainer(
        OptimizerConfig::new(Method::Sgd, 0.1),
        TrainConfig {
            early_stop: Some(2),
            ..Default::default()
        },
    );
    assert!(matches!(
        t.fit(&train, None, None, &mut Silent),
        Err(TrainError::Config(_))
    ));
    let mut t = trainer(
        OptimizerConfig::new(Method::Sgd, 0.1),
        TrainConfig {
            batch_size: 0,
            ..Default::default()
        },
    );
    assert!(t.fit(&train, Some(&val), None, &mut Silent).is_err());
    let mut t = trainer(
        OptimizerConfig::new(Method::Sgd, 0.1),
        TrainConfig {
            batch_size: 1000,
            drop_last: true,
            ..Default::default()
        },
    );
    assert!(t
        .fit(&train, None, None, &mut Silent)
        .unwrap_err()
        .to_string()
        .contains("make no batch"));
}

/// A trainer for the `lenet` preset: convolutions whose kernels share
/// work between threads inside a shard (the weight gradient by output
/// channels), not only shards between threads.
fn lenet_trainer(opt: OptimizerConfig, config: TrainConfig) -> Trainer {
    let net = NetSpec::parse(&[1, 28, 28], preset("lenet").unwrap()).unwrap();
    let model = net
        .build::<f32>(Init::He, &mut Rng::seed(config.seed))
        .unwrap();
    Trainer::new(model, opt.init(), StandardLoss::CrossEntropy, config)
}

/// A batch-norm network whose shards normalise with their own rows'
/// statistics, so that they run in parallel like any other network's.
fn ghost_batch_norm_trainer(opt: OptimizerConfig, config: TrainConfig) -> Trainer {
    let net = NetSpec::parse(
        &[1, 28, 28],
        "conv4k3nobias,batchnorm,relu,maxpool2,flatten,linear16nobias,batchnorm,relu,linear10",
    )
    .unwrap();
    let model = net
        .build::<f32>(Init::He, &mut Rng::seed(config.seed))
        .unwrap();
    let config = TrainConfig {
        batch_stats: BatchStats::Shard,
        ..config
    };
    Trainer::new(model, opt.init(), StandardLoss::CrossEntropy, config)
}

#[test]
fn one_and_two_threads_give_bit_identical_weights() {
    let (train, _) = data(1000);
    for make in [trainer, lenet_trainer, ghost_batch_norm_trainer] {
        bit_identical_on_one_and_two_threads(&train, make);
    }
}

fn bit_identical_on_one_and_two_threads(
    train: &ImageDataset,
    make: fn(OptimizerConfig, TrainConfig) -> Trainer,
) {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            // Batch 100 is cut into two shards that really run on two threads here.
            let mut t = make(
                OptimizerConfig::new(Method::adam(), 0.01),
                TrainConfig {
                    epochs: 1,
                    batch_size: 100,
                    seed: 3,
                    ..Default::default()
                },
            );
            t.fit(train, None, None, &mut Silent).unwrap();
            let weights = t.model.named_params().into_iter();
            weights
                .map(|(_, p)| p.value().clone())
                .chain(t.model.named_buffers().into_iter().map(|(_, b)| b))
                .collect::<Vec<_>>()
        })
    };
    let (one, two) = (run(1), run(2));
    assert!(
        one.iter().zip(&two).all(|(a, b)| a == b),
        "weights or buffers differ between 1 and 2 threads"
    );
}

/// Per-shard statistics change a batch-norm network's training only where
/// the batch is cut: batch 100 (two shards) trains otherwise than with the
/// whole batch's statistics, batch 64 (one shard) bit-identically.
#[test]
fn shard_statistics_apply_where_the_batch_is_cut() {
    let (train, _) = data(200);
    let run = |stats: BatchStats, batch_size: usize| {
        let mut t = ghost_batch_norm_trainer(
            OptimizerConfig::new(Method::adam(), 0.01),
            TrainConfig {
                epochs: 1,
                batch_size,
                seed: 3,
                ..Default::default()
            },
        );
        t.config.batch_stats = stats;
        t.fit(&train, None, None, &mut Silent).unwrap();
        t.model.named_params()[0].1.value().clone()
    };
    assert_ne!(run(BatchStats::Batch, 100), run(BatchStats::Shard, 100));
    assert_eq!(run(BatchStats::Batch, 64), run(BatchStats::Shard, 64));
}

#[test]
fn shards_depend_only_on_the_batch_size() {
    use nabla_train::{shard_ranges, MAX_SHARDS, SHARD_ROWS};
    assert_eq!(shard_ranges(1), vec![0..1]);
    assert_eq!(shard_ranges(SHARD_ROWS), vec![0..SHARD_ROWS]);
    assert_eq!(shard_ranges(100), vec![0..50, 50..100]);
    let r = shard_ranges(SHARD_ROWS * MAX_SHARDS);
    assert_eq!(r.len(), MAX_SHARDS);
    assert!(r.iter().all(|s| s.len() == SHARD_ROWS));
    // Larger batches: no more shards, each larger.
    let r = shard_ranges(1000);
    assert_eq!(r.len(), MAX_SHARDS);
    assert!(r.iter().all(|s| s.len() == 125) && r.last().unwrap().end == 1000);
}

#[test]
fn a_loss_for_values_refuses_classes_and_says_so() {
    let (train, _) = data(100);
    let mut t = Trainer::new(
        mlp(1),
        OptimizerConfig::new(Method::Sgd, 0.1).init(),
        StandardLoss::Mse,
        TrainConfig {
            epochs: 1,
            ..Default::default()
        },
    );
    let err = t.fit(&train, None, None, &mut Silent).unwrap_err();
    assert!(err.to_string().contains("needs values to regress"), "{err}");
}

/// At batch 1 plain SGD applies each weight's gradient as an outer product,
/// never formed; the weights are the bits of stepping with the formed
/// gradients (here forced by a clipping norm no gradient reaches, which
/// leaves the update as it is but makes the optimiser form them).
#[test]
fn batch_one_sgd_gives_the_bits_of_forming_the_gradients() {
    let (train, _) = data(40);
    let run = |config: OptimizerConfig| {
        let mut t = trainer(
            config,
            TrainConfig {
                epochs: 1,
                batch_size: 1,
                seed: 4,
                ..Default::default()
            },
        );
        t.fit(&train, None, None, &mut Silent).unwrap();
        t.model
            .named_params()
            .into_iter()
            .map(|(_, p)| p.value().clone())
            .collect::<Vec<_>>()
    };
    let plain = OptimizerConfig::new(Method::Sgd, 0.1);
    assert!(plain.init::<f32>().takes_outer_products());
    let unclipped = OptimizerConfig::new(Method::Sgd, 0.1).clip_norm(1e30);
    assert!(!unclipped.init::<f32>().takes_outer_products());
    assert_eq!(run(plain), run(unclipped));
}

/// `|Linear(x)|` written as `√(y·y)`: at `y = 0` the loss is finite but
/// the slope of √ is infinite, so the gradient is NaN.
struct SqrtOfSquare(nabla_nn::Linear<f32>);

impl Module<f32> for SqrtOfSquare {
    fn forward<'t>(
        &self,
        x: nabla_autograd::Var<'t, f32>,
    ) -> nabla_autograd::Result<nabla_autograd::Var<'t, f32>> {
        let x = x.reshape(&[x.shape().dims()[0], 784])?;
        let y = self.0.forward(x)?;
        y.mul(y)?.sqrt()
    }
    fn visit_params<'a>(
        &'a self,
        prefix: &str,
        f: &mut dyn FnMut(String, &'a nabla_autograd::Param<f32>),
    ) {
        self.0.visit_params(&nabla_nn::join_name(prefix, "0"), f);
    }
    fn visit_params_mut<'a>(
        &'a mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, &'a mut nabla_autograd::Param<f32>),
    ) {
        self.0
            .visit_params_mut(&nabla_nn::join_name(prefix, "0"), f);
    }
    fn for_each_param_mut(&mut self, f: &mut dyn FnMut(&mut nabla_autograd::Param<f32>)) {
        self.0.for_each_param_mut(f);
    }
    fn describe(&self) -> String {
        "SqrtOfSquare".into()
    }
}

#[test]
fn a_gradient_that_is_not_finite_stops_training_before_the_update() {
    let (train, _) = data(200);
    let mut lin = nabla_nn::Linear::new(784, 10, Init::He, &mut Rng::seed(1));
    lin.weight.value_mut().data_mut().fill(0.0);
    let make = |detect_anomaly| {
        Trainer::new(
            SqrtOfSquare(lin.clone()),
            OptimizerConfig::new(Method::Sgd, 0.1).init(),
            StandardLoss::CrossEntropy,
            TrainConfig {
                epochs: 1,
                detect_anomaly,
                ..Default::default()
            },
        )
    };
    let mut t = make(false);
    let e = t.fit(&train, None, None, &mut Silent).unwrap_err();
    assert!(
        matches!(
            e,
            TrainError::NonFiniteGradient {
                epoch: 1,
                batch: 1,
                ..
            }
        ),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("the gradient of '0.weight' is not finite"),
        "{text}"
    );
    assert!(text.contains("--detect-anomaly"), "{text}");
    // Nothing was updated.
    assert!(t.model.0.weight.value().data().iter().all(|&w| w == 0.0));
    // With the mode, the op and the step are named.
    let mut t = make(true);
    let text = t
        .fit(&train, None, None, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("epoch 1, batch 1 (step 1): anomaly in the backward pass of sqrt"),
        "{text}"
    );
}

/// The range test ends where a gradient stops being finite, as it does at
/// a NaN loss, instead of failing.
#[test]
fn the_range_test_ends_at_a_gradient_that_is_not_finite() {
    let (train, _) = data(200);
    let mut lin = nabla_nn::Linear::new(784, 10, Init::He, &mut Rng::seed(1));
    lin.weight.value_mut().data_mut().fill(0.0);
    let mut model = SqrtOfSquare(lin);
    let found = nabla_train::lr_find(
        &mut model,
        OptimizerConfig::new(Method::Sgd, 0.1),
        &StandardLoss::CrossEntropy,
        &train,
        nabla_train::LrFindConfig {
            steps: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(found.points.is_empty(), "{:?}", found.points);
    assert!(model.0.weight.value().data().iter().all(|&w| w == 0.0));
}
