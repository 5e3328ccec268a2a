//! The optimiser: applies a [`Method`] to parameters, keeping per-parameter state.

use crate::clip::clip_factor;
use crate::{Method, OptimizerConfig};
use nabla_autograd::{Error, Gradients, OuterProduct, Param, ParamGrad, Result};
use nabla_tensor::{Float, Tensor};
use smallvec::SmallVec;
use std::borrow::Cow;

/// An optimiser built from an [`OptimizerConfig`].
///
/// State (momentum, squared-gradient averages) is kept per parameter, by
/// position in the slice passed to [`Optimizer::step`]: pass the parameters in
/// the same order every step (a model's `params_mut()` does).
#[derive(Debug, Clone)]
pub struct Optimizer<T: Float = f32> {
    config: OptimizerConfig,
    state: OptimizerState<T>,
}

/// The mutable state of an optimiser, for checkpoints.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState<T: Float = f32> {
    /// Steps taken so far (Adam's bias correction uses it).
    pub step: u64,
    /// Per parameter, the method's buffers (`v`; or `m`, `v`), created on the first step.
    pub buffers: Vec<Vec<Tensor<T>>>,
}

impl<T: Float> Optimizer<T> {
    /// A fresh optimiser.
    pub fn new(config: OptimizerConfig) -> Self {
        Optimizer {
            config,
            state: OptimizerState {
                step: 0,
                buffers: Vec::new(),
            },
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate (schedules call this between epochs).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Whether a step applies a gradient held as an outer product (see
    /// [`Gradients::keep_outer_products`]) without forming it: plain SGD
    /// without regularisation or clipping, whose update of row `i` of a
    /// weight is `w -= lr · (uᵢ · v)`, one pass over the weight instead of
    /// one to form the gradient and one to read it back. Other methods and
    /// settings form such a gradient first (correct, but it allocates).
    pub fn takes_outer_products(&self) -> bool {
        let c = &self.config;
        c.method == Method::Sgd && c.weight_decay == 0.0 && c.l1 == 0.0 && c.clip_norm.is_none()
    }

    /// The state, for saving.
    pub fn state(&self) -> &OptimizerState<T> {
        &self.state
    }

    /// Restores a saved state.
    ///
    /// # Errors
    /// If the state does not have this method's number of buffers per parameter.
    pub fn load_state(&mut self, state: OptimizerState<T>) -> Result<()> {
        let want = self.config.method.buffers();
        if let Some(bad) = state.buffers.iter().find(|b| b.len() != want) {
            return Err(Error::invalid(
                "optimizer state",
                format!(
                    "{} keeps {want} buffers per parameter, the saved state has {}",
                    self.config.method.name(),
                    bad.len()
                ),
            ));
        }
        self.state = state;
        Ok(())
    }

    /// One update of every parameter that has a gradient in `grads`.
    ///
    /// # Errors
    /// If the parameters' number or shapes differ from earlier steps.
    pub fn step(&mut self, params: &mut [&mut Param<T>], grads: &Gradients<T>) -> Result<()> {
        self.step_each(grads, |f| params.iter_mut().for_each(|p| f(p)))
    }

    /// [`Optimizer::step`] over the parameters that `visit` passes to its
    /// callback (e.g. `|f| model.for_each_param_mut(f)`), in the same order
    /// every step. `visit` is called twice: once to check the state (and sum
    /// the squared gradients when clipping), once to update. After the first
    /// step this allocates nothing.
    ///
    /// # Errors
    /// If the parameters' number or shapes differ from earlier steps, or a
    /// gradient's shape differs from its parameter's.
    pub fn step_each(
        &mut self,
        grads: &Gradients<T>,
        visit: impl FnMut(&mut dyn FnMut(&mut Param<T>)),
    ) -> Result<()> {
        self.step_sum(&[grads], visit)
    }

    /// [`Optimizer::step_each`] with the sum of several gradient stores (the
    /// shards of one batch), added element by element in the order given, as
    /// adding them into the first store and stepping with it would, but
    /// without writing the sum anywhere.
    ///
    /// With several stores, a large parameter's update is shared out between
    /// the threads of the current pool by element ranges: the threads have
    /// just computed the shards, so they are awake, and each updates a part
    /// of the weights as fast as one thread would update them all (writing
    /// weights the other cores have read is what costs). With one store it
    /// runs on the calling thread: waking idle threads would cost more than
    /// the update. Every element's arithmetic is the same either way, so the
    /// weights are the same bits on any number of threads.
    ///
    /// # Errors
    /// As [`Optimizer::step_each`].
    pub fn step_sum(
        &mut self,
        grads: &[&Gradients<T>],
        mut visit: impl FnMut(&mut dyn FnMut(&mut Param<T>)),
    ) -> Result<()> {
        let plain_sgd = self.takes_outer_products();
        let fresh = self.state.buffers.is_empty();
        let per_param = self.config.method.buffers();
        let clip = self.config.clip_norm;
        let (mut count, mut mismatch, mut squares) = (0usize, None, 0.0f64);
        let buffers = &mut self.state.buffers;
        visit(&mut |param| {
            let shape = param.value().shape();
            if fresh {
                buffers.push(vec![param.value().zeros_like(); per_param]);
            } else if !buffers
                .get(count)
                .is_some_and(|b| b.first().is_none_or(|first| first.shape() == shape))
            {
                mismatch.get_or_insert(format!(
                    "parameter {count} has shape {shape}, unlike its state from earlier steps"
                ));
            }
            let parts = shard_grads(grads, param);
            if let Some(g) = parts.iter().find(|g| g.len() != param.value().len()) {
                mismatch.get_or_insert(format!(
                    "parameter {count} has shape {shape} but a gradient of {} elements",
                    g.len()
                ));
            } else if clip.is_some() && !parts.is_empty() {
                let parts = formed(&parts);
                let parts: SmallVec<[&[T]; 32]> = parts.iter().map(|p| p.data()).collect();
                for i in 0..param.value().len() {
                    let v = parts[1..].iter().fold(parts[0][i], |acc, g| acc + g[i]);
                    squares += v.to_f64() * v.to_f64();
                }
            }
            count += 1;
        });
        if let Some(message) = mismatch {
            return Err(Error::invalid("optimizer step", message));
        }
        if count != buffers.len() {
            return Err(Error::invalid(
                "optimizer step",
                format!(
                    "got {count} parameters, earlier steps had {}",
                    buffers.len()
                ),
            ));
        }
        let scale = clip.map_or(1.0, |max| clip_factor(squares.sqrt(), max));
        self.state.step += 1;
        let t = self.state.step as i32;
        let settings = StepSettings {
            config: &self.config,
            t,
            scale,
        };
        let threads = if grads.len() > 1 {
            rayon::current_num_threads().max(1)
        } else {
            1
        };
        let mut index = 0;
        visit(&mut |param| {
            let parts = shard_grads(grads, param);
            match parts[..] {
                [] => {}
                [ParamGrad::Outer(o)] if plain_sgd => sgd_outer_widest(
                    T::from_f64(settings.config.lr),
                    param.value_mut().data_mut(),
                    o,
                ),
                _ => {
                    let parts = formed(&parts);
                    let parts: SmallVec<[&[T]; 32]> = parts.iter().map(|p| p.data()).collect();
                    update_in_parts(
                        settings,
                        param.value_mut().data_mut(),
                        &parts,
                        &mut buffers[index],
                        threads,
                    );
                }
            }
            index += 1;
        });
        Ok(())
    }
}

/// The gradients of `param` in the stores that have one, in store order
/// (inline up to 32 stores; a training step has at most 8 shards).
fn shard_grads<'a, T: Float>(
    grads: &[&'a Gradients<T>],
    param: &Param<T>,
) -> SmallVec<[ParamGrad<'a, T>; 32]> {
    grads.iter().filter_map(|g| g.param_grad(param)).collect()
}

/// Every gradient's elements: formed ones as they are, outer products
/// formed now (only where the method cannot apply them as they are).
fn formed<'a, T: Float>(parts: &[ParamGrad<'a, T>]) -> SmallVec<[Cow<'a, Tensor<T>>; 32]> {
    parts
        .iter()
        .map(|p| match *p {
            ParamGrad::Dense(t) => Cow::Borrowed(t),
            ParamGrad::Outer(o) => Cow::Owned(o.to_dense()),
        })
        .collect()
}

/// Plain SGD with the gradient `u vᵀ` held as its vectors: row `i` of `w`
/// becomes `w - lr · (uᵢ · vⱼ)`, one pass over `w`. Each gradient element
/// is rounded as the formed product rounds it (`uᵢ · vⱼ + 0`, as a fused
/// multiply-add onto zero does: a zero product is `+0`), and the update is
/// SGD's `w -= lr · g`, so the weights are the bits of forming the
/// gradient and stepping with it (tested).
fn sgd_outer_widest<T: Float>(lr: T, w: &mut [T], o: &OuterProduct<T>) {
    #[cfg(target_arch = "x86_64")]
    if nabla_tensor::Kernel::OptimizerUpdate.level() >= nabla_tensor::SimdLevel::Avx2 {
        #[target_feature(enable = "avx2")]
        fn wide<T: Float>(lr: T, w: &mut [T], o: &OuterProduct<T>) {
            sgd_outer(lr, w, o);
        }
        // SAFETY: at that level the CPU has AVX2.
        return unsafe { wide(lr, w, o) };
    }
    sgd_outer(lr, w, o);
}

#[inline(always)]
fn sgd_outer<T: Float>(lr: T, w: &mut [T], o: &OuterProduct<T>) {
    let v = o.v();
    let n = v.len().max(1);
    if let Some(live) = live_strips(lr, o) {
        // Only the strips of columns where v is not all zero.
        let full = v.len() / STRIP;
        for (row, &u) in w.chunks_exact_mut(n).zip(o.u()) {
            for &s in &live {
                let s = s as usize;
                if s < full {
                    // Fixed-size arrays, so that a strip is one vector.
                    let at = s * STRIP;
                    let row: &mut [T; STRIP] = (&mut row[at..at + STRIP]).try_into().unwrap();
                    let v: &[T; STRIP] = v[at..at + STRIP].try_into().unwrap();
                    for (wj, &vj) in row.iter_mut().zip(v) {
                        let g = u * vj + T::ZERO;
                        *wj -= lr * g;
                    }
                } else {
                    for (wj, &vj) in row[s * STRIP..].iter_mut().zip(&v[s * STRIP..]) {
                        let g = u * vj + T::ZERO;
                        *wj -= lr * g;
                    }
                }
            }
        }
        return;
    }
    for (row, &u) in w.chunks_exact_mut(n).zip(o.u()) {
        for (wj, &vj) in row.iter_mut().zip(v) {
            let g = u * vj + T::ZERO;
            *wj -= lr * g;
        }
    }
}

/// Columns per strip that [`sgd_outer`] skips when `v` is zero in all of them.
const STRIP: usize = 8;

/// The strips of `v` (of [`STRIP`] columns, the last one maybe shorter)
/// that hold a nonzero value, when skipping the others pays and changes no
/// bit; `None` when every column is to be updated.
///
/// A zero `vⱼ` makes the gradient element `uᵢ · 0 + 0 = +0` and leaves the
/// weight as it is (`w - lr · 0 = w`, `-0` included), unless `uᵢ` or `lr` is
/// infinite or NaN, which turns it into NaN: then nothing is skipped. At
/// batch 1 `v` is the layer's input, for an image 81% zeros, and two in
/// five strips of eight pixels are live: the update then reads and writes
/// those only. Without a quarter of the strips zero it is not worth a list.
fn live_strips<T: Float>(lr: T, o: &OuterProduct<T>) -> Option<SmallVec<[u16; 256]>> {
    let v = o.v();
    let strips = v.len().div_ceil(STRIP);
    // A negative rate would turn a weight of -0 into +0 (w - (-0)).
    if strips > 256 || !lr.is_finite() || lr < T::ZERO {
        return None;
    }
    let live: SmallVec<[u16; 256]> = (0..strips)
        .filter(|&s| {
            v[s * STRIP..((s + 1) * STRIP).min(v.len())]
                .iter()
                .any(|&x| x != T::ZERO)
        })
        .map(|s| s as u16)
        .collect();
    let pays = 4 * (strips - live.len()) >= strips;
    (pays && o.u().iter().all(|u| u.is_finite())).then_some(live)
}

/// Elements per thread below which an update is not shared out: the fork
/// and join would cost more than the work.
const PART_MIN: usize = 1 << 14;

/// Elements of the effective gradient built at a time, on the stack.
const BLOCK: usize = 256;

/// What one step's updates share: the config, the step number (from 1)
/// and the factor clipping scales the gradients by.
#[derive(Clone, Copy)]
struct StepSettings<'a> {
    config: &'a OptimizerConfig,
    t: i32,
    scale: f64,
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
fn update_in_parts<T: Float>(
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

/// [`update`] in eight-lane vectors where the CPU has AVX2 (the baseline
/// x86-64 build has four). Every loop in it is elementwise, and the compiler
/// never reorders a sum nor fuses a multiply with an add, so the result is
/// the same bits either way (tested below); only the speed changes.
fn update_widest<T: Float>(s: StepSettings<'_>, span: Span<'_, T>, grads: &[&[T]]) {
    #[cfg(target_arch = "x86_64")]
    if nabla_tensor::Kernel::OptimizerUpdate.level() >= nabla_tensor::SimdLevel::Avx2 {
        #[target_feature(enable = "avx2")]
        fn wide<T: Float>(s: StepSettings<'_>, span: Span<'_, T>, grads: &[&[T]]) {
            update(s, span, grads);
        }
        // SAFETY: at that level the CPU has AVX2.
        return unsafe { wide(s, span, grads) };
    }
    update(s, span, grads);
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

/// A step's constants, in the parameters' element type.
struct Coefficients<T> {
    method: Method,
    lr: T,
    scale: T,
    coupled_wd: T,
    l1: T,
    /// The proximal L1 threshold `lr·λ₁` (0 for the subgradient form).
    prox: T,
    regularised: bool,
    /// AdamW's factor on `w` before the Adam step, `1 - lr·λ` (1 otherwise).
    keep: T,
    /// Adam's bias corrections `1 / (1 - βᵗ)`.
    c1: T,
    c2: T,
}

impl<T: Float> Coefficients<T> {
    fn new(
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
    fn shrink(&self, w: &mut [T]) {
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
    #[inline(always)]
    fn apply(&self, w: &mut [T], g: &[T], s0: &mut [T], s1: &mut [T]) {
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
                    *vi = mu * *vi + gi;
                    *wi -= lr * if nesterov { gi + mu * *vi } else { *vi };
                }
            }
            Method::AdaGrad { eps } => {
                let eps = T::from_f64(eps);
                for ((wi, &gi), hi) in w.iter_mut().zip(g).zip(s0) {
                    *hi += gi * gi;
                    *wi -= lr * gi / (hi.sqrt() + eps);
                }
            }
            Method::RmsProp { alpha, eps } => {
                let (a, eps) = (T::from_f64(alpha), T::from_f64(eps));
                for ((wi, &gi), hi) in w.iter_mut().zip(g).zip(s0) {
                    *hi = a * *hi + (T::ONE - a) * gi * gi;
                    *wi -= lr * gi / (hi.sqrt() + eps);
                }
            }
            Method::Adam { beta1, beta2, eps } | Method::AdamW { beta1, beta2, eps } => {
                let (b1, b2, eps) = (T::from_f64(beta1), T::from_f64(beta2), T::from_f64(eps));
                let (c1, c2, keep) = (self.c1, self.c2, self.keep);
                for ((wi, &gi), (mi, vi)) in w.iter_mut().zip(g).zip(s0.iter_mut().zip(s1)) {
                    *mi = b1 * *mi + (T::ONE - b1) * gi;
                    *vi = b2 * *vi + (T::ONE - b2) * gi * gi;
                    *wi = *wi * keep - lr * (*mi * c1) / ((*vi * c2).sqrt() + eps);
                }
            }
        }
    }
}

fn sign<T: Float>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else if x < T::ZERO {
        -T::ONE
    } else {
        T::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 copy of the update gives the baseline's bits, for every
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
