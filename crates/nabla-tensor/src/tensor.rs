//! The tensor type: a shape plus a shared, row-major buffer.

use crate::pool::Buffer;
use crate::{Float, Result, Shape, TensorError};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;

/// A tensor's shared buffer. Dropping the last owner hands the buffer back to
/// the element type's [`BufferPool`](crate::BufferPool) instead of freeing it.
struct Storage<T: Float>(ManuallyDrop<Buffer<T>>);

impl<T: Float> Storage<T> {
    fn new(buffer: Buffer<T>) -> Self {
        Storage(ManuallyDrop::new(buffer))
    }

    /// The elements, writable; copies them into a pooled buffer first if shared.
    fn make_mut(&mut self) -> &mut Vec<T> {
        if Arc::get_mut(&mut self.0).is_none() {
            let mut copy = T::buffer_pool().take(self.0.len());
            Arc::get_mut(&mut copy)
                .expect("a buffer fresh from the pool is unshared")
                .extend_from_slice(&self.0);
            *self = Storage::new(copy);
        }
        Arc::get_mut(&mut self.0).expect("unshared after the copy above")
    }
}

impl<T: Float> Clone for Storage<T> {
    fn clone(&self) -> Self {
        Storage::new(Arc::clone(&self.0))
    }
}

impl<T: Float> Deref for Storage<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T: Float> Drop for Storage<T> {
    fn drop(&mut self) {
        // SAFETY: `self.0` is taken exactly once, here, and never used again.
        let buffer = unsafe { ManuallyDrop::take(&mut self.0) };
        T::buffer_pool().give(buffer);
    }
}

/// An n-dimensional array of `T`, row-major and contiguous.
///
/// The buffer is reference-counted, so `clone` is cheap and a graph can keep
/// the values it needs for backward without copying them. Writing through
/// [`Tensor::data_mut`] copies the buffer first only if it is shared.
#[derive(Clone)]
pub struct Tensor<T: Float = f32> {
    shape: Shape,
    data: Storage<T>,
}

impl<T: Float> Tensor<T> {
    /// A tensor from a buffer and a shape.
    ///
    /// # Errors
    /// [`TensorError::DataLength`] if `data.len()` is not the product of `shape`.
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Result<Self> {
        let shape = Shape::new(shape);
        if data.len() != shape.numel() {
            return Err(TensorError::DataLength {
                op: "from_vec",
                expected: shape.numel(),
                found: data.len(),
                shape,
            });
        }
        Ok(Tensor {
            shape,
            data: Storage::new(Arc::new(data)),
        })
    }

    /// A tensor of `dims` from exactly their product of values, in a buffer
    /// from the pool (so that, unlike [`Tensor::from_vec`], a steady-state loop
    /// allocates nothing).
    ///
    /// # Errors
    /// [`TensorError::DataLength`] if `values` yields another count.
    pub fn from_iter_exact(dims: &[usize], values: impl IntoIterator<Item = T>) -> Result<Self> {
        let n: usize = dims.iter().product();
        Self::fill_pooled("from_iter_exact", Shape::new(dims), |v| {
            v.extend(values.into_iter().take(n + 1));
        })
    }

    /// A tensor of `dims` whose elements `fill` appends to an empty buffer
    /// from the pool (with capacity for exactly their product): the fast way to
    /// assemble a tensor from pieces, e.g. rows with `extend_from_slice`.
    ///
    /// # Errors
    /// [`TensorError::DataLength`] if `fill` appends another count.
    pub fn from_fill(dims: &[usize], fill: impl FnOnce(&mut Vec<T>)) -> Result<Self> {
        Self::fill_pooled("from_fill", Shape::new(dims), fill)
    }

    /// The one pooled constructor: `fill` appends the elements of `shape` to
    /// an empty pooled buffer; a wrong count is an error naming `op`.
    fn fill_pooled(op: &'static str, shape: Shape, fill: impl FnOnce(&mut Vec<T>)) -> Result<Self> {
        let n = shape.numel();
        let mut buffer = T::buffer_pool().take(n);
        let vec = Arc::get_mut(&mut buffer).expect("a buffer fresh from the pool is unshared");
        fill(vec);
        if vec.len() != n {
            let found = vec.len();
            T::buffer_pool().give(buffer);
            return Err(TensorError::DataLength {
                op,
                expected: n,
                found,
                shape,
            });
        }
        Ok(Tensor {
            shape,
            data: Storage::new(buffer),
        })
    }

