//! The IDX file format (used by MNIST): a 4-byte magic `00 00 08 rank`, `rank`
//! big-endian u32 dimensions, then the unsigned bytes in row-major order.
//!
//! Files may be raw or gzip-compressed; gzip is recognised by its magic bytes
//! (`1f 8b`), not by the file name, and multi-member streams are read whole.
//! The header is validated before the data is read: a header that claims more
//! than [`MAX_DATA_BYTES`] is refused, a raw file's length is compared with the
//! claim before allocating, and a compressed stream is read through a limit of
//! the claimed size + 1, so memory grows only with data that is really there.

use crate::{DataError, Result};
use flate2::read::MultiGzDecoder;
use std::io::{BufReader, Read};
use std::path::Path;

/// The largest data section accepted: 1 GiB (full MNIST training images are 47 MB).
pub const MAX_DATA_BYTES: u64 = 1 << 30;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A parsed IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// Dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The bytes, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file, raw or gzip-compressed.
///
/// # Errors
/// [`DataError::Io`] naming the path, or any validation error of [`parse_idx`].
pub fn read_idx(path: &Path) -> Result<Idx> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let name = path.display().to_string();
    parse_idx(&name, BufReader::new(file), Some(len))
}

/// Parses IDX bytes from any reader. `raw_len`, when known, is the total
/// length of the source, used to check an uncompressed file before reading it.
///
/// # Errors
/// [`DataError::BadMagic`], [`DataError::UnsupportedType`],
/// [`DataError::TooLarge`], [`DataError::LengthMismatch`], or I/O errors.
pub fn parse_idx(name: &str, mut reader: impl Read, raw_len: Option<u64>) -> Result<Idx> {
    let io = |source| DataError::Io {
        path: name.into(),
        source,
    };
    let mut first = [0u8; 2];
    let got = read_up_to(&mut reader, &mut first).map_err(io)?;
    let rest = first[..got].to_vec();
    if got == 2 && first == GZIP_MAGIC {
        let decoder = MultiGzDecoder::new(std::io::Cursor::new(rest).chain(reader));
        parse_plain(name, BufReader::new(decoder), None)
    } else {
        parse_plain(name, std::io::Cursor::new(rest).chain(reader), raw_len)
    }
}

fn parse_plain(name: &str, mut reader: impl Read, raw_len: Option<u64>) -> Result<Idx> {
    let io = |source| DataError::Io {
        path: name.into(),
        source,
    };
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic).map_err(io)?;
    if got < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err(DataError::BadMagic {
            name: name.into(),
            found: magic,
        });
    }
    if magic[2] != 0x08 {
        return Err(DataError::UnsupportedType {
            name: name.into(),
            code: magic[2],
        });
    }
    let rank = magic[3] as usize;
    let mut header = vec![0u8; 4 * rank];
    let got = read_up_to(&mut reader, &mut header).map_err(io)?;
    if got < header.len() {
        return Err(DataError::LengthMismatch {
            name: name.into(),
            dims: vec![],
            expected: header.len() as u64,
            found: got as u64,
        });
    }
    let dims: Vec<usize> = header
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    // Up to 255 dimensions of up to 2³² each: the product can overflow
    // even 128 bits, so it saturates.
    let claimed: u128 = dims
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    if claimed > MAX_DATA_BYTES as u128 {
        return Err(DataError::TooLarge {
            name: name.into(),
            dims,
            claimed,
            limit: MAX_DATA_BYTES,
        });
    }
    let expected = claimed as u64;
    if let Some(total) = raw_len {
        let found = total.saturating_sub(4 + 4 * rank as u64);
        if found != expected {
            return Err(DataError::LengthMismatch {
                name: name.into(),
                dims,
                expected,
                found,
            });
        }
    }
    // Read at most one byte more than claimed, so trailing data is detected
    // without reading an unbounded stream.
    let mut data = Vec::new();
    reader
        .take(expected + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 != expected {
        return Err(DataError::LengthMismatch {
            name: name.into(),
            dims,
            expected,
            found: data.len() as u64,
        });
    }
    Ok(Idx { dims, data })
}

/// Fills as much of `buf` as the reader provides; returns how much.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Encodes an IDX file (used by tests and by the subset tooling).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
