//! A small text language for networks: `"conv16k3p1,relu,maxpool2,flatten,linear10"`.
//!
//! A spec is a comma-separated list of layers, applied in order to one input
//! sample of a declared shape (`[1, 28, 28]` for MNIST images). Each layer
//! becomes one child of an `nn.Sequential`, so layer `i`'s parameters are
//! named `i.weight`, `i.bias`, … and the network loads into the PyTorch
//! module [`NetSpec::pytorch`] writes.
//!
//! | token | layer | PyTorch |
//! |---|---|---|
//! | `conv<O>k<K>[s<S>][p<P>][nobias]` | convolution, `O` filters `K×K`, stride `S` (1), padding `P` (0) | `nn.Conv2d(C, O, K, stride=S, padding=P)` |
//! | `maxpool<K>[s<S>][p<P>]` | max pooling, stride `S` (= `K`) | `nn.MaxPool2d(K, S, P)` |
//! | `avgpool<K>[s<S>][p<P>]` | average pooling | `nn.AvgPool2d(K, S, P)` |
//! | `linear<O>[nobias]` | dense layer with `O` outputs | `nn.Linear(F, O)` |
//! | `relu`, `sigmoid`, `tanh` | activation | `nn.ReLU()`, … |
//! | `flatten` | `[C, H, W] → [C·H·W]` | `nn.Flatten()` |
//! | `dropout<P>` | dropout with probability `P` (e.g. `dropout0.5`) | `nn.Dropout(P)` |
//! | `batchnorm` (or `bn`) | batch norm, 1-D or 2-D by its input | `nn.BatchNorm1d(F)` / `nn.BatchNorm2d(C)` |
//!
//! Input sizes (channels, features) are inferred, so a spec names only what
//! it chooses. A dense layer needs a flat input: put `flatten` after the
//! last convolutional or pooling layer.

mod layer;

pub use layer::LayerSpec;

use crate::{
    Activation, AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, Init, Linear, MaxPool2d,
    Sequential, MAX_PARAMS,
};
use nabla_autograd::{Error, Result};
use nabla_tensor::{Float, Rng};

/// The named architectures `nabla train --preset` offers (besides `mlp`, the
/// default multi-layer perceptron, which has its own description).
pub const PRESETS: &[(&str, &str)] = &[
    (
        // The LeNet variant of Caffe's MNIST tutorial: 20 and 50 5×5 filters,
        // 500 hidden units. Small and fast, ≥ 99% in 3 epochs.
        "cnn",
        "conv20k5,relu,maxpool2,conv50k5,relu,maxpool2,flatten,linear500,relu,linear10",
    ),
    (
        // Deep Learning from Scratch's DeepConvNet: 3×3 convolutions 16,16 /
        // 32,32 / 64,64, each pair followed by 2×2 max pooling, a 50-unit
        // dense layer, dropout 0.5, 10 outputs.
        "deep-cnn",
        "conv16k3p1,relu,conv16k3p1,relu,maxpool2,conv32k3p1,relu,conv32k3p1,relu,maxpool2,\
         conv64k3p1,relu,conv64k3p1,relu,maxpool2,flatten,linear50,relu,dropout0.5,linear10",
    ),
    (
        // The most accurate single network found for MNIST within 15
        // minutes of training on 2 cores (chosen on the validation split
        // among three, docs/convnets.md): 3×3 convolutions 32, 32 / 64, 64
        // without padding, each pair followed by 2×2 max pooling and
        // dropout 0.25, 256 hidden units, dropout 0.5.
        "best-cnn",
        "conv32k3,relu,conv32k3,relu,maxpool2,dropout0.25,conv64k3,relu,conv64k3,relu,maxpool2,\
         dropout0.25,flatten,linear256,relu,dropout0.5,linear10",
    ),
    (
        // A LeNet-like net (LeCun et al., 1998), the convolution benchmark.
        "lenet",
        "conv8k5,relu,maxpool2,conv16k5,relu,maxpool2,flatten,linear10",
    ),
];

