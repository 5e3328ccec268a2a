//! The tile transforms of [`super::transform`], applied to every tile of a
//! plane at once, so that each is one long loop over the tiles with
//! unit-stride loads and stores (which the compiler turns into vector
//! operations), however narrow the plane.
//!
//! A plane is kept as four *quarter planes*: `q[2r + c][y][x]` is pixel
//! `(2y + r, 2x + c)`. Tile `(ty, tx)` reads pixels `2ty … 2ty + 3` down and
//! `2tx … 2tx + 3` across, which are the elements `(ty, tx)`, `(ty, tx + 1)`,
//! `(ty + 1, tx)` and `(ty + 1, tx + 1)` of the four quarter planes. With
//! quarter planes `w2` wide, tile `k = ty·w2 + tx` reads each at offsets
//! `k`, `k + 1`, `k + w2` and `k + w2 + 1`. So the tiles are numbered `w2`
//! per row: the last of each row reads past the plane's right edge into the
//! next row, and its results are dropped (its output gradient is zero, so
//! it adds nothing to the gradients either).
//!
//! Every function takes or fills a plane's 16 positions as 16 runs of `n`
//! values (position `ξ = 4i + j`, run `ξ`). All are inlined, so that they
//! compile at the vector width their caller runs at (`Kernel::run`).

use crate::Float;

/// Tiles transformed together: their values sit in arrays of this many
/// (local, so the compiler knows nothing else writes them and keeps them
/// in vector registers).
const CHUNK: usize = 16;

/// One chunk's values of each of `N` runs.
type Chunk<T, const N: usize> = [[T; CHUNK]; N];

/// Runs `f` over tiles `0 … n` a chunk at a time: it reads chunk `k` of
/// every run of `inputs` and fills chunk `k` of every run of `outputs`
/// (a short last chunk padded with zeros, of which only the tiles are kept).
/// Every copy is of a fixed size, a few vector moves.
#[inline(always)]
fn by_chunks<T: Float, const I: usize, const O: usize>(
    inputs: [&[T]; I],
    outputs: [&mut [T]; O],
    n: usize,
    f: impl Fn(&Chunk<T, I>, &mut Chunk<T, O>),
) {
    let mut outputs = outputs;
    let mut chunk = [[T::ZERO; CHUNK]; I];
    let mut out = [[T::ZERO; CHUNK]; O];
    let whole = n - n % CHUNK;
    for k in (0..whole).step_by(CHUNK) {
        for (c, run) in chunk.iter_mut().zip(&inputs) {
            *c = run[k..k + CHUNK].try_into().expect("a whole chunk");
        }
        f(&chunk, &mut out);
        for (run, c) in outputs.iter_mut().zip(&out) {
            let dst: &mut [T; CHUNK] = (&mut run[k..k + CHUNK]).try_into().expect("a whole chunk");
            *dst = *c;
        }
    }
    if whole < n {
        let len = n - whole;
        for (c, run) in chunk.iter_mut().zip(&inputs) {
            c[..len].copy_from_slice(&run[whole..n]);
            c[len..].fill(T::ZERO);
        }
        f(&chunk, &mut out);
        for (run, c) in outputs.iter_mut().zip(&out) {
            run[whole..n].copy_from_slice(&c[..len]);
        }
    }
}

/// `Bᵀ d B` of tiles `0 … n`: `q` are the quarter planes (`w2` wide, at
/// least `n + w2 + 1` long), `out` the 16 runs.
#[inline(always)]
pub(super) fn input<T: Float>(q: [&[T]; 4], w2: usize, n: usize, out: [&mut [T]; 16]) {
    // Tile row i is quarter row i / 2 of q[2(i % 2)] (columns 0 and 2)
    // and q[2(i % 2) + 1] (columns 1 and 3), columns 2 and 3 one element
    // on: the tiles' rows a, b, c and e.
    let [q0, q1, q2, q3] = q;
    let rows = [(q0, q1, 0), (q2, q3, 0), (q0, q1, w2), (q2, q3, w2)];
    let runs: [&[T]; 16] = std::array::from_fn(|r| {
        let (even, odd, at) = rows[r / 4];
        let (quarter, shift) = match r % 4 {
            0 => (even, 0),
            1 => (odd, 0),
            2 => (even, 1),
            _ => (odd, 1),
        };
        &quarter[at + shift..at + shift + n]
    });
    by_chunks(runs, out, n, input_chunk);
}

