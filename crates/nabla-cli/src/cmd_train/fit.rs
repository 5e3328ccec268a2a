//! One training run from the flags of `nabla train`: the data, the model
//! (fresh, from a file, or resumed), the fit, the saved file and the test.

use super::*;

/// The data flag of a run, for messages.
pub(super) fn data_flag(a: &TrainArgs) -> &'static str {
    if a.csv.is_some() {
        "--csv"
    } else if a.images.is_some() {
        "--images"
    } else {
        "--data-dir"
    }
}

/// What a run leaves: the trained model, its description, where it was
/// saved, and its test evaluation.
pub struct Trained {
    /// The trainer, with the model and the history.
    pub trainer: Trainer,
    /// The model file's description.
    pub spec: ModelSpec,
    /// The checkpoint written after every epoch.
    pub checkpoint: PathBuf,
    /// The test evaluation, when a test set was held out.
    pub test: Option<nabla_train::Evaluation>,
    /// The deviation of a standardised regression target (1 otherwise):
    /// RMSE and MAE are reported in the target's units.
    pub scale: f64,
}

/// What the flags of a run set up before any training: the data, the
/// optimiser, the loss and the run's configuration.
pub struct Setup {
    /// Training, validation and test samples, and their description.
    pub splits: crate::data_source::Splits,
    /// The optimiser.
    pub opt: OptimizerConfig,
    /// The loss.
    pub loss: StandardLoss,
    /// The run's configuration (epochs, batch size, schedule, …).
    pub config: TrainConfig,
    /// The checkpoint written after every epoch.
    pub checkpoint: PathBuf,
}

