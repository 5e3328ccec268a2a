//! One parameter's update as the step carries it out: the shards' gradients
//! added a block at a time, regularisation and clipping folded in, the
//! method's rule ([`super::rules`]) applied, and a large parameter shared
//! out between threads by element ranges.

use super::rules::{sign, Coefficients};
use crate::OptimizerConfig;
use nabla_tensor::{Float, Tensor};

/// Elements per thread below which an update is not shared out: the fork
/// and join would cost more than the work.
const PART_MIN: usize = 1 << 14;

/// Elements of the effective gradient built at a time, on the stack.
const BLOCK: usize = 256;

/// What one step's updates share: the config, the step number (from 1)
/// and the factor clipping scales the gradients by.
#[derive(Clone, Copy)]
pub(super) struct StepSettings<'a> {
    pub(super) config: &'a OptimizerConfig,
    pub(super) t: i32,
    pub(super) scale: f64,
}

/// A range of one parameter's elements with the same range of its state
/// buffers (empty where the method keeps fewer than two); `start` is where
/// the range begins in the parameter.
struct Span<'a, T> {
    start: usize,
    w: &'a mut [T],
    b0: &'a mut [T],
    b1: &'a mut [T],
}

impl<'a, T> Span<'a, T> {
    fn split_at(self, mid: usize) -> (Self, Self) {
        let (w0, w1) = self.w.split_at_mut(mid);
        let (a0, a1) = self.b0.split_at_mut(mid.min(self.b0.len()));
        let (c0, c1) = self.b1.split_at_mut(mid.min(self.b1.len()));
        let right = Span {
            start: self.start + mid,
            w: w1,
            b0: a1,
            b1: c1,
        };
        let left = Span {
            start: self.start,
            w: w0,
            b0: a0,
            b1: c0,
        };
        (left, right)
    }
}

/// Updates one parameter, its elements shared out between up to `threads`
/// threads of the current pool when there are enough of them. The cuts fall
/// on 64-byte boundaries of memory, so no cache line is written by two
/// threads.
pub(super) fn update_in_parts<T: Float>(
    s: StepSettings<'_>,
    w: &mut [T],
    grads: &[&[T]],
    buffers: &mut [Tensor<T>],
    threads: usize,
) {
    let (b0, b1): (&mut [T], &mut [T]) = match buffers {
        [] => (&mut [], &mut []),
        [a] => (a.data_mut(), &mut []),
        [a, b, ..] => (a.data_mut(), b.data_mut()),
    };
    let parts = (w.len() / PART_MIN).clamp(1, threads);
    let span = Span {
        start: 0,
        w,
        b0,
        b1,
    };
    in_parts(span, parts, &|span| update_widest(s, span, grads));
}

fn in_parts<T: Float>(span: Span<'_, T>, parts: usize, f: &(impl Fn(Span<'_, T>) + Sync)) {
    if parts <= 1 {
        return f(span);
    }
    // The cut near the share's end whose address is a multiple of 64 bytes.
    let size = std::mem::size_of::<T>().max(1);
    let line = (64 / size).max(1);
    let base = span.w.as_ptr() as usize / size;
    let share = span.w.len() * (parts / 2) / parts;
    let mid = ((base + share) / line * line)
        .saturating_sub(base)
        .min(span.w.len());
    let (left, right) = span.split_at(mid);
    rayon::join(
        || in_parts(left, parts / 2, f),
        || in_parts(right, parts - parts / 2, f),
    );
}

/// [`update`] at the optimiser family's level ([`Kernel::run`]): eight
/// `f32` lanes with AVX2, four in the baseline x86-64 build (the family
/// stops at AVX2, see [`Kernel::widest`]). Every loop in it is
/// elementwise, and the compiler never reorders a sum nor fuses a multiply
/// with an add, so the result is the same bits at every level (tested
/// below); only the speed changes.
///
/// [`Kernel::run`]: nabla_tensor::Kernel::run
/// [`Kernel::widest`]: nabla_tensor::Kernel::widest
fn update_widest<T: Float>(s: StepSettings<'_>, span: Span<'_, T>, grads: &[&[T]]) {
    nabla_tensor::Kernel::OptimizerUpdate.run(
        #[inline(always)]
        || update(s, span, grads),
    );
}

