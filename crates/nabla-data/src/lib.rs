//! # nabla-data
//!
//! The data room: reading IDX files (the MNIST format) with every header
//! checked before anything large is allocated, the MNIST and Fashion-MNIST
//! datasets, seeded batching, a real MNIST subset embedded in the library,
//! the preprocessing that turns a person's drawing into an MNIST-like digit,
//! and a verified download of the standard files.
//!
//! It knows nothing of graphs: it hands out plain tensors and labels.

mod augment;
mod batch;
mod dataset;
mod digit;
mod download;
mod embedded;
mod error;
mod idx;

pub use augment::Augment;
pub use batch::{batches_per_epoch, Batch, Batches};
pub use dataset::{Dataset, DatasetKind, Splits};
pub use digit::{preprocess_digit, preprocess_digit_file};
pub use download::{
    download, download_files, Checksum, MirrorFile, FASHION_MNIST_FILES, MNIST_FILES,
};
pub use embedded::{embedded_mnist, EMBEDDED_DESCRIPTION};
pub use error::{DataError, Result};
pub use idx::{encode_idx, parse_idx, read_idx, Idx, MAX_DATA_BYTES};
