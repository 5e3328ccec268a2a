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
//! Gradients travel in buckets of [`DataParallel::bucket_bytes`], the last
//! layers' first, sent while backward runs where the step allows it (the
//! `exchange` module).

use crate::{Result, TrainError};
use nabla_data::{gather_inputs, Dataset};
use nabla_nn::Module;
use std::ops::Range;
use std::sync::Arc;

mod exchange;
pub(crate) use exchange::Exchange;

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
    /// Whether gradients are sent while backward runs, when every rank
    /// computes at most one shard of a batch (see the `exchange` module).
    /// Off by default: the exchange then competes with backward for the
    /// cores, and pays only where a rank leaves one free.
    pub overlap: bool,
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("rank", &self.group.rank())
            .field("size", &self.group.size())
            .field("reduction", &self.reduction)
            .field("bucket_bytes", &self.bucket_bytes)
            .field("overlap", &self.overlap)
            .finish()
    }
}

impl DataParallel {
    /// `group` with the default reduction and bucket size, gradients sent
    /// after backward.
    pub fn new(group: Arc<dyn Collective>) -> Self {
        DataParallel {
            group,
            reduction: Reduction::Sum,
            bucket_bytes: DEFAULT_BUCKET_BYTES,
            overlap: false,
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