/// The most values one layer may output per sample (2²⁶, 256 MB of f32):
/// a padding or a size typed wrong (`conv8k3p27510`) is refused when the
/// spec is read, not when the first batch asks for hundreds of gigabytes.
pub const MAX_ACTIVATION: usize = 1 << 26;

/// The element count of a shape, or `None` if it overflows (shapes come
/// from command lines and model files).
fn numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// The spec of a preset, by name.
pub fn preset(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A network as a layer list over an input of a given shape (per sample).
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    /// Shape of one input sample, e.g. `[1, 28, 28]`.
    pub input: Vec<usize>,
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
}

/// One layer with the per-sample shapes it takes and gives.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedLayer {
    /// The layer.
    pub layer: LayerSpec,
    /// Input shape of one sample.
    pub input: Vec<usize>,
    /// Output shape of one sample.
    pub output: Vec<usize>,
}

impl NetSpec {
    /// Parses a comma-separated spec for inputs of shape `input`, and checks
    /// that every layer fits the shape it receives.
    ///
    /// # Errors
    /// A token that does not parse, or a layer that does not fit (naming its
    /// position, its token and the shape it got).
    pub fn parse(input: &[usize], spec: &str) -> Result<Self> {
        if spec.trim().is_empty() {
            return Err(Error::invalid("layer spec", "the spec names no layer"));
        }
        let layers = spec
            .split(',')
            .map(LayerSpec::parse)
            .collect::<Result<Vec<_>>>()?;
        let net = NetSpec {
            input: input.to_vec(),
            layers,
        };
        net.plan()?;
        Ok(net)
    }

    /// The canonical spec string (parses back to the same network).
    pub fn spec_string(&self) -> String {
        let tokens: Vec<String> = self.layers.iter().map(|l| l.to_string()).collect();
        tokens.join(",")
    }

    /// Every layer with its input and output shapes.
    ///
    /// # Errors
    /// A layer that does not fit its input, or a network of more than
    /// [`MAX_PARAMS`] parameters.
    pub fn plan(&self) -> Result<Vec<PlannedLayer>> {
        if self.input.is_empty() || self.input.contains(&0) {
            return Err(Error::invalid(
                "layer spec",
                format!(
                    "input shape {:?} must be non-empty and positive",
                    self.input
                ),
            ));
        }
        let mut shape = self.input.clone();
        let mut planned = Vec::with_capacity(self.layers.len());
        let mut params = 0usize;
        for (i, layer) in self.layers.iter().enumerate() {
            let output = layer.output_shape(&shape).map_err(|why| {
                Error::invalid("layer spec", format!("layer {i} '{layer}': {why}"))
            })?;
            if numel(&output).is_none_or(|n| n > MAX_ACTIVATION) {
                return Err(Error::invalid(
                    "layer spec",
                    format!(
                        "layer {i} '{layer}': its output {output:?} has more than {MAX_ACTIVATION} values per sample; refusing to allocate them"
                    ),
                ));
            }
            let p = PlannedLayer {
                layer: *layer,
                input: shape,
                output: output.clone(),
            };
            params = p
                .param_shapes()
                .iter()
                .try_fold(params, |acc, (_, s)| acc.checked_add(numel(s)?))
                .filter(|&n| n <= MAX_PARAMS)
                .ok_or_else(|| {
                    Error::invalid(
                        "layer spec",
                        format!("more than {MAX_PARAMS} parameters; refusing to allocate them"),
                    )
                })?;
            planned.push(p);
            shape = output;
        }
        Ok(planned)
    }

