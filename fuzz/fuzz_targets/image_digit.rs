//! Image decoding (PNG, JPEG, whatever the bytes look like) with its pixel
//! and memory caps, then the digit preprocessing of `nabla predict`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = nabla_data::decode_image(Path::new("fuzz.png"), data) {
        let _ = nabla_data::preprocess_digit(&img);
    }
});
