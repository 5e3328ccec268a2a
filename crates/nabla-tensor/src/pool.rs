//! A cache of tensor buffers, so that a loop which makes the same tensors
//! every step (a training step) reuses their memory instead of allocating it.
//!
//! When the last [`Tensor`](crate::Tensor) sharing a buffer is dropped, the
//! buffer (the reference-counted `Vec` together with its count) goes back to
//! the pool of its element type, filed under its capacity. Making a tensor of
//! `n` elements takes a buffer of capacity `n` from the pool when there is one.
//! In a steady state every size a step needs is already cached, and a step
//! allocates nothing. This is the idea of PyTorch's caching allocator.
//!
//! The pool is bounded ([`MAX_CACHED_BYTES`] per element type, and
//! [`MAX_CACHED_PER_SIZE`] buffers of one size); beyond that, buffers are freed
//! as usual. A cached buffer keeps its elements; [`BufferPool::take`] empties
//! it, so the constructors that append write every element. The one that
//! does not, `Tensor::for_overwrite` (for a kernel's output that the kernel
//! writes entirely), takes the elements as they are through
//! [`BufferPool::take_stale`] and so skips a pass over memory; in debug
//! builds it fills them with NaN, so that an element a kernel forgets shows
//! in the tests.

use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes one element type's pool keeps at most.
pub const MAX_CACHED_BYTES: usize = 512 << 20;
/// Buffers of one capacity the pool keeps at most.
pub const MAX_CACHED_PER_SIZE: usize = 256;

/// A shared, reference-counted buffer.
pub(crate) type Buffer<T> = Arc<Vec<T>>;

/// The cached buffers of one element type.
pub struct BufferPool<T> {
    inner: Mutex<Buckets<T>>,
}

struct Buckets<T> {
    /// `(capacity, buffers of that capacity)`; few distinct sizes, so a list.
    by_capacity: Vec<(usize, Vec<Buffer<T>>)>,
    bytes: usize,
}

impl<T> Default for BufferPool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> BufferPool<T> {
    /// An empty pool.
    pub const fn new() -> Self {
        BufferPool {
            inner: Mutex::new(Buckets {
                by_capacity: Vec::new(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buckets<T>> {
        // The pool holds no invariant a panic elsewhere could break.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty, unshared buffer with room for exactly `len` elements: a
    /// cached one if there is one, else a new allocation.
    pub(crate) fn take(&self, len: usize) -> Buffer<T> {
        let mut buffer = self.take_stale(len);
        Arc::get_mut(&mut buffer)
            .expect("a buffer fresh from the pool is unshared")
            .clear();
        buffer
    }

    /// An unshared buffer with room for exactly `len` elements, holding the
    /// elements it held when it was given back (any number up to `len`;
    /// none when newly allocated).
    pub(crate) fn take_stale(&self, len: usize) -> Buffer<T> {
        {
            let mut pool = self.lock();
            let pool = &mut *pool;
            if let Some((_, list)) = pool.by_capacity.iter_mut().find(|(c, _)| *c == len) {
                if let Some(buffer) = list.pop() {
                    pool.bytes -= len * std::mem::size_of::<T>();
                    return buffer;
                }
            }
        }
        Arc::new(Vec::with_capacity(len))
    }

    /// Caches `buffer` if nothing else shares it and there is room; frees it otherwise.
    pub(crate) fn give(&self, mut buffer: Buffer<T>) {
        let Some(vec) = Arc::get_mut(&mut buffer) else {
            return; // still shared: the other owners keep it alive
        };
        let capacity = vec.capacity();
        let bytes = capacity * std::mem::size_of::<T>();
        let mut pool = self.lock();
        if pool.bytes + bytes > MAX_CACHED_BYTES {
            return;
        }
        let index = match pool.by_capacity.iter().position(|(c, _)| *c == capacity) {
            Some(i) => i,
            None => {
                pool.by_capacity.push((capacity, Vec::new()));
                pool.by_capacity.len() - 1
            }
        };
        let list = &mut pool.by_capacity[index].1;
        if list.len() < MAX_CACHED_PER_SIZE {
            list.push(buffer);
            pool.bytes += bytes;
        }
    }

    /// Bytes of element storage held in the cache now.
    pub fn cached_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Frees every cached buffer (memory in use by live tensors is unaffected).
    pub fn release(&self) {
        let mut pool = self.lock();
        pool.by_capacity.clear();
        pool.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_and_a_shared_one_is_not_cached() {
        let pool = BufferPool::<f32>::new();
        let mut a = pool.take(8);
        Arc::get_mut(&mut a).unwrap().extend([1.0; 8]);
        let ptr = a.as_ptr();
        pool.give(a);
        assert_eq!(pool.cached_bytes(), 32);
        let b = pool.take(8);
        assert_eq!(b.as_ptr(), ptr, "the cached buffer is reused");
        assert!(b.is_empty(), "a reused buffer comes back empty");
        assert_eq!(pool.cached_bytes(), 0);
        pool.give(b);
        let stale = pool.take_stale(8);
        assert_eq!(stale.as_ptr(), ptr);
        assert!(stale.is_empty(), "emptied by take, so nothing is left");
        pool.give(a_filled(&pool));
        let b = pool.take_stale(8);
        assert_eq!(&b[..], &[2.0; 8], "take_stale keeps the elements");

        let shared = b.clone();
        pool.give(b);
        assert_eq!(
            pool.cached_bytes(),
            0,
            "a buffer still shared is not cached"
        );
        drop(shared);
        pool.release();
    }

    fn a_filled(pool: &BufferPool<f32>) -> Buffer<f32> {
        let mut a = pool.take(8);
        Arc::get_mut(&mut a).unwrap().extend([2.0; 8]);
        a
    }

    #[test]
    fn other_sizes_are_allocated_fresh() {
        let pool = BufferPool::<f64>::new();
        pool.give(pool.take(4));
        let c = pool.take(5);
        assert_eq!(c.capacity(), 5);
        assert_eq!(pool.cached_bytes(), 32);
        pool.release();
        assert_eq!(pool.cached_bytes(), 0);
    }
}
