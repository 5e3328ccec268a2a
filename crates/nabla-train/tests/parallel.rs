//! Data-parallel training with ranks as threads of one process: the exact
//! reduction gives a single process's weights bit for bit, the summed one
//! agrees to rounding and repeats itself, and ranks that disagree are named.
//! (The MPI binding runs the same code across processes in `.ci/run`.)

use nabla_data::{embedded_mnist, ImageDataset};
use nabla_nn::{MlpConfig, Module, Sequential};
use nabla_optim::{Method, OptimizerConfig};
use nabla_tensor::Rng;
use nabla_train::{
    weights_checksum, Collective, DataParallel, Reduction, Result, Silent, StandardLoss,
    TrainConfig, Trainer,
};
use std::sync::{Arc, Barrier, Mutex};

/// Ranks as threads: each collective posts every rank's words, waits for
/// all, and reads them in rank order.
struct Hub {
    barrier: Barrier,
    posts: Mutex<Vec<Vec<u64>>>,
}

struct ThreadRank {
    rank: usize,
    size: usize,
    hub: Arc<Hub>,
}

impl ThreadRank {
    fn group(size: usize) -> Vec<ThreadRank> {
        let hub = Arc::new(Hub {
            barrier: Barrier::new(size),
            posts: Mutex::new(vec![Vec::new(); size]),
        });
        (0..size)
            .map(|rank| ThreadRank {
                rank,
                size,
                hub: hub.clone(),
            })
            .collect()
    }

    /// Every rank's words, in rank order.
    fn exchange(&self, mine: Vec<u64>) -> Vec<Vec<u64>> {
        self.hub.posts.lock().unwrap()[self.rank] = mine;
        self.hub.barrier.wait();
        let all = self.hub.posts.lock().unwrap().clone();
        self.hub.barrier.wait();
        all
    }
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        let all = self.exchange(send.iter().map(|v| v.to_bits() as u64).collect());
        for (i, r) in recv.iter_mut().enumerate() {
            *r = all
                .iter()
                .fold(0.0, |acc, w| acc + f32::from_bits(w[i] as u32));
        }
        Ok(())
    }
    fn all_reduce_sum_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
        let all = self.exchange(send.iter().map(|v| v.to_bits()).collect());
        for (i, r) in recv.iter_mut().enumerate() {
            *r = all.iter().fold(0.0, |acc, w| acc + f64::from_bits(w[i]));
        }
        Ok(())
    }
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        let all = self.exchange(send.iter().map(|v| v.to_bits() as u64).collect());
        for (r, w) in recv.iter_mut().zip(all.iter().flatten()) {
            *r = f32::from_bits(*w as u32);
        }
        Ok(())
    }
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        let all = self.exchange(send.to_vec());
        recv.copy_from_slice(&all.concat());
        Ok(())
    }
    fn broadcast(&self, values: &mut [f32]) -> Result<()> {
        let all = self.exchange(values.iter().map(|v| v.to_bits() as u64).collect());
        for (v, w) in values.iter_mut().zip(&all[0]) {
            *v = f32::from_bits(*w as u32);
        }
        Ok(())
    }
}

fn data(n: usize) -> ImageDataset {
    let s = embedded_mnist().unwrap();
    s.train.subset(&(0..n).collect::<Vec<_>>()).unwrap()
}

fn mlp(seed: u64) -> Sequential<f32> {
    MlpConfig::new(784, &[24, 16], 10)
        .init::<f32>(&mut Rng::seed(seed))
        .unwrap()
}

fn config(batch: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch_size: batch,
        seed,
        checkpoint: None,
        ..Default::default()
    }
}

fn opt() -> OptimizerConfig {
    OptimizerConfig::new(Method::adam(), 0.002)
}

/// The weights after one process trains.
fn alone(train: &ImageDataset, batch: usize) -> Vec<f32> {
    let mut t = Trainer::new(
        mlp(1),
        opt().init(),
        StandardLoss::CrossEntropy,
        config(batch, 3),
    );
    t.fit(train, None, None, &mut Silent).unwrap();
    weights(&t.model)
}

fn weights(m: &Sequential<f32>) -> Vec<f32> {
    m.named_params()
        .iter()
        .flat_map(|(_, p)| p.value().data().to_vec())
        .collect()
}

