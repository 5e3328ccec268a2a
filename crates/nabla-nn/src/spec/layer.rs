//! One token of the layer-spec language: parsing, printing and the shape rule.

use crate::Activation;
use nabla_autograd::{Error, Result};
use nabla_tensor::Window;
use std::fmt;

/// One layer of a [`NetSpec`](super::NetSpec).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// `conv<O>k<K>[s<S>][p<P>][nobias]`.
    Conv {
        /// Output channels.
        out: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
        /// Whether the layer has biases.
        bias: bool,
    },
    /// `maxpool<K>[s<S>][p<P>]`.
    MaxPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// `avgpool<K>[s<S>][p<P>]`.
    AvgPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// `linear<O>[nobias]`.
    Linear {
        /// Outputs.
        out: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `relu`, `sigmoid` or `tanh`.
    Activation(Activation),
    /// `flatten`.
    Flatten,
    /// `dropout<P>`.
    Dropout(f64),
    /// `batchnorm` / `bn`.
    BatchNorm,
}

/// Named options of a token, each with its number if it has one (`k3`, `nobias`).
type Options = Vec<(String, Option<usize>)>;

/// Splits `"16k3s2p1nobias"` into the leading number and `(letter, number)` options.
fn options(token: &str, rest: &str) -> Result<(Option<f64>, Options)> {
    let bad = |why: String| Error::invalid("layer spec", format!("'{token}': {why}"));
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let lead = if num_end == 0 {
        None
    } else {
        Some(
            rest[..num_end]
                .parse::<f64>()
                .map_err(|_| bad(format!("'{}' is not a number", &rest[..num_end])))?,
        )
    };
    let mut opts = Vec::new();
    let mut s = &rest[num_end..];
    while !s.is_empty() {
        let name_end = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
        let digits_end = s[name_end..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(s.len(), |i| name_end + i);
        let value = if digits_end > name_end {
            let digits = &s[name_end..digits_end];
            Some(
                digits
                    .parse::<u32>()
                    .map_err(|_| bad(format!("'{digits}' is too large")))? as usize,
            )
        } else {
            None
        };
        opts.push((s[..name_end].to_string(), value));
        s = &s[digits_end..];
    }
    Ok((lead, opts))
}

impl LayerSpec {
    /// Parses one token, e.g. `conv16k3p1`.
    ///
    /// # Errors
    /// An unknown layer or option, or a bad number, naming the token.
    pub fn parse(token: &str) -> Result<Self> {
        let token = token.trim();
        let bad = |why: &str| Error::invalid("layer spec", format!("'{token}': {why}"));
        let known =
            "conv, maxpool, avgpool, linear, relu, sigmoid, tanh, flatten, dropout, batchnorm";
        let prefix_end = token
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(token.len());
        let (name, rest) = token.split_at(prefix_end);
        let (lead, mut opts) = options(token, rest)?;
        let count = |what: &str| -> Result<usize> {
            match lead {
                Some(v) if v.fract() == 0.0 && v >= 1.0 && v <= u32::MAX as f64 => Ok(v as usize),
                _ => Err(bad(&format!(
                    "needs a positive whole {what} right after '{name}'"
                ))),
            }
        };
        let mut take = |key: &str| -> Option<Option<usize>> {
            let i = opts.iter().position(|(k, _)| k == key)?;
            Some(opts.remove(i).1)
        };
        let layer = match name {
            "conv" => {
                let out = count("number of filters")?;
                let kernel = take("k")
                    .flatten()
                    .ok_or_else(|| bad("needs a kernel size, e.g. conv16k3"))?;
                let stride = take("s").flatten().unwrap_or(1);
                let padding = take("p").flatten().unwrap_or(0);
                let bias = take("nobias").is_none();
                if kernel == 0 || stride == 0 {
                    return Err(bad("kernel and stride must be positive"));
                }
                LayerSpec::Conv {
                    out,
                    kernel,
                    stride,
                    padding,
                    bias,
                }
            }
            "maxpool" | "avgpool" => {
                let kernel = count("window size")?;
                let stride = take("s").flatten().unwrap_or(kernel);
                let padding = take("p").flatten().unwrap_or(0);
                if stride == 0 {
                    return Err(bad("the stride must be positive"));
                }
                if 2 * padding > kernel {
                    return Err(bad("padding may be at most half the window"));
                }
                if name == "maxpool" {
                    LayerSpec::MaxPool {
                        kernel,
                        stride,
                        padding,
                    }
                } else {
                    LayerSpec::AvgPool {
                        kernel,
                        stride,
                        padding,
                    }
                }
            }
            "linear" => LayerSpec::Linear {
                out: count("number of outputs")?,
                bias: take("nobias").is_none(),
            },
            "dropout" => match lead {
                Some(p) if (0.0..1.0).contains(&p) => LayerSpec::Dropout(p),
                _ => return Err(bad("needs a probability in [0, 1), e.g. dropout0.5")),
            },
            "relu" | "sigmoid" | "tanh" | "flatten" | "batchnorm" | "bn" => {
                if lead.is_some() {
                    return Err(bad(&format!("'{name}' takes no number")));
                }
                match name {
                    "flatten" => LayerSpec::Flatten,
                    "batchnorm" | "bn" => LayerSpec::BatchNorm,
                    act => LayerSpec::Activation(act.parse()?),
                }
            }
            "" => return Err(bad("empty layer (two commas in a row?)")),
            other => return Err(bad(&format!("unknown layer '{other}' (known: {known})"))),
        };
        if let Some((k, _)) = opts.first() {
            return Err(bad(&format!("unknown option '{k}' for {name}")));
        }
        Ok(layer)
    }

    /// The output shape of one sample, given the input shape.
    pub(super) fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let spatial = |kernel, stride, padding, channels_out: Option<usize>| match *input {
            [c, h, w] => {
                let win = Window {
                    channels: c,
                    height: h,
                    width: w,
                    kernel_h: kernel,
                    kernel_w: kernel,
                    stride,
                    padding,
                };
                match (win.out_h(), win.out_w()) {
                    (Some(oh), Some(ow)) if oh > 0 && ow > 0 => {
                        Ok(vec![channels_out.unwrap_or(c), oh, ow])
                    }
                    _ => Err(format!(
                        "a {kernel}×{kernel} window does not fit its {h}×{w} input"
                    )),
                }
            }
            _ => Err(format!(
                "needs [channels, height, width] input, got {input:?}"
            )),
        };
        match *self {
            LayerSpec::Conv {
                out,
                kernel,
                stride,
                padding,
                ..
            } => spatial(kernel, stride, padding, Some(out)),
            LayerSpec::MaxPool {
                kernel,
                stride,
                padding,
            }
            | LayerSpec::AvgPool {
                kernel,
                stride,
                padding,
            } => spatial(kernel, stride, padding, None),
            LayerSpec::Linear { out, .. } => match input {
                [_] => Ok(vec![out]),
                _ => Err(format!(
                    "needs a flat input, got {input:?}: put 'flatten' before it"
                )),
            },
            LayerSpec::Flatten => {
                Ok(vec![super::numel(input).ok_or_else(|| {
                    "the flattened size is too large".to_string()
                })?])
            }
            LayerSpec::BatchNorm => match input.len() {
                1 | 3 => Ok(input.to_vec()),
                _ => Err(format!(
                    "needs [features] or [C, H, W] input, got {input:?}"
                )),
            },
            LayerSpec::Activation(_) | LayerSpec::Dropout(_) => Ok(input.to_vec()),
        }
    }
}

