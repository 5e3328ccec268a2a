//! Matrix products: the public calls ([`gemm_into`], [`gemm_slices`],
//! [`Tensor::matmul`]), which check shapes and hand the product to the
//! kernel that [`plan::plan`] picks for it.
//!
//! The floor plan, one file per kernel:
//! - `plan`: the one pure function that chooses, and its thresholds;
//! - `library`: the `gemm` crate, the default, the only place that calls it;
//! - `dot`: dot products of rows read in place, `x · Wᵀ` for a few rows
//!   (a shard of a batch, or one row), skipping vectors of zeros in images;
//! - `outer`: the outer product, the weight gradient at batch 1;
//! - `axpy`: a few mostly-zero rows times weights stored `[in, out]` (an
//!   image through a layer prepared for inference);
//! - `axpy_tiled`: the same for many rows (a batch of images), with the
//!   weights read in tiles that stay in the first-level cache;
//! - `transposed`: `dZᵀ · X` over a shard's rows where `X` is mostly zeros
//!   (the weight gradient of a layer that sees images);
//! - `zeros`: the count of zero strips that sends a product to the kernels
//!   that skip them.
//!
//! Transposed operands are passed as strides or read in place, so `x · Wᵀ`
//! and `Xᵀ · dY` never copy. Every kernel is tested against the f64
//! definition, and every product is the same bits on any number of threads.

mod axpy;
mod axpy_tiled;
mod dot;
#[cfg(target_arch = "x86_64")]
mod dot_pairs;
mod library;
mod outer;
mod plan;
#[cfg(test)]
mod test_values;
#[cfg(test)]
mod tests;
mod transposed;
mod zeros;

pub use library::in_gemm_library;
use plan::{Plan, Problem, SPARSE_CHUNK_ROWS};

use crate::{Float, Result, Shape, Tensor, TensorError};

/// Whether an operand of [`gemm_into`] is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transpose {
    /// Use the matrix as stored.
    No,
    /// Use its transpose.
    Yes,
}

/// The output of a product, shared by the tasks that write its disjoint
/// row ranges.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);

// SAFETY: each task writes only its own rows (see `gemm_unchecked`).
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The element `offset` places on. A method, so that closures capture
    /// the whole (Send) wrapper rather than its raw pointer.
    ///
    /// # Safety
    /// As `pointer::add`.
    unsafe fn at(self, offset: usize) -> *mut T {
        // SAFETY: the caller's promise.
        unsafe { self.0.add(offset) }
    }
}

/// `dst = op(a) · op(b)` (or `dst += …` with `accumulate`), where `op` applies
/// the given [`Transpose`]. `a` and `b` are rank-2 tensors, `dst` is `m × n`.
///
/// Results are bit-identical whatever the number of threads.
///
/// # Errors
/// [`TensorError::RankMismatch`] or [`TensorError::ShapeMismatch`] naming `matmul`.
pub fn gemm_into<T: Float>(
    dst: &mut Tensor<T>,
    a: &Tensor<T>,
    ta: Transpose,
    b: &Tensor<T>,
    tb: Transpose,
    accumulate: bool,
) -> Result<()> {
    let (m, k, n) = product_dims(a, ta, b, tb)?;
    dst.expect_shape("matmul", &Shape::new(&[m, n]))?;
    let out = dst.data_mut();
    let (a, b) = (Operand::of(a, ta), Operand::of(b, tb));
    // SAFETY: `out` is a live, uniquely borrowed buffer of exactly m·n elements,
    // and the operands' shapes were checked by `product_dims`.
    unsafe { gemm_unchecked(out.as_mut_ptr(), (m, k, n), a, b, accumulate) };
    Ok(())
}

