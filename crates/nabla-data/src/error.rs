//! Errors of the data room; each names the file (or source) and the problem.

use std::path::PathBuf;

/// Result alias for the data room.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything reading, validating, preprocessing or downloading data can refuse.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The first bytes are not an IDX header.
    #[error(
        "{name}: not an IDX file: the magic bytes are {found:02x?}, expected [00, 00, 08, rank]"
    )]
    BadMagic {
        /// The file.
        name: String,
        /// The four bytes found.
        found: [u8; 4],
    },
    /// An IDX element type other than unsigned bytes.
    #[error("{name}: IDX element type 0x{code:02x} is not supported (only 0x08, unsigned byte)")]
    UnsupportedType {
        /// The file.
        name: String,
        /// The type code found.
        code: u8,
    },
    /// A file whose rank is not what the dataset needs.
    #[error("{name}: expected a rank-{expected} IDX file, found rank {found}")]
    BadRank {
        /// The file.
        name: String,
        /// Rank needed.
        expected: usize,
        /// Rank found.
        found: usize,
    },
    /// The header claims more data than any MNIST-like file could hold.
    #[error("{name}: the header claims {} bytes of data ({dims:?}), more than the {limit}-byte limit", claimed_bytes(*.claimed))]
    TooLarge {
        /// The file.
        name: String,
        /// Dimensions claimed.
        dims: Vec<usize>,
        /// Bytes claimed (`u128::MAX` when even that overflows).
        claimed: u128,
        /// The limit.
        limit: u64,
    },
    /// The data section is shorter or longer than the header says.
    #[error(
        "{name}: the header claims {expected} bytes of data ({dims:?}) but the file holds {found}"
    )]
    LengthMismatch {
        /// The file.
        name: String,
        /// Dimensions claimed.
        dims: Vec<usize>,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes actually present (for gzip, after decompression; capped at expected + 1).
        found: u64,
    },
    /// Image and label files disagree.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// Image file.
        images: String,
        /// Label file.
        labels: String,
        /// Images.
        n_images: usize,
        /// Labels.
        n_labels: usize,
    },
    /// A label outside the class range.
    #[error("{name}: label {label} at index {index} is not a class (must be < {classes})")]
    BadLabel {
        /// The file.
        name: String,
        /// Where.
        index: usize,
        /// The label.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// Images of a size the dataset does not use.
    #[error("{name}: images are {rows}x{cols}, expected {expected_rows}x{expected_cols}")]
    BadImageSize {
        /// The file.
        name: String,
        /// Rows found.
        rows: usize,
        /// Columns found.
        cols: usize,
        /// Rows expected.
        expected_rows: usize,
        /// Columns expected.
        expected_cols: usize,
    },
    /// An argument that cannot be used (a split fraction, a batch size, an image).
    #[error("{what}: {reason}")]
    Invalid {
        /// What was refused.
        what: String,
        /// Why.
        reason: String,
    },
    /// A CSV record that cannot be used, by file, line and column.
    #[error("{path}: line {line}{}: {reason}", column.as_ref().map(|c| format!(", column '{c}'")).unwrap_or_default())]
    Table {
        /// The file.
        path: PathBuf,
        /// The line (from 1; the header is line 1).
        line: u64,
        /// The column, where one is to blame.
        column: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// An image file that cannot be read or does not fit its folder.
    #[error("{path}: {reason}")]
    Image {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A download that failed or did not verify.
    #[error("download of {url}: {reason}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl DataError {
    /// Shorthand for [`DataError::Invalid`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        DataError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// A claimed byte count for a message: past `u128`, says so.
fn claimed_bytes(claimed: u128) -> String {
    match claimed {
        u128::MAX => "over 2^128".to_string(),
        n => n.to_string(),
    }
}