/// [`input`] of one chunk of tiles.
#[inline(always)]
fn input_chunk<T: Float>(d: &Chunk<T, 16>, v: &mut Chunk<T, 16>) {
    {
        let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, e0, e1, e2, e3] = d;
        for l in 0..CHUNK {
            // Down the columns: Bᵀ's rows (a − c, b + c, c − b, b − e).
            let (r00, r01, r02, r03) = (a0[l] - c0[l], a1[l] - c1[l], a2[l] - c2[l], a3[l] - c3[l]);
            let (r10, r11, r12, r13) = (b0[l] + c0[l], b1[l] + c1[l], b2[l] + c2[l], b3[l] + c3[l]);
            let (r20, r21, r22, r23) = (c0[l] - b0[l], c1[l] - b1[l], c2[l] - b2[l], c3[l] - b3[l]);
            let (r30, r31, r32, r33) = (b0[l] - e0[l], b1[l] - e1[l], b2[l] - e2[l], b3[l] - e3[l]);
            // Along the rows, the same map.
            (v[0][l], v[1][l], v[2][l], v[3][l]) = (r00 - r02, r01 + r02, r02 - r01, r01 - r03);
            (v[4][l], v[5][l], v[6][l], v[7][l]) = (r10 - r12, r11 + r12, r12 - r11, r11 - r13);
            (v[8][l], v[9][l], v[10][l], v[11][l]) = (r20 - r22, r21 + r22, r22 - r21, r21 - r23);
            (v[12][l], v[13][l], v[14][l], v[15][l]) = (r30 - r32, r31 + r32, r32 - r31, r31 - r33);
        }
    }
}

/// `B dV Bᵀ` of tiles `0 … n` (`dv`: the 16 runs) into `dd`: 16 runs of
/// `n`, run `4i + j` what each tile adds to its pixel `(i, j)`.
#[inline(always)]
pub(super) fn input_adjoint<T: Float>(dv: [&[T]; 16], n: usize, dd: [&mut [T]; 16]) {
    by_chunks(dv, dd, n, input_adjoint_chunk);
}

/// [`input_adjoint`] of one chunk of tiles.
#[inline(always)]
fn input_adjoint_chunk<T: Float>(v: &Chunk<T, 16>, o: &mut Chunk<T, 16>) {
    {
        let [v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15] = v;
        for l in 0..CHUNK {
            // Along the rows: B's rows (a, b − c + d, b + c − a, −d).
            let (h00, h01, h02, h03) =
                (v0[l], v1[l] - v2[l] + v3[l], v1[l] + v2[l] - v0[l], -v3[l]);
            let (h10, h11, h12, h13) =
                (v4[l], v5[l] - v6[l] + v7[l], v5[l] + v6[l] - v4[l], -v7[l]);
            let (h20, h21, h22, h23) = (
                v8[l],
                v9[l] - v10[l] + v11[l],
                v9[l] + v10[l] - v8[l],
                -v11[l],
            );
            let (h30, h31, h32, h33) = (
                v12[l],
                v13[l] - v14[l] + v15[l],
                v13[l] + v14[l] - v12[l],
                -v15[l],
            );
            // Down the columns, the same map.
            (o[0][l], o[1][l], o[2][l], o[3][l]) = (h00, h01, h02, h03);
            (o[4][l], o[5][l], o[6][l], o[7][l]) = (
                h10 - h20 + h30,
                h11 - h21 + h31,
                h12 - h22 + h32,
                h13 - h23 + h33,
            );
            (o[8][l], o[9][l], o[10][l], o[11][l]) = (
                h10 + h20 - h00,
                h11 + h21 - h01,
                h12 + h22 - h02,
                h13 + h23 - h03,
            );
            (o[12][l], o[13][l], o[14][l], o[15][l]) = (-h30, -h31, -h32, -h33);
        }
    }
}

/// Sums the runs of [`input_adjoint`] into the quarter planes `q` (`w2`
/// wide, at least `n + w2 + 1` long, overwritten) at the pixels each tile
/// read. One pass per tile corner, so that no two tiles of a pass touch one
/// element; the first pass writes, and the elements it does not reach are
/// zeroed.
#[inline(always)]
pub(super) fn sum_into_quarters<T: Float>(dd: [&[T]; 16], w2: usize, n: usize, q: [&mut [T]; 4]) {
    let mut q = q;
    for (si, sj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let shift = si * w2 + sj;
        for (quarter, dst) in q.iter_mut().enumerate() {
            let (i, j) = (2 * si + quarter / 2, 2 * sj + quarter % 2);
            let src = &dd[4 * i + j][..n];
            if shift == 0 {
                dst[..n].copy_from_slice(src);
                dst[n..n + w2 + 1].fill(T::ZERO);
            } else {
                let dst = &mut dst[shift..shift + n];
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
            }
        }
    }
}