/// `dst = op(a) · op(b)` (or `dst += …`) on plain slices holding row-major
/// matrices: `op(a)` is `m × k`, `op(b)` is `k × n`, `dst` is `m × n`. This is
/// how layers multiply views into larger buffers (one sample of a batch, one
/// image's column matrix) without building tensors for them.
///
/// # Errors
/// [`TensorError::InvalidArgument`] naming `matmul` if a slice's length is
/// not what `(m, k, n)` implies.
#[allow(clippy::too_many_arguments)]
pub fn gemm_slices<T: Float>(
    dst: &mut [T],
    a: &[T],
    ta: Transpose,
    b: &[T],
    tb: Transpose,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) -> Result<()> {
    for (what, len, want) in [
        ("a", a.len(), m * k),
        ("b", b.len(), k * n),
        ("dst", dst.len(), m * n),
    ] {
        if len != want {
            return Err(TensorError::InvalidArgument {
                op: "matmul",
                reason: format!(
                    "{what} has {len} elements, the product {m}×{k}·{k}×{n} needs {want}"
                ),
            });
        }
    }
    // Stored column counts: op(a) = m × k is stored k wide, or m wide when transposed.
    let a = Operand {
        data: a,
        cols: if ta == Transpose::No { k } else { m },
        t: ta,
        known_sparse: false,
    };
    let b = Operand {
        data: b,
        cols: if tb == Transpose::No { n } else { k },
        t: tb,
        known_sparse: false,
    };
    // SAFETY: the lengths were checked above; `dst` is uniquely borrowed.
    unsafe { gemm_unchecked(dst.as_mut_ptr(), (m, k, n), a, b, accumulate) };
    Ok(())
}

/// A stored row-major matrix (its elements and column count) and how a
/// product uses it.
#[derive(Clone, Copy)]
struct Operand<'a, T> {
    data: &'a [T],
    cols: usize,
    t: Transpose,
    /// The caller has already found its first rows mostly zero, and the
    /// plan takes that answer instead of counting again.
    known_sparse: bool,
}

impl<'a, T: Float> Operand<'a, T> {
    /// A rank-2 tensor (its shape already checked by `product_dims`).
    fn of(x: &'a Tensor<T>, t: Transpose) -> Self {
        Operand {
            data: x.data(),
            cols: x.dims()[1],
            t,
            known_sparse: false,
        }
    }
}

/// The answers [`plan::plan`] asks of two operands' zeros.
struct OperandZeros<'a, T> {
    a: Operand<'a, T>,
    b: Operand<'a, T>,
    k: usize,
    n: usize,
}

impl<T: Float> plan::Zeros for OperandZeros<'_, T> {
    fn a_rows_mostly_zero(&self, rows: usize) -> bool {
        self.a.known_sparse || zeros::mostly_sparse(&self.a.data[..rows * self.k], (rows, self.k))
    }

    fn b_mostly_zero(&self) -> bool {
        zeros::mostly_sparse(&self.b.data[..self.k * self.n], (self.k, self.n))
    }
}

