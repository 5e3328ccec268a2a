//! Data-parallel training across processes: the collective operations a run
//! needs ([`Collective`], which an MPI binding implements), how a step shares
//! each batch among the ranks and combines their gradients, and the checks
//! that keep the ranks in step.
//!
//! Every rank holds the same model and walks the same batches: the shuffle,
//! the augmentation and the dropout masks are seeded from the run's seed and
//! the position in the run, so no rank needs to be told the order. A batch is
//! cut into shards as in one process ([`crate::shard_ranges`]); rank `r` of
//! `n` computes shards `r·S/n .. (r+1)·S/n` of the `S`, and the ranks then
//! combine the shards' gradients in one of two ways ([`Reduction`]). Every
//! rank applies the same update to the same weights, so the weights stay
//! identical on every rank; a checksum after each epoch makes sure.
//!
//! Gradients travel in buckets of [`DataParallel::bucket_bytes`], the
//! parameters in the model's order.

use crate::step::{Shard, StepOutcome};
use crate::{Result, TrainError};
use nabla_autograd::{Gradients, ParamGrad};
use nabla_data::{gather_inputs, Dataset};
use nabla_nn::Module;
use std::ops::Range;
use std::sync::Arc;

/// The collective operations of a group of processes (ranks), each called
/// by every rank of the group in the same order, as MPI's are.
///
/// Implementations must give every rank the same result, and the same
/// result for the same inputs on every run (MPI 4.0 §6.9.1 recommends this
/// of reductions; Open MPI's are).
pub trait Collective: Send + Sync {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// `recv[i]` = the sum over ranks of their `send[i]`.
    ///
    /// # Errors
    /// A failed or timed-out exchange.
    fn all_reduce_sum(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// As [`Collective::all_reduce_sum`], in f64.
    ///
    /// # Errors
    /// A failed or timed-out exchange.
    fn all_reduce_sum_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()>;
    /// Every rank's `send` (all of one length), one after the other in rank
    /// order, into `recv` (`size` times as long).
    ///
    /// # Errors
    /// A failed or timed-out exchange.
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// As [`Collective::all_gather`], for 64-bit words.
    ///
    /// # Errors
    /// A failed or timed-out exchange.
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()>;
    /// Rank 0's `values` into every rank's `values`.
    ///
    /// # Errors
    /// A failed or timed-out exchange.
    fn broadcast(&self, values: &mut [f32]) -> Result<()>;
}

/// How the ranks combine the gradients of their shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Each rank adds its own shards' gradients and the ranks sum those
    /// (an allreduce, as PyTorch's DDP and Horovod do): the least traffic,
    /// deterministic for a given number of ranks, and equal to one
    /// process's weights up to float rounding (the sum is grouped by rank).
    /// The shards are cut in a multiple of the ranks, so that every rank
    /// has the same work.
    #[default]
    Sum,
    /// The ranks gather every shard's gradient and every rank adds them in
    /// shard order, as one process does: weights bit-identical to a
    /// single-process run with the same batch. Each rank receives every
    /// other rank's shards: the same traffic as `Sum` when each rank has one
    /// shard (batches of up to 64 rows per rank), more beyond.
    Exact,
}

impl Reduction {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "sum",
            Reduction::Exact => "exact",
        }
    }
}

/// The size of a gradient bucket unless told otherwise.
pub const DEFAULT_BUCKET_BYTES: usize = 1 << 20;

/// A run shared among the ranks of a [`Collective`].
#[derive(Clone)]
pub struct DataParallel {
    /// The group of processes.
    pub group: Arc<dyn Collective>,
    /// How gradients are combined.
    pub reduction: Reduction,
    /// Bytes of gradient per collective call (at least one value).
    pub bucket_bytes: usize,
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("rank", &self.group.rank())
            .field("size", &self.group.size())
            .field("reduction", &self.reduction)
            .field("bucket_bytes", &self.bucket_bytes)
            .finish()
    }
}

