//! Matrix multiplication through the `gemm` crate.
//!
//! One wrapper, [`gemm_into`], is the only place that calls the unsafe GEMM;
//! it is tested against a naive triple loop in f64. Transposed operands are
//! passed as strides, so `x · Wᵀ` and `Xᵀ · dY` never copy. Shapes that
//! the library's packing makes slow, or whose zeros it multiplies, go to
//! nabla's own kernels instead, while the product is small enough for one
//! thread: up to 256 rows times a matrix stored row by row (a layer's
//! forward on a shard, or at batch 1; `gemv`); an outer product (the weight
//! gradient at batch 1; `gemv`); and `dZᵀ · X` over up to 256 rows where X
//! is mostly zeros (the weight gradient of a layer that sees images;
//! `transposed`). Many rows of mostly zeros times a matrix stored row by
//! row (inference on a large batch of images) also go to `gemv`'s dot
//! products, in chunks of rows shared out between the threads. A few rows
//! of mostly zeros times a matrix stored `[in, out]` (an image through a
//! layer's weights transposed for inference) go to `axpy`, which adds one
//! row of the matrix per nonzero input.

use crate::{Float, Result, Shape, Tensor, TensorError};
use std::any::TypeId;
use std::cell::Cell;

/// Whether an operand of [`gemm_into`] is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transpose {
    /// Use the matrix as stored.
    No,
    /// Use its transpose.
    Yes,
}

/// Products smaller than this many multiply-adds run on one thread: below it,
/// handing work to the thread pool costs more than it saves.
const PARALLEL_MIN_FLOPS: usize = 1 << 24;

/// Rows of `op(a)` up to which `a · bᵀ` runs as dot products of rows read
/// in place ([`crate::gemv::dot_products`]) rather than through the GEMM
/// library, which packs both operands first: a shard of a batch (at most 64
/// rows) or a small batch times a layer's weights. Measured single-threaded
/// (`cargo bench -p nabla-bench -- gemm`), 784 → 100 on 50 / 100 / 200 rows:
/// 78 / 149 / 296 µs against the library's 103 / 177 / 335 µs. Larger
/// products go to the library, which splits them between threads.
const DOT_MAX_ROWS: usize = 256;

/// The shortest rows that go to the dot products: shorter ones spend more
/// on adding up each sum's lanes than on the sum (k = 2: 6.4 µs against the
/// library's 2.4 µs for 50 × 100 outputs).
const DOT_MIN_DEPTH: usize = 16;

/// Rows of mostly zeros up to which `a · b` (both as stored) runs as
/// [`crate::axpy::sparse_rows_times`]: an image or a few times a layer's
/// weights stored `[in, out]`. Each row reads the weight rows of its own
/// nonzero entries, so more rows read the weights more times over.
const AXPY_MAX_ROWS: usize = 4;

/// Rows per task when many rows of mostly zeros go to the dot products
/// (inference on a large batch of images): small enough to share 1000 rows
/// evenly between a few threads.
const SPARSE_CHUNK_ROWS: usize = 64;

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
    };
    let b = Operand {
        data: b,
        cols: if tb == Transpose::No { n } else { k },
        t: tb,
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
}

