//! Images that claim far more pixels than their bytes hold (decompression
//! bombs) are refused from their header, before anything is decoded; an
//! image's format comes from its content, not its name.

use nabla_data::{open_image, preprocess_digit_file, MAX_PIXELS};
use std::path::Path;

/// CRC-32 (IEEE) of a PNG chunk's type and data.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let body = [&kind[..], data].concat();
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A PNG header claiming `w × h` 8-bit grayscale pixels, with no pixel data.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend(chunk(b"IEND", &[]));
    out
}

/// A real 16×16 JPEG whose frame header is changed to claim `w × h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let img = image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x * 16 + y) as u8]));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    // SOFn: FF C0..C2, length (2), precision (1), height (2), width (2).
    let sof = bytes
        .windows(2)
        .position(|m| m[0] == 0xFF && (0xC0..=0xC2).contains(&m[1]))
        .expect("a frame header");
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_png_claiming_23000_squared_pixels_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bomb.png", &png_claiming(23_000, 23_000));
    let err = open_image(&path).unwrap_err().to_string();
    assert!(
        err.contains("23000x23000") && err.contains("bomb.png"),
        "{err}"
    );
    let err = preprocess_digit_file(&path).unwrap_err().to_string();
    assert!(err.contains("23000x23000"), "{err}");
}

#[test]
fn a_jpeg_claiming_8192_squared_pixels_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bomb.jpg", &jpeg_claiming(8192, 8192));
    let err = open_image(&path).unwrap_err().to_string();
    assert!(err.contains("8192x8192"), "{err}");
    // One pixel over the limit is refused too, and the genuine image loads.
    let side = (MAX_PIXELS as f64).sqrt() as u16;
    let path = write(dir.path(), "over.jpg", &jpeg_claiming(side + 1, side));
    assert!(open_image(&path).is_err());
    let path = write(dir.path(), "real.jpg", &jpeg_claiming(16, 16));
    assert_eq!(open_image(&path).unwrap().width(), 16);
}

#[test]
fn the_format_comes_from_the_content_not_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let img = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if (10..18).contains(&x) && (4..24).contains(&y) {
            255
        } else {
            0
        }])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let path = write(dir.path(), "digit.dat", &png);
    let pixels = preprocess_digit_file(&path).unwrap();
    assert!(pixels.iter().any(|&p| p > 0.5));
    let path = write(dir.path(), "noise.png", b"not an image at all");
    let err = preprocess_digit_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("noise.png") && err.contains("not a readable"),
        "{err}"
    );
}
