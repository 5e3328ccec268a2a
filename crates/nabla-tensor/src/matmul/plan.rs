//! Which kernel computes a product: one pure function, [`plan`], from the
//! product's shape, its operands' layout, the threads at hand and what the
//! operands' zeros look like, to a [`Plan`].
//!
//! The GEMM library is the default. Shapes that its packing makes slow, or
//! whose zeros it multiplies, go to nabla's own kernels while the product is
//! small enough for one thread (below [`PARALLEL_MIN_FLOPS`]); the one
//! exception, many rows of mostly zeros times `Wᵀ`, is split into chunks of
//! rows between the threads. Where each line is drawn, and what was
//! measured to draw it there, is in `docs/performance.md` ("The matrix
//! product's plan").

use super::Transpose;

/// Products smaller than this many multiply-adds run on one thread: below it,
/// handing work to the thread pool costs more than it saves.
pub(crate) const PARALLEL_MIN_FLOPS: usize = 1 << 24;

/// Rows of `op(a)` up to which `a · bᵀ` runs as dot products of rows read
/// in place rather than through the GEMM library, which packs both operands
/// first: a shard of a batch (at most 64 rows) or a small batch times a
/// layer's weights.
pub(crate) const DOT_MAX_ROWS: usize = 256;

/// The shortest rows that go to the dot products: shorter ones spend more
/// on adding up each sum's lanes than on the sum.
pub(crate) const DOT_MIN_DEPTH: usize = 16;

/// Rows of mostly zeros up to which `a · b` (both as stored) runs as axpy:
/// an image or a few times a layer's weights stored `[in, out]`. Each row
/// reads the weight rows of its own nonzero entries, so more rows read the
/// weights more times over.
pub(crate) const AXPY_MAX_ROWS: usize = 4;

/// Rows of mostly zeros from which `a · b` (both as stored) runs in tiles
/// of `b` ([`Plan::SparseRowsTiled`]): a batch of images through a layer
/// prepared for inference. Between [`AXPY_MAX_ROWS`] and this the dot
/// products of `x · Wᵀ` are faster.
pub(crate) const TILED_MIN_ROWS: usize = 64;

/// Rows per task when many rows of mostly zeros go to the dot products or
/// the tiles (inference on a large batch of images): small enough to share
/// 1000 rows evenly between a few threads.
pub(crate) const SPARSE_CHUNK_ROWS: usize = 64;

/// A product `op(a) · op(b)`, `m × k` times `k × n`, as the plan sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Problem {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub ta: Transpose,
    pub tb: Transpose,
    /// Threads in the current pool.
    pub threads: usize,
    /// Whether nabla's own kernels run in vector registers for this element
    /// type at the current SIMD level (f32 with AVX2 or wider); on plain
    /// arrays they beat the library only on a single row.
    pub vectorised: bool,
}

/// What the plan may ask about the operands' zeros. Each answer reads the
/// operand, so [`plan`] asks only where the answer picks the kernel.
pub(crate) trait Zeros {
    /// Whether the first `rows` rows of `a`, used as stored (`m × k`), are
    /// mostly zeros.
    fn a_rows_mostly_zero(&self, rows: usize) -> bool;
    /// Whether `b`, used as stored (`k × n`), is mostly zeros.
    fn b_mostly_zero(&self) -> bool;
}

/// The kernel for one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// `m` or `n` is 0: nothing to write.
    Nothing,
    /// `k` is 0: an empty sum, zeros (or nothing to add).
    Zeros,
    /// `k` is 1: op(a) is a column and op(b) a row (`super::outer`).
    Outer,
    /// A few rows (or one) times a matrix stored row by row, `x · Wᵀ`: dot
    /// products of contiguous rows, no packing (`super::dot`).
    Dots,
    /// A few rows of mostly zeros times a matrix stored `[in, out]`: one row
    /// of `b` added per nonzero entry (`super::axpy`).
    SparseRowsAxpy,
    /// Many rows of mostly zeros times a matrix stored `[in, out]`: a chunk
    /// of rows at a time sweeps tiles of `b` small enough for the
    /// first-level cache (`super::axpy_tiled`), the chunks shared between
    /// the threads when `parallel`.
    SparseRowsTiled { parallel: bool },
    /// Many rows of mostly zeros times `Wᵀ`: the dot products that skip the
    /// zeros, in chunks of [`SPARSE_CHUNK_ROWS`] rows, shared between the
    /// threads when `parallel`.
    SparseDotChunks { parallel: bool },
    /// `aᵀ · b` over a shard's few rows where `b` is mostly zeros (a weight
    /// gradient of a layer that sees images): sums over the rows where a
    /// strip of `b` is not zero (`super::transposed`).
    SparseTransposed,
    /// The GEMM library, split between the threads when `parallel`.
    Library { parallel: bool },
}

