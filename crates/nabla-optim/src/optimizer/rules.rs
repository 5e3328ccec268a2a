//! The update rules, one per [`Method`], on plain slices: what a step does
//! to each weight and its state, given the gradient. Everything around them
//! (which parameters, the shards' sum, threads) is the plumbing of
//! `super::parts` and `super`.

use super::parts::StepSettings;
use crate::Method;
use nabla_tensor::Float;

/// A step's constants, in the parameters' element type.
pub(super) struct Coefficients<T> {
    method: Method,
    lr: T,
    pub(super) scale: T,
    pub(super) coupled_wd: T,
    pub(super) l1: T,
    /// The proximal L1 threshold `lr·λ₁` (0 for the subgradient form).
    prox: T,
    pub(super) regularised: bool,
    /// AdamW's factor on `w` before the Adam step, `1 - lr·λ` (1 otherwise).
    keep: T,
    /// Adam's bias corrections `1 / (1 - βᵗ)`.
    c1: T,
    c2: T,
}

impl<T: Float> Coefficients<T> {
    pub(super) fn new(
        StepSettings {
            config: c,
            t,
            scale,
        }: StepSettings<'_>,
    ) -> Self {
        let lr = T::from_f64(c.lr);
        let decoupled = matches!(c.method, Method::AdamW { .. });
        let wd = T::from_f64(c.weight_decay);
        let proximal = c.l1_mode == crate::L1Mode::Proximal;
        let l1 = if proximal { T::ZERO } else { T::from_f64(c.l1) };
        let prox = if proximal {
            T::from_f64(c.lr * c.l1)
        } else {
            T::ZERO
        };
        let scale = T::from_f64(scale);
        let coupled_wd = if decoupled { T::ZERO } else { wd };
        let (c1, c2) = match c.method {
            Method::Adam { beta1, beta2, .. } | Method::AdamW { beta1, beta2, .. } => (
                T::ONE / (T::ONE - T::from_f64(beta1.powi(t))),
                T::ONE / (T::ONE - T::from_f64(beta2.powi(t))),
            ),
            _ => (T::ONE, T::ONE),
        };
        Coefficients {
            method: c.method,
            lr,
            scale,
            coupled_wd,
            l1,
            prox,
            regularised: scale != T::ONE || coupled_wd != T::ZERO || l1 != T::ZERO,
            keep: if decoupled { T::ONE - lr * wd } else { T::ONE },
            c1,
            c2,
        }
    }

    /// The proximal L1 step after the update: `w ← sign(w)·max(|w| − τ, 0)`.
    #[inline(always)]
    pub(super) fn shrink(&self, w: &mut [T]) {
        let tau = self.prox;
        if tau > T::ZERO {
            for wi in w.iter_mut() {
                let m = wi.abs() - tau;
                *wi = if m > T::ZERO { m * sign(*wi) } else { T::ZERO };
            }
        }
    }

    /// The method's update of `w` with gradient `g` and its state `s0`, `s1`
    /// (momentum's `v`, AdaGrad's and RMSProp's `h`, Adam's `m` and `v`).
    ///
    /// Each loop computes the new state into locals and stores it once:
    /// reading back a state just stored made the compiler reload it from
    /// memory, and a 64-byte load of a 64-byte store that the CPU wrote in
    /// two halves (Zen 4) is not forwarded, which made the 16-lane update
    /// 2.7 times slower than the 8-lane one (`docs/performance.md`).
    #[inline(always)]
    pub(super) fn apply(&self, w: &mut [T], g: &[T], s0: &mut [T], s1: &mut [T]) {
        let lr = self.lr;
        match self.method {
            Method::Sgd => {
                for (wi, &gi) in w.iter_mut().zip(g) {
                    *wi -= lr * gi;
                }
            }
            Method::Momentum { momentum } | Method::Nesterov { momentum } => {
                let nesterov = matches!(self.method, Method::Nesterov { .. });
                let mu = T::from_f64(momentum);
                for ((wi, &gi), vi) in w.iter_mut().zip(g).zip(s0) {
                    let v = mu * *vi + gi;
                    *vi = v;
                    *wi -= lr * if nesterov { gi + mu * v } else { v };
                }
            }
            Method::AdaGrad { eps } => {
                let eps = T::from_f64(eps);
                for ((wi, &gi), hi) in w.iter_mut().zip(g).zip(s0) {
                    let h = *hi + gi * gi;
                    *hi = h;
                    *wi -= lr * gi / (h.sqrt() + eps);
                }
            }
            Method::RmsProp { alpha, eps } => {
                let (a, eps) = (T::from_f64(alpha), T::from_f64(eps));
                for ((wi, &gi), hi) in w.iter_mut().zip(g).zip(s0) {
                    let h = a * *hi + (T::ONE - a) * gi * gi;
                    *hi = h;
                    *wi -= lr * gi / (h.sqrt() + eps);
                }
            }
            Method::Adam { beta1, beta2, eps } | Method::AdamW { beta1, beta2, eps } => {
                let (b1, b2, eps) = (T::from_f64(beta1), T::from_f64(beta2), T::from_f64(eps));
                let (c1, c2, keep) = (self.c1, self.c2, self.keep);
                for ((wi, &gi), (mi, vi)) in w.iter_mut().zip(g).zip(s0.iter_mut().zip(s1)) {
                    let m = b1 * *mi + (T::ONE - b1) * gi;
                    let v = b2 * *vi + (T::ONE - b2) * gi * gi;
                    *mi = m;
                    *vi = v;
                    *wi = *wi * keep - lr * (m * c1) / ((v * c2).sqrt() + eps);
                }
            }
        }
    }
}

pub(super) fn sign<T: Float>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else if x < T::ZERO {
        -T::ONE
    } else {
        T::ZERO
    }
}
