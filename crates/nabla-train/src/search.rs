//! Hyper-parameter search: a space of named ranges, a seeded random
//! sampler over it, and the plan of successive halving.
//!
//! The material's loop — developers give a range, someone tries values in
//! it and keeps the one with the best accuracy — as random search
//! (Bergstra & Bengio 2012) over log-uniform, uniform, integer and listed
//! choices; and successive halving (Jamieson & Talwalkar 2016, the
//! synchronous form of ASHA): train every trial briefly, keep the best
//! fraction, train those longer, and so on. This module only plans: it
//! knows nothing of training; the caller trains each trial and ranks them
//! by a validation score.

use crate::{Result, TrainError};
use nabla_tensor::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How one hyper-parameter is drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Range {
    /// `exp(uniform(ln low, ln high))`: rates, decays, penalties.
    Log([f64; 2]),
    /// Uniform on `[low, high]`.
    Uniform([f64; 2]),
    /// An integer, uniform on `low..=high`.
    Int([i64; 2]),
    /// One of the values, each equally likely.
    Choice(Vec<ChoiceValue>),
}

/// A listed value: text (`"256,128"`, `"adam"`) or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChoiceValue {
    /// A number.
    Number(f64),
    /// Text, passed on as it is.
    Text(String),
}

impl std::fmt::Display for ChoiceValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChoiceValue::Number(v) => write!(f, "{v}"),
            ChoiceValue::Text(t) => f.write_str(t),
        }
    }
}

impl Range {
    /// Parses `log:LOW:HIGH`, `uniform:LOW:HIGH`, `int:LOW:HIGH` or
    /// `choice:A|B|C`.
    ///
    /// # Errors
    /// [`TrainError::Config`] saying what is expected.
    pub fn parse(text: &str) -> Result<Range> {
        let bad = |why: &str| {
            TrainError::Config(format!(
                "'{text}': {why} (expected log:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH or choice:A|B|…)"
            ))
        };
        let (kind, rest) = text.split_once(':').ok_or_else(|| bad("no kind"))?;
        let pair = |rest: &str| -> Result<[f64; 2]> {
            let (a, b) = rest
                .split_once(':')
                .ok_or_else(|| bad("two bounds needed"))?;
            match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
                (Ok(a), Ok(b)) => Ok([a, b]),
                _ => Err(bad("the bounds must be numbers")),
            }
        };
        let range = match kind {
            "log" => Range::Log(pair(rest)?),
            "uniform" => Range::Uniform(pair(rest)?),
            "int" => {
                let [a, b] = pair(rest)?;
                if a.fract() != 0.0 || b.fract() != 0.0 {
                    return Err(bad("integer bounds needed"));
                }
                Range::Int([a as i64, b as i64])
            }
            "choice" => Range::Choice(
                rest.split('|')
                    .map(|v| ChoiceValue::Text(v.trim().to_string()))
                    .collect(),
            ),
            _ => return Err(bad("unknown kind")),
        };
        range.check().map_err(|e| bad(&e))?;
        Ok(range)
    }

    /// Refuses empty or reversed ranges, and log ranges that reach 0.
    fn check(&self) -> std::result::Result<(), String> {
        match self {
            Range::Log([a, b]) if !(*a > 0.0 && b >= a && b.is_finite()) => {
                Err("a log range needs 0 < LOW <= HIGH".into())
            }
            Range::Uniform([a, b]) if !(a.is_finite() && b.is_finite() && b >= a) => {
                Err("a range needs LOW <= HIGH".into())
            }
            Range::Int([a, b]) if b < a => Err("a range needs LOW <= HIGH".into()),
            Range::Choice(v) if v.is_empty() || v.iter().any(|c| c.to_string().is_empty()) => {
                Err("a choice needs values".into())
            }
            _ => Ok(()),
        }
    }

    /// Whether the values are drawn on a log scale (for plots).
    pub fn is_log(&self) -> bool {
        matches!(self, Range::Log(_))
    }

    /// Draws a value, as the text a command-line flag takes.
    pub fn sample(&self, rng: &mut Rng) -> String {
        match self {
            Range::Log([a, b]) => {
                let v = (a.ln() + rng.next_f64() * (b.ln() - a.ln())).exp();
                format!("{v:.4e}")
            }
            Range::Uniform([a, b]) => format!("{:.6}", a + rng.next_f64() * (b - a)),
            Range::Int([a, b]) => {
                // Checked: the bounds are the user's and may span all of i64.
                let span = b
                    .checked_sub(*a)
                    .and_then(|d| usize::try_from(d).ok())
                    .map_or(usize::MAX, |d| d.saturating_add(1));
                a.saturating_add(rng.below(span) as i64).to_string()
            }
            Range::Choice(v) => v[rng.below(v.len())].to_string(),
        }
    }
}