/// The product into `dst`, which must point to `m·n` writable elements that do
/// not overlap `a` or `b`. With `accumulate = false` every element is written
/// and none is read, so `dst` may be uninitialised.
///
/// # Safety
/// `dst` must be valid for reads (if `accumulate`) and writes of `m·n`
/// elements, and `(m, k, n)` must be the checked dimensions of `op(a) · op(b)`.
unsafe fn gemm_unchecked<T: Float>(
    dst: *mut T,
    (m, k, n): (usize, usize, usize),
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    accumulate: bool,
) {
    let problem = Problem {
        m,
        k,
        n,
        ta: a.t,
        tb: b.t,
        threads: rayon::current_num_threads(),
        vectorised: dot::dot_is_vectorised::<T>(),
    };
    let shape = (m, k, n);
    // SAFETY (every arm): the caller's promise on `dst`, which holds m·n
    // elements; each kernel's operands are sliced to the lengths its shape
    // implies, as stored: op(a) is stored m × k (or k × m when transposed),
    // op(b) k × n (or n × k).
    match plan::plan(&problem, &OperandZeros { a, b, k, n }) {
        Plan::Nothing => {}
        Plan::Zeros => {
            if !accumulate {
                for i in 0..m * n {
                    // SAFETY: inside dst's m·n elements, which may be uninitialised.
                    unsafe { dst.add(i).write(T::ZERO) };
                }
            }
        }
        // op(a) is a column and op(b) a row, both contiguous whatever the
        // transposes.
        Plan::Outer => unsafe { outer::outer(&a.data[..m], &b.data[..n], dst, accumulate) },
        // The rows of op(a) are contiguous (a single row is, however `a` is stored).
        Plan::Dots => unsafe {
            dot::dot_products(&a.data[..m * k], &b.data[..n * k], dst, shape, accumulate)
        },
        Plan::SparseRowsAxpy => unsafe {
            axpy::sparse_rows_times(&a.data[..m * k], &b.data[..k * n], dst, shape, accumulate)
        },
        // SAFETY (both): as above; `b` is read whole by every chunk.
        Plan::SparseRowsTiled { parallel } => unsafe {
            let operands = (&a.data[..m * k], &b.data[..k * n]);
            in_row_chunks(
                axpy_tiled::sparse_rows_tiled,
                operands,
                dst,
                shape,
                parallel,
                accumulate,
            )
        },
        Plan::SparseDotChunks { parallel } => unsafe {
            let operands = (&a.data[..m * k], &b.data[..n * k]);
            in_row_chunks(
                dot::dot_products,
                operands,
                dst,
                shape,
                parallel,
                accumulate,
            )
        },
        Plan::SparseTransposed => unsafe {
            transposed::transposed_products(
                &a.data[..k * m],
                &b.data[..k * n],
                dst,
                shape,
                accumulate,
            )
        },
        Plan::Library { parallel } => unsafe {
            library::multiply(dst, shape, a, b, accumulate, parallel)
        },
    }
}

/// A kernel over some rows of `a` against the whole of `b`:
/// `(rows of a, b, out, (rows, k, n), accumulate)`.
type RowsKernel<T> = unsafe fn(&[T], &[T], *mut T, (usize, usize, usize), bool);

/// Runs `kernel` on each chunk of [`SPARSE_CHUNK_ROWS`] rows of `a` (`m ×
/// k`) and of the `m × n` output at `dst`, the chunks shared between the
/// pool's threads when `parallel`. Every kernel run this way sums each
/// element the same whichever chunk holds its row, so the bits do not
/// depend on the threads.
///
/// # Safety
/// As for `kernel` on the whole product: `dst` valid for the `m·n` output
/// (read too with `accumulate`), not overlapping `a` or `b`.
unsafe fn in_row_chunks<T: Float>(
    kernel: RowsKernel<T>,
    (a, b): (&[T], &[T]),
    dst: *mut T,
    (m, k, n): (usize, usize, usize),
    parallel: bool,
    accumulate: bool,
) {
    let dst = SendPtr(dst);
    let run = |c: usize| {
        let (r0, r1) = (c * SPARSE_CHUNK_ROWS, ((c + 1) * SPARSE_CHUNK_ROWS).min(m));
        let rows = &a[r0 * k..r1 * k];
        // SAFETY: rows r0..r1 of the output lie inside it (the caller's
        // promise), and only this chunk writes them.
        unsafe { kernel(rows, b, dst.at(r0 * n), (r1 - r0, k, n), accumulate) };
    };
    let chunks = m.div_ceil(SPARSE_CHUNK_ROWS);
    if parallel {
        use rayon::prelude::*;
        (0..chunks).into_par_iter().for_each(run);
    } else {
        (0..chunks).for_each(run);
    }
}