/// Reads the data and checks the flags of a run.
pub fn prepare(a: &TrainArgs) -> Result<Setup> {
    let table = a.csv.is_some();
    let recipe = recipe(a);
    let epochs = a
        .epochs
        .or(recipe.epochs)
        .unwrap_or(if table { 200 } else { 15 });
    let batch_size = a.batch_size.unwrap_or(if table { 16 } else { 100 });
    let val_split = a.val_split.unwrap_or(if table || a.images.is_some() {
        0.1
    } else {
        0.0
    });
    if batch_size == 0 {
        bail!("--batch-size 0: must be at least 1");
    }
    if epochs == 0 {
        bail!("--epochs 0: must be at least 1");
    }
    if !(0.0..1.0).contains(&a.test_split) {
        bail!(
            "--test-split {}: {} is not in [0, 1)",
            a.test_split,
            a.test_split
        );
    }
    // The data-parallel flags are checked even where no MPI runs them.
    a.parallel_settings()?;
    check_writable_parent(&a.out, "--out")?;
    let checkpoint = a.checkpoint.clone().unwrap_or_else(|| {
        let mut p = a.out.clone().into_os_string();
        p.push(".ckpt");
        PathBuf::from(p)
    });
    check_writable_parent(&checkpoint, "--checkpoint")?;
    if let Some(m) = &a.metrics_out {
        check_writable_parent(m, "--metrics-out")?;
    }
    let opt = optimizer_config(a)?;
    let kind = a.dataset.kind();
    let source = match (&a.csv, &a.images) {
        (Some(csv), _) => Source::Csv(
            csv,
            a.target.as_deref().unwrap_or_default(),
            a.task.map(|t| match t {
                TaskArg::Classify => TaskChoice::Classify,
                TaskArg::Regress => TaskChoice::Regress,
            }),
        ),
        (None, Some(dir)) => Source::Images(
            dir,
            ImageFolderOptions {
                color: if a.rgb { Color::Rgb } else { Color::Gray },
                size: a.image_size.as_deref().map(parse_size).transpose()?,
            },
        ),
        (None, None) => Source::Idx(a.data_dir.as_deref(), kind),
    };
    if !(0.0..1.0).contains(&a.label_smoothing) {
        bail!(
            "--label-smoothing {}: must be in [0, 1) (0.1 is usual)",
            a.label_smoothing
        );
    }
    let splits = load_splits(source, val_split, a.test_split, a.seed)?;
    if a.label_smoothing > 0.0 && splits.spec.task != TaskKind::Classify {
        bail!(
            "--label-smoothing {}: smooths class targets, and the target holds values to regress",
            a.label_smoothing
        );
    }
    let classes = splits.spec.task == TaskKind::Classify;
    let loss = match (a.loss, classes) {
        (None | Some(LossArg::CrossEntropy), true) if a.label_smoothing > 0.0 => {
            StandardLoss::SmoothedCrossEntropy(a.label_smoothing as f32)
        }
        (None | Some(LossArg::CrossEntropy), true) => StandardLoss::CrossEntropy,
        (None | Some(LossArg::Mse), false) => StandardLoss::Mse,
        (Some(LossArg::Mae), false) => StandardLoss::Mae,
        (Some(LossArg::CrossEntropy), false) => {
            bail!("--loss cross-entropy: the target holds values to regress; use mse or mae")
        }
        (Some(l), true) => bail!(
            "--loss {}: the target holds classes; use cross-entropy",
            if l == LossArg::Mse { "mse" } else { "mae" }
        ),
    };
    let config = TrainConfig {
        epochs,
        batch_size,
        drop_last: a.drop_last,
        seed: a.seed,
        schedule: schedule(a, epochs),
        early_stop: a.early_stop,
        checkpoint: Some(checkpoint.clone()),
        eval_batch_size: 1000, // set from the model below
        augment: augmentation(a, recipe.augment)?,
        warmup_steps: a.warmup,
        detect_anomaly: a.detect_anomaly,
        weight_average: a.ema,
        batch_stats: match a.batch_stats {
            super::BatchStatsArg::Batch => nabla_train::BatchStats::Batch,
            super::BatchStatsArg::Shard => nabla_train::BatchStats::Shard,
        },
        probes: a.probes.then(|| ProbeConfig {
            samples: a.probe_samples,
            every: a.probe_every,
            ..Default::default()
        }),
    };
    if let Some(d) = a.ema.filter(|d| !(*d > 0.0 && *d < 1.0)) {
        bail!("--ema {d}: the decay must be in (0, 1) (0.999 is usual)");
    }
    if a.probe_every == Some(0) || (a.probes && a.probe_samples == 0) {
        bail!("--probe-every and --probe-samples must be at least 1");
    }
    Ok(Setup {
        splits,
        opt,
        loss,
        config,
        checkpoint,
    })
}

/// Trains as the flags say, saves the model, and evaluates it on the test set.
pub fn fit(a: &TrainArgs) -> Result<Trained> {
    fit_with(a, None)
}

