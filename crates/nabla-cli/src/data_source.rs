//! Where the images come from: a directory of IDX files, or the embedded subset.

use anyhow::{bail, Result};
use nabla_data::{embedded_mnist, Dataset, DatasetKind, Splits, EMBEDDED_DESCRIPTION};
use std::path::Path;

/// Loads `--data-dir` (or the embedded MNIST subset) and describes what was loaded.
pub fn load(data_dir: Option<&Path>, kind: DatasetKind) -> Result<(Splits, String)> {
    match data_dir {
        Some(dir) => {
            let splits = Dataset::load_dir(dir, kind)?;
            let desc = format!(
                "{} from {}: {} training and {} test images",
                kind.name(),
                dir.display(),
                splits.train.len(),
                splits.test.len()
            );
            Ok((splits, desc))
        }
        None => {
            if kind != DatasetKind::Mnist {
                bail!(
                    "{} is not embedded: pass --data-dir (see `nabla download --dataset {}`)",
                    kind.name(),
                    kind.name()
                );
            }
            Ok((embedded_mnist()?, EMBEDDED_DESCRIPTION.to_string()))
        }
    }
}
