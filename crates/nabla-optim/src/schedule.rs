//! Learning-rate schedules, evaluated per epoch.

/// How the learning rate changes with the epoch (counted from 0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LrSchedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_size` epochs: `lr·gamma^⌊epoch/step_size⌋`.
    Step {
        /// Epochs between decays (≥ 1).
        step_size: usize,
        /// Factor per decay.
        gamma: f64,
    },
    /// `lr·gamma^epoch`.
    Exponential {
        /// Factor per epoch.
        gamma: f64,
    },
    /// Cosine annealing from `lr` to `eta_min` over `t_max` epochs:
    /// `eta_min + (lr - eta_min)·(1 + cos(π·epoch/t_max))/2`, then `eta_min`.
    Cosine {
        /// Epochs to reach the minimum.
        t_max: usize,
        /// The final rate.
        eta_min: f64,
    },
}

impl LrSchedule {
    /// The learning rate at `epoch` for a base rate `base`.
    pub fn lr_at(&self, base: f64, epoch: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                base * gamma.powi((epoch / step_size.max(1)) as i32)
            }
            LrSchedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            LrSchedule::Cosine { t_max, eta_min } => {
                let t = epoch.min(t_max) as f64 / t_max.max(1) as f64;
                eta_min + (base - eta_min) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_their_formulas() {
        let step = LrSchedule::Step {
            step_size: 2,
            gamma: 0.5,
        };
        let lrs: Vec<f64> = (0..5).map(|e| step.lr_at(1.0, e)).collect();
        assert_eq!(lrs, [1.0, 1.0, 0.5, 0.5, 0.25]);
        assert!((LrSchedule::Exponential { gamma: 0.9 }.lr_at(1.0, 2) - 0.81).abs() < 1e-15);
        let cos = LrSchedule::Cosine {
            t_max: 10,
            eta_min: 0.0,
        };
        assert_eq!(cos.lr_at(0.1, 0), 0.1);
        assert!((cos.lr_at(0.1, 5) - 0.05).abs() < 1e-15);
        assert!(cos.lr_at(0.1, 10).abs() < 1e-15);
        assert!(cos.lr_at(0.1, 12).abs() < 1e-15);
        assert_eq!(LrSchedule::Constant.lr_at(0.3, 7), 0.3);
    }
}