    /// A tensor from `f64` values, converted to `T` (handy in tests and examples).
    ///
    /// # Errors
    /// As [`Tensor::from_vec`].
    pub fn from_f64s(values: &[f64], shape: &[usize]) -> Result<Self> {
        Self::from_vec(values.iter().map(|&v| T::from_f64(v)).collect(), shape)
    }

    /// A tensor whose buffer is known to match its shape (internal use).
    pub(crate) fn from_parts(shape: Shape, data: Vec<T>) -> Self {
        debug_assert_eq!(shape.numel(), data.len());
        Tensor {
            shape,
            data: Storage::new(Arc::new(data)),
        }
    }

    /// [`Tensor::from_fill`] for nabla's own constructors, whose `fill`
    /// always appends `shape.numel()` elements.
    ///
    /// # Panics
    /// If `fill` appends another count (a bug in nabla, never user input).
    pub(crate) fn build(shape: Shape, fill: impl FnOnce(&mut Vec<T>)) -> Self {
        Self::fill_pooled("build", shape, fill).expect("a constructor filled the wrong count")
    }

    /// Replaces the shape, keeping the buffer (caller checked the element count).
    pub(crate) fn set_shape(&mut self, shape: Shape) {
        debug_assert_eq!(shape.numel(), self.len());
        self.shape = shape;
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: T) -> Self {
        let shape = Shape::new(shape);
        let n = shape.numel();
        Tensor::build(shape, |v| v.resize(n, value))
    }

    /// A tensor for a kernel to overwrite entirely, as PyTorch's
    /// `torch.empty`: its elements are unspecified. In release builds they
    /// are whatever a pooled buffer of this size last held (zeros when the
    /// buffer is new), which saves the pass over memory that zeroing costs;
    /// in debug builds they are NaN, so that an element the kernel leaves
    /// unwritten shows in the tests. Use [`Tensor::zeros`] for sums that
    /// accumulate into the tensor.
    pub fn for_overwrite(shape: &[usize]) -> Self {
        let shape = Shape::new(shape);
        let n = shape.numel();
        let mut buffer = T::buffer_pool().take_stale(n);
        let vec = Arc::get_mut(&mut buffer).expect("a buffer fresh from the pool is unshared");
        if cfg!(debug_assertions) {
            vec.clear();
            vec.resize(n, T::from_f64(f64::NAN));
        } else {
            vec.truncate(n);
            vec.resize(n, T::ZERO);
        }
        Tensor {
            shape,
            data: Storage::new(buffer),
        }
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, T::ZERO)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, T::ONE)
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar(value: T) -> Self {
        Tensor::build(Shape::new(&[]), |v| v.push(value))
    }

    /// A tensor of zeros with the same shape as `self`.
    pub fn zeros_like(&self) -> Self {
        Tensor::full(self.dims(), T::ZERO)
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements (some axis is 0).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// Mutable access to the elements; copies the buffer first if it is shared.
    pub fn data_mut(&mut self) -> &mut [T] {
        self.data.make_mut().as_mut_slice()
    }

    /// The elements as a new `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.data.to_vec()
    }

    /// The elements converted to `f64`.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.data.iter().map(|v| v.to_f64()).collect()
    }

    /// The same values converted to another element type.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor::from_parts(
            self.shape.clone(),
            self.data.iter().map(|v| U::from_f64(v.to_f64())).collect(),
        )
    }

    /// The single value of a one-element tensor.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] if the tensor has more or fewer than one element.
    pub fn item(&self) -> Result<T> {
        if self.len() != 1 {
            return Err(TensorError::InvalidArgument {
                op: "item",
                reason: format!(
                    "needs exactly one element, the tensor has shape {}",
                    self.shape
                ),
            });
        }
        Ok(self.data[0])
    }

    /// The element at a multi-index.
    ///
    /// # Errors
    /// [`TensorError::RankMismatch`] or [`TensorError::IndexOutOfRange`] for a bad index.
    pub fn get(&self, index: &[usize]) -> Result<T> {
        Ok(self.data[self.offset_of("get", index)?])
    }

    /// Sets the element at a multi-index (copy-on-write if shared).
    ///
    /// # Errors
    /// As [`Tensor::get`].
    pub fn set(&mut self, index: &[usize], value: T) -> Result<()> {
        let offset = self.offset_of("set", index)?;
        self.data_mut()[offset] = value;
        Ok(())
    }

    fn offset_of(&self, op: &'static str, index: &[usize]) -> Result<usize> {
        if index.len() != self.rank() {
            return Err(TensorError::RankMismatch {
                op,
                expected: index.len(),
                shape: self.shape.clone(),
            });
        }
        let mut offset = 0;
        for ((&i, &d), s) in index.iter().zip(self.dims()).zip(self.shape.strides()) {
            if i >= d {
                return Err(TensorError::IndexOutOfRange {
                    op,
                    index: i,
                    bound: d,
                });
            }
            offset += i * s;
        }
        Ok(offset)
    }

    /// True when both shapes are equal and every pair of elements satisfies
    /// `|a - b| <= atol + rtol * |b|` (NumPy's `allclose`).
    pub fn allclose(&self, other: &Tensor<T>, rtol: f64, atol: f64) -> bool {
        self.shape == other.shape
            && self.data.iter().zip(other.data.iter()).all(|(a, b)| {
                let (a, b) = (a.to_f64(), b.to_f64());
                (a - b).abs() <= atol + rtol * b.abs()
            })
    }

    /// True when no element is NaN or infinite.
    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }

    /// Checks that `self` has exactly `shape`.
    ///
    /// # Errors
    /// [`TensorError::ShapeMismatch`] naming `op`.
    pub fn expect_shape(&self, op: &'static str, shape: &Shape) -> Result<()> {
        if &self.shape != shape {
            return Err(TensorError::ShapeMismatch {
                op,
                lhs: self.shape.clone(),
                rhs: shape.clone(),
            });
        }
        Ok(())
    }
}

