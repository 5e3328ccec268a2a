//! The kernels compiled for AVX2 with FMA, and again for AVX-512 with
//! larger blocks or wider vectors. Callers check the level first.

use super::channel_lanes::{self, BLOCK_16 as C16, BLOCK_32 as C32, BLOCK_32_ONE as C32_ONE};
use super::input_grad::input_grad;
use super::weight_grad::weight_grad;
use super::weight_grad_lanes::{self, BLOCK_16 as W16, BLOCK_32 as W32};
use super::{forward, Geometry, BLOCKS_16 as B16, BLOCKS_32 as B32};
use crate::simd::{Avx, Avx512};
use std::ops::Range;

#[target_feature(enable = "avx2,fma,popcnt")]
pub(super) fn forward_avx2(
    g: &Geometry,
    image: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    forward::<f32, Avx, { B16[0].0 }, { B16[0].1 }>(g, image, weight, bias, out);
}

#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
pub(super) fn forward_avx512(
    g: &Geometry,
    image: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    forward::<f32, Avx, { B32[0].0 }, { B32[0].1 }>(g, image, weight, bias, out);
}

#[target_feature(enable = "avx2,fma,popcnt")]
pub(super) fn channel_lanes_avx2(
    g: &Geometry,
    image: &[f32],
    prepared: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    channel_lanes::forward::<f32, Avx, { C16.0 }, { C16.1 }>(g, image, prepared, bias, out);
}

#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
pub(super) fn channel_lanes_avx512(
    g: &Geometry,
    image: &[f32],
    prepared: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    channel_lanes::forward::<f32, Avx512, { C32.0 }, { C32.1 }>(g, image, prepared, bias, out);
}

#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
pub(super) fn channel_lanes_avx512_one(
    g: &Geometry,
    image: &[f32],
    prepared: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    channel_lanes::forward::<f32, Avx512, { C32_ONE.0 }, { C32_ONE.1 }>(
        g, image, prepared, bias, out,
    );
}

#[target_feature(enable = "avx2,fma,popcnt")]
pub(super) fn weight_grad_lanes_avx2(
    g: &Geometry,
    images: &[f32],
    grads: &[f32],
    taps: Range<usize>,
    dwt: &mut [f32],
) {
    weight_grad_lanes::weight_grad::<f32, Avx, { W16.0 }, { W16.1 }>(g, images, grads, taps, dwt);
}

#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
pub(super) fn weight_grad_lanes_avx512(
    g: &Geometry,
    images: &[f32],
    grads: &[f32],
    taps: Range<usize>,
    dwt: &mut [f32],
) {
    weight_grad_lanes::weight_grad::<f32, Avx512, { W32.0 }, { W32.1 }>(
        g, images, grads, taps, dwt,
    );
}

#[target_feature(enable = "avx2,fma,popcnt")]
pub(super) fn weight_grad_avx2(
    g: &Geometry,
    image: &[f32],
    grad: &[f32],
    rows: Range<usize>,
    dw: &mut [f32],
) {
    weight_grad::<f32, Avx, { B16[1].0 }, { B16[1].1 }>(g, image, grad, rows, dw);
}

#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
pub(super) fn weight_grad_avx512(
    g: &Geometry,
    image: &[f32],
    grad: &[f32],
    rows: Range<usize>,
    dw: &mut [f32],
) {
    weight_grad::<f32, Avx, { B32[1].0 }, { B32[1].1 }>(g, image, grad, rows, dw);
}

#[target_feature(enable = "avx2,fma,popcnt")]
pub(super) fn input_grad_avx2(g: &Geometry, rows: &[f32], weight: &[f32], dx: &mut [f32]) {
    input_grad::<f32, Avx, { B16[2].0 }, { B16[2].1 }>(g, rows, weight, dx);
}

#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
pub(super) fn input_grad_avx512(g: &Geometry, rows: &[f32], weight: &[f32], dx: &mut [f32]) {
    input_grad::<f32, Avx, { B32[2].0 }, { B32[2].1 }>(g, rows, weight, dx);
}