/// `A dY Aᵀ` of tiles `0 … n`: `dy` are the output gradient's quarter
/// planes (`[2r + c][ty][tx]` is `dY[2ty + r][2tx + c]`, zero past the
/// output), `out` the 16 runs.
#[inline(always)]
pub(super) fn output_adjoint<T: Float>(dy: [&[T]; 4], n: usize, out: [&mut [T]; 16]) {
    by_chunks(dy, out, n, output_adjoint_chunk);
}

/// [`output_adjoint`] of one chunk of tiles.
#[inline(always)]
fn output_adjoint_chunk<T: Float>(y: &Chunk<T, 4>, o: &mut Chunk<T, 16>) {
    {
        let [a, b, c, d] = y;
        for l in 0..CHUNK {
            // Each row (x, y) ↦ (x, x + y, x − y, −y); then each column.
            let (t0, t1, t2, t3) = (a[l], a[l] + b[l], a[l] - b[l], -b[l]);
            let (u0, u1, u2, u3) = (c[l], c[l] + d[l], c[l] - d[l], -d[l]);
            (o[0][l], o[1][l], o[2][l], o[3][l]) = (t0, t1, t2, t3);
            (o[4][l], o[5][l], o[6][l], o[7][l]) = (t0 + u0, t1 + u1, t2 + u2, t3 + u3);
            (o[8][l], o[9][l], o[10][l], o[11][l]) = (t0 - u0, t1 - u1, t2 - u2, t3 - u3);
            (o[12][l], o[13][l], o[14][l], o[15][l]) = (-u0, -u1, -u2, -u3);
        }
    }
}

/// `Aᵀ M A` of tiles `0 … n` (`m`: the 16 runs) into the output's quarter
/// planes `y` (`[2r + c][k]` is output `(2ty + r, 2tx + c)` of tile `k`).
#[inline(always)]
pub(super) fn output<T: Float>(m: [&[T]; 16], n: usize, y: [&mut [T]; 4]) {
    by_chunks(m, y, n, output_chunk);
}

/// [`output`] of one chunk of tiles.
#[inline(always)]
fn output_chunk<T: Float>(m: &Chunk<T, 16>, y: &mut Chunk<T, 4>) {
    {
        let [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15] = m;
        for l in 0..CHUNK {
            // Each row (a, b, c, d) ↦ (a + b + c, b − c − d); then each column.
            let (s00, s01) = (m0[l] + m1[l] + m2[l], m1[l] - m2[l] - m3[l]);
            let (s10, s11) = (m4[l] + m5[l] + m6[l], m5[l] - m6[l] - m7[l]);
            let (s20, s21) = (m8[l] + m9[l] + m10[l], m9[l] - m10[l] - m11[l]);
            let (s30, s31) = (m12[l] + m13[l] + m14[l], m13[l] - m14[l] - m15[l]);
            y[0][l] = s00 + s10 + s20;
            y[1][l] = s01 + s11 + s21;
            y[2][l] = s10 - s20 - s30;
            y[3][l] = s11 - s21 - s31;
        }
    }
}

/// Sixteen runs of `n` values `stride` apart in `buf`, from `first`.
#[inline(always)]
pub(super) fn runs<T>(buf: &[T], first: usize, stride: usize, n: usize) -> [&[T]; 16] {
    std::array::from_fn(|xi| &buf[first + xi * stride..][..n])
}

/// [`runs`], to write into; `stride` must be at least `n`.
#[inline(always)]
pub(super) fn runs_mut<T>(buf: &mut [T], first: usize, stride: usize, n: usize) -> [&mut [T]; 16] {
    assert!(stride >= n, "winograd: runs overlap");
    let mut rest = &mut buf[first..];
    std::array::from_fn(|xi| {
        let take = if xi + 1 < 16 { stride } else { n };
        let (run, tail) = std::mem::take(&mut rest).split_at_mut(take);
        rest = tail;
        &mut run[..n]
    })
}

#[cfg(test)]
mod tests {
    use super::super::transform;
    use super::*;