/// Applies one step of the method to a range of one parameter's elements.
///
/// The gradient is built a block at a time on the stack: the shards' sum,
/// then, when regularisation or clipping is on, `g·scale + λ₂·w + λ₁·sign(w)`.
/// Each method's loop is then a plain zip over slices, which the compiler
/// vectorises.
#[inline(always)]
fn update<T: Float>(s: StepSettings<'_>, span: Span<'_, T>, grads: &[&[T]]) {
    let k = Coefficients::new(s);
    let Span { start, w, b0, b1 } = span;
    let (first, others) = grads.split_first().expect("at least one gradient");
    if others.is_empty() && !k.regularised {
        // The gradient as it is: no block to build.
        k.apply(w, &first[start..start + w.len()], b0, b1);
        return k.shrink(w);
    }
    let mut g = [T::ZERO; BLOCK];
    for (b, w) in w.chunks_mut(BLOCK).enumerate() {
        let (from, to) = (b * BLOCK, b * BLOCK + w.len());
        let g = &mut g[..w.len()];
        let at = start + from..start + to;
        match others.split_first() {
            Some((second, _)) => {
                for ((x, &y0), &y1) in g
                    .iter_mut()
                    .zip(&first[at.clone()])
                    .zip(&second[at.clone()])
                {
                    *x = y0 + y1;
                }
            }
            None => g.copy_from_slice(&first[at.clone()]),
        }
        for other in others.iter().skip(1) {
            for (x, &y) in g.iter_mut().zip(&other[at.clone()]) {
                *x += y;
            }
        }
        if k.regularised {
            for (x, &wi) in g.iter_mut().zip(w.iter()) {
                *x = *x * k.scale + k.coupled_wd * wi + k.l1 * sign(wi);
            }
        }
        let b0 = b0.get_mut(from..to).unwrap_or_default();
        let b1 = b1.get_mut(from..to).unwrap_or_default();
        k.apply(w, g, b0, b1);
        k.shrink(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;

    /// The update at this CPU's level gives the baseline's bits, for every
    /// method, with regularisation and a clipping factor (whose loop builds
    /// the regularised gradient), over two shards' gradients and a length
    /// that spans blocks and that no vector width divides.
    #[test]
    fn the_wide_update_gives_the_same_bits() {
        let n = 2 * BLOCK + 37;
        let values = |seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 13 + seed * 5) % 17) as f32 - 8.0) / 7.0)
                .collect()
        };
        for method in Method::all() {
            let mut config = OptimizerConfig::new(method, 0.05);
            config.weight_decay = 0.01;
            config.l1 = 0.001;
            let (mut plain, mut wide) = (values(1), values(1));
            let state = || {
                (
                    values(3).iter().map(|v| v.abs()).collect::<Vec<_>>(),
                    values(4).iter().map(|v| v.abs()).collect::<Vec<_>>(),
                )
            };
            let ((mut p0, mut p1), (mut w0, mut w1)) = (state(), state());
            for t in 1..=3 {
                let (g0, g1) = (values(t as usize + 5), values(t as usize + 9));
                let grads = [&g0[..], &g1[..]];
                let s = StepSettings {
                    config: &config,
                    t,
                    scale: 0.75,
                };
                let span = |w, b0, b1| Span {
                    start: 0,
                    w,
                    b0,
                    b1,
                };
                update(s, span(&mut plain, &mut p0, &mut p1), &grads);
                update_widest(s, span(&mut wide, &mut w0, &mut w1), &grads);
            }
            assert_eq!(plain, wide, "{}: weights", method.name());
            assert_eq!((p0, p1), (w0, w1), "{}: state", method.name());
        }
    }
}