    /// Per-sample output shape.
    ///
    /// # Errors
    /// As [`NetSpec::plan`].
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        Ok(self
            .plan()?
            .last()
            .map_or(self.input.clone(), |l| l.output.clone()))
    }

    /// Builds the network, weights drawn by `init`, with the input shape declared.
    ///
    /// # Errors
    /// As [`NetSpec::plan`].
    pub fn build<T: Float>(&self, init: Init, rng: &mut Rng) -> Result<Sequential<T>> {
        let mut net = Sequential::new().with_input_shape(&self.input);
        for p in self.plan()? {
            net.push_boxed(p.build(init, rng)?);
        }
        Ok(net)
    }

    /// The name and shape of every parameter and buffer, in order, without
    /// allocating the network (so a file's claims can be checked first).
    ///
    /// # Errors
    /// As [`NetSpec::plan`].
    pub fn state_shapes(&self) -> Result<Vec<(String, Vec<usize>)>> {
        Ok(self
            .plan()?
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                let mut all = p.param_shapes();
                all.extend(p.buffer_shapes());
                all.into_iter()
                    .map(move |(name, shape)| (format!("{i}.{name}"), shape))
            })
            .collect())
    }

    /// The equivalent PyTorch module, as Python source
    /// (`nn.Sequential(nn.Conv2d(1, 16, 3, stride=1, padding=1), …)`),
    /// whose `state_dict` has the same names and shapes as the model file.
    ///
    /// # Errors
    /// As [`NetSpec::plan`].
    pub fn pytorch(&self) -> Result<String> {
        let modules: Vec<String> = self.plan()?.iter().map(PlannedLayer::pytorch).collect();
        Ok(format!(
            "nn.Sequential(\n    {},\n)",
            modules.join(",\n    ")
        ))
    }
}

impl PlannedLayer {
    /// The multiply-adds of one sample's forward pass through the layer:
    /// for a convolution or a dense layer, each output's share of the
    /// weights (`C·k·k`, or the input features) times the outputs; for the
    /// others, one per output value. Saturates rather than overflowing.
    pub fn multiply_adds(&self) -> usize {
        let outputs = self.output.iter().fold(1usize, |a, &d| a.saturating_mul(d));
        let per_output = match self.layer {
            LayerSpec::Conv { kernel, .. } => {
                self.input[0].saturating_mul(kernel).saturating_mul(kernel)
            }
            LayerSpec::Linear { .. } => self.input[0],
            _ => 1,
        };
        outputs.saturating_mul(per_output)
    }

    fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let w = |s: Vec<usize>| ("weight".to_string(), s);
        let b = |n: usize| ("bias".to_string(), vec![n]);
        match self.layer {
            LayerSpec::Conv {
                out, kernel, bias, ..
            } => {
                let mut v = vec![w(vec![out, self.input[0], kernel, kernel])];
                if bias {
                    v.push(b(out));
                }
                v
            }
            LayerSpec::Linear { out, bias } => {
                let mut v = vec![w(vec![out, self.input[0]])];
                if bias {
                    v.push(b(out));
                }
                v
            }
            LayerSpec::BatchNorm => vec![w(vec![self.input[0]]), b(self.input[0])],
            _ => Vec::new(),
        }
    }

    fn buffer_shapes(&self) -> Vec<(String, Vec<usize>)> {
        match self.layer {
            LayerSpec::BatchNorm => vec![
                ("running_mean".into(), vec![self.input[0]]),
                ("running_var".into(), vec![self.input[0]]),
                ("num_batches_tracked".into(), vec![]),
            ],
            _ => Vec::new(),
        }
    }

    fn build<T: Float>(&self, init: Init, rng: &mut Rng) -> Result<Box<dyn crate::Module<T>>> {
        Ok(match self.layer {
            LayerSpec::Conv {
                out,
                kernel,
                stride,
                padding,
                bias,
            } => Box::new(Conv2d::new(
                self.input[0],
                out,
                kernel,
                stride,
                padding,
                bias,
                init,
                rng,
            )?),
            LayerSpec::MaxPool {
                kernel,
                stride,
                padding,
            } => Box::new(MaxPool2d {
                kernel,
                stride,
                padding,
            }),
            LayerSpec::AvgPool {
                kernel,
                stride,
                padding,
            } => Box::new(AvgPool2d {
                kernel,
                stride,
                padding,
            }),
            LayerSpec::Linear { out, bias } => {
                let mut l = Linear::new(self.input[0], out, init, rng);
                if !bias {
                    l.bias = None;
                }
                Box::new(l)
            }
            LayerSpec::Activation(a) => a.layer(),
            LayerSpec::Flatten => Box::new(Flatten),
            LayerSpec::Dropout(p) => Box::new(Dropout::new(p)?),
            LayerSpec::BatchNorm => Box::new(BatchNorm::<T>::new(self.input[0])),
        })
    }

    fn pytorch(&self) -> String {
        let input = &self.input;
        match self.layer {
            LayerSpec::Conv {
                out,
                kernel,
                stride,
                padding,
                bias,
            } => format!(
                "nn.Conv2d({}, {out}, {kernel}, stride={stride}, padding={padding}, bias={})",
                input[0],
                py_bool(bias)
            ),
            LayerSpec::MaxPool {
                kernel,
                stride,
                padding,
            } => format!("nn.MaxPool2d({kernel}, stride={stride}, padding={padding})"),
            LayerSpec::AvgPool {
                kernel,
                stride,
                padding,
            } => format!("nn.AvgPool2d({kernel}, stride={stride}, padding={padding})"),
            LayerSpec::Linear { out, bias } => {
                format!("nn.Linear({}, {out}, bias={})", input[0], py_bool(bias))
            }
            LayerSpec::Activation(Activation::Relu) => "nn.ReLU()".into(),
            LayerSpec::Activation(Activation::Sigmoid) => "nn.Sigmoid()".into(),
            LayerSpec::Activation(Activation::Tanh) => "nn.Tanh()".into(),
            LayerSpec::Flatten => "nn.Flatten()".into(),
            LayerSpec::Dropout(p) => format!("nn.Dropout({p})"),
            LayerSpec::BatchNorm if input.len() == 1 => format!("nn.BatchNorm1d({})", input[0]),
            LayerSpec::BatchNorm => format!("nn.BatchNorm2d({})", input[0]),
        }
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Module;

    #[test]
    fn a_layer_whose_output_would_not_fit_in_memory_is_refused_when_read() {
        // Found by fuzzing: 80 parameters, but 24 billion outputs per image.
        let err = NetSpec::parse(&[1, 28, 28], "conv8k3p27510,relu").unwrap_err();
        assert!(
            err.to_string().contains("layer 0 'conv8k3p27510'")
                && err.to_string().contains("refusing to allocate"),
            "{err}"
        );
        assert!(NetSpec::parse(&[1, 28, 28], "conv8k3p2,relu").is_ok());
    }

    #[test]
    fn tokens_parse_and_print_back() {
        for (token, canonical) in [
            ("conv16k3p1", "conv16k3p1"),
            ("conv8k5s1p0", "conv8k5"),
            ("conv4k3s2nobias", "conv4k3s2nobias"),
            ("maxpool2", "maxpool2"),
            ("maxpool3s2p1", "maxpool3s2p1"),
            ("avgpool2s2", "avgpool2"),
            ("linear10", "linear10"),
            ("linear10nobias", "linear10nobias"),
            ("dropout0.5", "dropout0.5"),
            ("bn", "batchnorm"),
            (" relu ", "relu"),
            ("flatten", "flatten"),
        ] {
            let layer = LayerSpec::parse(token).unwrap();
            assert_eq!(layer.to_string(), canonical);
            assert_eq!(LayerSpec::parse(canonical).unwrap(), layer);
        }
    }

    #[test]
    fn bad_tokens_are_named_in_the_error() {
        for (token, needle) in [
            ("conv16", "kernel size"),
            ("conv0k3", "positive whole"),
            ("convk3", "unknown layer 'convk'"),
            ("conv16k3q1", "unknown option 'q'"),
            ("pool2", "unknown layer 'pool'"),
            ("dropout1.5", "probability"),
            ("relu3", "takes no number"),
            ("linear1.5", "positive whole"),
            ("maxpool2p2", "half the window"),
            ("", "empty layer"),
        ] {
            let err = LayerSpec::parse(token).unwrap_err().to_string();
            assert!(err.contains(needle), "{token}: {err}");
            assert!(err.contains(&format!("'{token}'")), "{token}: {err}");
        }
    }

    #[test]
    fn shapes_are_inferred_and_misfits_are_reported_with_their_position() {
        let net = NetSpec::parse(&[1, 28, 28], preset("deep-cnn").unwrap()).unwrap();
        assert_eq!(net.output_shape().unwrap(), [10]);
        let plan = net.plan().unwrap();
        assert_eq!(plan[15].input, [64, 3, 3], "28 → 14 → 7 → 3 by 2×2 pooling");
        let lenet = NetSpec::parse(&[1, 28, 28], preset("lenet").unwrap()).unwrap();
        assert_eq!(lenet.plan().unwrap()[7].input, [256]);

        let err = NetSpec::parse(&[1, 28, 28], "conv8k3,relu,linear10").unwrap_err();
        assert!(err.to_string().contains("layer 2 'linear10'"), "{err}");
        assert!(err.to_string().contains("flatten"), "{err}");
        let err = NetSpec::parse(&[1, 4, 4], "conv8k5").unwrap_err();
        assert!(err.to_string().contains("does not fit its 4×4"), "{err}");
        let err = NetSpec::parse(&[784], "conv8k5").unwrap_err();
        assert!(
            err.to_string().contains("[channels, height, width]"),
            "{err}"
        );
        let err = NetSpec::parse(&[784], "linear100000,relu,linear100000").unwrap_err();
        assert!(err.to_string().contains("refusing"), "{err}");
        assert!(NetSpec::parse(&[784], " ").is_err());
    }

    #[test]
    fn built_networks_match_the_planned_names_and_shapes() {
        for spec in PRESETS
            .iter()
            .map(|(_, s)| *s)
            .chain(["conv4k3p1nobias,bn,relu,avgpool2,flatten,bn,linear10nobias"])
        {
            let net = NetSpec::parse(&[1, 28, 28], spec).unwrap();
            let model = net.build::<f32>(Init::He, &mut Rng::seed(1)).unwrap();
            let mut built: Vec<(String, Vec<usize>)> = model
                .named_params()
                .into_iter()
                .map(|(n, p)| (n, p.value().dims().to_vec()))
                .collect();
            built.extend(
                model
                    .named_buffers()
                    .into_iter()
                    .map(|(n, t)| (n, t.dims().to_vec())),
            );
            built.sort();
            let mut planned = net.state_shapes().unwrap();
            planned.sort();
            assert_eq!(built, planned, "{spec}");
            assert_eq!(
                NetSpec::parse(&[1, 28, 28], &net.spec_string()).unwrap(),
                net
            );
        }
    }

    #[test]
    fn pytorch_source_names_every_layer() {
        let net = NetSpec::parse(
            &[1, 28, 28],
            "conv8k5,bn,relu,maxpool2,flatten,dropout0.5,linear10",
        )
        .unwrap();
        let py = net.pytorch().unwrap();
        for needle in [
            "nn.Conv2d(1, 8, 5, stride=1, padding=0, bias=True)",
            "nn.BatchNorm2d(8)",
            "nn.MaxPool2d(2, stride=2, padding=0)",
            "nn.Flatten()",
            "nn.Dropout(0.5)",
            "nn.Linear(1152, 10, bias=True)",
        ] {
            assert!(py.contains(needle), "{needle} in {py}");
        }
    }
}