impl<T: Float> PartialEq for Tensor<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && *self.data == *other.data
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 12;
        write!(f, "Tensor<{}>{} [", T::NAME, self.shape)?;
        for (i, v) in self.data.iter().take(SHOWN).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{v}")?;
        }
        if self.len() > SHOWN {
            write!(f, ", … ({} more)", self.len() - SHOWN)?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_checks_length() {
        let err = Tensor::<f32>::from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "from_vec: shape [2, 3] needs 6 elements, got 5"
        );
    }

    #[test]
    fn get_and_set_use_row_major_offsets() {
        let mut t = Tensor::<f64>::from_f64s(&[0., 1., 2., 3., 4., 5.], &[2, 3]).unwrap();
        assert_eq!(t.get(&[1, 2]).unwrap(), 5.0);
        t.set(&[0, 1], 9.0).unwrap();
        assert_eq!(t.data()[1], 9.0);
        assert!(matches!(
            t.get(&[2, 0]),
            Err(TensorError::IndexOutOfRange { .. })
        ));
        assert!(matches!(t.get(&[0]), Err(TensorError::RankMismatch { .. })));
    }

    #[test]
    fn a_tensor_for_overwrite_has_the_shape_and_no_zeros_to_rely_on() {
        let t = Tensor::<f32>::for_overwrite(&[3, 5]);
        assert_eq!(t.dims(), &[3, 5]);
        if cfg!(debug_assertions) {
            assert!(t.data().iter().all(|v| v.is_nan()), "NaN in debug builds");
        }
        let mut a = Tensor::<f64>::full(&[7], 2.5);
        a.data_mut()[0] = 1.0;
        drop(a);
        let b = Tensor::<f64>::zeros(&[7]);
        assert!(
            b.data().iter().all(|&v| v == 0.0),
            "zeros never sees old values"
        );
    }

    #[test]
    fn clone_is_copy_on_write() {
        let a = Tensor::<f32>::zeros(&[3]);
        let mut b = a.clone();
        b.data_mut()[0] = 1.0;
        assert_eq!(a.data(), &[0.0, 0.0, 0.0]);
        assert_eq!(b.data(), &[1.0, 0.0, 0.0]);
    }
}
