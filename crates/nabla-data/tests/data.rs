//! The data room against hostile files, the embedded subset, splits, digit
//! preprocessing, and the download against a server on 127.0.0.1.

use flate2::write::GzEncoder;
use flate2::Compression;
use nabla_data::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn images(n: usize) -> Vec<u8> {
    encode_idx(
        &[n, 28, 28],
        &(0..n * 784).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
}

#[test]
fn idx_raw_and_gzip_by_magic_not_name() {
    let raw = images(3);
    let a = parse_idx("x.gz", &raw[..], Some(raw.len() as u64)).unwrap();
    let z = gzip(&raw);
    let b = parse_idx("x.idx", &z[..], Some(z.len() as u64)).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.dims, vec![3, 28, 28]);
    // A multi-member gzip stream is read whole.
    let (first, second) = raw.split_at(1000);
    let mut multi = gzip(first);
    multi.extend(gzip(second));
    assert_eq!(parse_idx("multi", &multi[..], None).unwrap(), a);
}

#[test]
fn hostile_headers_are_refused_before_allocating() {
    // 1.6 billion images: refused from the header alone.
    let huge = encode_idx(&[1_600_000_000, 28, 28], &[0; 16]);
    let err = parse_idx("huge", &huge[..], Some(huge.len() as u64)).unwrap_err();
    assert!(matches!(err, DataError::TooLarge { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with("huge: the header claims 1254400000000 bytes"));
    // Five dimensions of 2³¹ in 24 bytes: the element count overflows even
    // 128 bits, and is refused, not wrapped to a small number.
    let mut five = vec![0u8, 0, 0x08, 5];
    for _ in 0..5 {
        five.extend_from_slice(&(1u32 << 31).to_be_bytes());
    }
    assert_eq!(five.len(), 24);
    for len in [Some(24), None] {
        let err = parse_idx("five", &five[..], len).unwrap_err();
        assert!(matches!(err, DataError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("over 2^128"), "{err}");
    }
    // Within the limit but longer than the file: refused from the file length (raw)…
    let short = encode_idx(&[1000, 28, 28], &[0; 100]);
    let err = parse_idx("short", &short[..], Some(short.len() as u64)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "short: the header claims 784000 bytes of data ([1000, 28, 28]) but the file holds 100"
    );
    // …and from the decompressed length (gzip), reading only what is there.
    let err = parse_idx("short.gz", &gzip(&short)[..], None).unwrap_err();
    assert!(
        matches!(err, DataError::LengthMismatch { found: 100, .. }),
        "{err}"
    );
    // Trailing bytes.
    let mut long = images(1);
    long.extend([1, 2, 3]);
    assert!(matches!(
        parse_idx("long", &gzip(&long)[..], None),
        Err(DataError::LengthMismatch { .. })
    ));
    // Bad magic, unsupported type, empty file.
    let err = parse_idx("text.txt", &b"hello world"[..], None).unwrap_err();
    assert!(err.to_string().contains("not an IDX file"), "{err}");
    assert!(matches!(
        parse_idx("f", &[0u8, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0][..], None),
        Err(DataError::UnsupportedType { code: 0x0d, .. })
    ));
    assert!(matches!(
        parse_idx("empty", &[][..], Some(0)),
        Err(DataError::BadMagic { .. })
    ));
    // A corrupt gzip stream is an I/O error naming the file, not a panic.
    let mut bad = gzip(&images(2));
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    assert!(parse_idx("bad.gz", &bad[..], None)
        .unwrap_err()
        .to_string()
        .starts_with("bad.gz"));
}

#[test]
fn dataset_validation_names_the_files() {
    let img = |n| parse_idx("imgs", &images(n)[..], None).unwrap();
    let lab = |v: &[u8]| parse_idx("labs", &encode_idx(&[v.len()], v)[..], None).unwrap();
    let err = ImageDataset::from_idx(DatasetKind::Mnist, img(3), "imgs", lab(&[1, 2]), "labs")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "imgs holds 3 images but labs holds 2 labels"
    );
    let err = ImageDataset::from_idx(DatasetKind::Mnist, img(2), "imgs", lab(&[1, 12]), "labs")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "labs: label 12 at index 1 is not a class (must be < 10)"
    );
    let small = parse_idx("small", &encode_idx(&[1, 8, 8], &[0; 64])[..], None).unwrap();
    assert!(matches!(
        ImageDataset::from_idx(DatasetKind::Mnist, small, "small", lab(&[0]), "labs"),
        Err(DataError::BadImageSize { .. })
    ));
    assert!(matches!(
        ImageDataset::from_idx(DatasetKind::Mnist, lab(&[0]), "l", lab(&[0]), "l"),
        Err(DataError::BadRank { .. })
    ));
    let err = ImageDataset::load_dir(std::path::Path::new("/nonexistent-dir"), DatasetKind::Mnist)
        .unwrap_err();
    assert!(
        err.to_string().contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn embedded_subset_and_split() {
    let s = embedded_mnist().unwrap();
    assert_eq!((s.train.len(), s.test.len()), (10_000, 2_000));
    assert!(
        s.train.class_counts().iter().all(|&c| c > 800),
        "{:?}",
        s.train.class_counts()
    );
    let b = s.test.batch(&[0, 1]).unwrap();
    assert_eq!(b.x.dims(), &[2, 784]);
    assert!(b.x.data().iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert!(b.x.data().contains(&1.0));
    assert_eq!(b.one_hot(10).unwrap().sum_all(), 2.0);
    let (train, val) = s.train.split(0.1, 7).unwrap();
    assert_eq!((train.len(), val.len()), (9_000, 1_000));
    assert!(s.train.split(1.0, 0).is_err());
    assert!(s.train.batch(&[10_000]).is_err());
}

#[test]
fn images_are_the_bytes_over_255() {
    // The vectorised conversion gives each division's own value.
    let s = embedded_mnist().unwrap();
    let indices = [5, 0, 1999, 42];
    let x = s.test.images(&indices).unwrap();
    let want: Vec<f32> = indices
        .iter()
        .flat_map(|&i| s.test.pixels(i).iter().map(|&p| f32::from(p) / 255.0))
        .collect();
    assert_eq!(x.data(), &want[..]);
}

/// A 60×90 drawing of a bar with a foot, dark ink on white, off-centre.
fn drawing(dark_on_light: bool) -> image::DynamicImage {
    let (bg, ink) = if dark_on_light {
        (240u8, 10u8)
    } else {
        (5u8, 250u8)
    };
    let mut img = image::GrayImage::from_pixel(60, 90, image::Luma([bg]));
    for y in 10..70 {
        for x in 8..14 {
            img.put_pixel(x, y, image::Luma([ink]));
        }
    }
    for x in 8..30 {
        for y in 64..70 {
            img.put_pixel(x, y, image::Luma([ink]));
        }
    }
    image::DynamicImage::ImageLuma8(img)
}

#[test]
fn digits_are_preprocessed_like_mnist() {
    let out = preprocess_digit(&drawing(true)).unwrap();
    let inverted = preprocess_digit(&drawing(false)).unwrap();
    let diff: f32 = out.iter().zip(&inverted).map(|(a, b)| (a - b).abs()).sum();
    assert!(diff < 1.0, "polarity is detected: {diff}");
    // Background is 0; ink fits a 20×20 box; centre of mass near (14, 14).
    assert_eq!(out[0], 0.0);
    let (mut m, mut cx, mut cy) = (0.0, 0.0, 0.0);
    let (mut rows, mut cols) = (vec![], vec![]);
    for y in 0..28 {
        for x in 0..28 {
            let v = out[y * 28 + x] as f64;
            if v > 0.0 {
                rows.push(y);
                cols.push(x);
            }
            m += v;
            cx += v * x as f64;
            cy += v * y as f64;
        }
    }
    assert!(
        (cx / m - 14.0).abs() <= 1.0 && (cy / m - 14.0).abs() <= 1.0,
        "{} {}",
        cx / m,
        cy / m
    );
    assert!(rows.iter().max().unwrap() - rows.iter().min().unwrap() < 21);
    let flat =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(10, 10, image::Luma([128])));
    assert!(preprocess_digit(&flat)
        .unwrap_err()
        .to_string()
        .contains("no ink"));
    assert!(preprocess_digit_file(std::path::Path::new("/nonexistent.png")).is_err());
}

/// Serves `files` (name → bytes) on 127.0.0.1 for at most `max_requests`
/// requests or 30 seconds; unknown paths get 404.
fn serve(files: Vec<(String, Vec<u8>)>, max_requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut served = 0;
        while served < max_requests && Instant::now() < deadline {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            served += 1;
            stream.set_nonblocking(false).unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            match files.iter().find(|(name, _)| *name == path) {
                Some((_, body)) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                }
                None => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    format!("http://{addr}")
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn download_verifies_and_writes_atomically() {
    use sha2::{Digest, Sha256};
    let content = images(2);
    let gz = gzip(&content);
    let sha: String = Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let good = [MirrorFile {
        name: "a.gz",
        checksum: Checksum::ContentSha256(leak(sha)),
    }];
    let dir = tempfile::tempdir().unwrap();
    let url = serve(vec![("a.gz".into(), gz.clone())], 8);
    let mut lines = vec![];
    download_files(&good, &url, dir.path(), |l| lines.push(l.to_string())).unwrap();
    assert_eq!(std::fs::read(dir.path().join("a.gz")).unwrap(), gz);
    assert!(lines[0].ends_with("verified"));
    // A second run finds the file and does not fetch it again.
    download_files(&good, "http://127.0.0.1:9", dir.path(), |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert!(lines[1].contains("already present"));

    // A corrupt body fails verification and leaves nothing behind.
    let wrong = [MirrorFile {
        name: "b.gz",
        checksum: Checksum::ContentSha256("00"),
    }];
    let url = serve(vec![("b.gz".into(), gz.clone())], 8);
    let err = download_files(&wrong, &url, dir.path(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(!dir.path().join("b.gz").exists());
    // A missing file is an HTTP error naming the address.
    let missing = [MirrorFile {
        name: "c.gz",
        checksum: Checksum::FileMd5("00"),
    }];
    let err = download_files(&missing, &url, dir.path(), |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("/c.gz") && err.to_string().contains("404"),
        "{err}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "only a.gz, no temporary files: {leftovers:?}"
    );
}

/// A mirror may be a directory of files copied by hand (a path or a
/// `file://` address); the files get ordinary permissions, and a first
/// download that fails leaves no empty directory.
#[test]
fn a_local_mirror_works_offline_and_failures_leave_no_directory() {
    use sha2::{Digest, Sha256};
    let content = images(3);
    let gz = gzip(&content);
    let sha: String = Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let files = [MirrorFile {
        name: "a.gz",
        checksum: Checksum::ContentSha256(leak(sha)),
    }];
    let copies = tempfile::tempdir().unwrap();
    std::fs::write(copies.path().join("a.gz"), &gz).unwrap();
    for (i, mirror) in [
        copies.path().display().to_string(),
        format!("file://{}", copies.path().display()),
    ]
    .iter()
    .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(format!("data{i}"));
        download_files(&files, mirror, &target, |_| {}).unwrap();
        assert_eq!(std::fs::read(target.join("a.gz")).unwrap(), gz);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(target.join("a.gz"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("new");
    let empty = tempfile::tempdir().unwrap();
    let err =
        download_files(&files, &empty.path().display().to_string(), &target, |_| {}).unwrap_err();
    assert!(err.to_string().contains("a.gz"), "{err}");
    assert!(!target.exists(), "no empty directory is left");
}
