//! Elementwise functions and activations.

use super::grad_if;
use crate::{InputGrads, Op, Result};
use nabla_tensor::{Float, Tensor};
use smallvec::smallvec;

/// Declares a unary op whose backward is `g ⊙ f'(x, y)` for a local
/// derivative written in terms of the input `x` and the stored output `y`.
macro_rules! unary_op {
    ($(#[$doc:meta])* $name:ident, $label:literal, |$x:ident| $fwd:expr, |$dx:ident, $dy:ident| $deriv:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl<T: Float> Op<T> for $name {
            fn name(&self) -> &'static str {
                $label
            }
            fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
                Ok(x[0].map(|$x: T| $fwd))
            }
            fn backward(&self, x: &[&Tensor<T>], y: &Tensor<T>, g: &Tensor<T>, n: &[bool]) -> Result<InputGrads<T>> {
                Ok(smallvec![grad_if(n, 0, || {
                    let data = g
                        .data()
                        .iter()
                        .zip(x[0].data())
                        .zip(y.data())
                        .map(|((&g, &$dx), &$dy)| g * $deriv);
                    Ok(Tensor::from_iter_exact(g.dims(), data)?)
                })?])
            }
        }
    };
}

unary_op!(
    /// `e^x`; derivative `e^x`, read from the stored output.
    Exp, "exp", |x| x.exp(), |_x, y| y
);
unary_op!(
    /// Natural log; derivative `1/x`. `log(0) = -inf`: guard inputs that can be 0.
    Log, "log", |x| x.ln(), |x, _y| T::ONE / x
);
unary_op!(
    /// Square root; derivative `1 / (2√x)`.
    Sqrt, "sqrt", |x| x.sqrt(), |_x, y| T::ONE / (y + y)
);
unary_op!(
    /// `|x|`; derivative `sign(x)`, taken as 0 at `x = 0`.
    Abs, "abs", |x| x.abs(), |x, _y| if x > T::ZERO { T::ONE } else if x < T::ZERO { -T::ONE } else { T::ZERO }
);
unary_op!(
    /// ReLU `max(0, x)`. Backward zeroes the gradient where `x <= 0` (the
    /// material's mask), so the derivative *at 0 is 0*, as in PyTorch.
    Relu, "relu", |x| if x > T::ZERO { x } else { T::ZERO }, |x, _y| if x > T::ZERO { T::ONE } else { T::ZERO }
);

unary_op!(
    /// `tanh x`; backward `dout · (1 - y²)` from the stored output.
    Tanh, "tanh", |x| x.tanh(), |_x, y| T::ONE - y * y
);

/// Sigmoid `1 / (1 + e^-x)` ([`Tensor::sigmoid`]: stable for large `|x|`,
/// a vector at a time in `f32`); backward `dout · y · (1 - y)` from the
/// stored output.
pub struct Sigmoid;

impl<T: Float> Op<T> for Sigmoid {
    fn name(&self) -> &'static str {
        "sigmoid"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].sigmoid())
    }
    fn backward(
        &self,
        _: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![grad_if(n, 0, || {
            Ok(g.zip_with(y, "sigmoid", |g, y| g * (y * (T::ONE - y)))?)
        })?])
    }
}

/// `x^p` for a constant real exponent `p`; derivative `p · x^(p-1)`.
pub struct Pow<T>(pub T);

impl<T: Float> Op<T> for Pow<T> {
    fn name(&self) -> &'static str {
        "pow"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let p = self.0;
        Ok(x[0].map(|v| v.powf(p)))
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        let p = self.0;
        Ok(smallvec![grad_if(n, 0, || {
            Ok(g.zip_with(x[0], "pow", |g, v| g * p * v.powf(p - T::ONE))?)
        })?])
    }
}
