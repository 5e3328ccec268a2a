//! Many mostly-zero rows times a matrix stored row by row along the
//! *output* (`b` is `[k, n]`, a layer's weights stored `[in, out]`): the
//! product of [`super::axpy`] for a batch of images, with the weights read
//! from the first-level cache.
//!
//! Row by row ([`super::axpy::sparse_rows_times`]) each nonzero pixel adds
//! one row of weights, so every image reads the weight rows of its own lit
//! pixels from the second-level cache: a 784 → 100 layer's 314 KB do not fit
//! the first. On a batch that read is the bound. Here a chunk of rows
//! sweeps the depth in tiles: the rows of `b` of one tile of pixels (a few
//! KB) stay in the first-level cache while every row of the chunk adds its
//! own lit pixels of the tile into its outputs, which are stored between
//! tiles in a scratch row.
//!
//! Every output element is the same chain of multiply-adds as in
//! [`super::axpy`]: it starts at +0, takes one multiply-add per nonzero
//! `a[i, p]` in increasing `p`, and its partial sums pass through memory
//! between tiles without rounding. So a row's outputs are the bits it gets
//! alone from [`super::axpy::sparse_rows_times`] (tested), whatever the
//! chunk, tile or thread.

use super::axpy::list_row_nonzeros;
#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, Avx, Kernel, SimdLevel};
use crate::simd::{Lanes, LANES};
use crate::Float;

/// Rows that sweep the depth together: each tile of weights is read from
/// the second-level cache once per this many rows.
const CHUNK_ROWS: usize = 32;

/// Bytes of `b` one tile of the depth holds, for the columns of one block:
/// about a first-level cache. Smaller tiles cost more in storing and
/// reloading the outputs between tiles than they save in reads; one tile
/// for the whole depth reads the weights from the second-level cache again
/// (`docs/performance.md`, "A batch of images through the weights stored
/// `[in, out]`").
const TILE_BYTES: usize = 32 * 1024;

/// Output vectors one block keeps in registers at AVX2: 104 columns (a 100-wide
/// layer's outputs, rounded up to whole vectors) in 13 of 16 registers.
const BLOCK_VECTORS: usize = 13;

/// The same with AVX-512's 32 registers.
const WIDE_BLOCK_VECTORS: usize = 26;

