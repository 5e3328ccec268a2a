//! `nabla lr-find`: the learning-rate range test on the network and data
//! that `nabla train` would use with the same flags.

use crate::cmd_train::{build_model, prepare, TrainArgs};
use crate::plot::line_chart;
use crate::thread_pool;
use anyhow::Result;
use clap::Args;
use nabla_train::{lr_find, LrFindConfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// The flags of `nabla lr-find`: those of `nabla train`, and the range.
#[derive(Args)]
pub struct LrFindArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// The first learning rate.
    #[arg(long, default_value_t = 1e-7)]
    start_lr: f64,
    /// The last learning rate.
    #[arg(long, default_value_t = 10.0)]
    end_lr: f64,
    /// Steps from the first rate to the last (at most one pass over the data).
    #[arg(long, default_value_t = 100)]
    lr_steps: usize,
    /// Where to draw the curve (PNG and SVG).
    #[arg(long, default_value = "lr-find")]
    plot: PathBuf,
}

/// Runs `nabla lr-find`.
pub fn run(a: LrFindArgs) -> Result<ExitCode> {
    thread_pool(a.train.threads())?.install(|| {
        let setup = prepare(&a.train)?;
        let (mut model, spec) = build_model(&a.train, &setup.splits, a.train.dataset_kind())?;
        let config = LrFindConfig {
            start: a.start_lr,
            end: a.end_lr,
            steps: a.lr_steps,
            batch_size: setup.config.batch_size,
            seed: setup.config.seed,
        };
        let found = lr_find(
            &mut model,
            setup.opt,
            &setup.loss,
            setup.splits.train.as_ref(),
            config,
        )?;
        crate::check_writable_parent(&a.plot, "--plot")?;
        let curve: Vec<(f64, f64)> = found
            .points
            .iter()
            .filter(|p| p.smoothed.is_finite())
            .map(|p| (p.lr.log10(), p.smoothed))
            .collect();
        line_chart(
            &a.plot,
            "Learning-rate range test",
            "log10 of the learning rate",
            "smoothed training loss",
            &[("loss", curve)],
        )?;
        let rule = "the rate where the smoothed loss falls fastest against log(rate), between the curve's first tenth and its lowest point";
        if a.train.json() {
            let summary = serde_json::json!({
                "model": spec.architecture.summary(),
                "optimizer": setup.opt.method.name(),
                "suggestion": found.suggestion,
                "lowest": found.lowest,
                "rule": rule,
                "points": found.points,
            });
            println!("{summary}");
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "model: {} ({}), optimiser {}, batch {}, rates {:.0e} to {:.0e} over {} steps",
            spec.architecture.summary(),
            spec.data.dataset,
            setup.opt.method.name(),
            config.batch_size,
            config.start,
            config.end,
            found.points.len()
        );
        let every = found.points.len().div_ceil(12).max(1);
        for p in found.points.iter().step_by(every) {
            println!("  lr {:9.2e}  loss {:8.4}  smoothed {:8.4}", p.lr, p.loss, p.smoothed);
        }
        match found.suggestion {
            Some(lr) => println!(
                "suggested learning rate: {lr:.2e} ({rule}); the lowest loss was at {:.2e}",
                found.lowest
            ),
            None => println!("no rate stands out: the loss did not fall over the range (widen it with --start-lr and --end-lr)"),
        }
        println!("wrote {0}.png and {0}.svg; the model's weights were not kept", a.plot.display());
        Ok(ExitCode::SUCCESS)
    })
}
