//! Shapes and the broadcasting rule.

use crate::{Result, TensorError};
use smallvec::{smallvec, SmallVec};
use std::fmt;

/// The extent of each axis of a tensor, outermost first (row-major).
///
/// A rank-0 shape `[]` is a scalar with one element. Shapes of up to
/// [`INLINE_RANK`] axes live inline, so making one never allocates.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Dims);

/// Axes a [`Shape`] holds without a heap allocation.
pub const INLINE_RANK: usize = 4;

/// Per-axis values (extents or strides), inline up to [`INLINE_RANK`] axes.
pub type Dims = SmallVec<[usize; INLINE_RANK]>;

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: &[usize]) -> Self {
        Shape(Dims::from_slice(dims))
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major strides, in elements.
    pub fn strides(&self) -> Dims {
        let mut strides: Dims = smallvec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }

    /// Splits the shape around `axis` into (outer, axis length, inner) extents.
    pub(crate) fn split_at_axis(
        &self,
        op: &'static str,
        axis: usize,
    ) -> Result<(usize, usize, usize)> {
        if axis >= self.rank() {
            return Err(TensorError::AxisOutOfRange {
                op,
                axis,
                shape: self.clone(),
            });
        }
        let outer = self.0[..axis].iter().product();
        let inner = self.0[axis + 1..].iter().product();
        Ok((outer, self.0[axis], inner))
    }

    /// The shape both operands broadcast to (NumPy rules: align trailing axes;
    /// each pair must be equal or one of them 1).
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] naming `op` when the shapes are incompatible.
    pub fn broadcast(op: &'static str, lhs: &Shape, rhs: &Shape) -> Result<Shape> {
        let rank = lhs.rank().max(rhs.rank());
        let mut out: Dims = smallvec![0; rank];
        for (i, slot) in out.iter_mut().enumerate() {
            let a = lhs.dim_from_right(rank - 1 - i);
            let b = rhs.dim_from_right(rank - 1 - i);
            *slot = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => {
                    return Err(TensorError::ShapeMismatch {
                        op,
                        lhs: lhs.clone(),
                        rhs: rhs.clone(),
                    })
                }
            };
        }
        Ok(Shape(out))
    }

    /// Strides of `self` seen as broadcast to `out`: 0 along every broadcast axis.
    pub(crate) fn broadcast_strides(&self, out: &Shape) -> Dims {
        let own = self.strides();
        let offset = out.rank() - self.rank();
        (0..out.rank())
            .map(|i| {
                if i < offset || self.0[i - offset] == 1 {
                    0
                } else {
                    own[i - offset]
                }
            })
            .collect()
    }

    fn dim_from_right(&self, k: usize) -> usize {
        if k < self.0.len() {
            self.0[self.0.len() - 1 - k]
        } else {
            1
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape::new(dims)
    }
}

/// Calls `f(out_index, lhs_offset, rhs_offset)` for every element of `out`, in
/// row-major order, where the offsets follow the broadcast strides given.
pub(crate) fn for_each_broadcast(
    out: &Shape,
    lhs_strides: &[usize],
    rhs_strides: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let dims = out.dims();
    let rank = dims.len();
    let n = out.numel();
    if n == 0 {
        return;
    }
    let mut index = vec![0usize; rank];
    let (mut a, mut b) = (0usize, 0usize);
    for i in 0..n {
        f(i, a, b);
        // Increment the multi-index like an odometer, keeping offsets in step.
        for ax in (0..rank).rev() {
            index[ax] += 1;
            a += lhs_strides[ax];
            b += rhs_strides[ax];
            if index[ax] < dims[ax] {
                break;
            }
            a -= lhs_strides[ax] * dims[ax];
            b -= rhs_strides[ax] * dims[ax];
            index[ax] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy_rules() {
        let s = |d: &[usize]| Shape::new(d);
        assert_eq!(
            Shape::broadcast("t", &s(&[4, 3]), &s(&[3])).unwrap(),
            s(&[4, 3])
        );
        assert_eq!(
            Shape::broadcast("t", &s(&[4, 1]), &s(&[1, 5])).unwrap(),
            s(&[4, 5])
        );
        assert_eq!(
            Shape::broadcast("t", &s(&[]), &s(&[2, 2])).unwrap(),
            s(&[2, 2])
        );
        let err = Shape::broadcast("add", &s(&[4, 3]), &s(&[4])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "add: shapes [4, 3] and [4] are not compatible"
        );
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(Shape::new(&[2, 3, 4]).strides().as_slice(), &[12, 4, 1]);
        assert_eq!(Shape::new(&[]).numel(), 1);
    }
}
