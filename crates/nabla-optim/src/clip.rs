//! Gradient clipping by global norm.

use nabla_autograd::{Gradients, Param};
use nabla_tensor::Float;

/// The L2 norm of all the given parameters' gradients taken together.
pub fn grad_norm<T: Float>(params: &[&Param<T>], grads: &Gradients<T>) -> f64 {
    params
        .iter()
        .filter_map(|p| grads.param(p))
        .flat_map(|g| g.data().iter())
        .map(|&v| v.to_f64() * v.to_f64())
        .sum::<f64>()
        .sqrt()
}

/// The factor that brings a norm down to `max_norm`: `max_norm / (norm + 1e-6)`
/// when `norm > max_norm`, else 1 (PyTorch's `clip_grad_norm_`).
pub(crate) fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// Scales the gradients of `params` in place so that their global norm is at
/// most `max_norm`; returns the norm before clipping.
pub fn clip_grad_norm<T: Float>(
    params: &[&Param<T>],
    grads: &mut Gradients<T>,
    max_norm: f64,
) -> f64 {
    let norm = grad_norm(params, grads);
    let factor = T::from_f64(clip_factor(norm, max_norm));
    if factor != T::ONE {
        for p in params {
            if let Some(g) = grads.param_mut(p) {
                g.data_mut().iter_mut().for_each(|v| *v *= factor);
            }
        }
    }
    norm
}