/// The kernel for `problem`, asking `zeros` only what decides it.
pub(crate) fn plan(p: &Problem, zeros: &impl Zeros) -> Plan {
    use Transpose::{No, Yes};
    let Problem { m, k, n, .. } = *p;
    let flops = m.saturating_mul(k).saturating_mul(n);
    let one_thread = flops < PARALLEL_MIN_FLOPS;
    let parallel = p.threads > 1 && !one_thread;
    if m == 0 || n == 0 {
        return Plan::Nothing;
    }
    if k == 0 {
        return Plan::Zeros;
    }
    if k == 1 {
        return Plan::Outer;
    }
    let few_rows = p.ta == No && m <= DOT_MAX_ROWS && k >= DOT_MIN_DEPTH && one_thread;
    if p.tb == Yes && (m == 1 || (few_rows && p.vectorised)) {
        return Plan::Dots;
    }
    if p.ta == No
        && p.tb == No
        && sparse_rows_pay(m, k, p.vectorised, || {
            zeros.a_rows_mostly_zero(m.min(DOT_MAX_ROWS))
        })
    {
        return match m <= AXPY_MAX_ROWS {
            true => Plan::SparseRowsAxpy,
            false => Plan::SparseRowsTiled { parallel },
        };
    }
    // The first rows stand for the rest in the count of zeros.
    if p.ta == No
        && p.tb == Yes
        && k >= DOT_MIN_DEPTH
        && p.vectorised
        && zeros.a_rows_mostly_zero(m.min(DOT_MAX_ROWS))
    {
        return Plan::SparseDotChunks { parallel };
    }
    if p.ta == Yes
        && p.tb == No
        && k <= super::transposed::TRANSPOSED_MAX_DEPTH
        && one_thread
        && p.vectorised
        && zeros.b_mostly_zero()
    {
        return Plan::SparseTransposed;
    }
    Plan::Library { parallel }
}