impl DataParallel {
    /// `group` with the default reduction and bucket size.
    pub fn new(group: Arc<dyn Collective>) -> Self {
        DataParallel {
            group,
            reduction: Reduction::Sum,
            bucket_bytes: DEFAULT_BUCKET_BYTES,
        }
    }

    /// Whether this rank is the one that reports and writes files (rank 0).
    pub fn is_primary(&self) -> bool {
        self.group.rank() == 0
    }

    /// The number of shards of a batch whose single-process cut has
    /// `shards`, and the shards this rank computes.
    pub(crate) fn plan(&self, shards: usize) -> (usize, Range<usize>) {
        let n = self.group.size().max(1);
        let count = match self.reduction {
            Reduction::Exact => shards,
            Reduction::Sum => shards.div_ceil(n) * n,
        };
        (count, shards_of(count, n, self.group.rank()))
    }

    fn bucket_values(&self) -> usize {
        (self.bucket_bytes / std::mem::size_of::<f32>()).max(1)
    }
}

/// The shards rank `r` of `n` computes, of `count`.
fn shards_of(count: usize, n: usize, r: usize) -> Range<usize> {
    r * count / n..(r + 1) * count / n
}

/// Buffers the gradient exchange keeps from step to step.
#[derive(Default)]
pub(crate) struct Exchange {
    /// Elements of each parameter, in the model's order.
    sizes: Vec<usize>,
    send: Vec<f32>,
    recv: Vec<f32>,
    /// One bucket of every slot (exact reduction).
    piece: Vec<f32>,
    /// Every shard's gradients, shard after shard (exact reduction).
    all: Vec<f32>,
}