/// [`fit`], data-parallel over `parallel`'s ranks when given: every rank
/// trains its part of each batch; rank 0 alone prints, writes the model,
/// the checkpoints and the metrics, and evaluates the test set.
pub fn fit_with(a: &TrainArgs, parallel: Option<&nabla_train::DataParallel>) -> Result<Trained> {
    let primary = parallel.is_none_or(|p| p.is_primary());
    let Setup {
        splits,
        opt,
        loss,
        config,
        checkpoint,
    } = prepare(a)?;
    let kind = a.dataset.kind();
    let human = !a.quiet && !a.json && primary;
    let (mut trainer, spec) = if let Some(path) = &a.resume {
        let ckpt = load_checkpoint(path)?;
        let spec = ModelSpec::from_metadata(path, &ckpt.metadata)?;
        if spec.data != splits.spec {
            bail!(
                "{}: cannot resume: the run was trained on {} ({} {}), this one's data differs (check {} and its splits)",
                path.display(),
                spec.data.dataset,
                spec.data.classes.len(),
                if spec.data.classes.is_empty() { "values" } else { "classes" },
                data_flag(a)
            );
        }
        let model = build_from_tensors(path, &spec.architecture, &ckpt.model, "")?;
        let (trainer, changes) = Trainer::resume(model, opt.init(), loss, config, ckpt)
            .map_err(|e| resume_error(e, a))?;
        if human {
            for change in changes {
                println!("resume: {change}");
            }
        }
        (trainer, spec)
    } else {
        let (model, spec) = build_model(a, &splits, kind)?;
        (Trainer::new(model, opt.init(), loss, config), spec)
    };
    trainer.config.eval_batch_size = eval_batch_size(&trainer.model);
    if let Some(p) = parallel {
        trainer.set_parallel(p.clone());
        if human {
            println!(
                "data-parallel: {} ranks, each computes its part of every batch of {}; gradients combined by {} (--reduce {}) in buckets of {}, sent {}",
                p.group.size(),
                trainer.config.batch_size,
                match p.reduction {
                    nabla_train::Reduction::Sum => "allreduce",
                    nabla_train::Reduction::Exact => "allgather, added in shard order",
                },
                p.reduction.name(),
                super::human_bytes(p.bucket_bytes as u64),
                if p.overlap {
                    "while backward runs"
                } else {
                    "after backward"
                }
            );
        }
    }
    trainer.checkpoint_metadata = spec.metadata()?;
    if human {
        println!("data: {}", splits.desc);
        for note in &splits.notes {
            println!("{note}");
        }
        if !splits.val.is_empty() && a.csv.is_none() && a.images.is_none() {
            println!(
                "validation: {} images held out (seed {})",
                splits.val.len(),
                a.seed
            );
        }
        println!(
            "model: {} ({} parameters); optimiser {} lr {}; loss {}",
            spec.architecture.summary(),
            trainer.model.num_params(),
            opt.method.name(),
            crate::progress::short_number(opt.lr),
            loss.name()
        );
        if let Some(aug) = &trainer.config.augment {
            let zoom = match aug.max_zoom > 0.0 {
                true => format!(", zooms up to {}%", 100.0 * aug.max_zoom),
                false => String::new(),
            };
            let elastic = match &aug.elastic {
                Some(e) => format!(
                    ", elastic distortions (alpha {} px, sigma {} px)",
                    e.alpha, e.sigma
                ),
                None => String::new(),
            };
            println!(
                "augmentation: each image, each epoch: shifts up to {} px, rotations up to {}°{zoom}{elastic}",
                aug.max_shift, aug.max_rotation
            );
        }
    }
    let scale = spec
        .data
        .table
        .as_ref()
        .and_then(|t| t.targets.as_ref())
        .map_or(1.0, |s| s.std.first().copied().unwrap_or(1.0));
    let mut progress = Progress::new(
        human,
        a.metrics_out.as_deref().filter(|_| primary),
        trainer.epochs_done() > 0,
        scale,
    )?;
    let val = (!splits.val.is_empty()).then_some(splits.val.as_ref());
    // With --test-split 0 there is no test set to report (evaluate on
    // another folder or file with `nabla eval`).
    let test_set = (!splits.test.is_empty()).then_some(splits.test.as_ref());
    trainer
        .fit(splits.train.as_ref(), val, test_set, &mut progress)
        .map_err(|e| resume_error(e, a))?;
    progress.finish()?;

    if !primary {
        return Ok(Trained {
            trainer,
            spec,
            checkpoint,
            test: None,
            scale,
        });
    }
    save_model(&a.out, &trainer.model, &spec)?;
    let test = match test_set {
        Some(t) => Some(evaluate(
            &trainer.model,
            t,
            eval_batch_size(&trainer.model),
        )?),
        None => None,
    };
    Ok(Trained {
        trainer,
        spec,
        checkpoint,
        test,
        scale,
    })
}

/// A refused resume names the flag that differs.
pub(super) fn resume_error(e: TrainError, a: &TrainArgs) -> anyhow::Error {
    match &e {
        TrainError::Resume { setting, .. } => {
            let flag = match *setting {
                "optimizer" => "--optimizer",
                _ => data_flag(a),
            };
            anyhow::anyhow!("{flag}: {e}")
        }
        _ => e.into(),
    }
}