/// Whether `m` rows of `k` times a matrix stored `[k, n]` go to axpy, row by
/// row or in tiles: few rows or many, of a length the kernels take, on the
/// vector path, and mostly zeros (asked last, as it reads the rows).
pub(crate) fn sparse_rows_pay(
    m: usize,
    k: usize,
    vectorised: bool,
    mostly_zero: impl FnOnce() -> bool,
) -> bool {
    (m <= AXPY_MAX_ROWS || m >= TILED_MIN_ROWS)
        && (DOT_MIN_DEPTH..=super::axpy::AXPY_MAX_DEPTH).contains(&k)
        && vectorised
        && mostly_zero()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use Transpose::{No, Yes};

    /// Fixed answers, and a count of the questions asked.
    struct Answers {
        a: bool,
        b: bool,
        asked: Cell<usize>,
    }

    impl Zeros for Answers {
        fn a_rows_mostly_zero(&self, _: usize) -> bool {
            self.asked.set(self.asked.get() + 1);
            self.a
        }
        fn b_mostly_zero(&self) -> bool {
            self.asked.set(self.asked.get() + 1);
            self.b
        }
    }

    fn answers(a: bool, b: bool) -> Answers {
        Answers {
            a,
            b,
            asked: Cell::new(0),
        }
    }

    fn problem((m, k, n): (usize, usize, usize), ta: Transpose, tb: Transpose) -> Problem {
        Problem {
            m,
            k,
            n,
            ta,
            tb,
            threads: 2,
            vectorised: true,
        }
    }

    /// The products a training step and inference make, and the kernel
    /// each one gets.
    #[test]
    fn each_product_of_a_step_gets_its_kernel() {
        let dense = answers(false, false);
        let images = answers(true, true);
        let cases = [
            // A shard's forward product `x · Wᵀ`, dense or images: dots.
            (problem((50, 784, 100), No, Yes), &dense, Plan::Dots),
            (problem((50, 784, 100), No, Yes), &images, Plan::Dots),
            // Its weight gradient `dZᵀ · X`: the library, or on images the
            // kernel that skips their zeros.
            (
                problem((100, 50, 784), Yes, No),
                &dense,
                Plan::Library { parallel: false },
            ),
            (
                problem((100, 50, 784), Yes, No),
                &images,
                Plan::SparseTransposed,
            ),
            // Its input gradient `dZ · W`.
            (
                problem((50, 100, 784), No, No),
                &dense,
                Plan::Library { parallel: false },
            ),
            // Batch 1: the weight gradient is an outer product.
            (problem((100, 1, 784), Yes, No), &images, Plan::Outer),
            // An image through weights stored `[in, out]`: axpy.
            (
                problem((1, 784, 100), No, No),
                &images,
                Plan::SparseRowsAxpy,
            ),
            (
                problem((4, 784, 100), No, No),
                &images,
                Plan::SparseRowsAxpy,
            ),
            (
                problem((5, 784, 100), No, No),
                &images,
                Plan::Library { parallel: false },
            ),
            // A batch of images through weights stored `[in, out]`: tiles,
            // on both threads once the product is large.
            (
                problem((TILED_MIN_ROWS, 784, 100), No, No),
                &images,
                Plan::SparseRowsTiled { parallel: false },
            ),
            (
                problem((TILED_MIN_ROWS - 1, 784, 100), No, No),
                &images,
                Plan::Library { parallel: false },
            ),
            (
                problem((1000, 784, 100), No, No),
                &images,
                Plan::SparseRowsTiled { parallel: true },
            ),
            (
                problem((1000, 784, 100), No, No),
                &dense,
                Plan::Library { parallel: true },
            ),
            (
                problem((1, 784, 100), No, No),
                &dense,
                Plan::Library { parallel: false },
            ),
            // Inference on 1000 images: chunks of dots on both threads.
            (
                problem((1000, 784, 100), No, Yes),
                &images,
                Plan::SparseDotChunks { parallel: true },
            ),
            (
                problem((1000, 784, 100), No, Yes),
                &dense,
                Plan::Library { parallel: true },
            ),
            // A big dense product: the library on every thread.
            (
                problem((1024, 1024, 1024), No, No),
                &dense,
                Plan::Library { parallel: true },
            ),
            // Degenerate shapes.
            (problem((0, 5, 3), No, No), &dense, Plan::Nothing),
            (problem((3, 5, 0), No, Yes), &dense, Plan::Nothing),
            (problem((3, 0, 4), Yes, Yes), &dense, Plan::Zeros),
        ];
        for (p, zeros, want) in cases {
            assert_eq!(plan(&p, zeros), want, "{p:?}");
        }
    }

    /// The lines the constants draw, each on both sides.
    #[test]
    fn the_thresholds_fall_where_the_constants_say() {
        let dense = answers(false, false);
        let at = |m, k, n| plan(&problem((m, k, n), No, Yes), &dense);
        assert_eq!(at(DOT_MAX_ROWS, 64, 64), Plan::Dots);
        assert_eq!(
            at(DOT_MAX_ROWS + 1, 64, 64),
            Plan::Library { parallel: false }
        );
        assert_eq!(at(8, DOT_MIN_DEPTH, 8), Plan::Dots);
        assert_eq!(
            at(8, DOT_MIN_DEPTH - 1, 8),
            Plan::Library { parallel: false }
        );
        // One row goes to the dots however short, and however large the product.
        assert_eq!(at(1, 2, 8), Plan::Dots);
        assert_eq!(at(1, 1 << 13, 1 << 12), Plan::Dots);
        // At 2^24 multiply-adds the product is the library's, on both threads.
        assert_eq!(at(256, 256, 255), Plan::Dots);
        assert_eq!(at(256, 256, 256), Plan::Library { parallel: true });
        let images = answers(true, true);
        let t = |k| plan(&problem((64, k, 300), Yes, No), &images);
        let deepest = super::super::transposed::TRANSPOSED_MAX_DEPTH;
        assert_eq!(t(deepest), Plan::SparseTransposed);
        assert_eq!(t(deepest + 1), Plan::Library { parallel: false });
    }

    /// With one thread nothing is split; without vector registers nabla's
    /// kernels keep only the single row.
    #[test]
    fn threads_and_vectors_change_the_plan() {
        let images = answers(true, true);
        let mut p = problem((1000, 784, 100), No, Yes);
        p.threads = 1;
        assert_eq!(plan(&p, &images), Plan::SparseDotChunks { parallel: false });
        p.vectorised = false;
        assert_eq!(plan(&p, &images), Plan::Library { parallel: false });
        let mut one = problem((1, 784, 100), No, Yes);
        one.vectorised = false;
        assert_eq!(plan(&one, &images), Plan::Dots);
        let mut shard = problem((50, 784, 100), No, Yes);
        shard.vectorised = false;
        assert_eq!(plan(&shard, &images), Plan::Library { parallel: false });
        let mut axpy = problem((1, 784, 100), No, No);
        axpy.vectorised = false;
        assert_eq!(plan(&axpy, &images), Plan::Library { parallel: false });
        let mut tiled = problem((1000, 784, 100), No, No);
        tiled.threads = 1;
        assert_eq!(
            plan(&tiled, &images),
            Plan::SparseRowsTiled { parallel: false }
        );
        tiled.vectorised = false;
        assert_eq!(plan(&tiled, &images), Plan::Library { parallel: false });
    }

    /// The zeros are counted only where the count decides: never for the
    /// shapes a dense step makes of its own accord.
    #[test]
    fn zeros_are_counted_only_where_they_decide() {
        let count = |p: Problem| {
            let z = answers(false, false);
            plan(&p, &z);
            z.asked.get()
        };
        assert_eq!(count(problem((50, 784, 100), No, Yes)), 0);
        assert_eq!(count(problem((100, 1, 784), Yes, No)), 0);
        assert_eq!(count(problem((1000, 1024, 1024), Yes, Yes)), 0);
        assert_eq!(count(problem((100, 50, 784), Yes, No)), 1);
        assert_eq!(count(problem((1000, 784, 100), No, Yes)), 1);
        // A few rows times `b` as stored: axpy asks about `a`, once.
        assert_eq!(count(problem((2, 784, 100), No, No)), 1);
        // Many rows: asked about the first ones, once; a shard's input
        // gradient (fewer rows) is never asked.
        assert_eq!(count(problem((1000, 784, 100), No, No)), 1);
        assert_eq!(count(problem((50, 100, 784), No, No)), 0);
    }
}
