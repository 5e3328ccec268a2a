//! The two small models inside the binary, so that `nabla serve` and
//! `nabla predict` work before anything is trained. They are the output of
//! `scripts/train_shipped_models.sh` (full MNIST, augmented), unedited.

use crate::model_file::{decode_model, ModelSpec};
use anyhow::Result;
use clap::ValueEnum;
use nabla::nn::Sequential;
use std::path::Path;

/// A model shipped inside the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shipped {
    /// 784-100-10 with ReLU (the material's two-layer network).
    Mlp,
    /// Two 5×5 convolution stages (16 and 32 maps) and a 64-unit dense layer.
    Cnn,
}

impl Shipped {
    /// Both, in the order the live page offers them.
    pub const ALL: [Shipped; 2] = [Shipped::Cnn, Shipped::Mlp];

    /// `mlp` or `cnn`.
    pub fn id(self) -> &'static str {
        match self {
            Shipped::Mlp => "mlp",
            Shipped::Cnn => "cnn",
        }
    }

    /// The name messages give it, as if it were a file.
    pub fn label(self) -> String {
        format!("the shipped {} model", self.id())
    }

    fn bytes(self) -> &'static [u8] {
        match self {
            Shipped::Mlp => include_bytes!("../models/mlp.safetensors"),
            Shipped::Cnn => include_bytes!("../models/cnn.safetensors"),
        }
    }

    /// The network (in evaluation form) and its spec.
    pub fn load(self) -> Result<(Sequential<f32>, ModelSpec)> {
        decode_model(Path::new(&self.label()), self.bytes())
    }
}