/// Whether `x · w` with a layer's weights stored `[in, out]` is the faster
/// product for the input `x` (`[rows, in]`) than `x · wᵀ` with them stored
/// `[out, in]`: for a few rows of mostly zeros, such as an image to
/// classify, or a batch of many (`plan::TILED_MIN_ROWS`, 64, or more).
/// Each nonzero input then adds one contiguous row of weights, and the
/// product reads only the rows of the nonzero inputs (the dot products
/// skip only eight zeros at a time). A layer keeps its weights `[out, in]`
/// for training and may keep a transposed copy for such inputs
/// (`nabla_nn::Linear::predict`).
pub fn input_major_pays<T: Float>(x: &Tensor<T>) -> bool {
    match *x.dims() {
        [m, k] => plan::sparse_rows_pay(m, k, dot::dot_is_vectorised::<T>(), || {
            // The first rows stand for the rest, as in the plan.
            let rows = m.min(plan::DOT_MAX_ROWS);
            zeros::mostly_sparse(&x.data()[..rows * k], (rows, k))
        }),
        _ => false,
    }
}

/// (m, k, n) of `op(a) · op(b)`, checking that the inner dimensions agree.
fn product_dims<T: Float>(
    a: &Tensor<T>,
    ta: Transpose,
    b: &Tensor<T>,
    tb: Transpose,
) -> Result<(usize, usize, usize)> {
    let (ar, ac) = a.as_matrix_dims("matmul")?;
    let (br, bc) = b.as_matrix_dims("matmul")?;
    let (m, k) = if ta == Transpose::No {
        (ar, ac)
    } else {
        (ac, ar)
    };
    let (k2, n) = if tb == Transpose::No {
        (br, bc)
    } else {
        (bc, br)
    };
    if k != k2 {
        return Err(TensorError::ShapeMismatch {
            op: "matmul",
            lhs: a.shape().clone(),
            rhs: b.shape().clone(),
        });
    }
    Ok((m, k, n))
}

impl<T: Float> Tensor<T> {
    /// Matrix product `self · rhs` of rank-2 tensors.
    ///
    /// # Shapes
    /// `[m, k] · [k, n] → [m, n]`.
    ///
    /// # Errors
    /// [`TensorError::RankMismatch`] or [`TensorError::ShapeMismatch`] naming `matmul`.
    pub fn matmul(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        self.matmul_t(Transpose::No, rhs, Transpose::No)
    }

    /// Matrix product with either operand transposed in place of a copy.
    ///
    /// # Errors
    /// As [`Tensor::matmul`].
    pub fn matmul_t(&self, ta: Transpose, rhs: &Tensor<T>, tb: Transpose) -> Result<Tensor<T>> {
        self.product(ta, rhs, tb, false)
    }

    /// `self · rhs` for an input that [`input_major_pays`] has accepted:
    /// the plan takes that answer instead of counting the input's zeros a
    /// second time. The result is [`Tensor::matmul`]'s, bit for bit.
    ///
    /// # Errors
    /// As [`Tensor::matmul`].
    pub fn matmul_input_major(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        self.product(Transpose::No, rhs, Transpose::No, true)
    }

    /// `op(self) · op(rhs)`; `known_sparse` as in [`Operand`].
    fn product(
        &self,
        ta: Transpose,
        rhs: &Tensor<T>,
        tb: Transpose,
        known_sparse: bool,
    ) -> Result<Tensor<T>> {
        let dims = product_dims(self, ta, rhs, tb)?;
        let (m, _, n) = dims;
        Ok(Tensor::build(Shape::new(&[m, n]), |data| {
            let a = Operand {
                known_sparse,
                ..Operand::of(self, ta)
            };
            // SAFETY: the pooled buffer is empty with capacity for exactly m·n
            // elements and is not shared; with accumulate = false every one of
            // them is written before `set_len`.
            unsafe {
                gemm_unchecked(data.as_mut_ptr(), dims, a, Operand::of(rhs, tb), false);
                data.set_len(m * n);
            }
        }))
    }
}
