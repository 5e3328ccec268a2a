//! A real MNIST subset compiled into the library, so training works offline
//! with nothing else on disk.

use crate::idx::parse_idx;
use crate::{DatasetKind, ImageDataset, Result, Splits};

/// How the subset was drawn (shown by the CLI and the docs).
pub const EMBEDDED_DESCRIPTION: &str = "embedded MNIST subset: 10,000 training and 2,000 test images drawn uniformly \
without replacement from the standard MNIST train and t10k files (seed 2026, scripts/make_embedded_subset.py)";

const TRAIN_IMAGES: &[u8] = include_bytes!("../assets/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../assets/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../assets/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../assets/t10k-labels-idx1-ubyte.gz");

/// The embedded subset, decoded and validated like any file.
///
/// # Errors
/// Only if the embedded bytes were corrupted at build time.
pub fn embedded_mnist() -> Result<Splits> {
    let load = |images: &[u8], labels: &[u8], prefix: &str| -> Result<ImageDataset> {
        let (iname, lname) = (
            format!("embedded {prefix}-images"),
            format!("embedded {prefix}-labels"),
        );
        let i = parse_idx(&iname, images, None)?;
        let l = parse_idx(&lname, labels, None)?;
        ImageDataset::from_idx(DatasetKind::Mnist, i, &iname, l, &lname)
    };
    Ok(Splits {
        train: load(TRAIN_IMAGES, TRAIN_LABELS, "train")?,
        test: load(TEST_IMAGES, TEST_LABELS, "t10k")?,
    })
}
