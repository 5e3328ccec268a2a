//! Every product plan (dot products, sparse dot products, the `[in, out]`
//! axpy kernel, outer products, transposed operands, the GEMM library) over
//! shapes around every vector width and block size, against an f64
//! reference: 1–3 output columns, depths just under and over a vector,
//! mostly-zero rows whose nonzeros sit at the ends.

use nabla_tensor::{gemm_into, Float, Rng, Tensor, Transpose};

/// Sizes at and around the kernels' edges: vectors of 8 and 16 lanes,
/// blocks of 12 vectors (96 columns), 4 sparse rows, 16 as the shortest dot
/// product, 64-row shards, 256 rows of dot products.
const ROWS: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 63, 64, 65, 257];
const DEPTHS: &[usize] = &[1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 784];
const COLS: &[usize] = &[1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 95, 96, 97, 100, 193];

/// How the left operand's entries are laid out.
#[derive(Clone, Copy, Debug)]
enum Fill {
    Dense,
    /// A fifth of the entries nonzero, scattered.
    Sparse,
    /// Nonzero only in each row's first entry and its last three: the tail
    /// the kernels treat apart.
    Ends,
}

fn matrix(rows: usize, cols: usize, fill: Fill, rng: &mut Rng) -> Vec<f64> {
    (0..rows * cols)
        .map(|i| {
            let v = rng.next_f64() * 2.0 - 1.0;
            let col = i % cols;
            match fill {
                Fill::Dense => v,
                Fill::Sparse if rng.next_f64() < 0.2 => v,
                Fill::Sparse => 0.0,
                Fill::Ends if col == 0 || col + 3 >= cols => v,
                Fill::Ends => 0.0,
            }
        })
        .collect()
}

/// `op(a) · op(b)` in f64, from the matrices as stored.
fn reference(
    a: &[f64],
    ta: Transpose,
    b: &[f64],
    tb: Transpose,
    (m, k, n): (usize, usize, usize),
) -> Vec<f64> {
    let at = |i: usize, p: usize| match ta {
        Transpose::No => a[i * k + p],
        Transpose::Yes => a[p * m + i],
    };
    let bt = |p: usize, j: usize| match tb {
        Transpose::No => b[p * n + j],
        Transpose::Yes => b[j * k + p],
    };
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
        }
    }
    out
}

fn check<T: Float>(
    shape: (usize, usize, usize),
    ta: Transpose,
    tb: Transpose,
    fill: Fill,
    seed: u64,
) {
    let (m, k, n) = shape;
    let mut rng = Rng::seed(seed);
    // `a` is `op(a)`'s rows as stored: m × k, or k × m to be transposed.
    let a = matrix(m, k, fill, &mut rng);
    let a = match ta {
        Transpose::No => a,
        // Stored transposed, with the same values as op(a).
        Transpose::Yes => (0..k * m).map(|i| a[(i % m) * k + i / m]).collect(),
    };
    let b = matrix(k, n, Fill::Dense, &mut rng);
    let want = reference(&a, ta, &b, tb, shape);
    let dims = |rows, cols, t| match t {
        Transpose::No => [rows, cols],
        Transpose::Yes => [cols, rows],
    };
    let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let at = Tensor::from_vec(to_t(&a), &dims(m, k, ta)).unwrap();
    let bt = Tensor::from_vec(to_t(&b), &dims(k, n, tb)).unwrap();
    // Accumulating onto ones checks both the write and the add.
    let mut got = Tensor::from_vec(vec![T::ONE; m * n], &[m, n]).unwrap();
    gemm_into(&mut got, &at, ta, &bt, tb, true).unwrap();
    // f32 sums of k products of values below 1 in any order: within
    // k · 2⁻²³ of the exact sum, with room for the rounding of the inputs.
    let tol = if T::NAME == "f64" { 1e-12 } else { 4e-7 } * (k as f64 + 1.0);
    for (idx, (g, w)) in got.data().iter().zip(&want).enumerate() {
        let (g, w) = (g.to_f64(), w + 1.0);
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{} {m}x{k}x{n} {ta:?}/{tb:?} {fill:?}: element {idx}: {g} vs {w}",
            T::NAME
        );
    }
}

#[test]
fn every_plan_matches_the_f64_reference_around_every_edge() {
    let mut pick = Rng::seed(2026);
    let mut draw = |of: &[usize]| of[(pick.next_f64() * of.len() as f64) as usize % of.len()];
    let fills = [Fill::Dense, Fill::Sparse, Fill::Ends];
    let transposes = [Transpose::No, Transpose::Yes];
    for case in 0..600u64 {
        let (m, k, n) = (draw(ROWS), draw(DEPTHS), draw(COLS));
        let fill = fills[case as usize % 3];
        let ta = transposes[(case as usize / 3) % 2];
        let tb = transposes[(case as usize / 6) % 2];
        check::<f32>((m, k, n), ta, tb, fill, case);
        check::<f64>((m, k, n), ta, tb, fill, case);
    }
}

/// The shapes of the defect found in `predict`: a dense layer of 1–3
/// outputs stored `[in, out]`, a batch of at most 4 mostly-zero rows whose
/// last nonzero lies near the end.
#[test]
fn narrow_layers_on_a_few_sparse_rows_with_ink_at_the_end() {
    for n in 1..=3 {
        for m in 1..=4 {
            for k in [16, 17, 100, 784] {
                check::<f32>(
                    (m, k, n),
                    Transpose::No,
                    Transpose::No,
                    Fill::Ends,
                    (m * k * n) as u64,
                );
                check::<f64>(
                    (m, k, n),
                    Transpose::No,
                    Transpose::No,
                    Fill::Ends,
                    (m * k * n) as u64,
                );
            }
        }
    }
}
