//! How a network in a model file is built: the `architecture` of its
//! metadata, an MLP or a layer spec.

use crate::{Activation, Init, MlpConfig, NetSpec, Sequential};
use nabla_tensor::{Float, Rng};
use serde::{Deserialize, Serialize};

/// How a network is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Architecture {
    /// A multi-layer perceptron (`Linear`, activation, …, `Linear`).
    Mlp {
        /// Input features.
        input: usize,
        /// Hidden sizes.
        hidden: Vec<usize>,
        /// Outputs.
        output: usize,
        /// `relu`, `sigmoid` or `tanh`.
        activation: String,
    },
    /// A layer list in the spec language of [`crate::spec`], e.g.
    /// `conv16k3p1,relu,maxpool2,flatten,linear10`.
    Layers {
        /// Shape of one input sample, e.g. `[1, 28, 28]`.
        input: Vec<usize>,
        /// The canonical spec.
        layers: String,
    },
}

impl Architecture {
    /// The architecture of an MLP config.
    pub fn mlp(config: &MlpConfig) -> Self {
        Architecture::Mlp {
            input: config.input,
            hidden: config.hidden.clone(),
            output: config.output,
            activation: config.activation.name().to_string(),
        }
    }

    /// Builds the network with freshly initialised weights.
    ///
    /// # Errors
    /// An unknown activation or a zero layer size.
    pub fn build<T: Float>(
        &self,
        init: Init,
        rng: &mut Rng,
    ) -> nabla_autograd::Result<Sequential<T>> {
        match self {
            Architecture::Mlp {
                input,
                hidden,
                output,
                activation,
            } => {
                let act: Activation = activation.parse()?;
                MlpConfig::new(*input, hidden, *output)
                    .activation(act)
                    .with_init(init)
                    .init(rng)
            }
            Architecture::Layers { input, layers } => {
                NetSpec::parse(input, layers)?.build(init, rng)
            }
        }
    }

    /// The architecture of a layer spec (stored in canonical form).
    pub fn layers(spec: &NetSpec) -> Self {
        Architecture::Layers {
            input: spec.input.clone(),
            layers: spec.spec_string(),
        }
    }

    /// The architecture as a layer spec over one sample's shape: an MLP is
    /// `linear<h>,<activation>,…,linear<out>` over `[input]`.
    ///
    /// # Errors
    /// A spec that does not parse or fit (an unknown activation, a zero size).
    pub fn net_spec(&self) -> nabla_autograd::Result<NetSpec> {
        match self {
            Architecture::Mlp {
                input,
                hidden,
                output,
                activation,
            } => {
                let act: Activation = activation.parse()?;
                let mut tokens: Vec<String> = Vec::new();
                for h in hidden {
                    tokens.push(format!("linear{h}"));
                    tokens.push(act.name().to_string());
                }
                tokens.push(format!("linear{output}"));
                NetSpec::parse(&[*input], &tokens.join(","))
            }
            Architecture::Layers { input, layers } => NetSpec::parse(input, layers),
        }
    }

    /// The equivalent PyTorch `nn.Sequential`, as Python source.
    ///
    /// # Errors
    /// As [`Architecture::net_spec`].
    pub fn pytorch(&self) -> nabla_autograd::Result<String> {
        self.net_spec()?.pytorch()
    }

    /// The name and shape of every parameter and buffer, in order, computed
    /// without allocating the network (so a file's claims can be checked first).
    /// An MLP's shapes are listed whatever its size, so that a file claiming
    /// a huge one is refused by naming the tensor that does not match.
    ///
    /// # Errors
    /// A layer spec that does not parse or fit.
    pub fn state_shapes(&self) -> nabla_autograd::Result<Vec<(String, Vec<usize>)>> {
        let Architecture::Mlp {
            input,
            hidden,
            output,
            ..
        } = self
        else {
            return self.net_spec()?.state_shapes();
        };
        let sizes: Vec<usize> = std::iter::once(*input)
            .chain(hidden.iter().copied())
            .chain([*output])
            .collect();
        Ok(sizes
            .windows(2)
            .enumerate()
            .flat_map(|(i, p)| {
                let layer = 2 * i;
                [
                    (format!("{layer}.weight"), vec![p[1], p[0]]),
                    (format!("{layer}.bias"), vec![p[1]]),
                ]
            })
            .collect())
    }

    /// A short human description, e.g. `mlp 784-128-64-10 relu`.
    pub fn summary(&self) -> String {
        match self {
            Architecture::Mlp {
                input,
                hidden,
                output,
                activation,
            } => {
                let sizes: Vec<String> = std::iter::once(input)
                    .chain(hidden.iter())
                    .chain([output])
                    .map(|s| s.to_string())
                    .collect();
                format!("mlp {} {activation}", sizes.join("-"))
            }
            Architecture::Layers { layers, .. } => {
                // Presets are stored in canonical form, as files store specs.
                // A preset's last layer has as many outputs as the data needs.
                let body = |s: &str| s.rsplit_once(",linear").map(|(b, _)| b.to_string());
                let named = crate::PRESETS
                    .iter()
                    .find(|(_, s)| s == layers || body(s).is_some_and(|b| Some(b) == body(layers)));
                match named {
                    Some((name, _)) => format!("{name} ({layers})"),
                    None => layers.clone(),
                }
            }
        }
    }
}
