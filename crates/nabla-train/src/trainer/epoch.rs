//! One pass over the shuffled training set.

use super::{Observer, Trainer, AUGMENT_STREAM};
use crate::probe::{ProbeReport, Prober};
use crate::step::mix;
use crate::{Result, TrainError};
use nabla_data::{Batches, Dataset};
use nabla_nn::Module;

impl<M: Module<f32>> Trainer<M> {
    /// One pass over the shuffled training set; returns the mean loss, the
    /// accuracy for classes, and the probes taken every K steps if asked.
    pub(super) fn train_epoch(
        &mut self,
        train: &dyn Dataset,
        epoch: usize,
        mut prober: Option<&mut Prober>,
        observer: &mut dyn Observer,
    ) -> Result<(f64, Option<f64>, Vec<ProbeReport>)> {
        let batches = Batches::new(
            train.len(),
            self.config.batch_size,
            self.config.drop_last,
            Some(&mut self.run.rng),
        )?;
        let classes = train.task().is_classification();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let mut probes = Vec::new();
        let first_step = self.stepper.steps();
        let Trainer {
            model,
            optimizer,
            stepper,
            loss: loss_fn,
            run,
            ..
        } = self;
        let average = &mut run.average;
        let augment = self
            .config
            .augment
            .as_ref()
            .map(|a| (a, mix(self.config.seed ^ AUGMENT_STREAM, epoch as u64)));
        stepper
            .epoch(
                model,
                optimizer,
                loss_fn.as_ref(),
                train,
                &batches,
                augment,
                |b, rows, outcome, model| {
                    let (loss, right) = (outcome.loss, outcome.correct);
                    if !loss.is_finite() {
                        return Err(TrainError::Diverged {
                            epoch,
                            batch: b + 1,
                            loss,
                        });
                    }
                    if let Some(avg) = average.as_mut() {
                        avg.update(&mut *model);
                    }
                    loss_sum += loss * rows as f64;
                    correct += right;
                    seen += rows;
                    observer.batch_done(
                        epoch,
                        b + 1,
                        seen,
                        loss_sum / seen as f64,
                        classes.then(|| correct as f64 / seen as f64),
                    );
                    if let Some(p) = prober.as_deref_mut() {
                        let step = first_step + b as u64 + 1;
                        if p.config()
                            .every
                            .is_some_and(|k| k > 0 && step.is_multiple_of(k as u64))
                        {
                            // In evaluation mode, so that probing changes no
                            // state (batch norm's running statistics).
                            model.set_training(false);
                            let report = p.measure(&*model, loss_fn.as_ref(), train, step);
                            model.set_training(true);
                            probes.push(report?);
                        }
                    }
                    Ok(())
                },
            )
            .map_err(|e| {
                // The step that failed was counted before it ran.
                let step = stepper.steps();
                e.at(epoch, (step - first_step) as usize, step)
            })?;
        let seen = seen.max(1) as f64;
        Ok((
            loss_sum / seen,
            classes.then(|| correct as f64 / seen),
            probes,
        ))
    }
}
