//! # nabla-tensor
//!
//! The numbers room of nabla: one CPU tensor type, row-major and contiguous,
//! generic over its element type so the same code runs in `f32` (training)
//! and `f64` (gradient checks and exact tests).
//!
//! Nothing here knows about graphs or gradients; `nabla-autograd` builds on it.
//!
//! ```
//! use nabla_tensor::Tensor;
//! let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let b = Tensor::<f64>::from_vec(vec![10.0, 20.0], &[2])?;
//! let y = x.add(&b)?; // broadcasting the row vector over both rows
//! assert_eq!(y.data(), &[11.0, 22.0, 13.0, 24.0]);
//! # Ok::<(), nabla_tensor::TensorError>(())
//! ```

mod activation;
pub mod conv;
mod element;
mod elementwise;
mod error;
mod layout;
mod matmul;
mod pool;
mod random;
mod reduce;
mod shape;
mod simd;
mod tensor;

pub use conv::Window;
pub use element::Float;
pub use error::{Result, TensorError};
pub use matmul::{gemm_into, gemm_slices, in_gemm_library, input_major_pays, Transpose};
pub use pool::{BufferPool, MAX_CACHED_BYTES, MAX_CACHED_PER_SIZE};
pub use random::{Rng, RNG_STATE_LEN};
pub use shape::{Dims, Shape, INLINE_RANK};
pub use simd::{
    cpu_description, detected_simd_level, gemm_library_level, kernel_levels, limit_simd_level,
    simd_level, Kernel, SimdLevel,
};
pub use tensor::Tensor;
