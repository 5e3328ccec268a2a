//! Folders of labelled images, as torchvision's `ImageFolder`: one
//! sub-folder per class (named after it), PNG or JPEG files inside.
//!
//! Conventions: classes are the sub-folders' names sorted (as torchvision
//! sorts them); files are read in name order; files with other extensions
//! and hidden files are ignored; every image must have the first image's
//! size unless a size to resize to is given.

use crate::{DataError, ImageDataset, Result};
use image::imageops::FilterType;
use image::DynamicImage;
use std::path::{Path, PathBuf};

/// Channels an image is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Color {
    /// One channel (luma).
    #[default]
    Gray,
    /// Three channels, red, green and blue.
    Rgb,
}

impl Color {
    /// 1 or 3.
    pub fn channels(self) -> usize {
        match self {
            Color::Gray => 1,
            Color::Rgb => 3,
        }
    }
}

/// How the images of a folder are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageFolderOptions {
    /// Grayscale or RGB.
    pub color: Color,
    /// Resize every image to `(height, width)` (bilinear) when given.
    pub size: Option<(usize, usize)>,
}

/// The longest side an image is resized to.
pub const MAX_SIDE: usize = 4096;

/// The largest total of pixel bytes a folder may hold (4 GiB), checked as
/// images are read.
pub const MAX_FOLDER_BYTES: usize = 4 << 30;

/// Reads a folder of class sub-folders into an [`ImageDataset`].
///
/// # Errors
/// A missing folder, fewer than two class folders, a class folder without
/// images, an unreadable image, or images of differing sizes when no size
/// is given — each naming the folder or file.
pub fn load_image_folder(dir: &Path, options: ImageFolderOptions) -> Result<ImageDataset> {
    if let Some(size) = options.size {
        check_size(size)?;
    }
    let classes = class_folders(dir)?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut first: Option<(PathBuf, (usize, usize))> = None;
    for (label, (name, folder)) in classes.iter().enumerate() {
        let files = image_files(folder)?;
        if files.is_empty() {
            return Err(DataError::Image {
                path: folder.clone(),
                reason: format!("the class folder '{name}' holds no PNG or JPEG images"),
            });
        }
        for file in files {
            let img = open_image(&file)?;
            let size = (img.height() as usize, img.width() as usize);
            let want = match (&first, options.size) {
                (_, Some(s)) => s,
                (Some((_, s)), None) => *s,
                (None, None) => size,
            };
            if options.size.is_none() && size != want {
                let (p, _) = first.as_ref().expect("a size to differ from");
                return Err(DataError::Image {
                    path: file,
                    reason: format!(
                        "the image is {}x{} (height x width) but {} is {}x{}: pass a size to resize to",
                        size.0,
                        size.1,
                        p.display(),
                        want.0,
                        want.1
                    ),
                });
            }
            first.get_or_insert((file.clone(), want));
            push_pixels(&img, options.color, want, &mut pixels);
            if pixels.len() > MAX_FOLDER_BYTES {
                return Err(DataError::Image {
                    path: dir.to_path_buf(),
                    reason: format!("the images hold more than {MAX_FOLDER_BYTES} bytes of pixels"),
                });
            }
            labels.push(label as u32);
        }
    }
    let (h, w) = first.map(|(_, s)| s).unwrap_or((0, 0));
    ImageDataset::from_pixels(
        pixels,
        labels,
        [options.color.channels(), h, w],
        classes.into_iter().map(|(n, _)| n).collect(),
    )
}

/// Reads one image as a model trained on a folder expects it: `color`,
/// resized to `(height, width)` when `resize`, else refused unless it has
/// that size. Pixels channel by channel, scaled to `[0, 1]`.
///
/// # Errors
/// An unreadable image, or one of another size when `resize` is false.
pub fn load_image(
    path: &Path,
    color: Color,
    size: (usize, usize),
    resize: bool,
) -> Result<Vec<f32>> {
    check_size(size)?;
    let img = open_image(path)?;
    let found = (img.height() as usize, img.width() as usize);
    if !resize && found != size {
        return Err(DataError::Image {
            path: path.to_path_buf(),
            reason: format!(
                "the image is {}x{} (height x width); the model takes {}x{}",
                found.0, found.1, size.0, size.1
            ),
        });
    }
    let mut bytes = Vec::new();
    push_pixels(&img, color, size, &mut bytes);
    Ok(bytes.iter().map(|&p| f32::from(p) / 255.0).collect())
}