/// `out[i·n + j] = Σ_p a[i·k + p] · b[p·n + j]` for `i < m`, `j < n`, over
/// the `p` where `a[i·k + p] ≠ 0`; or `out[…] += …` with `accumulate`.
///
/// Skipping a zero changes no bit (every sum starts at +0, see
/// `dot::dot_with`), but for a weight that is infinite or NaN facing a zero
/// input, whose product, NaN, is skipped.
///
/// # Safety
/// `out` must be valid for writes of `m·n` elements, and for reads too with
/// `accumulate`. It must not overlap `a` or `b`.
///
/// # Panics
/// If `a.len() != m·k` or `b.len() != k·n` (a bug in the caller).
pub(crate) unsafe fn sparse_rows_tiled<T: Float>(
    a: &[T],
    b: &[T],
    out: *mut T,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    assert_eq!(a.len(), m * k, "sparse_rows_tiled: left length");
    assert_eq!(b.len(), k * n, "sparse_rows_tiled: right length");
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(a32), Some(b32)) = (as_f32(a), as_f32(b)) {
        let (out, shape) = (out.cast(), (m, k, n));
        // SAFETY (both): the CPU has what each function is compiled for;
        // T is f32, so `out` points to f32; the caller's promise.
        match Kernel::Axpy.level() {
            SimdLevel::Plain => {}
            SimdLevel::Avx2 => return unsafe { tiled_avx2(a32, b32, out, shape, accumulate) },
            SimdLevel::Avx512 => return unsafe { tiled_avx512(a32, b32, out, shape, accumulate) },
        }
    }
    // SAFETY: the caller's promise.
    unsafe { tiled_with::<T, [T; LANES], BLOCK_VECTORS>(a, b, out, (m, k, n), accumulate) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn tiled_avx2(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe { tiled_with::<f32, Avx, BLOCK_VECTORS>(a, b, out, shape, accumulate) }
}

/// With 32 vector registers: blocks of 26 vectors. Every output is the
/// same chain of fused multiply-adds as at AVX2, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
unsafe fn tiled_avx512(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe { tiled_with::<f32, Avx, WIDE_BLOCK_VECTORS>(a, b, out, shape, accumulate) }
}

/// One chunk's lists of nonzero entries and its scratch outputs.
struct Chunk<T> {
    /// The nonzero entries' positions, row after row.
    index: Vec<u32>,
    /// Where each row's list starts in `index`, and one past the last.
    starts: Vec<usize>,
    /// Where each row's sweep has got to in its list.
    cursor: Vec<usize>,
    /// The chunk's outputs, rows of `n` rounded up to whole vectors.
    scratch: Vec<T>,
    /// One block's columns of the last rows of `b`, whose vectors would
    /// reach past its end, with zeros after the end.
    tail: Vec<T>,
}

/// [`sparse_rows_tiled`] over `V`, with blocks of up to `B` output vectors.
#[inline(always)]
unsafe fn tiled_with<T: Float, V: Lanes<T>, const B: usize>(
    a: &[T],
    b: &[T],
    out: *mut T,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    let padded = n.div_ceil(LANES) * LANES;
    let rows = m.min(CHUNK_ROWS);
    let mut chunk = Chunk {
        index: Vec::with_capacity(rows * k),
        starts: Vec::with_capacity(rows + 1),
        cursor: vec![0; rows],
        scratch: vec![T::ZERO; rows * padded],
        tail: Vec::new(),
    };
    for i0 in (0..m).step_by(CHUNK_ROWS) {
        let rows = (m - i0).min(CHUNK_ROWS);
        list_nonzeros::<T, V>(&a[i0 * k..(i0 + rows) * k], k, &mut chunk);
        chunk.scratch.fill(T::ZERO);
        let mut j = 0;
        while j < padded {
            let vectors = (padded - j) / LANES;
            // SAFETY (each arm): the block's columns lie inside the
            // scratch rows of `padded`; `b` is read where it holds values.
            j += unsafe {
                match vectors {
                    v if v >= B => {
                        block::<T, V, B>(a, b, (i0, rows), (k, n, padded), j, &mut chunk)
                    }
                    // Only with the wide blocks: a 100-wide layer in one sweep.
                    BLOCK_VECTORS.. => block::<T, V, BLOCK_VECTORS>(
                        a,
                        b,
                        (i0, rows),
                        (k, n, padded),
                        j,
                        &mut chunk,
                    ),
                    8.. => block::<T, V, 8>(a, b, (i0, rows), (k, n, padded), j, &mut chunk),
                    4..8 => block::<T, V, 4>(a, b, (i0, rows), (k, n, padded), j, &mut chunk),
                    2 | 3 => block::<T, V, 2>(a, b, (i0, rows), (k, n, padded), j, &mut chunk),
                    _ => block::<T, V, 1>(a, b, (i0, rows), (k, n, padded), j, &mut chunk),
                }
            };
        }
        for r in 0..rows {
            let from = &chunk.scratch[r * padded..][..n];
            // SAFETY: row i0 + r of `out` holds n elements (the caller's promise).
            let to = unsafe { out.add((i0 + r) * n) };
            for (c, &s) in from.iter().enumerate() {
                // SAFETY: as above.
                unsafe {
                    let at = to.add(c);
                    at.write(if accumulate { *at + s } else { s });
                }
            }
        }
    }
}

/// Lists the positions of the nonzero entries of each row of `a` (rows of
/// `k`), one row after another ([`list_row_nonzeros`]).
#[inline(always)]
fn list_nonzeros<T: Float, V: Lanes<T>>(a: &[T], k: usize, chunk: &mut Chunk<T>) {
    chunk.index.clear();
    chunk.starts.clear();
    chunk.index.reserve(a.len());
    let at = chunk.index.as_mut_ptr();
    let mut len = 0;
    for row in a.chunks_exact(k) {
        chunk.starts.push(len);
        // SAFETY: the rows before wrote at most their length, so `len`
        // plus this row's k stays within the capacity of a.len().
        len += unsafe { list_row_nonzeros::<T, V>(row, at.add(len)) };
    }
    // SAFETY: the first `len` entries were written above.
    unsafe { chunk.index.set_len(len) };
    chunk.starts.push(len);
}

/// Columns `j .. j + C·LANES` of the chunk's scratch outputs: for each
/// tile of the depth, each row adds its nonzero entries of the tile, with
/// its `C` output vectors in registers. Returns the columns done.
///
/// # Safety
/// `j + C·LANES <= padded`, and the chunk's lists were made from rows
/// `i0 .. i0 + rows` of `a`.
#[inline(always)]
unsafe fn block<T: Float, V: Lanes<T>, const C: usize>(
    a: &[T],
    b: &[T],
    (i0, rows): (usize, usize),
    (k, n, padded): (usize, usize, usize),
    j: usize,
    chunk: &mut Chunk<T>,
) -> usize {
    let tile = (TILE_BYTES / (C * LANES * std::mem::size_of::<T>())).max(1);
    chunk.cursor[..rows].copy_from_slice(&chunk.starts[..rows]);
    // A whole vector of `b` from row p at column j + c·LANES stays inside
    // `b` up to this row; the rows after it are read from `tail`, the same
    // values with zeros past the end of `b`, in the same loop (with a second
    // loop for them the compiler kept the outputs in memory, not in
    // registers).
    let width = C * LANES;
    let whole_rows = match b.len().checked_sub(j + width) {
        Some(room) => room / n + 1,
        None => 0,
    };
    chunk.tail.clear();
    chunk.tail.resize((k - whole_rows) * width, T::ZERO);
    for (t, to) in chunk.tail.chunks_exact_mut(width).enumerate() {
        let from = ((whole_rows + t) * n + j).min(b.len());
        let len = (b.len() - from).min(width);
        to[..len].copy_from_slice(&b[from..from + len]);
    }
    for p1 in (tile..k + tile).step_by(tile) {
        for r in 0..rows {
            let (mut e, end) = (chunk.cursor[r], chunk.starts[r + 1]);
            if e == end || chunk.index[e] as usize >= p1 {
                continue;
            }
            let a_row = &a[(i0 + r) * k..][..k];
            let acc_at = chunk.scratch[r * padded + j..][..C * LANES].as_mut_ptr();
            // SAFETY: inside the scratch row (the caller's promise on j).
            let mut acc: [V; C] =
                std::array::from_fn(|c| unsafe { V::load(acc_at.add(c * LANES)) });
            // No closure here: a closure does not get the CPU features of
            // the function it is written in, and the vector methods would
            // not inline.
            while e < end {
                let p = chunk.index[e] as usize;
                if p >= p1 {
                    break;
                }
                let x = V::splat(a_row[p]);
                // SAFETY: below whole_rows the block's vectors of row p lie
                // inside `b`; from it, row p − whole_rows of `tail` holds them.
                let w = unsafe {
                    match p < whole_rows {
                        true => b.as_ptr().add(p * n + j),
                        false => chunk.tail.as_ptr().add((p - whole_rows) * width),
                    }
                };
                for (c, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: as above.
                    *acc = acc.madd(x, unsafe { V::load(w.add(c * LANES)) });
                }
                e += 1;
            }
            chunk.cursor[r] = e;
            for (c, acc) in acc.into_iter().enumerate() {
                // SAFETY: as for the loads.
                unsafe { acc.store(acc_at.add(c * LANES)) };
            }
        }
    }
    C * LANES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::axpy::sparse_rows_times;
    use crate::matmul::test_values::{naive_input_major, sparse, to_f32, values};

    /// Blocks of every width at both levels, partial vectors, several
    /// chunks and tiles.
    const SHAPES: [(usize, usize, usize); 8] = [
        (70, 784, 100),
        (33, 40, 7),
        (5, 33, 96),
        (40, 16, 200),
        (3, 100, 8),
        (2, 9, 1),
        (65, 1000, 130),
        (8, 50, 260),
    ];

    #[test]
    fn tiled_rows_match_the_definition_and_accumulate() {
        for &(m, k, n) in &SHAPES {
            let a = sparse(m * k, m + k);
            let b = values(k * n, n);
            let want = naive_input_major(&a, &b, (m, k, n));
            let mut got = vec![f64::NAN; m * n];
            // SAFETY: `got` holds m·n elements.
            unsafe { sparse_rows_tiled(&a, &b, got.as_mut_ptr(), (m, k, n), false) };
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "f64 {m}x{k}x{n}: {g} vs {w}");
            }
            let (a32, b32) = (to_f32(&a), to_f32(&b));
            let mut got = vec![1.0f32; m * n];
            // SAFETY: as above.
            unsafe { sparse_rows_tiled(&a32, &b32, got.as_mut_ptr(), (m, k, n), true) };
            for (g, w) in got.iter().zip(&want) {
                let w = w + 1.0;
                assert!(
                    (f64::from(*g) - w).abs() < 1e-4 * (1.0 + w.abs()),
                    "f32 {m}x{k}x{n}: {g} vs {w}"
                );
            }
        }
    }

    /// Each row gets the bits the row-by-row kernel gives it alone, with
    /// and without accumulating, at every level this CPU has.
    #[test]
    fn a_row_gets_the_row_by_row_kernels_bits() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for &(m, k, n) in &SHAPES {
            let a = to_f32(&sparse(m * k, 3 * m + n));
            let b = to_f32(&values(k * n, k + 1));
            for accumulate in [false, true] {
                let start: Vec<f32> = (0..m * n).map(|i| (i % 11) as f32 / 3.0).collect();
                let mut tiled = start.clone();
                // SAFETY: `tiled` holds m·n elements.
                unsafe { sparse_rows_tiled(&a, &b, tiled.as_mut_ptr(), (m, k, n), accumulate) };
                for i in 0..m {
                    let mut alone = start[i * n..][..n].to_vec();
                    let row = &a[i * k..][..k];
                    // SAFETY: `alone` holds n elements.
                    unsafe {
                        sparse_rows_times(row, &b, alone.as_mut_ptr(), (1, k, n), accumulate)
                    };
                    assert_eq!(
                        bits(&tiled[i * n..][..n]),
                        bits(&alone),
                        "{m}x{k}x{n} row {i}, accumulate {accumulate}"
                    );
                }
            }
        }
    }

    /// The AVX-512 blocks give the AVX2 blocks' bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_wide_blocks_give_the_same_bits() {
        if crate::detected_simd_level() < SimdLevel::Avx512 {
            return;
        }
        for &(m, k, n) in &SHAPES {
            let a = to_f32(&sparse(m * k, m + n));
            let b = to_f32(&values(k * n, k));
            let (mut narrow, mut wide) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
            // SAFETY: the CPU has AVX-512 (checked above); both hold m·n.
            unsafe {
                tiled_avx2(&a, &b, narrow.as_mut_ptr(), (m, k, n), false);
                tiled_avx512(&a, &b, wide.as_mut_ptr(), (m, k, n), false);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&narrow), bits(&wide), "{m}x{k}x{n}");
        }
    }
}
