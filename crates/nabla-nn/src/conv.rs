//! The convolutional layer and the pooling layers.

use crate::{Init, Module};
use nabla_autograd::{Error, Param, Result, Var};
use nabla_tensor::{Float, Rng, Tensor};

/// 2-D convolution over `[N, C, H, W]` images, as `torch.nn.Conv2d`.
///
/// # Shapes
/// - `weight`: `[out, in, kh, kw]`, `bias`: `[out]` (PyTorch's layout, so model
///   files interoperate)
/// - input `[N, in, H, W]`, output `[N, out, ⌊(H + 2p − kh)/s⌋ + 1, ⌊(W + 2p − kw)/s⌋ + 1]`
///
/// Computed by im2col and the GEMM (see `nabla_autograd::ops::conv`).
#[derive(Debug, Clone, Module)]
#[module(crate = crate, describe)]
pub struct Conv2d<T: Float = f32> {
    /// Filters `[out, in, kh, kw]`.
    pub weight: Param<T>,
    /// One bias per output channel, if the layer has them.
    pub bias: Option<Param<T>>,
    /// Step of the window.
    pub stride: usize,
    /// Zeros around every side of the input.
    pub padding: usize,
}

impl<T: Float> Conv2d<T> {
    /// A layer of `out` square `kernel × kernel` filters over `in` channels,
    /// drawn by `init` (fan-in `in·k²`, fan-out `out·k²`), biases zero.
    ///
    /// # Errors
    /// If a size or the stride is zero.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        init: Init,
        rng: &mut Rng,
    ) -> Result<Self> {
        if in_channels == 0 || out_channels == 0 || kernel == 0 || stride == 0 {
            return Err(Error::invalid(
                "Conv2d",
                format!("channels {in_channels} → {out_channels}, kernel {kernel} and stride {stride} must all be positive"),
            ));
        }
        let area = kernel * kernel;
        let weight = init.sample(
            rng,
            &[out_channels, in_channels, kernel, kernel],
            in_channels * area,
            out_channels * area,
        );
        Ok(Conv2d {
            weight: Param::new(weight),
            bias: bias.then(|| Param::new(Tensor::zeros(&[out_channels]))),
            stride,
            padding,
        })
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.value().dims()[1]
    }

    /// Output channels (filters).
    pub fn out_channels(&self) -> usize {
        self.weight.value().dims()[0]
    }

    /// Kernel height and width.
    pub fn kernel(&self) -> (usize, usize) {
        let d = self.weight.value().dims();
        (d[2], d[3])
    }
}

/// The layer's own pass and description; its visitors are derived.
impl<T: Float> Conv2d<T> {
    /// The convolution on the graph.
    ///
    /// # Errors
    /// An input that is not `[N, in, H, W]` or is smaller than the kernel.
    pub fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let tape = x.tape();
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        x.conv2d(tape.param(&self.weight), bias, self.stride, self.padding)
            .map_err(|e| Error::invalid("Conv2d", format!("{}: {e}", self.describe())))
    }

    /// `Conv2d(in → out, kh×kw, stride s, padding p)`.
    pub fn describe(&self) -> String {
        let (kh, kw) = self.kernel();
        format!(
            "Conv2d({} → {}, {kh}×{kw}, stride {}, padding {}{})",
            self.in_channels(),
            self.out_channels(),
            self.stride,
            self.padding,
            if self.bias.is_some() { "" } else { ", no bias" }
        )
    }
}

/// 2-D max pooling, as `torch.nn.MaxPool2d(kernel, stride, padding)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window side.
    pub kernel: usize,
    /// Step of the window (PyTorch's default: the kernel).
    pub stride: usize,
    /// Padding (never selected: windows only see the image).
    pub padding: usize,
}

/// 2-D average pooling, as `torch.nn.AvgPool2d(kernel, stride, padding)`
/// (padding counted as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Window side.
    pub kernel: usize,
    /// Step of the window (PyTorch's default: the kernel).
    pub stride: usize,
    /// Zeros around every side.
    pub padding: usize,
}

macro_rules! pooling_layer {
    ($name:ident, $method:ident) => {
        impl $name {
            /// Non-overlapping `kernel × kernel` windows (stride = kernel, no padding).
            pub fn new(kernel: usize) -> Self {
                $name {
                    kernel,
                    stride: kernel,
                    padding: 0,
                }
            }
        }

        impl<T: Float> Module<T> for $name {
            fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
                x.$method(self.kernel, self.stride, self.padding)
            }
            fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(String, &'a Param<T>)) {}
            fn visit_params_mut<'a>(
                &'a mut self,
                _: &str,
                _: &mut dyn FnMut(String, &'a mut Param<T>),
            ) {
            }
            fn describe(&self) -> String {
                format!(
                    "{}({k}×{k}, stride {}, padding {})",
                    stringify!($name),
                    self.stride,
                    self.padding,
                    k = self.kernel
                )
            }
        }
    };
}

pooling_layer!(MaxPool2d, max_pool2d);
pooling_layer!(AvgPool2d, avg_pool2d);