/// Refuses a size to resize to with a side of 0 or over [`MAX_SIDE`].
fn check_size((h, w): (usize, usize)) -> Result<()> {
    if (1..=MAX_SIDE).contains(&h) && (1..=MAX_SIDE).contains(&w) {
        Ok(())
    } else {
        Err(DataError::invalid(
            "image size",
            format!("{h}x{w}: sides must be between 1 and {MAX_SIDE} pixels"),
        ))
    }
}

/// The most pixels an image may claim: 4096 × 4096. Its header is read
/// before anything is decoded, so that a small file claiming a huge image
/// (a decompression bomb) is refused at once.
pub const MAX_PIXELS: u64 = 4096 * 4096;

/// The most memory a decoder may allocate for one image: enough for the
/// largest image allowed in 16-bit RGBA.
const MAX_DECODE_BYTES: u64 = MAX_PIXELS * 8 + (16 << 20);

/// Decodes a PNG or JPEG, its format guessed from the content (not the
/// name), refusing an image that claims more than [`MAX_PIXELS`] before
/// decoding it and bounding the decoder's memory.
///
/// # Errors
/// [`DataError::Image`] naming the file and the problem (the claimed size
/// for an image too large).
pub fn open_image(path: &Path) -> Result<DynamicImage> {
    let bad = |reason: String| DataError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| bad(format!("cannot read: {e}")))?
        .len();
    if len > MAX_DECODE_BYTES {
        return Err(bad(format!(
            "the file holds {len} bytes, more than an image of at most {MAX_PIXELS} pixels needs"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_DECODE_BYTES + 1),
        &mut bytes,
    )
    .map_err(|e| bad(format!("cannot read: {e}")))?;
    decode_image(path, &bytes)
}

/// [`open_image`] from bytes already in memory (`path` names them in
/// errors).
///
/// # Errors
/// As [`open_image`].
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<DynamicImage> {
    let bad = |reason: String| DataError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| bad(format!("cannot read: {e}")))
    };
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| bad(format!("not a readable PNG or JPEG image: {e}")))?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(bad(format!(
            "the image claims {w}x{h} pixels, more than the {MAX_PIXELS} allowed (4096x4096)"
        )));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = reader()?;
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| bad(format!("not a readable PNG or JPEG image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(bad("the image has no pixels".into()));
    }
    Ok(img)
}

/// Appends the pixels of `img` in `color`, resized to `(h, w)` when it has
/// another size, channel by channel.
fn push_pixels(img: &DynamicImage, color: Color, (h, w): (usize, usize), out: &mut Vec<u8>) {
    let resized;
    let img = if (img.height() as usize, img.width() as usize) != (h, w) {
        resized = img.resize_exact(w as u32, h as u32, FilterType::Triangle);
        &resized
    } else {
        img
    };
    match color {
        Color::Gray => out.extend_from_slice(img.to_luma8().as_raw()),
        Color::Rgb => {
            let rgb = img.to_rgb8();
            for c in 0..3 {
                out.extend(rgb.as_raw().chunks_exact(3).map(|p| p[c]));
            }
        }
    }
}

/// The class sub-folders of `dir`, sorted by name.
fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut classes = Vec::new();
    for entry in read_dir(dir)? {
        if entry.is_dir() {
            if let Some(name) = visible_name(&entry) {
                classes.push((name, entry));
            }
        }
    }
    classes.sort();
    if classes.len() < 2 {
        return Err(DataError::Image {
            path: dir.to_path_buf(),
            reason: format!(
                "found {} class folder(s): an image folder needs one sub-folder per class, at least two",
                classes.len()
            ),
        });
    }
    Ok(classes)
}

/// The PNG and JPEG files of a class folder, sorted by name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = read_dir(dir)?
        .into_iter()
        .filter(|p| p.is_file() && visible_name(p).is_some())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .map(|e| e.to_ascii_lowercase())
                .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()).map_err(io))
        .collect()
}

/// The file name, unless it is hidden (starts with a dot) or not UTF-8.
fn visible_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    (!name.starts_with('.')).then(|| name.to_string())
}
