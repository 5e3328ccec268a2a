//! The six tile transforms of Winograd's F(2×2, 3×3) (Lavin and Gray,
//! *Fast Algorithms for Convolutional Neural Networks*, 2016), each applied
//! first to the rows of a tile and then to its columns.
//!
//! ```text
//!        ⎡1  0 −1  0⎤        ⎡ 1    0    0 ⎤        ⎡1  1  1  0⎤
//! Bᵀ  =  ⎢0  1  1  0⎥   G =  ⎢1/2  1/2  1/2⎥   Aᵀ = ⎣0  1 −1 −1⎦
//!        ⎢0 −1  1  0⎥        ⎢1/2 −1/2  1/2⎥
//!        ⎣0  1  0 −1⎦        ⎣ 0    0    1 ⎦
//! ```
//!
//! A 2×2 block of outputs is `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for the 3×3
//! kernel `g` and the 4×4 input tile `d` it reads: 16 multiplies where the
//! direct sum takes 36. The forward pass uses the three transforms; the
//! backward pass their adjoints (`A dY Aᵀ`, `B dV Bᵀ`, `Gᵀ dU G`), so the
//! gradients are those of exactly the sums the forward pass computed.
//!
//! The convolution applies the kernel transforms here one kernel at a time,
//! and the input and output transforms a row of tiles at a time (`tiles`);
//! the one-tile forms of those are kept here, for the tests, as the
//! reference the row forms are checked against.

use crate::Float;

/// `Bᵀ x` for one row or column of four values.
#[cfg(test)]
fn bt<T: Float>([a, b, c, d]: [T; 4]) -> [T; 4] {
    [a - c, b + c, c - b, b - d]
}

/// `B x`, the adjoint of [`bt`].
#[cfg(test)]
fn b<T: Float>([a, b, c, d]: [T; 4]) -> [T; 4] {
    [a, b - c + d, b + c - a, -d]
}

/// `G x` for three values, with `half` = 1/2.
#[inline(always)]
fn g<T: Float>([a, b, c]: [T; 3], half: T) -> [T; 4] {
    [a, (a + b + c) * half, (a - b + c) * half, c]
}

/// `Gᵀ x`, the adjoint of [`g`].
#[inline(always)]
fn gt<T: Float>([a, b, c, d]: [T; 4], half: T) -> [T; 3] {
    [a + (b + c) * half, (b - c) * half, (b + c) * half + d]
}

/// `Aᵀ x`: four values to two.
#[cfg(test)]
fn at<T: Float>([a, b, c, d]: [T; 4]) -> [T; 2] {
    [a + b + c, b - c - d]
}

/// `A x`, the adjoint of [`at`].
#[cfg(test)]
fn a<T: Float>([x, y]: [T; 2]) -> [T; 4] {
    [x, x + y, x - y, -y]
}

/// Applies `f` to each row of `x`, then `h` to each column of the result.
/// With `f(r) = M r` and `h(c) = N c` for matrices `M` and `N`, this is
/// `N X Mᵀ`: so `rows_then_columns(d, bt, bt)` is `Bᵀ d B`.
#[inline(always)]
fn rows_then_columns<T: Copy, const R: usize, const C: usize, const C2: usize, const R2: usize>(
    x: [[T; C]; R],
    f: impl Fn([T; C]) -> [T; C2],
    h: impl Fn([T; R]) -> [T; R2],
) -> [[T; C2]; R2] {
    let rows = x.map(f);
    let cols: [[T; R2]; C2] = std::array::from_fn(|j| h(std::array::from_fn(|i| rows[i][j])));
    std::array::from_fn(|i| std::array::from_fn(|j| cols[j][i]))
}

/// The input transform `Bᵀ d B` of a 4×4 tile.
#[cfg(test)]
pub(super) fn input<T: Float>(d: [[T; 4]; 4]) -> [[T; 4]; 4] {
    rows_then_columns(d, bt, bt)
}

/// The adjoint of [`input`]: `B dV Bᵀ`.
#[cfg(test)]
pub(super) fn input_adjoint<T: Float>(dv: [[T; 4]; 4]) -> [[T; 4]; 4] {
    rows_then_columns(dv, b, b)
}

/// The kernel transform `G g Gᵀ` of a 3×3 kernel.
#[inline(always)]
pub(super) fn kernel<T: Float>(k: [[T; 3]; 3]) -> [[T; 4]; 4] {
    let half = T::from_f64(0.5);
    rows_then_columns(k, |r| g(r, half), |c| g(c, half))
}