impl Exchange {
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
    /// `owned` ones, computed) across the ranks; returns how many of the
    /// first `shards` now hold the batch's gradients for the update.
    pub(crate) fn combine<M: Module<f32> + ?Sized>(
        &mut self,
        dp: &DataParallel,
        model: &mut M,
        shards: &mut [Shard],
        owned: Range<usize>,
    ) -> Result<usize> {
        self.sizes.clear();
        model.for_each_param_mut(&mut |p| self.sizes.push(p.value().len()));
        let total: usize = self.sizes.iter().sum();
        let bucket = dp.bucket_values();
        match dp.reduction {
            Reduction::Sum => {
                self.send.clear();
                self.send.resize(total, 0.0);
                let mut at = 0;
                model.for_each_param_mut(&mut |p| {
                    let out = &mut self.send[at..at + p.value().len()];
                    for shard in &shards[owned.clone()] {
                        add_grad(out, shard.grads.param_grad(p));
                    }
                    at += out.len();
                });
                self.recv.resize(total, 0.0);
                for (send, recv) in self.send.chunks(bucket).zip(self.recv.chunks_mut(bucket)) {
                    dp.group.all_reduce_sum(send, recv)?;
                }
                let (store, recv) = (&mut shards[0].grads, &self.recv);
                store.clear();
                set_all(model, recv, store)?;
                Ok(1)
            }
            Reduction::Exact => {
                let n = dp.group.size();
                let count = shards.len();
                let slots = count.div_ceil(n);
                // This rank's shards, slot after slot (an empty slot is zeros).
                self.send.clear();
                self.send.resize(slots * total, 0.0);
                for (slot, shard) in shards[owned.clone()].iter().enumerate() {
                    let mut at = slot * total;
                    model.for_each_param_mut(&mut |p| {
                        let len = p.value().len();
                        add_grad(&mut self.send[at..at + len], shard.grads.param_grad(p));
                        at += len;
                    });
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
                for (s, shard) in shards.iter_mut().enumerate() {
                    if owned.contains(&s) {
                        continue;
                    }
                    shard.grads.clear();
                    let values = &self.all[s * total..(s + 1) * total];
                    set_all(model, values, &mut shard.grads)?;
                }
                Ok(count)
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

/// Gives every parameter of `model` its slice of `values` (in the model's
/// order) as its gradient in `store`.
fn set_all<M: Module<f32> + ?Sized>(
    model: &mut M,
    values: &[f32],
    store: &mut Gradients<f32>,
) -> Result<()> {
    let mut at = 0;
    let mut failed = None;
    model.for_each_param_mut(&mut |p| {
        let len = p.value().len();
        if failed.is_none() {
            if let Err(e) = store.set_param(p, &values[at..at + len]) {
                failed = Some(e);
            }
        }
        at += len;
    });
    failed.map_or(Ok(()), |e| Err(e.into()))
}

/// A checksum of the model's weights (FNV-1a over the bits of every
/// parameter, in order): equal on every rank while they agree.
pub fn weights_checksum<M: Module<f32> + ?Sized>(model: &M) -> u64 {
    let mut h = Fnv::new();
    model.visit_params("", &mut |_, p| {
        for v in p.value().data() {
            h.write(&v.to_bits().to_le_bytes());
        }
    });
    h.finish()
}

/// 64-bit FNV-1a: small, and the same in every process and on every run.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// A fingerprint of a string.
pub(crate) fn fingerprint(text: &str) -> u64 {
    let mut h = Fnv::new();
    h.write(text.as_bytes());
    h.finish()
}

/// A fingerprint of a data set: its size, shape, task, and the inputs of
/// its first, middle and last samples (cheap, and enough to tell two
/// different files or splits apart).
///
/// # Errors
/// A sample that cannot be read.
pub(crate) fn data_fingerprint(data: &dyn Dataset) -> Result<u64> {
    let mut h = Fnv::new();
    h.write(format!("{} {:?} {:?}", data.len(), data.sample_shape(), data.task()).as_bytes());
    if !data.is_empty() {
        let n = data.len();
        let x = gather_inputs(data, &[0, n / 2, n - 1])?;
        for v in x.data() {
            h.write(&v.to_bits().to_le_bytes());
        }
    }
    Ok(h.finish())
}

/// Checks that every rank has the same value of each named fingerprint;
/// the error names the first that differs and a rank that has another.
///
/// # Errors
/// [`TrainError::Distributed`] naming what differs; a failed exchange.
pub(crate) fn check_agreement(dp: &DataParallel, fields: &[(&str, u64)]) -> Result<()> {
    let n = dp.group.size();
    let mine: Vec<u64> = fields.iter().map(|f| f.1).collect();
    let mut all = vec![0u64; n * mine.len()];
    dp.group.all_gather_u64(&mine, &mut all)?;
    for (k, (name, _)) in fields.iter().enumerate() {
        let first = all[k];
        if let Some(r) = (1..n).find(|&r| all[r * mine.len() + k] != first) {
            return Err(TrainError::Distributed(format!(
                "the ranks disagree on the {name}: rank {r}'s differs from rank 0's; every rank must run the same command on the same data"
            )));
        }
    }
    Ok(())
}

/// Checks after an epoch that every rank's weights are the same.
///
/// # Errors
/// [`TrainError::Distributed`] naming the epoch and a rank that drifted.
pub(crate) fn check_in_step<M: Module<f32> + ?Sized>(
    dp: &DataParallel,
    model: &M,
    epoch: usize,
) -> Result<()> {
    let n = dp.group.size();
    let mut all = vec![0u64; n];
    dp.group
        .all_gather_u64(&[weights_checksum(model)], &mut all)?;
    match (1..n).find(|&r| all[r] != all[0]) {
        Some(r) => Err(TrainError::Distributed(format!(
            "after epoch {epoch} the weights of rank {r} differ from rank 0's (checksums {:016x} and {:016x}): the ranks drifted apart",
            all[r], all[0]
        ))),
        None => Ok(()),
    }
}

/// Gives every rank rank 0's weights (as PyTorch's DDP does at the start).
///
/// # Errors
/// A failed exchange.
pub(crate) fn broadcast_weights<M: Module<f32> + ?Sized>(
    dp: &DataParallel,
    model: &mut M,
) -> Result<()> {
    let mut failed = None;
    model.for_each_param_mut(&mut |p| {
        if failed.is_none() {
            if let Err(e) = dp.group.broadcast(p.value_mut().data_mut()) {
                failed = Some(e);
            }
        }
    });
    failed.map_or(Ok(()), Err)
}
