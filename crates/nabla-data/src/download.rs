//! Fetching the standard files from a public mirror, verified before they are kept.

use crate::{DataError, DatasetKind, Result};
use flate2::read::MultiGzDecoder;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// How a downloaded file is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256 of the *decompressed* IDX bytes: independent of how a mirror
    /// compressed the file. Computed from the reference MNIST files.
    ContentSha256(&'static str),
    /// MD5 of the compressed file as published by the dataset's authors (the
    /// only checksums Fashion-MNIST publishes; torchvision uses the same).
    FileMd5(&'static str),
}

/// One file of a dataset and its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorFile {
    /// File name, as on the mirror and on disk.
    pub name: &'static str,
    /// Its checksum.
    pub checksum: Checksum,
}

/// The four MNIST files.
pub const MNIST_FILES: [MirrorFile; 4] = [
    MirrorFile {
        name: "train-images-idx3-ubyte.gz",
        checksum: Checksum::ContentSha256(
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
    },
    MirrorFile {
        name: "train-labels-idx1-ubyte.gz",
        checksum: Checksum::ContentSha256(
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
    },
    MirrorFile {
        name: "t10k-images-idx3-ubyte.gz",
        checksum: Checksum::ContentSha256(
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
    },
    MirrorFile {
        name: "t10k-labels-idx1-ubyte.gz",
        checksum: Checksum::ContentSha256(
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
];

/// The four Fashion-MNIST files, with the MD5s published by Zalando Research.
pub const FASHION_MNIST_FILES: [MirrorFile; 4] = [
    MirrorFile {
        name: "train-images-idx3-ubyte.gz",
        checksum: Checksum::FileMd5("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    },
    MirrorFile {
        name: "train-labels-idx1-ubyte.gz",
        checksum: Checksum::FileMd5("25c81989df183df01b3e8a0aad5dffbe"),
    },
    MirrorFile {
        name: "t10k-images-idx3-ubyte.gz",
        checksum: Checksum::FileMd5("bef4ecab320f06d8554ea6380940ec79"),
    },
    MirrorFile {
        name: "t10k-labels-idx1-ubyte.gz",
        checksum: Checksum::FileMd5("bb300cfdad3c16e7a12a480ee83cd310"),
    },
];

/// Largest body accepted from a mirror (the largest real file is under 30 MB).
const MAX_DOWNLOAD: u64 = 64 << 20;

impl DatasetKind {
    /// The public mirror the files are fetched from by default.
    pub fn default_mirror(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "https://ossci-datasets.s3.amazonaws.com/mnist/",
            DatasetKind::FashionMnist => {
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
            }
        }
    }

    /// The dataset's files and checksums.
    pub fn files(self) -> &'static [MirrorFile; 4] {
        match self {
            DatasetKind::Mnist => &MNIST_FILES,
            DatasetKind::FashionMnist => &FASHION_MNIST_FILES,
        }
    }
}

/// Downloads the dataset's four files from `base_url` into `dir`, skipping
/// files already there that verify. Each file is verified in memory, then
/// written atomically (temporary file in `dir`, fsync, rename), so a failed or
/// corrupt download never leaves a half-written file. `log` receives one line
/// per file.
///
/// # Errors
/// [`DataError::Download`] for an unreachable mirror, an HTTP error, an
/// oversized body or a checksum mismatch; [`DataError::Io`] for the directory.
pub fn download(
    kind: DatasetKind,
    base_url: &str,
    dir: &Path,
    log: impl FnMut(&str),
) -> Result<()> {
    download_files(kind.files(), base_url, dir, log)
}

/// [`download`] for any list of files (used with a local server in tests).
///
/// # Errors
/// As [`download`].
pub fn download_files(
    files: &[MirrorFile],
    base_url: &str,
    dir: &Path,
    mut log: impl FnMut(&str),
) -> Result<()> {
    let created = !dir.exists();
    let result = fetch_all(files, base_url, dir, &mut log);
    // A failed first download leaves no empty directory behind.
    if result.is_err() && created {
        let _ = std::fs::remove_dir(dir);
    }
    result
}

/// Where a mirror is: a web address, or a local directory (a path or a
/// `file://` address) holding the files, as a copy made by hand.
fn local_mirror(base_url: &str) -> Option<&Path> {
    match base_url.strip_prefix("file://") {
        Some(path) => Some(Path::new(path)),
        None if !base_url.contains("://") => Some(Path::new(base_url)),
        None => None,
    }
}

fn fetch_all(
    files: &[MirrorFile],
    base_url: &str,
    dir: &Path,
    log: &mut impl FnMut(&str),
) -> Result<()> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(300)))
            .build(),
    );
    for file in files {
        let target = dir.join(file.name);
        if let Ok(existing) = std::fs::read(&target) {
            if verify(&file.checksum, &existing).is_ok() {
                log(&format!(
                    "{}: already present and verified",
                    target.display()
                ));
                continue;
            }
        }
        let url = format!("{}/{}", base_url.trim_end_matches('/'), file.name);
        let fail = |reason: String| DataError::Download {
            url: url.clone(),
            reason,
        };
        let body = match local_mirror(base_url) {
            Some(local) => {
                let path = local.join(file.name);
                let mut bytes = Vec::new();
                std::fs::File::open(&path)
                    .and_then(|f| f.take(MAX_DOWNLOAD + 1).read_to_end(&mut bytes))
                    .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                if bytes.len() as u64 > MAX_DOWNLOAD {
                    return Err(fail(format!("more than {MAX_DOWNLOAD} bytes")));
                }
                bytes
            }
            None => {
                let mut response = agent.get(&url).call().map_err(|e| fail(e.to_string()))?;
                response
                    .body_mut()
                    .with_config()
                    .limit(MAX_DOWNLOAD)
                    .read_to_vec()
                    .map_err(|e| fail(e.to_string()))?
            }
        };
        verify(&file.checksum, &body).map_err(fail)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.nabla-tmp-", file.name))
            .tempfile_in(dir)
            .map_err(io)?;
        tmp.as_file_mut().write_all(&body).map_err(io)?;
        // Temporary files are created private (0600); data files are ordinary files.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io)?;
        }
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&target).map_err(|e| io(e.error))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        log(&format!(
            "{}: {} bytes, verified",
            target.display(),
            body.len()
        ));
    }
    Ok(())
}

/// Checks bytes against a checksum; the error says what was expected and found.
fn verify(checksum: &Checksum, bytes: &[u8]) -> std::result::Result<(), String> {
    let (expected, found) = match checksum {
        Checksum::FileMd5(want) => (*want, hex(&Md5::digest(bytes))),
        Checksum::ContentSha256(want) => {
            let mut content = Vec::new();
            MultiGzDecoder::new(bytes)
                .take(MAX_DOWNLOAD * 4)
                .read_to_end(&mut content)
                .map_err(|e| format!("not a valid gzip file: {e}"))?;
            (*want, hex(&Sha256::digest(&content)))
        }
    };
    if expected == found {
        Ok(())
    } else {
        Err(format!(
            "checksum mismatch: expected {expected}, got {found}"
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
