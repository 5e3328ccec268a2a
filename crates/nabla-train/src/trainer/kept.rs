//! The weights a run keeps beside the ones it trains: the best epoch's,
//! for early stopping, and the moving average ([`WeightAverage`]).

use super::Trainer;
use crate::metrics::Score;
use crate::state::Best;
use crate::{Result, TrainError, WeightAverage};
use nabla_nn::{file::load_params, state_dict, Module};
use std::collections::BTreeMap;
use std::path::Path;

impl<M: Module<f32>> Trainer<M> {
    /// Starts (or, after a resume, takes over) the moving average the
    /// configuration asks for, and first takes back the trained weights if
    /// the model holds the average of an earlier `fit`.
    pub(super) fn start_average(&mut self) -> Result<()> {
        if self.averaged_in {
            self.swap_average();
            self.averaged_in = false;
        }
        match self.config.weight_average {
            Some(decay) if !(decay > 0.0 && decay < 1.0) => Err(TrainError::Config(format!(
                "the weight average's decay {decay} is not in (0, 1) (0.999 is usual)"
            ))),
            Some(decay) => {
                match &mut self.run.average {
                    Some(avg) if avg.fits(&mut self.model) => avg.decay = decay,
                    _ => self.run.average = Some(WeightAverage::new(&mut self.model, decay)),
                }
                Ok(())
            }
            None => {
                self.run.average = None;
                Ok(())
            }
        }
    }

    /// Exchanges the model's weights with the moving average, if one is kept.
    pub(super) fn swap_average(&mut self) {
        if let Some(avg) = &mut self.run.average {
            avg.swap(&mut self.model);
        }
    }

    /// Records a better validation score; true when patience has run out.
    pub(super) fn track_best(&mut self, val: Option<&Score>, epoch: usize) -> bool {
        let (Some(patience), Some(score)) = (self.config.early_stop, val.map(Score::selection))
        else {
            return false;
        };
        if self.run.best.as_ref().is_none_or(|b| score > b.score) {
            self.run.best = Some(Best {
                score,
                epoch,
                state: state_dict(&self.model),
            });
        }
        let best_epoch = self.run.best.as_ref().map(|b| b.epoch).unwrap_or(epoch);
        epoch - best_epoch >= patience
    }

    pub(super) fn restore_best(&mut self) -> Result<()> {
        if let Some(best) = &self.run.best {
            let state: BTreeMap<String, _> = best.state.iter().cloned().collect();
            load_params(
                Path::new("the best epoch's weights"),
                &mut self.model,
                &state,
                "",
            )?;
        }
        Ok(())
    }
}