impl fmt::Display for LayerSpec {
    /// The canonical token (defaults left out), which parses back to `self`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |f: &mut fmt::Formatter<'_>, key: &str, v: usize, default: usize| {
            if v != default {
                write!(f, "{key}{v}")
            } else {
                Ok(())
            }
        };
        match *self {
            LayerSpec::Conv {
                out,
                kernel,
                stride,
                padding,
                bias,
            } => {
                write!(f, "conv{out}k{kernel}")?;
                opt(f, "s", stride, 1)?;
                opt(f, "p", padding, 0)?;
                if !bias {
                    f.write_str("nobias")?;
                }
                Ok(())
            }
            LayerSpec::MaxPool {
                kernel,
                stride,
                padding,
            }
            | LayerSpec::AvgPool {
                kernel,
                stride,
                padding,
            } => {
                let name = if matches!(self, LayerSpec::MaxPool { .. }) {
                    "maxpool"
                } else {
                    "avgpool"
                };
                write!(f, "{name}{kernel}")?;
                opt(f, "s", stride, kernel)?;
                opt(f, "p", padding, 0)
            }
            LayerSpec::Linear { out, bias } => {
                write!(f, "linear{out}{}", if bias { "" } else { "nobias" })
            }
            LayerSpec::Activation(a) => write!(f, "{a}"),
            LayerSpec::Flatten => f.write_str("flatten"),
            LayerSpec::Dropout(p) => write!(f, "dropout{p}"),
            LayerSpec::BatchNorm => f.write_str("batchnorm"),
        }
    }
}
