//! Layout ops: reshape, flatten, transpose/permute, gather by label, one-hot.

use crate::{Float, Result, Shape, Tensor, TensorError};

impl<T: Float> Tensor<T> {
    /// The same elements under a new shape (no copy).
    ///
    /// # Errors
    /// [`TensorError::DataLength`] if the element counts differ.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor<T>> {
        let new = Shape::new(shape);
        if new.numel() != self.len() {
            return Err(TensorError::DataLength {
                op: "reshape",
                expected: new.numel(),
                found: self.len(),
                shape: new,
            });
        }
        let mut out = self.clone();
        out.set_shape(new);
        Ok(out)
    }

    /// Collapses every axis from `start` on into one: `[N, C, H, W]` with
    /// `start = 1` becomes `[N, C*H*W]`, as the material's Affine layer does.
    ///
    /// # Errors
    /// [`TensorError::AxisOutOfRange`] if `start > rank`.
    pub fn flatten_from(&self, start: usize) -> Result<Tensor<T>> {
        if start > self.rank() {
            return Err(TensorError::AxisOutOfRange {
                op: "flatten",
                axis: start,
                shape: self.shape().clone(),
            });
        }
        let mut dims: Vec<usize> = self.dims()[..start].to_vec();
        dims.push(self.dims()[start..].iter().product());
        self.reshape(&dims)
    }

    /// Reorders the axes: output axis `i` is input axis `axes[i]` (copies).
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] unless `axes` is a permutation of `0..rank`.
    pub fn permute(&self, axes: &[usize]) -> Result<Tensor<T>> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if axes.len() != rank
            || axes
                .iter()
                .any(|&a| a >= rank || std::mem::replace(&mut seen[a], true))
        {
            return Err(TensorError::InvalidArgument {
                op: "permute",
                reason: format!(
                    "{axes:?} is not a permutation of the axes of shape {}",
                    self.shape()
                ),
            });
        }
        let in_strides = self.shape().strides();
        let out_dims: Vec<usize> = axes.iter().map(|&a| self.dims()[a]).collect();
        let strides: Vec<usize> = axes.iter().map(|&a| in_strides[a]).collect();
        let out = Shape::new(&out_dims);
        let zero = vec![0; rank];
        let d = self.data();
        let mut data = Vec::with_capacity(self.len());
        crate::shape::for_each_broadcast(&out, &strides, &zero, |_, i, _| data.push(d[i]));
        Ok(Tensor::from_parts(out, data))
    }

    /// Swaps the last two axes (a matrix transpose for rank 2).
    ///
    /// # Errors
    /// [`TensorError::RankMismatch`] for rank < 2.
    pub fn transpose(&self) -> Result<Tensor<T>> {
        let r = self.rank();
        if r < 2 {
            return Err(TensorError::RankMismatch {
                op: "transpose",
                expected: 2,
                shape: self.shape().clone(),
            });
        }
        let mut axes: Vec<usize> = (0..r).collect();
        axes.swap(r - 2, r - 1);
        self.permute(&axes)
    }

    /// For a `[N, C]` tensor and `N` labels, the `N` values `self[i, labels[i]]`.
    ///
    /// # Errors
    /// [`TensorError::RankMismatch`], [`TensorError::DataLength`] if the label count is not `N`,
    /// [`TensorError::IndexOutOfRange`] for a label ≥ `C`.
    pub fn gather_rows(&self, labels: &[usize]) -> Result<Tensor<T>> {
        let (n, c) = self.as_matrix_dims("gather_rows")?;
        check_labels("gather_rows", labels, n, c)?;
        let d = self.data();
        Ok(Tensor::build(Shape::new(&[n]), |data| {
            data.extend(labels.iter().enumerate().map(|(i, &l)| d[i * c + l]));
        }))
    }

    /// One-hot rows: a `[labels.len(), classes]` tensor with a 1 at each label.
    ///
    /// # Errors
    /// [`TensorError::IndexOutOfRange`] for a label ≥ `classes`.
    pub fn one_hot(labels: &[usize], classes: usize) -> Result<Tensor<T>> {
        check_labels("one_hot", labels, labels.len(), classes)?;
        Ok(Tensor::build(
            Shape::new(&[labels.len(), classes]),
            |data| {
                data.resize(labels.len() * classes, T::ZERO);
                for (i, &l) in labels.iter().enumerate() {
                    data[i * classes + l] = T::ONE;
                }
            },
        ))
    }

    /// The two dimensions of a rank-2 tensor.
    ///
    /// # Errors
    /// [`TensorError::RankMismatch`] for any other rank.
    pub fn as_matrix_dims(&self, op: &'static str) -> Result<(usize, usize)> {
        match self.dims() {
            &[r, c] => Ok((r, c)),
            _ => Err(TensorError::RankMismatch {
                op,
                expected: 2,
                shape: self.shape().clone(),
            }),
        }
    }
}

/// Checks a label vector against a batch size and a class count.
pub(crate) fn check_labels(
    op: &'static str,
    labels: &[usize],
    n: usize,
    classes: usize,
) -> Result<()> {
    if labels.len() != n {
        return Err(TensorError::DataLength {
            op,
            shape: Shape::new(&[n]),
            expected: n,
            found: labels.len(),
        });
    }
    match labels.iter().find(|&&l| l >= classes) {
        Some(&l) => Err(TensorError::IndexOutOfRange {
            op,
            index: l,
            bound: classes,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_and_transpose() {
        let x = Tensor::<f64>::from_f64s(&[0., 1., 2., 3., 4., 5.], &[2, 3]).unwrap();
        let t = x.transpose().unwrap();
        assert_eq!(t.dims(), &[3, 2]);
        assert_eq!(t.data(), &[0., 3., 1., 4., 2., 5.]);
        let y = Tensor::<f64>::from_f64s(&(0..24).map(f64::from).collect::<Vec<_>>(), &[2, 3, 4])
            .unwrap();
        let p = y.permute(&[2, 0, 1]).unwrap();
        assert_eq!(p.dims(), &[4, 2, 3]);
        assert_eq!(p.get(&[3, 1, 2]).unwrap(), y.get(&[1, 2, 3]).unwrap());
        assert!(y.permute(&[0, 0, 1]).is_err());
    }

    #[test]
    fn gather_and_one_hot() {
        let x = Tensor::<f64>::from_f64s(&[0.1, 0.2, 0.7, 0.3, 0.3, 0.4], &[2, 3]).unwrap();
        assert_eq!(x.gather_rows(&[2, 0]).unwrap().data(), &[0.7, 0.3]);
        assert!(matches!(
            x.gather_rows(&[3, 0]),
            Err(TensorError::IndexOutOfRange {
                index: 3,
                bound: 3,
                ..
            })
        ));
        assert!(x.gather_rows(&[0]).is_err());
        let h = Tensor::<f32>::one_hot(&[1, 0], 2).unwrap();
        assert_eq!(h.data(), &[0., 1., 1., 0.]);
    }

    #[test]
    fn reshape_and_flatten() {
        let x = Tensor::<f32>::zeros(&[2, 3, 4]);
        assert_eq!(x.flatten_from(1).unwrap().dims(), &[2, 12]);
        assert!(x.reshape(&[5, 5]).is_err());
    }
}