    /// The quarter planes of a `rows × cols` plane (both even), `cols / 2`
    /// wide, with one element of slack.
    fn quarters(plane: &[Vec<f64>]) -> [Vec<f64>; 4] {
        std::array::from_fn(|q| {
            let (r, c) = (q / 2, q % 2);
            let mut v: Vec<f64> = plane
                .iter()
                .skip(r)
                .step_by(2)
                .flat_map(|row| row.iter().skip(c).step_by(2).copied())
                .collect();
            v.push(0.0);
            v
        })
    }

    /// Every plane transform gives, tile by tile, the one-tile transform,
    /// on planes of 1 to 6 tiles a row.
    #[test]
    fn plane_transforms_are_the_tile_transforms() {
        for (th, tw) in [(1, 1), (2, 3), (3, 6), (4, 4)] {
            let w2 = tw + 1;
            let (rows, cols) = (2 * th + 2, 2 * w2);
            let plane: Vec<Vec<f64>> = (0..rows)
                .map(|y| {
                    (0..cols)
                        .map(|x| ((7 * y + 3 * x) % 13) as f64 - 6.0)
                        .collect()
                })
                .collect();
            let q = quarters(&plane);
            let n = th * w2;
            let mut v = vec![0.0; 16 * n];
            input(
                std::array::from_fn(|i| q[i].as_slice()),
                w2,
                n,
                runs_mut(&mut v, 0, n, n),
            );
            // The last tile of each row has no gradient (as in a convolution).
            let mut dv = v.clone();
            for xi in 0..16 {
                for ty in 0..th {
                    dv[xi * n + ty * w2 + tw] = 0.0;
                }
            }
            let mut dd = vec![0.0; 16 * n];
            input_adjoint(runs(&dv, 0, n, n), n, runs_mut(&mut dd, 0, n, n));
            let mut back: [Vec<f64>; 4] =
                std::array::from_fn(|_| vec![f64::NAN; (th + 1) * w2 + 1]);
            sum_into_quarters(
                runs(&dd, 0, n, n),
                w2,
                n,
                back.each_mut().map(|b| b.as_mut_slice()),
            );
            let mut want_back = vec![vec![0.0; cols]; rows];
            let mut y: [Vec<f64>; 4] = std::array::from_fn(|_| vec![0.0; n]);
            output(runs(&v, 0, n, n), n, y.each_mut().map(|b| b.as_mut_slice()));
            let dy: [Vec<f64>; 4] =
                std::array::from_fn(|q| (0..n).map(|k| ((5 * k + q) % 7) as f64 - 3.0).collect());
            let mut dm = vec![0.0; 16 * n];
            output_adjoint(
                dy.each_ref().map(|d| d.as_slice()),
                n,
                runs_mut(&mut dm, 0, n, n),
            );

            for ty in 0..th {
                for tx in 0..tw {
                    let k = ty * w2 + tx;
                    let d: [[f64; 4]; 4] = std::array::from_fn(|i| {
                        std::array::from_fn(|j| plane[2 * ty + i][2 * tx + j])
                    });
                    let tile = transform::input(d);
                    let at = |buf: &[f64]| -> [[f64; 4]; 4] {
                        std::array::from_fn(|i| std::array::from_fn(|j| buf[(4 * i + j) * n + k]))
                    };
                    assert_eq!(at(&v), tile, "input, tile {ty},{tx}");
                    assert_eq!(
                        at(&dd),
                        transform::input_adjoint(tile),
                        "B dV Bᵀ, tile {ty},{tx}"
                    );
                    for (i, row) in transform::input_adjoint(tile).iter().enumerate() {
                        for (j, &e) in row.iter().enumerate() {
                            want_back[2 * ty + i][2 * tx + j] += e;
                        }
                    }
                    let out = transform::output(tile);
                    assert_eq!(
                        [[y[0][k], y[1][k]], [y[2][k], y[3][k]]],
                        out,
                        "output {ty},{tx}"
                    );
                    let dy_tile = [[dy[0][k], dy[1][k]], [dy[2][k], dy[3][k]]];
                    assert_eq!(at(&dm), transform::output_adjoint(dy_tile), "dM {ty},{tx}");
                }
            }
            let want = quarters(&want_back);
            for qi in 0..4 {
                let len = (th + 1) * w2;
                assert_eq!(
                    back[qi][..len],
                    want[qi][..len],
                    "quarter {qi} of {th}×{tw} tiles"
                );
            }
        }
    }
}
