//! IDX parsing: any bytes, raw or gzip, with and without the file's length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nabla_data::parse_idx("fuzz", data, Some(data.len() as u64));
    let _ = nabla_data::parse_idx("fuzz", data, None);
});
