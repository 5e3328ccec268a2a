//! The ranks of an MPI job as a [`Collective`], with a watchdog that ends
//! the job when a collective waits too long (a rank died or hangs and MPI
//! did not abort).

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;
use nabla_train::{Collective, Result, TrainError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// MPI, initialised for this process; finalised when dropped.
pub struct Session {
    /// Dropped last: finalises MPI.
    _universe: mpi::environment::Universe,
    group: Arc<MpiGroup>,
}

/// The world communicator. MPI is asked for `MPI_THREAD_MULTIPLE`; the
/// calls are also serialised by a mutex, so that an MPI giving only
/// `MPI_THREAD_SERIALIZED` is used correctly from any thread.
pub struct MpiGroup {
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    watch: Arc<Watch>,
}

// SAFETY: every MPI call on the communicator is made under its mutex, and
// MPI was initialised with at least MPI_THREAD_SERIALIZED (checked in
// `Session::start`), which allows calls from any thread one at a time.
unsafe impl Send for MpiGroup {}
unsafe impl Sync for MpiGroup {}

/// What the watchdog watches: when the collective in progress began.
struct Watch {
    /// Milliseconds since `epoch` when the current collective began, plus 1
    /// (0: none in progress).
    since: AtomicU64,
    /// What the collective is, for the message.
    what: Mutex<&'static str>,
    epoch: Instant,
}

impl Session {
    /// Initialises MPI and starts the watchdog: a collective that has not
    /// finished after `timeout` ends this process with a one-line error
    /// (MPI's launcher then ends the others).
    ///
    /// # Errors
    /// MPI already initialised, or too little thread support.
    pub fn start(timeout: Duration) -> anyhow::Result<Session> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Multiple)
            .ok_or_else(|| {
                anyhow::anyhow!("MPI could not be initialised (already initialised?)")
            })?;
        if threading < Threading::Serialized {
            anyhow::bail!(
                "this MPI offers threads at level {threading:?}; nabla needs at least MPI_THREAD_SERIALIZED"
            );
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let watch = Arc::new(Watch {
            since: AtomicU64::new(0),
            what: Mutex::new(""),
            epoch: Instant::now(),
        });
        let watched = watch.clone();
        std::thread::Builder::new()
            .name("nabla-mpi-watchdog".into())
            .spawn(move || watchdog(&watched, rank, timeout))?;
        Ok(Session {
            _universe: universe,
            group: Arc::new(MpiGroup {
                world: Mutex::new(world),
                rank,
                size,
                watch,
            }),
        })
    }

    /// The group of this job's ranks.
    pub fn group(&self) -> Arc<MpiGroup> {
        self.group.clone()
    }

    /// Ends every rank of the job now (after this rank's error was printed
    /// and the others may be waiting for it).
    pub fn abort(&self, code: i32) -> ! {
        // Another thread may hold the lock inside a collective that will
        // never finish, so abort through a fresh handle of the world.
        SimpleCommunicator::world().abort(code)
    }
}

fn watchdog(watch: &Watch, rank: usize, timeout: Duration) {
    let limit = timeout.as_millis() as u64;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let since = watch.since.load(Ordering::Acquire);
        if since == 0 {
            continue;
        }
        let now = watch.epoch.elapsed().as_millis() as u64 + 1;
        if now.saturating_sub(since) > limit {
            let what = *watch.what.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "nabla: error: rank {rank}: no answer from the other ranks for {} s in {what}: a rank has died or hangs; ending the job (the last checkpoint written stays valid)",
                timeout.as_secs()
            );
            // Leaving without MPI_Finalize makes the launcher end the job.
            std::process::exit(3);
        }
    }
}

impl MpiGroup {
    /// Runs one collective under the lock and the watchdog's eye.
    fn call<R>(&self, what: &'static str, f: impl FnOnce(&SimpleCommunicator) -> R) -> R {
        let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        *self.watch.what.lock().unwrap_or_else(|e| e.into_inner()) = what;
        let now = self.watch.epoch.elapsed().as_millis() as u64 + 1;
        self.watch.since.store(now, Ordering::Release);
        let out = f(&world);
        self.watch.since.store(0, Ordering::Release);
        out
    }
}

fn same_len(what: &str, send: usize, recv: usize) -> Result<()> {
    if send == recv {
        Ok(())
    } else {
        Err(TrainError::Distributed(format!(
            "{what}: {send} values to send but room for {recv}"
        )))
    }
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        same_len("all_reduce", send.len(), recv.len())?;
        self.call("the gradient exchange (allreduce)", |w| {
            w.all_reduce_into(send, recv, SystemOperation::sum())
        });
        Ok(())
    }

    fn all_reduce_sum_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
        same_len("all_reduce", send.len(), recv.len())?;
        self.call("the exchange of the step's loss (allreduce)", |w| {
            w.all_reduce_into(send, recv, SystemOperation::sum())
        });
        Ok(())
    }

    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        same_len("all_gather", send.len() * self.size, recv.len())?;
        self.call("the gradient exchange (allgather)", |w| {
            w.all_gather_into(send, recv)
        });
        Ok(())
    }

    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        same_len("all_gather", send.len() * self.size, recv.len())?;
        self.call("the check that the ranks agree (allgather)", |w| {
            w.all_gather_into(send, recv)
        });
        Ok(())
    }

    fn broadcast(&self, values: &mut [f32]) -> Result<()> {
        self.call("the broadcast of rank 0's weights", |w| {
            w.process_at_rank(0).broadcast_into(values)
        });
        Ok(())
    }
}
