//! Reductions: over all elements or along one axis. Sums run in index order,
//! so results never depend on the number of threads.

use crate::{Float, Result, Shape, Tensor, TensorError};

impl<T: Float> Tensor<T> {
    /// Sum of all elements (0 for an empty tensor).
    pub fn sum_all(&self) -> T {
        self.data().iter().copied().sum()
    }

    /// Mean of all elements.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] for an empty tensor.
    pub fn mean_all(&self) -> Result<T> {
        if self.is_empty() {
            return Err(TensorError::InvalidArgument {
                op: "mean",
                reason: "the tensor is empty".into(),
            });
        }
        Ok(self.sum_all() / T::from_usize(self.len()))
    }

    /// The shape left after reducing `axis` (kept as 1 with `keepdim`).
    ///
    /// # Errors
    /// [`TensorError::AxisOutOfRange`].
    pub fn reduced_shape(&self, op: &'static str, axis: usize, keepdim: bool) -> Result<Shape> {
        self.shape().split_at_axis(op, axis)?;
        let mut dims = crate::Dims::from_slice(self.dims());
        if keepdim {
            dims[axis] = 1;
        } else {
            dims.remove(axis);
        }
        Ok(Shape::new(&dims))
    }

    /// Sum along `axis`.
    ///
    /// # Errors
    /// [`TensorError::AxisOutOfRange`].
    pub fn sum_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor<T>> {
        let out = self.reduced_shape("sum_axis", axis, keepdim)?;
        let data = self.fold_axis("sum_axis", axis, T::ZERO, |acc, x| acc + x)?;
        Ok(Tensor::from_parts(out, data))
    }

    /// Mean along `axis`.
    ///
    /// # Errors
    /// [`TensorError::AxisOutOfRange`], or [`TensorError::InvalidArgument`] if the axis is empty.
    pub fn mean_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor<T>> {
        let n = self.axis_len("mean_axis", axis)?;
        Ok(self
            .sum_axis(axis, keepdim)?
            .mul_scalar(T::ONE / T::from_usize(n)))
    }

    /// Maximum along `axis`.
    ///
    /// # Errors
    /// [`TensorError::AxisOutOfRange`], or [`TensorError::InvalidArgument`] if the axis is empty.
    pub fn max_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor<T>> {
        self.axis_len("max_axis", axis)?;
        let out = self.reduced_shape("max_axis", axis, keepdim)?;
        let first = self.first_along("max_axis", axis)?;
        let data = self.fold_axis_from(
            "max_axis",
            axis,
            first,
            |acc, x| if x > acc { x } else { acc },
        )?;
        Ok(Tensor::from_parts(out, data))
    }

    /// Index of the maximum along `axis` (the first one on ties), laid out in the
    /// row-major order of the reduced shape.
    ///
    /// # Errors
    /// [`TensorError::AxisOutOfRange`], or [`TensorError::InvalidArgument`] if the axis is empty.
    pub fn argmax_axis(&self, axis: usize) -> Result<Vec<usize>> {
        self.axis_len("argmax_axis", axis)?;
        let (outer, len, inner) = self.shape().split_at_axis("argmax_axis", axis)?;
        let d = self.data();
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let base = o * len * inner + i;
                let mut best = 0;
                for k in 1..len {
                    if d[base + k * inner] > d[base + best * inner] {
                        best = k;
                    }
                }
                out.push(best);
            }
        }
        Ok(out)
    }

    fn axis_len(&self, op: &'static str, axis: usize) -> Result<usize> {
        let (_, len, _) = self.shape().split_at_axis(op, axis)?;
        if len == 0 {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!("axis {axis} is empty"),
            });
        }
        Ok(len)
    }

    fn first_along(&self, op: &'static str, axis: usize) -> Result<Vec<T>> {
        let (outer, len, inner) = self.shape().split_at_axis(op, axis)?;
        let d = self.data();
        Ok((0..outer)
            .flat_map(|o| (0..inner).map(move |i| d[o * len * inner + i]))
            .collect())
    }

    fn fold_axis(
        &self,
        op: &'static str,
        axis: usize,
        init: T,
        f: impl Fn(T, T) -> T,
    ) -> Result<Vec<T>> {
        let (outer, _, inner) = self.shape().split_at_axis(op, axis)?;
        self.fold_axis_from(op, axis, vec![init; outer * inner], f)
    }

    fn fold_axis_from(
        &self,
        op: &'static str,
        axis: usize,
        mut acc: Vec<T>,
        f: impl Fn(T, T) -> T,
    ) -> Result<Vec<T>> {
        let (outer, len, inner) = self.shape().split_at_axis(op, axis)?;
        let d = self.data();
        for o in 0..outer {
            let out = &mut acc[o * inner..(o + 1) * inner];
            for k in 0..len {
                let row = &d[(o * len + k) * inner..(o * len + k + 1) * inner];
                for (a, &x) in out.iter_mut().zip(row) {
                    *a = f(*a, x);
                }
            }
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_reductions() {
        let x = Tensor::<f64>::from_f64s(&[1., 5., 3., 4., 2., 6.], &[2, 3]).unwrap();
        assert_eq!(x.sum_axis(0, false).unwrap().data(), &[5., 7., 9.]);
        assert_eq!(x.sum_axis(1, true).unwrap().dims(), &[2, 1]);
        assert_eq!(x.mean_axis(1, false).unwrap().data(), &[3., 4.]);
        assert_eq!(x.max_axis(1, false).unwrap().data(), &[5., 6.]);
        assert_eq!(x.argmax_axis(1).unwrap(), vec![1, 2]);
        assert_eq!(x.argmax_axis(0).unwrap(), vec![1, 0, 1]);
        assert!(matches!(
            x.sum_axis(2, false),
            Err(TensorError::AxisOutOfRange { .. })
        ));
        assert_eq!(x.sum_all(), 21.0);
    }
}
