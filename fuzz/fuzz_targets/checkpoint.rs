//! Checkpoint loading: the tensors, the training state in the metadata,
//! the optimiser's buffers and the best weights.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = nabla_train::decode_checkpoint(Path::new("fuzz.ckpt"), data);
});
