//! Batch normalisation (Ioffe & Szegedy, 2015), per channel.
//!
//! The channel axis is axis 1: features of a dense `[N, F]` input, planes of
//! a convolutional `[N, C, H, W]` one. Statistics run over every other axis.

use super::grad_if;
use crate::{Error, InputGrads, Op, Result};
use nabla_tensor::{Float, Tensor};
use smallvec::smallvec;

/// `(N, C, S)`: batch, channels and elements per channel of one sample.
fn channel_layout<T: Float>(op: &'static str, x: &Tensor<T>) -> Result<(usize, usize, usize)> {
    match x.dims() {
        [n, c, rest @ ..] => Ok((*n, *c, rest.iter().product())),
        _ => Err(Error::invalid(
            op,
            format!("expected [N, C] or [N, C, …] input, got {}", x.shape()),
        )),
    }
}

/// Calls `f(channel, values)` for every run of one channel's values.
fn for_channels<T: Float>(data: &[T], c: usize, s: usize, mut f: impl FnMut(usize, &[T])) {
    for (i, run) in data.chunks_exact(s.max(1)).enumerate() {
        f(i % c, run);
    }
}

/// Independent accumulators of the sums over a channel's run: a long run is
/// summed in vector registers instead of one dependent add after another.
/// The lanes are added in a fixed order, so the result is the same on every
/// machine and thread count.
const LANES: usize = 16;

/// `Σ f(v)` over `run`, in f64.
fn sum_f64<T: Float>(run: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = run.chunks_exact(LANES);
    let mut total = chunks
        .remainder()
        .iter()
        .map(|v| f(v.to_f64()))
        .sum::<f64>();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += f(v.to_f64());
        }
    }
    for a in acc {
        total += a;
    }
    total
}

/// `(Σ dy, Σ dy·(x − μ))` over one run of a channel.
fn sums_of_run<T: Float>(xr: &[T], gr: &[T], mean: T) -> (T, T) {
    let (mut sg, mut sgx) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let (xc, gc) = (xr.chunks_exact(LANES), gr.chunks_exact(LANES));
    let (mut g_total, mut gx_total) = (T::ZERO, T::ZERO);
    for (&v, &d) in xc.remainder().iter().zip(gc.remainder()) {
        g_total += d;
        gx_total += d * (v - mean);
    }
    for (xs, gs) in xc.zip(gc) {
        for k in 0..LANES {
            sg[k] += gs[k];
            sgx[k] += gs[k] * (xs[k] - mean);
        }
    }
    for k in 0..LANES {
        g_total += sg[k];
        gx_total += sgx[k];
    }
    (g_total, gx_total)
}

/// Per-channel mean and biased variance (divided by the count, as batch norm
/// normalises with) of a `[N, C, …]` tensor, and the count per channel.
///
/// # Errors
/// If `x` has rank below 2 or no elements per channel.
pub fn channel_moments<T: Float>(x: &Tensor<T>) -> Result<(Tensor<T>, Tensor<T>, usize)> {
    let (n, c, s) = channel_layout("batch_norm", x)?;
    let count = n * s;
    if count == 0 {
        return Err(Error::invalid(
            "batch_norm",
            format!("input {} has no values per channel", x.shape()),
        ));
    }
    // Sums in f64 (a channel of a convolutional batch holds ~10⁵ values),
    // in pooled buffers, as this runs every training step.
    let mut mean = Tensor::<f64>::zeros(&[c]);
    for_channels(x.data(), c, s, |ch, run| {
        mean.data_mut()[ch] += sum_f64(run, |v| v);
    });
    mean.data_mut().iter_mut().for_each(|m| *m /= count as f64);
    let mut sq = Tensor::<f64>::zeros(&[c]);
    for_channels(x.data(), c, s, |ch, run| {
        let m = mean.data()[ch];
        sq.data_mut()[ch] += sum_f64(run, |v| (v - m) * (v - m));
    });
    let var = sq.data().iter().map(|v| T::from_f64(v / count as f64));
    Ok((
        Tensor::from_iter_exact(&[c], mean.data().iter().map(|&m| T::from_f64(m)))?,
        Tensor::from_iter_exact(&[c], var)?,
        count,
    ))
}