impl<'a, T: Float> Operand<'a, T> {
    /// A rank-2 tensor (its shape already checked by `product_dims`).
    fn of(x: &'a Tensor<T>, t: Transpose) -> Self {
        Operand {
            data: x.data(),
            cols: x.dims()[1],
            t,
        }
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
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: zeros (or nothing to add).
        if !accumulate {
            for i in 0..m * n {
                // SAFETY: inside dst's m·n elements, which may be uninitialised.
                unsafe { dst.add(i).write(T::ZERO) };
            }
        }
        return;
    }
    if k == 1 {
        // An outer product: op(a) is a column and op(b) a row, both
        // contiguous whatever the transposes.
        // SAFETY: the caller's promise on `dst`, which holds m·n elements.
        unsafe { crate::gemv::outer(&a.data[..m], &b.data[..n], dst, accumulate) };
        return;
    }
    let few_rows = a.t == Transpose::No
        && m <= DOT_MAX_ROWS
        && k >= DOT_MIN_DEPTH
        && m * n * k < PARALLEL_MIN_FLOPS
        && crate::gemv::dot_is_vectorised::<T>();
    if b.t == Transpose::Yes && (m == 1 || few_rows) {
        // A few rows times a matrix stored row by row (`x · Wᵀ` for a shard
        // of a batch): dot products of contiguous rows, no packing. The rows
        // of op(a) are contiguous (a single row is, however `a` is stored).
        // SAFETY: the caller's promise on `dst`; op(a) is stored m × k and
        // op(b) n × k.
        unsafe {
            crate::gemv::dot_products(
                &a.data[..m * k],
                &b.data[..n * k],
                dst,
                (m, k, n),
                accumulate,
            )
        };
        return;
    }
    if a.t == Transpose::No && b.t == Transpose::No && sparse_rows_pay(&a.data[..m * k], (m, k)) {
        // A few rows of mostly zeros times a matrix stored row by row
        // along the outputs (an image times a layer's weights stored
        // `[in, out]`): each nonzero entry adds one contiguous row of `b`.
        // SAFETY: the caller's promise on `dst`; op(a) is stored m × k and
        // op(b) k × n.
        unsafe {
            crate::axpy::sparse_rows_times(
                &a.data[..m * k],
                &b.data[..k * n],
                dst,
                (m, k, n),
                accumulate,
            )
        };
        return;
    }
    if b.t == Transpose::Yes
        && a.t == Transpose::No
        && k >= DOT_MIN_DEPTH
        && crate::gemv::dot_is_vectorised::<T>()
        && crate::gemv::mostly_sparse(&a.data[..m.min(DOT_MAX_ROWS) * k], (m.min(DOT_MAX_ROWS), k))
    {
        // Many rows of mostly zeros times a matrix stored row by row (a
        // layer that sees images, on a large batch): the dot products that
        // skip the zeros, in chunks of rows shared out between the threads.
        // Each element's sum is the same whichever chunk holds its row. The
        // first rows stand for the rest in the count of zeros.
        let dst = SendPtr(dst);
        let chunks = m.div_ceil(SPARSE_CHUNK_ROWS);
        let run = |c: usize| {
            let (r0, r1) = (c * SPARSE_CHUNK_ROWS, ((c + 1) * SPARSE_CHUNK_ROWS).min(m));
            // SAFETY: the caller's promise on `dst`, whose rows r0..r1 only
            // this chunk writes; op(a) is stored m × k and op(b) n × k.
            unsafe {
                crate::gemv::dot_products(
                    &a.data[r0 * k..r1 * k],
                    &b.data[..n * k],
                    dst.at(r0 * n),
                    (r1 - r0, k, n),
                    accumulate,
                )
            };
        };
        if rayon::current_num_threads() > 1 && m * n * k >= PARALLEL_MIN_FLOPS {
            use rayon::prelude::*;
            (0..chunks).into_par_iter().for_each(run);
        } else {
            (0..chunks).for_each(run);
        }
        return;
    }
    if a.t == Transpose::Yes
        && b.t == Transpose::No
        && k <= crate::transposed::TRANSPOSED_MAX_DEPTH
        && m * n * k < PARALLEL_MIN_FLOPS
        && crate::gemv::dot_is_vectorised::<T>()
        && crate::gemv::mostly_sparse(&b.data[..k * n], (k, n))
    {
        // The rows of a shard against the same rows (`dZᵀ · X`, a weight
        // gradient) where X is mostly zeros (a layer that sees images):
        // sums over a few rows, read in place, skipping the zeros. Both
        // operands are stored with their own column count (`a` is k × m,
        // `b` k × n).
        // SAFETY: the caller's promise on `dst`; the shapes were checked.
        unsafe {
            crate::transposed::transposed_products(
                &a.data[..k * m],
                &b.data[..k * n],
                dst,
                (m, k, n),
                accumulate,
            )
        };
        return;
    }
    let (ac, bc) = (a.cols, b.cols);
    // (column stride, row stride) of op(x) in elements.
    let (a_cs, a_rs) = match a.t {
        Transpose::No => (1, ac as isize),
        Transpose::Yes => (ac as isize, 1),
    };
    let (b_cs, b_rs) = match b.t {
        Transpose::No => (1, bc as isize),
        Transpose::Yes => (bc as isize, 1),
    };
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 && m * n * k >= PARALLEL_MIN_FLOPS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // gemm dispatches on TypeId; only f32 and f64 implement `Float`.
    debug_assert!(
        TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>()
    );
    // SAFETY: the caller guarantees dst holds m·n elements (read only when
    // `accumulate`); the strides above address op(a) (m×k) and op(b) (k×n)
    // inside their buffers, whose shapes were checked; dst does not alias them.
    let _inside = GemmScope::enter();
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Whether `m` rows of `k` (stored row by row) are few enough and mostly
/// zeros enough for [`crate::axpy::sparse_rows_times`] to pay.
fn sparse_rows_pay<T: Float>(rows: &[T], (m, k): (usize, usize)) -> bool {
    m <= AXPY_MAX_ROWS
        && (DOT_MIN_DEPTH..=crate::axpy::AXPY_MAX_DEPTH).contains(&k)
        && crate::gemv::dot_is_vectorised::<T>()
        && crate::gemv::mostly_sparse(rows, (m, k))
}

/// Whether `x · w` with a layer's weights stored `[in, out]` is the faster
/// product for the input `x` (`[rows, in]`) than `x · wᵀ` with them stored
/// `[out, in]`: for a few rows of mostly zeros, such as an image to
/// classify. Each nonzero input then adds one contiguous row of weights, and
/// the product reads only the rows of the nonzero inputs (`cargo bench -p
/// nabla-bench -- "gemm 1x784"`: 1.1 µs for an MNIST digit against 2.2 µs
/// as dot products, which skip only eight zeros at a time). A layer keeps
/// its weights `[out, in]` for training and may keep a transposed copy for
/// such inputs (`nabla_nn::Linear::predict`).
pub fn input_major_pays<T: Float>(x: &Tensor<T>) -> bool {
    match *x.dims() {
        [m, k] => sparse_rows_pay(x.data(), (m, k)),
        _ => false,
    }
}

thread_local! {
    static IN_GEMM: Cell<bool> = const { Cell::new(false) };
}

/// True while the current thread is inside the `gemm` library. The library
/// allocates its packing buffers on every product it packs (there is no way
/// to hand it a reusable buffer), so an allocation counter uses this to tell
/// those allocations from nabla's own.
pub fn in_gemm_library() -> bool {
    IN_GEMM.with(Cell::get)
}

/// Marks the current thread as inside the `gemm` library until dropped.
struct GemmScope;

impl GemmScope {
    fn enter() -> Self {
        IN_GEMM.with(|f| f.set(true));
        GemmScope
    }
}

impl Drop for GemmScope {
    fn drop(&mut self) {
        IN_GEMM.with(|f| f.set(false));
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
        let dims = product_dims(self, ta, rhs, tb)?;
        let (m, _, n) = dims;
        Ok(Tensor::build(Shape::new(&[m, n]), |data| {
            // SAFETY: the pooled buffer is empty with capacity for exactly m·n
            // elements and is not shared; with accumulate = false every one of
            // them is written before `set_len`.
            unsafe {
                let (a, b) = (Operand::of(self, ta), Operand::of(rhs, tb));
                gemm_unchecked(data.as_mut_ptr(), dims, a, b, false);
                data.set_len(m * n);
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    fn naive(a: &Tensor<f64>, b: &Tensor<f64>) -> Tensor<f64> {
        let (m, k) = a.as_matrix_dims("t").unwrap();
        let n = b.dims()[1];
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| a.data()[i * k + p] * b.data()[p * n + j])
                    .sum();
            }
        }
        Tensor::from_vec(out, &[m, n]).unwrap()
    }

    #[test]
    fn gemm_wrapper_matches_naive_loop_in_every_transpose() {
        let mut rng = Rng::seed(7);
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 1, 7),
            (3, 5, 2),
            (17, 33, 9),
            (70, 80, 90),
            (4, 0, 3),
            // One row: the dot-product path when b is transposed.
            (1, 13, 9),
            (1, 40, 17),
        ] {
            let a: Tensor<f64> = rng.normal(&[m, k], 0.0, 1.0);
            let b: Tensor<f64> = rng.normal(&[k, n], 0.0, 1.0);
            let want = naive(&a, &b);
            assert!(a.matmul(&b).unwrap().allclose(&want, 1e-12, 1e-12));
            let at = a.transpose().unwrap();
            let bt = b.transpose().unwrap();
            assert!(at
                .matmul_t(Transpose::Yes, &b, Transpose::No)
                .unwrap()
                .allclose(&want, 1e-12, 1e-12));
            assert!(a
                .matmul_t(Transpose::No, &bt, Transpose::Yes)
                .unwrap()
                .allclose(&want, 1e-12, 1e-12));
            assert!(at
                .matmul_t(Transpose::Yes, &bt, Transpose::Yes)
                .unwrap()
                .allclose(&want, 1e-12, 1e-12));
            let mut acc = want.clone();
            gemm_into(&mut acc, &a, Transpose::No, &b, Transpose::No, true).unwrap();
            assert!(acc.allclose(&want.mul_scalar(2.0), 1e-12, 1e-12));
            let mut acc = want.clone();
            gemm_into(&mut acc, &a, Transpose::No, &bt, Transpose::Yes, true).unwrap();
            assert!(acc.allclose(&want.mul_scalar(2.0), 1e-12, 1e-12));
        }
    }

