//! Several classifiers as one: the average of their class probabilities.

use crate::Sequential;
use nabla_autograd::{Error, Result, Var};
use nabla_tensor::Float;

/// Classifiers whose softmax probabilities are averaged:
/// `log(⅟ₖ·Σ softmax(fᵢ(x)) + 10⁻¹⁰)`, so that the output is a logit whose
/// softmax is the average (up to the material's log guard) and whose
/// argmax is the ensemble's vote weighted by confidence.
///
/// # Shapes
/// Every member maps `[N, …]` to `[N, classes]`, the same classes.
#[derive(Debug, crate::Module)]
#[module(crate = crate)]
pub struct Ensemble<T: Float = f32> {
    /// The members (named `members.0.…`, `members.1.…`).
    pub members: Vec<Sequential<T>>,
}

impl<T: Float> Ensemble<T> {
    /// An ensemble of at least one member.
    ///
    /// # Errors
    /// When there is no member.
    pub fn new(members: Vec<Sequential<T>>) -> Result<Self> {
        if members.is_empty() {
            return Err(Error::invalid("Ensemble", "needs at least one member"));
        }
        Ok(Ensemble { members })
    }

    /// The log of the members' average probabilities.
    ///
    /// # Errors
    /// A member's error, or members whose outputs differ in shape.
    pub fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let mut sum: Option<Var<'t, T>> = None;
        for m in &self.members {
            let p = m.forward(x)?.softmax()?;
            sum = Some(match sum {
                Some(s) => s.add(p)?,
                None => p,
            });
        }
        let sum = sum.ok_or_else(|| Error::invalid("Ensemble", "needs at least one member"))?;
        sum.mul_scalar(1.0 / self.members.len() as f64)?
            .add_scalar(1e-10)?
            .log()
    }
}