/// `y = γ · (x − μ) / √(σ² + ε) + β` per channel, given `μ` and
/// `1/√(σ² + ε)`.
///
/// Inputs: `x [N, C, …]`, `γ [C]`, `β [C]`. With `batch_statistics` (training)
/// `μ` and `σ²` are the batch's own, so they depend on `x` and backward
/// carries that dependence:
/// `dx = γ/(m·√(σ²+ε)) · (m·dy − Σdy − x̂ · Σ(dy·x̂))` over the `m` values of a
/// channel. Without it (evaluation) they are constants (running statistics)
/// and `dx = γ · dy / √(σ²+ε)`. Always `dγ = Σ dy·x̂`, `dβ = Σ dy`.
pub struct BatchNorm<T: Float> {
    /// Per-channel mean `μ`, `[C]`.
    pub mean: Tensor<T>,
    /// Per-channel `1/√(σ² + ε)`, `[C]`.
    pub inv_std: Tensor<T>,
    /// Whether `μ` and `σ²` were computed from this very input.
    pub batch_statistics: bool,
}

impl<T: Float> BatchNorm<T> {
    fn check(&self, x: &[&Tensor<T>]) -> Result<(usize, usize, usize)> {
        let (n, c, s) = channel_layout("batch_norm", x[0])?;
        for (what, t) in [
            ("weight", x[1]),
            ("bias", x[2]),
            ("mean", &self.mean),
            ("inv_std", &self.inv_std),
        ] {
            if t.dims() != [c] {
                return Err(Error::invalid(
                    "batch_norm",
                    format!(
                        "{what} has shape {}, input {} needs [{c}]",
                        t.shape(),
                        x[0].shape()
                    ),
                ));
            }
        }
        Ok((n, c, s))
    }
}

impl<T: Float> Op<T> for BatchNorm<T> {
    fn name(&self) -> &'static str {
        "batch_norm"
    }

    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (_, c, s) = self.check(x)?;
        let (gamma, beta) = (x[1].data(), x[2].data());
        let (mean, inv) = (self.mean.data(), self.inv_std.data());
        Ok(Tensor::from_fill(x[0].dims(), |out| {
            for_channels(x[0].data(), c, s, |ch, run| {
                let (scale, shift) = (gamma[ch] * inv[ch], beta[ch]);
                out.extend(run.iter().map(|&v| (v - mean[ch]) * scale + shift));
            });
        })?)
    }

    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<InputGrads<T>> {
        let (n, c, s) = self.check(x)?;
        let (mean, inv) = (self.mean.data(), self.inv_std.data());
        // Σ dy and Σ dy·x̂ per channel, needed by all three gradients.
        // They are also dβ and dγ, so they go straight into (pooled) tensors.
        let (mut sum_g, mut sum_gx) = (Tensor::<T>::zeros(&[c]), Tensor::<T>::zeros(&[c]));
        let runs = x[0]
            .data()
            .chunks_exact(s.max(1))
            .zip(g.data().chunks_exact(s.max(1)));
        {
            let (sg, sgx) = (sum_g.data_mut(), sum_gx.data_mut());
            for (i, (xr, gr)) in runs.clone().enumerate() {
                let ch = i % c;
                let (g_run, gx_run) = sums_of_run(xr, gr, mean[ch]);
                sg[ch] += g_run;
                sgx[ch] += gx_run * inv[ch];
            }
        }
        let (g_sums, gx_sums) = (sum_g.data(), sum_gx.data());
        let gamma = x[1].data();
        let m = T::from_usize(n * s);
        let dx = grad_if(needs, 0, || {
            Ok(Tensor::from_fill(x[0].dims(), |out| {
                for (i, (xr, gr)) in runs.clone().enumerate() {
                    let ch = i % c;
                    let k = gamma[ch] * inv[ch];
                    if self.batch_statistics {
                        let (sg, sgx) = (g_sums[ch] / m, gx_sums[ch] / m);
                        out.extend(
                            xr.iter()
                                .zip(gr)
                                .map(|(&v, &d)| k * (d - sg - (v - mean[ch]) * inv[ch] * sgx)),
                        );
                    } else {
                        out.extend(gr.iter().map(|&d| k * d));
                    }
                }
            })?)
        })?;
        let dgamma = grad_if(needs, 1, || Ok(sum_gx.clone()))?;
        let dbeta = grad_if(needs, 2, || Ok(sum_g.clone()))?;
        Ok(smallvec![dx, dgamma, dbeta])
    }
}