    #[test]
    fn large_parallel_products_are_correct_and_identical_on_any_thread_count() {
        let mut rng = Rng::seed(11);
        // ≥ 2^24 multiply-adds, so gemm splits them across the threads of the pool.
        for &(m, k, n) in &[(300, 256, 300), (100, 400, 700)] {
            let a: Tensor<f64> = rng.normal(&[m, k], 0.0, 1.0);
            let bt: Tensor<f64> = rng.normal(&[n, k], 0.0, 1.0);
            let want = naive(&a, &bt.transpose().unwrap());
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| a.matmul_t(Transpose::No, &bt, Transpose::Yes).unwrap())
            };
            let (one, two) = (run(1), run(2));
            assert!(one.allclose(&want, 1e-12, 1e-10));
            assert_eq!(one, two, "1 and 2 threads must agree bit for bit");
            let (a32, b32) = (a.cast::<f32>(), bt.cast::<f32>());
            let run32 = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| a32.matmul_t(Transpose::No, &b32, Transpose::Yes).unwrap())
            };
            assert_eq!(run32(1), run32(2));
        }
    }

    /// `x` (rows of columns) with zeros in every eight-column strip `s` of
    /// row `r` but where `live(r, s)`, as in images.
    fn strips_zeroed(x: Tensor<f64>, live: impl Fn(usize, usize) -> bool) -> Tensor<f64> {
        let cols = x.dims()[1];
        let values = x.data().iter().enumerate();
        let values = values.map(|(e, &v)| if live(e / cols, e % cols / 8) { v } else { 0.0 });
        Tensor::from_vec(values.collect(), x.dims()).unwrap()
    }

    /// A weight gradient `dZᵀ · X` on inputs that are mostly zeros goes to
    /// the kernel that skips them; forward `X · Wᵀ` on them lists them:
    /// both agree with the f64 definition.
    #[test]
    fn products_of_mostly_zero_inputs_match_f64() {
        let mut rng = Rng::seed(3);
        let (rows, ins, outs) = (50, 100, 30);
        let dz: Tensor<f64> = rng.normal(&[rows, outs], 0.0, 1.0);
        let w: Tensor<f64> = rng.normal(&[outs, ins], 0.0, 1.0);
        // Two in three eight-column strips zero, as in an image.
        let x = strips_zeroed(rng.normal(&[rows, ins], 0.0, 1.0), |r, s| (s + r) % 3 == 0);
        assert!(crate::gemv::mostly_sparse(x.data(), (rows, ins)));
        let dw = naive(&dz.transpose().unwrap(), &x);
        let got = dz
            .cast::<f32>()
            .matmul_t(Transpose::Yes, &x.cast::<f32>(), Transpose::No)
            .unwrap();
        assert!(got.cast::<f64>().allclose(&dw, 1e-4, 1e-4));
        let y = naive(&x, &w.transpose().unwrap());
        let got = x
            .cast::<f32>()
            .matmul_t(Transpose::No, &w.cast::<f32>(), Transpose::Yes)
            .unwrap();
        assert!(got.cast::<f64>().allclose(&y, 1e-4, 1e-4));
    }

    /// Up to four rows of mostly zeros times weights stored `[in, out]`
    /// (an image through a layer prepared for inference) go to the kernel
    /// that adds one weight row per nonzero input; five rows, or dense rows,
    /// do not. All agree with the f64 definition, accumulating too.
    #[test]
    fn a_few_mostly_zero_rows_times_input_major_weights_match_f64() {
        let mut rng = Rng::seed(5);
        let (ins, outs) = (300, 100);
        let w: Tensor<f64> = rng.normal(&[ins, outs], 0.0, 1.0);
        for rows in 1..=5 {
            let x = strips_zeroed(rng.normal(&[rows, ins], 0.0, 1.0), |_, s| s % 3 == 1);
            let (x32, w32) = (x.cast::<f32>(), w.cast::<f32>());
            assert_eq!(input_major_pays(&x32), rows <= AXPY_MAX_ROWS, "{rows} rows");
            let want = naive(&x, &w);
            let got = x32.matmul(&w32).unwrap();
            assert!(got.cast::<f64>().allclose(&want, 1e-4, 1e-4), "{rows} rows");
            let mut acc = got.clone();
            gemm_into(&mut acc, &x32, Transpose::No, &w32, Transpose::No, true).unwrap();
            let twice = want.mul_scalar(2.0);
            assert!(
                acc.cast::<f64>().allclose(&twice, 1e-4, 1e-4),
                "{rows} rows"
            );
        }
        let dense: Tensor<f32> = rng.normal(&[1, ins], 0.0, 1.0);
        assert!(!input_major_pays(&dense));
    }

    /// Many rows of mostly zeros times `Wᵀ` (inference on a large batch of
    /// images) go to the dot products in chunks shared between threads:
    /// the same bits on one thread and two, and the f64 definition.
    #[test]
    fn large_mostly_zero_products_are_identical_on_any_thread_count() {
        let mut rng = Rng::seed(12);
        // ≥ 2^24 multiply-adds, too many for one thread: fewer rows than
        // the dot products take at once (256), and many chunks with a
        // partial last one.
        for &(m, k, n) in &[(200, 300, 300), (1000, 784, 30)] {
            let x = strips_zeroed(rng.normal(&[m, k], 0.0, 1.0), |r, s| (s + r) % 3 == 0);
            assert!(crate::gemv::mostly_sparse(x.data(), (m, k)));
            let w: Tensor<f64> = rng.normal(&[n, k], 0.0, 1.0);
            let want = naive(&x, &w.transpose().unwrap());
            let (x32, w32) = (x.cast::<f32>(), w.cast::<f32>());
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| x32.matmul_t(Transpose::No, &w32, Transpose::Yes).unwrap())
            };
            let (one, two) = (run(1), run(2));
            assert!(one.cast::<f64>().allclose(&want, 1e-4, 1e-4), "{m}×{k}×{n}");
            assert_eq!(one, two, "1 and 2 threads must agree bit for bit");
            // Row by row, as a batch of one each: the same bits again.
            let row = Tensor::from_vec(x32.data()[(m - 1) * k..].to_vec(), &[1, k]).unwrap();
            let last = row.matmul_t(Transpose::No, &w32, Transpose::Yes).unwrap();
            assert_eq!(last.data(), &one.data()[(m - 1) * n..]);
        }
    }

    #[test]
    fn f32_matches_f64() {
        let mut rng = Rng::seed(1);
        let a: Tensor<f64> = rng.normal(&[9, 4], 0.0, 1.0);
        let b: Tensor<f64> = rng.normal(&[4, 6], 0.0, 1.0);
        let want = naive(&a, &b);
        let got = a.cast::<f32>().matmul(&b.cast::<f32>()).unwrap();
        assert!(got.cast::<f64>().allclose(&want, 1e-5, 1e-5));
    }

    #[test]
    fn mismatched_inner_dimensions_are_an_error() {
        let a = Tensor::<f32>::zeros(&[2, 3]);
        let err = a.matmul(&a).unwrap_err();
        assert_eq!(
            err.to_string(),
            "matmul: shapes [2, 3] and [2, 3] are not compatible"
        );
        assert!(Tensor::<f32>::zeros(&[3]).matmul(&a).is_err());
    }
}
