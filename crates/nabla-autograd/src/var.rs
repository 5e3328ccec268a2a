//! The op methods on [`Var`]: one line each registering an op from `ops/`.

use crate::ops::arith::{Add, AddScalar, Div, Mul, MulScalar, Neg, Sub};
use crate::ops::conv::Conv2d;
use crate::ops::loss::{Reduction, SoftmaxCrossEntropy, Target};
use crate::ops::matmul::MatMul;
use crate::ops::norm::BatchNorm;
use crate::ops::pool::{Pool2d, PoolKind};
use crate::ops::reduce::{Mean, Sum, SumAxis};
use crate::ops::shape::{GatherRows, Permute, Reshape};
use crate::ops::softmax::{LogSoftmax, Softmax};
use crate::ops::unary::{Abs, Exp, Log, Pow, Relu, Sigmoid, Sqrt, Tanh};
use crate::{Error, Result, Var};
use nabla_tensor::{Float, Tensor, Transpose};

/// Binary ops broadcast their operands (NumPy rules); the gradient of each
/// operand is summed back to its own shape.
///
/// Every method returns `Result`: a shape that does not fit is an error naming
/// the op and both shapes, never a panic. That is also why `add`, `mul`, … are
/// methods and not the `std::ops` operators, which cannot return an error.
#[allow(clippy::should_implement_trait)]
impl<'t, T: Float> Var<'t, T> {
    /// `self + rhs`, broadcasting (e.g. a bias row over a batch).
    pub fn add(self, rhs: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape().apply(Add, &[self, rhs])
    }
    /// `self - rhs`, broadcasting.
    pub fn sub(self, rhs: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape().apply(Sub, &[self, rhs])
    }
    /// `self * rhs` elementwise, broadcasting.
    pub fn mul(self, rhs: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape().apply(Mul, &[self, rhs])
    }
    /// `self / rhs` elementwise, broadcasting.
    pub fn div(self, rhs: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape().apply(Div, &[self, rhs])
    }
    /// `-self`.
    pub fn neg(self) -> Result<Var<'t, T>> {
        self.tape().apply(Neg, &[self])
    }
    /// `self + s` for a constant.
    pub fn add_scalar(self, s: f64) -> Result<Var<'t, T>> {
        self.tape().apply(AddScalar(T::from_f64(s)), &[self])
    }
    /// `self * s` for a constant.
    pub fn mul_scalar(self, s: f64) -> Result<Var<'t, T>> {
        self.tape().apply(MulScalar(T::from_f64(s)), &[self])
    }
    /// `self^p` elementwise for a constant exponent.
    pub fn pow(self, p: f64) -> Result<Var<'t, T>> {
        self.tape().apply(Pow(T::from_f64(p)), &[self])
    }
    /// `e^self`.
    pub fn exp(self) -> Result<Var<'t, T>> {
        self.tape().apply(Exp, &[self])
    }
    /// Natural log.
    pub fn log(self) -> Result<Var<'t, T>> {
        self.tape().apply(Log, &[self])
    }
    /// Square root.
    pub fn sqrt(self) -> Result<Var<'t, T>> {
        self.tape().apply(Sqrt, &[self])
    }
    /// Absolute value (derivative 0 at 0).
    pub fn abs(self) -> Result<Var<'t, T>> {
        self.tape().apply(Abs, &[self])
    }
    /// ReLU (derivative 0 at 0).
    pub fn relu(self) -> Result<Var<'t, T>> {
        self.tape().apply(Relu, &[self])
    }
    /// Logistic sigmoid.
    pub fn sigmoid(self) -> Result<Var<'t, T>> {
        self.tape().apply(Sigmoid, &[self])
    }
    /// Hyperbolic tangent.
    pub fn tanh(self) -> Result<Var<'t, T>> {
        self.tape().apply(Tanh, &[self])
    }
    /// Matrix product `self · rhs`.
    ///
    /// # Shapes
    /// `[m, k] · [k, n] → [m, n]`.
    pub fn matmul(self, rhs: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape().apply(
            MatMul {
                ta: Transpose::No,
                tb: Transpose::No,
            },
            &[self, rhs],
        )
    }
    /// `self · rhsᵀ` without copying the transpose (a linear layer with a
    /// PyTorch-style `[out, in]` weight).
    ///
    /// # Shapes
    /// `[m, k] · [n, k]ᵀ → [m, n]`.
    pub fn matmul_t(self, rhs: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape().apply(
            MatMul {
                ta: Transpose::No,
                tb: Transpose::Yes,
            },
            &[self, rhs],
        )
    }
    /// Sum of all elements (rank-0 result).
    pub fn sum(self) -> Result<Var<'t, T>> {
        self.tape().apply(Sum, &[self])
    }
    /// Mean of all elements (rank-0 result).
    pub fn mean(self) -> Result<Var<'t, T>> {
        self.tape().apply(Mean, &[self])
    }
    /// Sum along `axis`.
    pub fn sum_axis(self, axis: usize, keepdim: bool) -> Result<Var<'t, T>> {
        self.tape().apply(
            SumAxis {
                axis,
                keepdim,
                mean: false,
            },
            &[self],
        )
    }
    /// Mean along `axis`.
    pub fn mean_axis(self, axis: usize, keepdim: bool) -> Result<Var<'t, T>> {
        self.tape().apply(
            SumAxis {
                axis,
                keepdim,
                mean: true,
            },
            &[self],
        )
    }
    /// Softmax along the last axis.
    pub fn softmax(self) -> Result<Var<'t, T>> {
        self.tape().apply(Softmax, &[self])
    }
    /// Log-softmax along the last axis.
    pub fn log_softmax(self) -> Result<Var<'t, T>> {
        self.tape().apply(LogSoftmax, &[self])
    }
    /// The same elements under a new shape.
    pub fn reshape(self, dims: &[usize]) -> Result<Var<'t, T>> {
        self.tape()
            .apply(Reshape(nabla_tensor::Dims::from_slice(dims)), &[self])
    }
    /// `[N, d1, d2, …] → [N, d1·d2·…]`.
    pub fn flatten(self) -> Result<Var<'t, T>> {
        let dims = self.shape();
        let Some((&n, rest)) = dims.dims().split_first() else {
            return Err(Error::invalid(
                "flatten",
                "needs a tensor of rank ≥ 1, got a scalar",
            ));
        };
        self.reshape(&[n, rest.iter().product()])
    }
    /// Reorders axes: output axis `i` is input axis `axes[i]`.
    pub fn permute(self, axes: &[usize]) -> Result<Var<'t, T>> {
        self.tape().apply(Permute(axes.to_vec()), &[self])
    }
    /// Swaps the last two axes.
    pub fn transpose(self) -> Result<Var<'t, T>> {
        let r = self.shape().rank();
        if r < 2 {
            return Err(Error::invalid(
                "transpose",
                format!("needs rank ≥ 2, got shape {}", self.shape()),
            ));
        }
        let mut axes: Vec<usize> = (0..r).collect();
        axes.swap(r - 2, r - 1);
        self.permute(&axes)
    }
    /// `out[i] = self[i, labels[i]]` for a `[N, C]` variable.
    pub fn gather_rows(self, labels: &[usize]) -> Result<Var<'t, T>> {
        self.tape().apply(GatherRows(labels.to_vec()), &[self])
    }
    /// 2-D convolution (cross-correlation) of `[N, C, H, W]` by a
    /// `[O, C, kh, kw]` weight, plus an optional `[O]` bias.
    ///
    /// # Shapes
    /// `[N, C, H, W] → [N, O, ⌊(H + 2p − kh)/s⌋ + 1, ⌊(W + 2p − kw)/s⌋ + 1]`.
    pub fn conv2d(
        self,
        weight: Var<'t, T>,
        bias: Option<Var<'t, T>>,
        stride: usize,
        padding: usize,
    ) -> Result<Var<'t, T>> {
        let op = Conv2d { stride, padding };
        match bias {
            Some(b) => self.tape().apply(op, &[self, weight, b]),
            None => self.tape().apply(op, &[self, weight]),
        }
    }
    /// Max pooling of `[N, C, H, W]` with a `kernel × kernel` window.
    pub fn max_pool2d(self, kernel: usize, stride: usize, padding: usize) -> Result<Var<'t, T>> {
        self.pool2d(PoolKind::Max, kernel, stride, padding)
    }
    /// Average pooling of `[N, C, H, W]` with a `kernel × kernel` window.
    pub fn avg_pool2d(self, kernel: usize, stride: usize, padding: usize) -> Result<Var<'t, T>> {
        self.pool2d(PoolKind::Avg, kernel, stride, padding)
    }
    fn pool2d(
        self,
        kind: PoolKind,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Var<'t, T>> {
        self.tape()
            .apply(Pool2d::new(kind, kernel, stride, padding), &[self])
    }
    /// Batch normalisation per channel (axis 1) with the given statistics:
    /// `γ · (x − mean) · inv_std + β`. With `batch_statistics`, `mean` and
    /// `inv_std = 1/√(σ² + ε)` must be this input's own (see
    /// [`channel_moments`](crate::ops::norm::channel_moments)), and backward
    /// differentiates through them.
    pub fn batch_norm(
        self,
        gamma: Var<'t, T>,
        beta: Var<'t, T>,
        mean: Tensor<T>,
        inv_std: Tensor<T>,
        batch_statistics: bool,
    ) -> Result<Var<'t, T>> {
        let op = BatchNorm {
            mean,
            inv_std,
            batch_statistics,
        };
        self.tape().apply(op, &[self, gamma, beta])
    }
    /// Inverted dropout: each element is zeroed with probability `p` and the
    /// survivors are scaled by `1/(1 − p)`, so the expected value is unchanged
    /// and evaluation needs no rescaling (PyTorch's convention). The mask is
    /// drawn from the tape's generator ([`Tape::seed_rng`](crate::Tape::seed_rng)).
    pub fn dropout(self, p: f64) -> Result<Var<'t, T>> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "dropout",
                format!("probability {p} is not in [0, 1]"),
            ));
        }
        if p == 0.0 {
            return Ok(self);
        }
        let dims = self.shape();
        let n = dims.numel();
        let keep = if p < 1.0 {
            T::from_f64(1.0 / (1.0 - p))
        } else {
            T::ZERO
        };
        let mask = {
            let mut rng = self.tape().rng();
            Tensor::from_fill(dims.dims(), |m| {
                m.extend((0..n).map(|_| if rng.next_f64() < p { T::ZERO } else { keep }));
            })?
        };
        self.mul(self.tape().constant(mask))
    }
    /// Fused softmax + cross-entropy of `[N, C]` scores (backward `(y - t)/N`).
    pub fn softmax_cross_entropy(
        self,
        target: Target<T>,
        reduction: Reduction,
    ) -> Result<Var<'t, T>> {
        self.tape()
            .apply(SoftmaxCrossEntropy::new(target, reduction), &[self])
    }
    /// [`Var::softmax_cross_entropy`] against targets smoothed by `smoothing`
    /// (ε): `q = (1 - ε)·t + ε/C` over the `C` classes, as PyTorch's
    /// `label_smoothing`; backward `(y - q)/N`. An ε of 0 is the plain loss.
    ///
    /// # Errors
    /// As [`Var::softmax_cross_entropy`], and an ε outside `[0, 1]`.
    pub fn softmax_cross_entropy_smoothed(
        self,
        target: Target<T>,
        reduction: Reduction,
        smoothing: T,
    ) -> Result<Var<'t, T>> {
        self.tape().apply(
            SoftmaxCrossEntropy::with_smoothing(target, reduction, smoothing)?,
            &[self],
        )
    }
}
