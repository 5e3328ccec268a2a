//! Matrix product with optional transposes, as strides (no copies).

use super::grad_if;
use crate::{InputGrads, Op, Result};
use nabla_tensor::{Float, Tensor, Transpose};
use smallvec::smallvec;

/// `C = op(A) · op(B)` for rank-2 `A`, `B`.
///
/// Backward (with `G = ∂L/∂C`): `∂L/∂op(A) = G · op(B)ᵀ` and
/// `∂L/∂op(B) = op(A)ᵀ · G`; undoing `op` on each side gives the four cases
/// below, all as GEMMs on the stored buffers.
pub struct MatMul {
    /// Transpose of the left operand.
    pub ta: Transpose,
    /// Transpose of the right operand.
    pub tb: Transpose,
}

fn flip(t: Transpose) -> Transpose {
    match t {
        Transpose::No => Transpose::Yes,
        Transpose::Yes => Transpose::No,
    }
}

impl<T: Float> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].matmul_t(self.ta, x[1], self.tb)?)
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        let (a, b) = (x[0], x[1]);
        Ok(smallvec![
            grad_if(n, 0, || {
                Ok(match self.ta {
                    Transpose::No => g.matmul_t(Transpose::No, b, flip(self.tb))?,
                    Transpose::Yes => b.matmul_t(self.tb, g, Transpose::Yes)?,
                })
            })?,
            grad_if(n, 1, || {
                Ok(match self.tb {
                    Transpose::No => a.matmul_t(flip(self.ta), g, Transpose::No)?,
                    Transpose::Yes => g.matmul_t(Transpose::Yes, a, self.ta)?,
                })
            })?,
        ])
    }

    /// The right operand's gradient when `op(A)` is one row: `op(A)ᵀ · G` is
    /// then the column `op(A)ᵀ` times the row `G` (`tb = No`), or, undoing
    /// the transpose, `Gᵀ` times `op(A)` (`tb = Yes`). Both vectors are
    /// stored contiguously whatever the transposes, and
    /// [`crate::OuterProduct::to_dense`] forms them with the same kernel as
    /// backward's one-row product.
    fn outer_grad(
        &self,
        x: &[&Tensor<T>],
        g: &Tensor<T>,
        input: usize,
    ) -> Option<(Tensor<T>, Tensor<T>)> {
        let rows = g.dims().first().copied()?;
        if input != 1 || rows != 1 {
            return None;
        }
        let a = x[0].clone();
        Some(match self.tb {
            Transpose::No => (a, g.clone()),
            Transpose::Yes => (g.clone(), a),
        })
    }
}
