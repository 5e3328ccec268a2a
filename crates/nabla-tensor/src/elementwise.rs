//! Elementwise maths: unary maps, broadcasting binary ops, scalar ops, and the
//! reduction of a broadcast result back to an operand's shape.

use crate::shape::for_each_broadcast;
use crate::{Float, Result, Shape, Tensor, TensorError};

impl<T: Float> Tensor<T> {
    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(T) -> T) -> Tensor<T> {
        Tensor::build(self.shape().clone(), |out| {
            out.extend(self.data().iter().map(|&v| f(v)));
        })
    }

    /// Combines two tensors elementwise with broadcasting (NumPy rules).
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] naming `op` when the shapes do not broadcast.
    pub fn zip_with(
        &self,
        other: &Tensor<T>,
        op: &'static str,
        f: impl Fn(T, T) -> T,
    ) -> Result<Tensor<T>> {
        let (a, b) = (self.data(), other.data());
        // Fast paths first: equal shapes, a scalar operand, and a trailing
        // operand such as a bias row (the common cases in a network).
        if self.shape() == other.shape() {
            return Ok(Tensor::build(self.shape().clone(), |out| {
                out.extend(a.iter().zip(b).map(|(&x, &y)| f(x, y)));
            }));
        }
        if other.len() == 1 && other.rank() <= self.rank() {
            let y = b[0];
            return Ok(Tensor::build(self.shape().clone(), |out| {
                out.extend(a.iter().map(|&x| f(x, y)));
            }));
        }
        let out = Shape::broadcast(op, self.shape(), other.shape())?;
        if &out == self.shape() && is_trailing(other.shape(), &out) && !b.is_empty() {
            return Ok(Tensor::build(out, |data| {
                for row in a.chunks(b.len()) {
                    data.extend(row.iter().zip(b).map(|(&x, &y)| f(x, y)));
                }
            }));
        }
        let sa = self.shape().broadcast_strides(&out);
        let sb = other.shape().broadcast_strides(&out);
        let shape = out.clone();
        Ok(Tensor::build(shape, |data| {
            for_each_broadcast(&out, &sa, &sb, |_, i, j| data.push(f(a[i], b[j])));
        }))
    }

    /// `self + other`, broadcasting.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] when the shapes do not broadcast.
    pub fn add(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_with(other, "add", |x, y| x + y)
    }

    /// `self - other`, broadcasting.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] when the shapes do not broadcast.
    pub fn sub(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_with(other, "sub", |x, y| x - y)
    }

    /// `self * other` elementwise, broadcasting.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] when the shapes do not broadcast.
    pub fn mul(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_with(other, "mul", |x, y| x * y)
    }

    /// `self / other` elementwise, broadcasting.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] when the shapes do not broadcast.
    pub fn div(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_with(other, "div", |x, y| x / y)
    }

    /// `self + s` for every element.
    pub fn add_scalar(&self, s: T) -> Tensor<T> {
        self.map(|x| x + s)
    }

    /// `self * s` for every element.
    pub fn mul_scalar(&self, s: T) -> Tensor<T> {
        self.map(|x| x * s)
    }

    /// In place: `self += alpha * other` (shapes must be equal). The workhorse of
    /// gradient accumulation and optimiser updates; never reallocates an unshared buffer.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] when the shapes differ.
    pub fn add_scaled_(&mut self, alpha: T, other: &Tensor<T>) -> Result<()> {
        if self.shape() != other.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "add_scaled_",
                lhs: self.shape().clone(),
                rhs: other.shape().clone(),
            });
        }
        for (x, &y) in self.data_mut().iter_mut().zip(other.data()) {
            *x += alpha * y;
        }
        Ok(())
    }

    /// In place: every element set to `value`.
    pub fn fill_(&mut self, value: T) {
        self.data_mut().iter_mut().for_each(|x| *x = value);
    }

    /// Sums a tensor that was produced by broadcasting back down to `target`
    /// (the backward of every broadcasting op).
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] if `target` does not broadcast to `self`'s shape.
    pub fn sum_to_shape(&self, target: &Shape) -> Result<Tensor<T>> {
        if self.shape() == target {
            return Ok(self.clone());
        }
        let out = Shape::broadcast("sum_to_shape", target, self.shape())?;
        if &out != self.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "sum_to_shape",
                lhs: self.shape().clone(),
                rhs: target.clone(),
            });
        }
        Ok(Tensor::build(target.clone(), |acc| {
            acc.resize(target.numel(), T::ZERO);
            if is_trailing(target, &out) && !acc.is_empty() {
                // e.g. a bias gradient: sum the rows in order.
                for row in self.data().chunks(acc.len()) {
                    for (a, &g) in acc.iter_mut().zip(row) {
                        *a += g;
                    }
                }
            } else {
                let st = target.broadcast_strides(&out);
                let own = out.strides();
                let data = self.data();
                for_each_broadcast(&out, &own, &st, |_, i, j| acc[j] += data[i]);
            }
        }))
    }
}

/// True when `small` equals the trailing axes of `big` (after dropping leading 1s).
fn is_trailing(small: &Shape, big: &Shape) -> bool {
    let s = small.dims();
    let skip = s.iter().take_while(|&&d| d == 1).count();
    let s = &s[skip..];
    s.len() <= big.rank() && big.dims()[big.rank() - s.len()..] == *s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
        Tensor::from_f64s(v, s).unwrap()
    }

    #[test]
    fn broadcasting_column_and_row() {
        let col = t(&[1., 2.], &[2, 1]);
        let row = t(&[10., 20., 30.], &[1, 3]);
        let s = col.add(&row).unwrap();
        assert_eq!(s.dims(), &[2, 3]);
        assert_eq!(s.data(), &[11., 21., 31., 12., 22., 32.]);
        let back = s.sum_to_shape(col.shape()).unwrap();
        assert_eq!(back.data(), &[63., 66.]);
        let back = s.sum_to_shape(&Shape::new(&[3])).unwrap();
        assert_eq!(back.data(), &[23., 43., 63.]);
    }

    #[test]
    fn scalar_and_mismatch() {
        let x = t(&[1., 2., 3.], &[3]);
        assert_eq!(x.mul(&Tensor::scalar(2.0)).unwrap().data(), &[2., 4., 6.]);
        assert!(x.add(&t(&[1., 2.], &[2])).is_err());
        let mut y = x.clone();
        y.add_scaled_(-0.5, &x).unwrap();
        assert_eq!(y.data(), &[0.5, 1.0, 1.5]);
    }
}
