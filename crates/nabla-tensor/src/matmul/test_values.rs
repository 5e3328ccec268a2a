//! Operands the kernels' tests share, with and without runs of zeros, and
//! the dot products by their definition in f64.

/// `a` (m × k) against the rows of `b` (n × k) by the definition.
pub(crate) fn naive(a: &[f64], b: &[f64], (m, k, n): (usize, usize, usize)) -> Vec<f64> {
    (0..m * n)
        .map(|e| (0..k).map(|p| a[e / n * k + p] * b[e % n * k + p]).sum())
        .collect()
}

/// `a` (m × k) times `b` stored `[k, n]` by the definition.
pub(crate) fn naive_input_major(
    a: &[f64],
    b: &[f64],
    (m, k, n): (usize, usize, usize),
) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                out[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    out
}

pub(crate) fn values(len: usize, seed: usize) -> Vec<f64> {
    (0..len)
        .map(|i| (((i * 29 + seed * 7) % 19) as f64 - 9.0) / 4.0)
        .collect()
}

pub(crate) fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Row counts and lengths that do and do not fill a block and a vector.
pub(crate) const SHAPES: [(usize, usize); 6] =
    [(784, 100), (8, 8), (13, 3), (2, 17), (100, 10), (1, 9)];

/// `values` with runs of zeros: whole eight-column strips, single
/// zeros inside strips, and a live value at a strip's last column, as
/// in images.
pub(crate) fn sparse(len: usize, seed: usize) -> Vec<f64> {
    values(len, seed)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if (i / 8 + seed) % 5 < 3 || i % 3 == 0 {
                0.0
            } else {
                v
            }
        })
        .collect()
}
