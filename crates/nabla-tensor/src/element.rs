//! The element types a tensor may hold.

use crate::BufferPool;
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point element type: implemented for `f32` and `f64` only.
///
/// The trait is deliberately small: the arithmetic operators plus the few
/// functions the ops need. Everything in nabla is generic over it, so a test
/// can switch between `f32` and `f64` by changing one type.
pub trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + Debug
    + Display
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// The name used in messages and model files (`"f32"`, `"f64"`).
    const NAME: &'static str;

    /// Converts from `f64`, rounding to the nearest representable value.
    fn from_f64(v: f64) -> Self;
    /// Widens (or copies) to `f64`.
    fn to_f64(self) -> f64;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `self^e` for a real exponent.
    fn powf(self, e: Self) -> Self;
    /// The larger of two values (NaN-propagating is not promised).
    fn max(self, other: Self) -> Self;
    /// The smaller of two values.
    fn min(self, other: Self) -> Self;
    /// True when neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// `self · a + b`, rounded once. Fast only where the CPU has fused
    /// multiply-add (and the code is compiled for it); elsewhere a library call.
    fn mul_add(self, a: Self, b: Self) -> Self;

    /// The cache that tensors of this type take their buffers from and
    /// return them to (see [`BufferPool`]).
    fn buffer_pool() -> &'static BufferPool<Self>;

    /// Converts a count, e.g. a batch size, to this type.
    fn from_usize(v: usize) -> Self {
        Self::from_f64(v as f64)
    }
}

macro_rules! impl_float {
    ($t:ty, $name:literal) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAME: &'static str = $name;
            fn buffer_pool() -> &'static BufferPool<Self> {
                static POOL: BufferPool<$t> = BufferPool::new();
                &POOL
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
        }
    };
}

impl_float!(f32, "f32");
impl_float!(f64, "f64");