/// The adjoint of [`kernel`]: `Gᵀ dU G`.
#[inline(always)]
pub(super) fn kernel_adjoint<T: Float>(du: [[T; 4]; 4]) -> [[T; 3]; 3] {
    let half = T::from_f64(0.5);
    rows_then_columns(du, |r| gt(r, half), |c| gt(c, half))
}

/// The output transform `Aᵀ m A` of a 4×4 tile of products.
#[cfg(test)]
pub(super) fn output<T: Float>(m: [[T; 4]; 4]) -> [[T; 2]; 2] {
    rows_then_columns(m, at, at)
}

/// The adjoint of [`output`]: `A dY Aᵀ`.
#[cfg(test)]
pub(super) fn output_adjoint<T: Float>(dy: [[T; 2]; 2]) -> [[T; 4]; 4] {
    rows_then_columns(dy, a, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    type M = Vec<Vec<f64>>;

    fn mul(x: &M, y: &M) -> M {
        (0..x.len())
            .map(|i| {
                (0..y[0].len())
                    .map(|j| (0..y.len()).map(|k| x[i][k] * y[k][j]).sum())
                    .collect()
            })
            .collect()
    }

    fn tr(x: &M) -> M {
        (0..x[0].len())
            .map(|j| x.iter().map(|r| r[j]).collect())
            .collect()
    }

    fn bt_m() -> M {
        let r = |v: [f64; 4]| v.to_vec();
        vec![
            r([1., 0., -1., 0.]),
            r([0., 1., 1., 0.]),
            r([0., -1., 1., 0.]),
            r([0., 1., 0., -1.]),
        ]
    }

    fn g_m() -> M {
        vec![
            vec![1., 0., 0.],
            vec![0.5, 0.5, 0.5],
            vec![0.5, -0.5, 0.5],
            vec![0., 0., 1.],
        ]
    }

    fn at_m() -> M {
        vec![vec![1., 1., 1., 0.], vec![0., 1., -1., -1.]]
    }

    fn of<const R: usize, const C: usize>(x: [[f64; C]; R]) -> M {
        x.iter().map(|r| r.to_vec()).collect()
    }

    fn values<const R: usize, const C: usize>(seed: usize) -> [[f64; C]; R] {
        std::array::from_fn(|i| std::array::from_fn(|j| ((seed + 7 * i + 3 * j) % 11) as f64 - 4.5))
    }

    /// Each transform is the matrix product of the module's comment.
    #[test]
    fn transforms_are_the_matrix_products() {
        let d = values::<4, 4>(1);
        assert_eq!(of(input(d)), mul(&mul(&bt_m(), &of(d)), &tr(&bt_m())));
        assert_eq!(
            of(input_adjoint(d)),
            mul(&mul(&tr(&bt_m()), &of(d)), &bt_m())
        );
        let k = values::<3, 3>(2);
        assert_eq!(of(kernel(k)), mul(&mul(&g_m(), &of(k)), &tr(&g_m())));
        assert_eq!(
            of(kernel_adjoint(d)),
            mul(&mul(&tr(&g_m()), &of(d)), &g_m())
        );
        assert_eq!(of(output(d)), mul(&mul(&at_m(), &of(d)), &tr(&at_m())));
        let y = values::<2, 2>(3);
        assert_eq!(
            of(output_adjoint(y)),
            mul(&mul(&tr(&at_m()), &of(y)), &at_m())
        );
    }

    /// The three transforms together compute the 2×2 outputs of a 3×3
    /// cross-correlation over a 4×4 tile.
    #[test]
    fn one_tile_is_a_cross_correlation() {
        let (d, k) = (values::<4, 4>(5), values::<3, 3>(9));
        let (u, v) = (kernel(k), input(d));
        let m: [[f64; 4]; 4] = std::array::from_fn(|i| std::array::from_fn(|j| u[i][j] * v[i][j]));
        let y = output(m);
        for (oy, row) in y.iter().enumerate() {
            for (ox, &got) in row.iter().enumerate() {
                let want: f64 = (0..3)
                    .flat_map(|i| (0..3).map(move |j| (i, j)))
                    .map(|(i, j)| k[i][j] * d[oy + i][ox + j])
                    .sum();
                assert!((got - want).abs() < 1e-12, "({oy}, {ox}): {got} vs {want}");
            }
        }
    }
}
