//! Plain SGD on a gradient held as an outer product `u vᵀ` (a dense layer's
//! weight gradient at batch 1), applied without forming it, and skipping
//! the strips of columns where `v` is zero (an image's blank pixels).

use nabla_autograd::OuterProduct;
use nabla_tensor::Float;
use smallvec::SmallVec;

/// Plain SGD with the gradient `u vᵀ` held as its vectors: row `i` of `w`
/// becomes `w - lr · (uᵢ · vⱼ)`, one pass over `w`. Each gradient element
/// is rounded as the formed product rounds it (`uᵢ · vⱼ + 0`, as a fused
/// multiply-add onto zero does: a zero product is `+0`), and the update is
/// SGD's `w -= lr · g`, so the weights are the bits of forming the
/// gradient and stepping with it (tested).
pub(super) fn sgd_outer_widest<T: Float>(lr: T, w: &mut [T], o: &OuterProduct<T>) {
    // At the optimiser family's level: elementwise, the same bits at each.
    nabla_tensor::Kernel::OptimizerUpdate.run(
        #[inline(always)]
        || sgd_outer(lr, w, o),
    );
}

#[inline(always)]
fn sgd_outer<T: Float>(lr: T, w: &mut [T], o: &OuterProduct<T>) {
    let v = o.v();
    let n = v.len().max(1);
    if let Some(live) = live_strips(lr, o) {
        // Only the strips of columns where v is not all zero.
        let full = v.len() / STRIP;
        for (row, &u) in w.chunks_exact_mut(n).zip(o.u()) {
            for &s in &live {
                let s = s as usize;
                if s < full {
                    // Fixed-size arrays, so that a strip is one vector.
                    let at = s * STRIP;
                    let row: &mut [T; STRIP] = (&mut row[at..at + STRIP]).try_into().unwrap();
                    let v: &[T; STRIP] = v[at..at + STRIP].try_into().unwrap();
                    for (wj, &vj) in row.iter_mut().zip(v) {
                        let g = u * vj + T::ZERO;
                        *wj -= lr * g;
                    }
                } else {
                    for (wj, &vj) in row[s * STRIP..].iter_mut().zip(&v[s * STRIP..]) {
                        let g = u * vj + T::ZERO;
                        *wj -= lr * g;
                    }
                }
            }
        }
        return;
    }
    for (row, &u) in w.chunks_exact_mut(n).zip(o.u()) {
        for (wj, &vj) in row.iter_mut().zip(v) {
            let g = u * vj + T::ZERO;
            *wj -= lr * g;
        }
    }
}

/// Columns per strip that [`sgd_outer`] skips when `v` is zero in all of them.
const STRIP: usize = 8;

/// The strips of `v` (of [`STRIP`] columns, the last one maybe shorter)
/// that hold a nonzero value, when skipping the others pays and changes no
/// bit; `None` when every column is to be updated.
///
/// A zero `vⱼ` makes the gradient element `uᵢ · 0 + 0 = +0` and leaves the
/// weight as it is (`w - lr · 0 = w`, `-0` included), unless `uᵢ` or `lr` is
/// infinite or NaN, which turns it into NaN: then nothing is skipped. At
/// batch 1 `v` is the layer's input, for an image 81% zeros, and two in
/// five strips of eight pixels are live: the update then reads and writes
/// those only. Without a quarter of the strips zero it is not worth a list.
fn live_strips<T: Float>(lr: T, o: &OuterProduct<T>) -> Option<SmallVec<[u16; 256]>> {
    let v = o.v();
    let strips = v.len().div_ceil(STRIP);
    // A negative rate would turn a weight of -0 into +0 (w - (-0)).
    if strips > 256 || !lr.is_finite() || lr < T::ZERO {
        return None;
    }
    let live: SmallVec<[u16; 256]> = (0..strips)
        .filter(|&s| {
            v[s * STRIP..((s + 1) * STRIP).min(v.len())]
                .iter()
                .any(|&x| x != T::ZERO)
        })
        .map(|s| s as u16)
        .collect();
    let pays = 4 * (strips - live.len()) >= strips;
    (pays && o.u().iter().all(|u| u.is_finite())).then_some(live)
}
