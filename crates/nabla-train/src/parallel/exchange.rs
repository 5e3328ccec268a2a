//! The gradient exchange of a data-parallel step.
//!
//! The gradients travel in one flat buffer that holds the model's
//! parameters in reverse order, the order in which backward finishes them,
//! cut into buckets of [`DataParallel::bucket_bytes`]. When every rank
//! computes at most one shard of the batch, the buckets are sent while
//! backward runs: backward reports each parameter's gradient as soon as it
//! is final ([`nabla_autograd::Tape::backward_into_observed`]), the
//! gradient is copied into its place, and a communication thread sends
//! each bucket once all its parameters are in, so that the last layers'
//! gradients travel while the first layers' are computed (as PyTorch's DDP
//! and Horovod do). The buckets are sent in order on every rank, whatever
//! order they fill in. A rank with several shards exchanges after its
//! shards' backward passes: its shards' sum is not final until the last
//! shard is done.

use super::{shards_of, DataParallel, Reduction};
use crate::step::{Shard, StepOutcome};
use crate::{Result, TrainError};
use nabla_autograd::{Gradients, OnFinal, ParamGrad, ParamId};
use nabla_nn::Module;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::mpsc;

/// Buffers the gradient exchange keeps from step to step.
#[derive(Default)]
pub(crate) struct Exchange {
    layout: Layout,
    /// This rank's gradients, slot after slot (one slot per shard it
    /// computes; a sum reduction has one).
    send: Vec<f32>,
    recv: Vec<f32>,
    /// One bucket of every slot (exact reduction, several slots).
    piece: Vec<f32>,
    /// Every shard's gradients, shard after shard (exact reduction).
    all: Vec<f32>,
    /// Parameters not yet final in each bucket (during an overlapped step).
    pending: Vec<usize>,
}

/// Where each parameter's gradient sits in the flat buffer.
#[derive(Default)]
struct Layout {
    /// The parameters in the model's order, with their lengths and offsets.
    ids: Vec<ParamId>,
    lens: Vec<usize>,
    offsets: Vec<usize>,
    index: HashMap<ParamId, usize>,
    total: usize,
}

impl Layout {
    /// Rebuilds the layout if the model's parameters changed (they do not,
    /// from step to step).
    fn refresh<M: Module<f32> + ?Sized>(&mut self, model: &mut M) {
        let (mut k, mut same) = (0, true);
        model.for_each_param_mut(&mut |p| {
            same &= self.ids.get(k) == Some(&p.id()) && self.lens[k] == p.value().len();
            k += 1;
        });
        if same && k == self.ids.len() {
            return;
        }
        self.ids.clear();
        self.lens.clear();
        model.for_each_param_mut(&mut |p| {
            self.ids.push(p.id());
            self.lens.push(p.value().len());
        });
        self.total = self.lens.iter().sum();
        // The last parameter first.
        let mut at = self.total;
        self.offsets = self
            .lens
            .iter()
            .map(|&len| {
                at -= len;
                at
            })
            .collect();
        self.index = self
            .ids
            .iter()
            .enumerate()
            .map(|(k, &id)| (id, k))
            .collect();
    }

    /// The range of parameter `k` in the flat buffer.
    fn range(&self, k: usize) -> Range<usize> {
        self.offsets[k]..self.offsets[k] + self.lens[k]
    }
}

/// The flat range of bucket `k` of `bucket` values, of `total`.
fn bucket_range(k: usize, bucket: usize, total: usize) -> Range<usize> {
    k * bucket..((k + 1) * bucket).min(total)
}

impl Exchange {
    /// Whether a step of `count` shards exchanges its gradients during
    /// backward: overlap is on and every rank computes at most one shard.
    pub(crate) fn overlaps(dp: &DataParallel, count: usize) -> bool {
        dp.overlap && count <= dp.group.size()
    }

    /// Prepares the buffers for a step of `count` shards.
    pub(crate) fn begin<M: Module<f32> + ?Sized>(
        &mut self,
        dp: &DataParallel,
        model: &mut M,
        count: usize,
    ) {
        self.layout.refresh(model);
        let slots = match dp.reduction {
            Reduction::Sum => 1,
            Reduction::Exact => count.div_ceil(dp.group.size().max(1)),
        };
        self.send.clear();
        self.send.resize(slots * self.layout.total, 0.0);
    }

