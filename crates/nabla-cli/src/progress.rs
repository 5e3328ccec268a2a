//! Training progress: a bar per epoch (indicatif, hidden when stderr is not a
//! terminal), a line per epoch on stdout, and one JSON line per epoch to
//! `--metrics-out`.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use nabla_train::{EpochMetrics, Observer, RunInfo};
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
}

impl Progress {
    /// `human`: print bars and lines; `metrics_out`: JSON-lines file
    /// (appended to when resuming, otherwise created afresh).
    pub fn new(human: bool, metrics_out: Option<&Path>, resuming: bool) -> Result<Self> {
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
        accuracy: f64,
    ) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            let per_second = samples_seen as f64 / bar.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {loss:.4} acc {:.2}% {per_second:.0} samples/s",
                100.0 * accuracy
            ));
        }
    }

    fn epoch_done(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.human {
            println!(
                "epoch {:>3}/{}  loss {:.4}  train {}  val {}  test {}  lr {:.2e}  {:.1} s  {:.0} samples/s",
                m.epoch,
                self.epochs,
                m.train_loss,
                pct(Some(m.train_accuracy)),
                pct(m.val_accuracy),
                pct(m.test_accuracy),
                m.lr,
                m.seconds,
                m.samples_per_second
            );
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
            println!("early stop: validation accuracy stopped improving; keeping epoch {best_epoch}'s weights");
        }
    }
}