/// Every rank's weights (or error) after training on `ranks` threads;
/// `vary(rank, config)` may change a rank's settings.
fn together(
    train: &ImageDataset,
    batch: usize,
    ranks: usize,
    reduction: Reduction,
    (bucket_bytes, overlap): (usize, bool),
    vary: impl Fn(usize, &mut TrainConfig) + Sync,
) -> Vec<std::result::Result<Vec<f32>, String>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadRank::group(ranks)
            .into_iter()
            .map(|rank| {
                let vary = &vary;
                s.spawn(move || {
                    let r = rank.rank;
                    let mut c = config(batch, 3);
                    vary(r, &mut c);
                    // Every rank but 0 starts from other weights: rank 0's are broadcast.
                    let mut t = Trainer::new(
                        mlp(1 + r as u64),
                        opt().init(),
                        StandardLoss::CrossEntropy,
                        c,
                    );
                    t.set_parallel(DataParallel {
                        group: Arc::new(rank),
                        reduction,
                        bucket_bytes,
                        overlap,
                    });
                    t.fit(train, None, None, &mut Silent)
                        .map(|()| weights(&t.model))
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn the_exact_reduction_gives_one_process_weights_bit_for_bit() {
    let train = data(700);
    // Batch 100: 2 shards, one per rank. Batch 300: 5 shards, split 2 and 3.
    // Buckets of 1 KiB cut the gradient into many exchanges.
    // At batch 100 the gradients are sent during backward, unless told not to.
    for (batch, ranks, bucket) in [
        (100, 2, 1 << 20),
        (100, 2, 1024),
        (300, 2, 1024),
        (300, 3, 4096),
    ] {
        let one = alone(&train, batch);
        for overlap in [true, false] {
            let all = together(
                &train,
                batch,
                ranks,
                Reduction::Exact,
                (bucket, overlap),
                |_, _| {},
            );
            for (r, w) in all.into_iter().enumerate() {
                let w = w.unwrap();
                assert!(
                    one.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "batch {batch}, {ranks} ranks, overlap {overlap}: rank {r}'s weights differ from one process's"
                );
            }
        }
    }
}

#[test]
fn the_summed_reduction_agrees_to_rounding_and_repeats_itself() {
    let train = data(700);
    let one = alone(&train, 300);
    let first = together(&train, 300, 2, Reduction::Sum, (2048, true), |_, _| {});
    let again = together(&train, 300, 2, Reduction::Sum, (2048, true), |_, _| {});
    let w0 = first[0].as_ref().unwrap();
    assert_eq!(w0, first[1].as_ref().unwrap(), "the ranks' weights differ");
    assert_eq!(w0, again[0].as_ref().unwrap(), "a second run differs");
    let worst = one
        .iter()
        .zip(w0)
        .map(|(a, b)| (a - b).abs() / a.abs().max(1e-2))
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "max relative difference {worst}");
}

#[test]
fn sending_during_backward_changes_no_bit() {
    // Batch 100 on 2 or 3 ranks: one shard per rank, so the buckets leave
    // during backward; 1 KiB buckets split the weights across many, and
    // 64 KiB ones hold several parameters each.
    let train = data(400);
    let one = alone(&train, 100);
    for (ranks, bucket) in [(2, 1024), (3, 1024), (2, 64 << 10)] {
        let on = together(
            &train,
            100,
            ranks,
            Reduction::Sum,
            (bucket, true),
            |_, _| {},
        );
        let off = together(
            &train,
            100,
            ranks,
            Reduction::Sum,
            (bucket, false),
            |_, _| {},
        );
        let w = on[0].as_ref().unwrap();
        for (r, (a, b)) in on.iter().zip(&off).enumerate() {
            assert_eq!(w, a.as_ref().unwrap(), "{ranks} ranks: rank {r} drifted");
            assert_eq!(
                w,
                b.as_ref().unwrap(),
                "{ranks} ranks, {bucket} B: overlap changed rank {r}'s weights"
            );
        }
        let worst = one
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1e-2))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "max relative difference {worst}");
    }
}

#[test]
fn more_ranks_than_rows_in_a_batch_still_train_together() {
    // The last batch of 50 samples at batch 48 has 2 rows for 3 ranks.
    let train = data(50);
    let w = together(&train, 48, 3, Reduction::Sum, (1 << 20, true), |_, _| {});
    let w0 = w[0].as_ref().unwrap();
    assert!(w.iter().all(|x| x.as_ref().unwrap() == w0));
}

#[test]
fn ranks_that_disagree_are_named_before_any_step() {
    let train = data(200);
    let w = together(&train, 100, 2, Reduction::Sum, (1 << 20, true), |r, c| {
        if r == 1 {
            c.seed = 4;
        }
    });
    for e in &w {
        let e = e.as_ref().unwrap_err();
        assert!(e.contains("disagree on the seed: rank 1"), "{e}");
    }
    let w = together(&train, 100, 2, Reduction::Sum, (1 << 20, true), |r, c| {
        if r == 1 {
            c.batch_size = 50;
        }
    });
    let e = w[0].as_ref().unwrap_err();
    assert!(e.contains("training settings"), "{e}");
}

#[test]
fn the_checksum_sees_a_changed_weight() {
    let mut m = mlp(1);
    let before = weights_checksum(&m);
    m.for_each_param_mut(&mut |p| {
        if p.value().len() == 10 {
            p.value_mut().data_mut()[3] += 1e-7;
        }
    });
    assert_ne!(before, weights_checksum(&m));
}