    /// Runs `backward` (this rank's one shard's pass, if it has one) with an
    /// observer that puts each final parameter gradient into the send
    /// buffer, while a second thread sends every bucket as soon as it is
    /// full; buckets still unsent when backward ends (or fails) are sent
    /// then, so that every rank makes the same collective calls.
    ///
    /// # Errors
    /// A failed exchange.
    pub(crate) fn overlapped(
        &mut self,
        dp: &DataParallel,
        backward: impl FnOnce(OnFinal<'_, f32>),
    ) -> Result<()> {
        let n = dp.group.size();
        let layout = &self.layout;
        let total = layout.total;
        let bucket = dp.bucket_values();
        let buckets = total.div_ceil(bucket);
        self.pending.clear();
        self.pending.resize(buckets, 0);
        for k in 0..layout.ids.len() {
            let r = layout.range(k);
            if !r.is_empty() {
                for b in r.start / bucket..=(r.end - 1) / bucket {
                    self.pending[b] += 1;
                }
            }
        }
        let width = match dp.reduction {
            Reduction::Sum => 1,
            Reduction::Exact => n,
        };
        self.recv.resize(width * total, 0.0);
        // Bucket b's part of the send and receive buffers (an allgather
        // receives every rank's bucket: `n` times its length).
        let mut parts: Vec<Option<(&mut [f32], &mut [f32])>> = Vec::with_capacity(buckets);
        let (mut send, mut recv) = (&mut self.send[..total], &mut self.recv[..]);
        for b in 0..buckets {
            let len = bucket_range(b, bucket, total).len();
            let (s, rest) = std::mem::take(&mut send).split_at_mut(len);
            let (r, rest_recv) = std::mem::take(&mut recv).split_at_mut(width * len);
            (send, recv) = (rest, rest_recv);
            parts.push(Some((s, r)));
        }
        let group = &*dp.group;
        let reduction = dp.reduction;
        let pending = &mut self.pending;
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<(&[f32], &mut [f32])>();
            let comm = scope.spawn(move || -> Result<()> {
                for (send, recv) in rx {
                    match reduction {
                        Reduction::Sum => group.all_reduce_sum(send, recv)?,
                        Reduction::Exact => group.all_gather(send, recv)?,
                    }
                }
                Ok(())
            });
            // Buckets go in order: the first still waiting for a parameter
            // holds back the ones after it.
            let mut next = 0;
            backward(&mut |id, g| {
                let Some(&k) = layout.index.get(&id) else {
                    return Ok(());
                };
                let r = layout.range(k);
                let values = g.data();
                if r.is_empty() || values.len() != r.len() {
                    return Ok(());
                }
                for b in r.start / bucket..=(r.end - 1) / bucket {
                    let span = bucket_range(b, bucket, total);
                    let (lo, hi) = (r.start.max(span.start), r.end.min(span.end));
                    if let Some((s, _)) = parts[b].as_mut() {
                        s[lo - span.start..hi - span.start]
                            .copy_from_slice(&values[lo - r.start..hi - r.start]);
                    }
                    pending[b] -= 1;
                }
                while next < buckets && pending[next] == 0 {
                    if let Some(part) = parts[next].take() {
                        // A closed channel means the thread stopped on an
                        // error, which joining it returns.
                        let _ = tx.send((&*part.0, part.1));
                    }
                    next += 1;
                }
                Ok(())
            });
            // The rest: parameters without a gradient are zeros, and after
            // a failed pass the other ranks still wait for every bucket.
            for part in parts.iter_mut().filter_map(Option::take) {
                let _ = tx.send((&*part.0, part.1));
            }
            drop(tx);
            comm.join().unwrap_or_else(|_| {
                Err(TrainError::Distributed(
                    "the thread sending gradients panicked".into(),
                ))
            })
        })
    }

    /// Adds up the ranks' losses and correct rows; a step that failed on
    /// any rank fails on every rank (none is left waiting for the others).
    pub(crate) fn outcome(
        &mut self,
        dp: &DataParallel,
        local: StepOutcome,
        failure: Option<TrainError>,
    ) -> Result<StepOutcome> {
        let failed = if failure.is_some() { 1.0 } else { 0.0 };
        let mut sum = [0.0; 3];
        dp.group
            .all_reduce_sum_f64(&[local.loss, local.correct as f64, failed], &mut sum)?;
        if let Some(e) = failure {
            return Err(e);
        }
        if sum[2] > 0.0 {
            return Err(TrainError::Distributed(format!(
                "{} other rank{} failed at this step (each prints its own error)",
                sum[2],
                if sum[2] == 1.0 { "" } else { "s" }
            )));
        }
        Ok(StepOutcome {
            loss: sum[0],
            correct: sum[1] as usize,
        })
    }

    /// Combines the gradients of the batch's `shards` (this rank's, the
    /// `owned` ones, computed) across the ranks, exchanging them first
    /// unless [`Exchange::overlapped`] already did; returns how many of the
    /// first `shards` now hold the batch's gradients for the update.
    ///
    /// # Errors
    /// A failed exchange.
    pub(crate) fn combine<M: Module<f32> + ?Sized>(
        &mut self,
        dp: &DataParallel,
        model: &mut M,
        shards: &mut [Shard],
        owned: Range<usize>,
        sent: bool,
    ) -> Result<usize> {
        let n = dp.group.size();
        let total = self.layout.total;
        let bucket = dp.bucket_values();
        let count = shards.len();
        let slots = count.div_ceil(n);
        if !sent {
            // This rank's shards into the send buffer: summed for a sum,
            // slot after slot for an exact reduction.
            let mut k = 0;
            let (layout, send) = (&self.layout, &mut self.send);
            model.for_each_param_mut(&mut |p| {
                let r = layout.range(k);
                for (slot, shard) in shards[owned.clone()].iter().enumerate() {
                    let at = match dp.reduction {
                        Reduction::Sum => 0,
                        Reduction::Exact => slot * total,
                    };
                    add_grad(
                        &mut send[at + r.start..at + r.end],
                        shard.grads.param_grad(p),
                    );
                }
                k += 1;
            });
            match dp.reduction {
                Reduction::Sum => {
                    self.recv.resize(total, 0.0);
                    let send = &self.send[..total];
                    for (s, r) in send.chunks(bucket).zip(self.recv.chunks_mut(bucket)) {
                        dp.group.all_reduce_sum(s, r)?;
                    }
                }
                Reduction::Exact => self.gather(dp, count, slots)?,
            }
        }
        match dp.reduction {
            Reduction::Sum => {
                let store = &mut shards[0].grads;
                store.clear();
                set_all(&self.layout, model, &self.recv[..total], store)?;
                Ok(1)
            }
            Reduction::Exact => {
                if slots == 1 {
                    self.unpack_single(dp, count, bucket);
                }
                for (s, shard) in shards.iter_mut().enumerate() {
                    if owned.contains(&s) {
                        continue;
                    }
                    shard.grads.clear();
                    let values = &self.all[s * total..(s + 1) * total];
                    set_all(&self.layout, model, values, &mut shard.grads)?;
                }
                Ok(count)
            }
        }
    }

    /// The allgather of an exact reduction. With one slot a bucket is sent
    /// as it lies in the send buffer (as [`Exchange::overlapped`] does, and
    /// [`Exchange::unpack_single`] reads); with several, a piece holds the
    /// same stretch of every slot, and the shards are put in place here.
    fn gather(&mut self, dp: &DataParallel, count: usize, slots: usize) -> Result<()> {
        let n = dp.group.size();
        let total = self.layout.total;
        let bucket = dp.bucket_values();
        if slots == 1 {
            self.recv.resize(n * total, 0.0);
            for (s, r) in self.send[..total]
                .chunks(bucket)
                .zip(self.recv.chunks_mut(n * bucket))
            {
                dp.group.all_gather(s, r)?;
            }
            return Ok(());
        }
        self.all.clear();
        self.all.resize(count * total, 0.0);
        let mut start = 0;
        while start < total {
            let end = (start + bucket.div_ceil(slots)).min(total);
            let width = end - start;
            self.piece.clear();
            for slot in 0..slots {
                let at = slot * total;
                self.piece
                    .extend_from_slice(&self.send[at + start..at + end]);
            }
            self.recv.resize(n * slots * width, 0.0);
            dp.group.all_gather(&self.piece, &mut self.recv)?;
            for r in 0..n {
                for (slot, s) in shards_of(count, n, r).enumerate() {
                    let from = (r * slots + slot) * width;
                    self.all[s * total + start..s * total + end]
                        .copy_from_slice(&self.recv[from..from + width]);
                }
            }
            start = end;
        }
        Ok(())
    }

    /// Puts every rank's shard of a one-slot allgather in place in `all`:
    /// bucket `b` of `len` values came back as every rank's `len` values in
    /// rank order.
    fn unpack_single(&mut self, dp: &DataParallel, count: usize, bucket: usize) {
        let n = dp.group.size();
        let total = self.layout.total;
        self.all.clear();
        self.all.resize(count * total, 0.0);
        for b in 0..total.div_ceil(bucket) {
            let span = bucket_range(b, bucket, total);
            for r in 0..n {
                let Some(s) = shards_of(count, n, r).next() else {
                    continue;
                };
                let from = n * span.start + r * span.len();
                self.all[s * total + span.start..s * total + span.end]
                    .copy_from_slice(&self.recv[from..from + span.len()]);
            }
        }
    }
}

/// Adds a gradient, in either form, onto `out`.
fn add_grad(out: &mut [f32], g: Option<ParamGrad<'_, f32>>) {
    match g {
        None => {}
        Some(ParamGrad::Dense(t)) => {
            for (o, &v) in out.iter_mut().zip(t.data()) {
                *o += v;
            }
        }
        Some(ParamGrad::Outer(o)) => {
            let dense = o.to_dense();
            for (o, &v) in out.iter_mut().zip(dense.data()) {
                *o += v;
            }
        }
    }
}

/// Gives every parameter of `model` its place of `values` (laid out as
/// `layout` says) as its gradient in `store`.
fn set_all<M: Module<f32> + ?Sized>(
    layout: &Layout,
    model: &mut M,
    values: &[f32],
    store: &mut Gradients<f32>,
) -> Result<()> {
    let mut k = 0;
    let mut failed = None;
    model.for_each_param_mut(&mut |p| {
        if failed.is_none() {
            if let Err(e) = store.set_param(p, &values[layout.range(k)]) {
                failed = Some(e);
            }
        }
        k += 1;
    });
    failed.map_or(Ok(()), |e| Err(e.into()))
}