/// Named ranges, sampled in name order (so a space read from a file or
/// from flags gives the same trials).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchSpace(pub BTreeMap<String, Range>);

impl SearchSpace {
    /// Checks every range.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the parameter.
    pub fn validate(&self) -> Result<()> {
        if self.0.is_empty() {
            return Err(TrainError::Config(
                "the search space has no parameter".into(),
            ));
        }
        for (name, range) in &self.0 {
            range
                .check()
                .map_err(|e| TrainError::Config(format!("{name}: {e}")))?;
        }
        Ok(())
    }

    /// `trials` configurations drawn from a generator seeded by `seed`: the
    /// same seed, the same trials, however the search is run or resumed.
    pub fn sample(&self, trials: usize, seed: u64) -> Vec<BTreeMap<String, String>> {
        let mut rng = Rng::seed(seed);
        (0..trials)
            .map(|_| {
                self.0
                    .iter()
                    .map(|(name, range)| (name.clone(), range.sample(&mut rng)))
                    .collect()
            })
            .collect()
    }
}

/// One rung of successive halving: how many trials train for how many epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    /// Trials in the rung (the best of the rung before).
    pub trials: usize,
    /// Epochs each trains for.
    pub epochs: usize,
}

/// The rungs of successive halving: `trials` trials for `min_epochs`, then
/// the best `1/eta` of them for `eta` times the epochs, and so on while the
/// epochs stay within `max_epochs` and more than one trial is left (the
/// last rung trains for `max_epochs`).
pub fn halving_plan(trials: usize, min_epochs: usize, max_epochs: usize, eta: usize) -> Vec<Rung> {
    let eta = eta.max(2);
    let mut rungs = vec![Rung {
        trials,
        epochs: min_epochs.clamp(1, max_epochs.max(1)),
    }];
    loop {
        let last = *rungs.last().expect("one rung");
        if last.trials <= 1 || last.epochs >= max_epochs {
            break;
        }
        rungs.push(Rung {
            trials: (last.trials / eta).max(1),
            epochs: last.epochs.saturating_mul(eta).min(max_epochs),
        });
    }
    rungs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_sample_in_bounds_and_repeat_by_seed() {
        let lr = Range::parse("log:1e-4:1e-1").unwrap();
        let mut rng = Rng::seed(3);
        for _ in 0..200 {
            let v: f64 = lr.sample(&mut rng).parse().unwrap();
            assert!((1e-4..=1e-1).contains(&v), "{v}");
        }
        let int = Range::parse("int:2:4").unwrap();
        let seen: std::collections::BTreeSet<String> =
            (0..100).map(|_| int.sample(&mut rng)).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["2", "3", "4"]);
        let hidden = Range::parse("choice:128|256,128").unwrap();
        let first = (0..1000)
            .filter(|_| hidden.sample(&mut rng) == "128")
            .count();
        assert!((430..570).contains(&first), "{first} of 1000");
        for bad in [
            "log:0:1",
            "int:1.5:3",
            "choice:",
            "normal:0:1",
            "log:1",
            "uniform:2:1",
        ] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
        let space = SearchSpace(BTreeMap::from([
            ("lr".to_string(), lr),
            ("hidden".to_string(), hidden),
        ]));
        assert_eq!(space.sample(5, 9), space.sample(5, 9));
        assert_ne!(space.sample(5, 9), space.sample(5, 10));
        // A space from JSON is the same as from flags.
        let json: SearchSpace = serde_json::from_str(
            r#"{"lr": {"log": [1e-4, 0.1]}, "hidden": {"choice": ["128", "256,128"]}}"#,
        )
        .unwrap();
        assert_eq!(json.sample(5, 9), space.sample(5, 9));
    }

    #[test]
    fn successive_halving_keeps_a_third_and_triples_the_epochs() {
        assert_eq!(
            halving_plan(27, 1, 9, 3),
            [
                Rung {
                    trials: 27,
                    epochs: 1
                },
                Rung {
                    trials: 9,
                    epochs: 3
                },
                Rung {
                    trials: 3,
                    epochs: 9
                }
            ]
        );
        // Capped at the largest epochs; at least one trial.
        assert_eq!(
            halving_plan(4, 2, 5, 3),
            [
                Rung {
                    trials: 4,
                    epochs: 2
                },
                Rung {
                    trials: 1,
                    epochs: 5
                }
            ]
        );
    }
}
