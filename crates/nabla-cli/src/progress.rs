//! Training progress: a bar per epoch (indicatif, hidden when stderr is not a
//! terminal), a line per epoch on stdout, and one JSON line per epoch to
//! `--metrics-out`.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use nabla_train::{EpochMetrics, Observer, RunInfo, Score};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

/// The CLI's [`Observer`].
pub struct Progress {
    human: bool,
    bar: Option<ProgressBar>,
    epochs: usize,
    batch_size: usize,
    metrics: Option<(BufWriter<File>, String)>,
    error: Option<anyhow::Error>,
    /// Standard deviation of standardised regression targets: RMSE and
    /// MAE are printed in the target's own units.
    scale: f64,
}

/// A score with its RMSE and MAE multiplied by `scale` (the target's
/// standard deviation when the model learnt standardised values) and its
/// loss (the MSE) by its square. R² and accuracy do not change.
pub fn in_units(s: &Score, scale: f64) -> Score {
    Score {
        loss: if s.rmse.is_some() {
            s.loss * scale * scale
        } else {
            s.loss
        },
        accuracy: s.accuracy,
        rmse: s.rmse.map(|v| v * scale),
        mae: s.mae.map(|v| v * scale),
        r2: s.r2,
    }
}

/// `accuracy 97.10%`, or `RMSE 3.2 MAE 2.1 R² 0.91`.
pub fn describe(s: &Score) -> String {
    match (s.accuracy, s.rmse, s.mae, s.r2) {
        (Some(a), ..) => format!("accuracy {:.2}%", 100.0 * a),
        (None, Some(rmse), Some(mae), Some(r2)) => {
            format!("RMSE {} MAE {} R² {r2:.4}", sig(rmse), sig(mae))
        }
        _ => format!("loss {:.4}", s.loss),
    }
}

/// Four significant digits.
fn sig(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    }
}

impl Progress {
    /// `human`: print bars and lines; `metrics_out`: JSON-lines file
    /// (appended to when resuming, otherwise created afresh).
    pub fn new(
        human: bool,
        metrics_out: Option<&Path>,
        resuming: bool,
        scale: f64,
    ) -> Result<Self> {
        let metrics = match metrics_out {
            Some(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(resuming)
                    .truncate(!resuming)
                    .open(path)
                    .with_context(|| format!("--metrics-out {}", path.display()))?;
                Some((BufWriter::new(file), path.display().to_string()))
            }
            None => None,
        };
        Ok(Progress {
            human,
            bar: None,
            epochs: 0,
            batch_size: 0,
            metrics,
            error: None,
            scale,
        })
    }

    /// Reports a failure to write metrics, if one happened.
    pub fn finish(mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some((w, name)) = &mut self.metrics {
            w.flush().with_context(|| format!("--metrics-out {name}"))?;
        }
        Ok(())
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("   -  ".to_string(), |a| format!("{:6.2}%", 100.0 * a))
}

impl Observer for Progress {
    fn started(&mut self, info: &RunInfo) {
        self.epochs = info.epochs;
        self.batch_size = info.batch_size;
        if self.human {
            println!("{info}");
            if info.first_epoch > 1 {
                println!("resuming at epoch {}", info.first_epoch);
            }
        }
    }

    fn epoch_started(&mut self, epoch: usize, iterations: usize) {
        if !self.human {
            return;
        }
        let bar = ProgressBar::new(iterations as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.bar = Some(bar);
    }

    fn batch_done(
        &mut self,
        _epoch: usize,
        done: usize,
        samples_seen: usize,
        loss: f64,
        accuracy: Option<f64>,
    ) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            let per_second = samples_seen as f64 / bar.elapsed().as_secs_f64().max(1e-9);
            let acc = accuracy.map_or(String::new(), |a| format!(" acc {:.2}%", 100.0 * a));
            bar.set_message(format!("loss {loss:.4}{acc} {per_second:.0} samples/s"));
        }
    }

    fn epoch_done(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        // Long runs (a small table trains for hundreds of epochs) print
        // about twenty lines, the last epoch always among them.
        let every = self.epochs.div_ceil(20).max(1);
        if self.human && (m.epoch.is_multiple_of(every) || m.epoch == self.epochs || m.epoch == 1) {
            let scores = if m.train_accuracy.is_some() {
                format!(
                    "train {}  val {}  test {}",
                    pct(m.train_accuracy),
                    pct(m.val_accuracy()),
                    pct(m.test_accuracy())
                )
            } else {
                let show = |s: &Option<Score>| {
                    s.as_ref()
                        .map_or("-".to_string(), |s| describe(&in_units(s, self.scale)))
                };
                format!("val {}  test {}", show(&m.val), show(&m.test))
            };
            println!(
                "epoch {:>3}/{}  loss {:.4}  {scores}  lr {:.2e}  {:.2} s  {:.0} samples/s",
                m.epoch, self.epochs, m.train_loss, m.lr, m.seconds, m.samples_per_second
            );
        }
        if self.human {
            // The epoch's last probe (its end) speaks; the probes every K
            // steps are in the metrics file.
            for w in m.probes.last().iter().flat_map(|p| &p.warnings) {
                println!("  warning (epoch {}): {w}", m.epoch);
            }
        }
        if let Some((w, name)) = &mut self.metrics {
            let line = serde_json::to_string(m).map_err(anyhow::Error::from);
            let written = line.and_then(|l| {
                writeln!(w, "{l}")
                    .and_then(|_| w.flush())
                    .map_err(anyhow::Error::from)
            });
            if let Err(e) = written {
                self.error
                    .get_or_insert(e.context(format!("--metrics-out {name}")));
            }
        }
    }

    fn stopped_early(&mut self, best_epoch: usize) {
        if self.human {
            println!("early stop: the validation score stopped improving; keeping epoch {best_epoch}'s weights");
        }
    }
}

/// A number as written by hand: `0.001` or `0.5`, but `1e30` and `1e-9`
/// rather than a line of digits.
pub fn short_number(v: f64) -> String {
    let plain = format!("{v}");
    match plain.len() > 8 {
        true => format!("{v:e}"),
        false => plain,
    }
}
