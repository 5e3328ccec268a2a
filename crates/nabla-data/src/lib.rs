//! # nabla-data
//!
//! The data room: the [`Dataset`] trait every data set implements, and the
//! data sets themselves — tensors in memory ([`TensorDataset`]), CSV tables
//! ([`Table`]), folders of labelled images ([`load_image_folder`]), and the
//! MNIST-format IDX files, read with every header checked before anything
//! large is allocated ([`ImageDataset`]). Also seeded batching, a real MNIST
//! subset embedded in the library, standardisation fitted on a training
//! split, the shifted views of test-time augmentation ([`ShiftViews`]), the preprocessing that turns a person's drawing into an MNIST-like
//! digit, what a model file records of its data ([`DataSpec`]), and a
//! verified download of the standard files.
//!
//! It knows nothing of graphs: it hands out plain tensors and labels.

mod augment;
mod batch;
mod digit;
mod download;
mod embedded;
mod error;
mod idx;
mod image_folder;
mod images;
mod source;
mod spec;
mod standardize;
mod table;
mod tensors;
mod views;

pub use augment::{Augment, Elastic};
pub use batch::{batches_per_epoch, Batch, Batches};
pub use digit::{preprocess_digit, preprocess_digit_file};
pub use download::{
    download, download_files, Checksum, MirrorFile, FASHION_MNIST_FILES, MNIST_FILES,
};
pub use embedded::{embedded_mnist, EMBEDDED_DESCRIPTION};
pub use error::{DataError, Result};
pub use idx::{encode_idx, parse_idx, read_idx, Idx, MAX_DATA_BYTES};
pub use image_folder::{
    decode_image, load_image, load_image_folder, open_image, Color, ImageFolderOptions, MAX_PIXELS,
};
pub use images::{DatasetKind, ImageDataset, Splits};
pub use source::{
    check_indices, class_labels, gather_inputs, gather_targets, sample_len, split_indices, Dataset,
    Task,
};
pub use spec::{DataSpec, ImageInput, Preprocessing, TableInput, TaskKind};
pub use standardize::Standardizer;
pub use table::{Table, TableData, TaskChoice};
pub use tensors::TensorDataset;
pub use views::ShiftViews;
