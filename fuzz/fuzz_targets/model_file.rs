//! A model file through to a prediction: decode the tensors, read the
//! architecture from the metadata, rebuild and fill the network (strictly),
//! and run it on one zero input of its input shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabla::nn::file::{architecture_from_metadata, build_from_tensors, decode_tensors};
use nabla::nn::Architecture;
use nabla::tensor::Tensor;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    let Ok((tensors, metadata)) = decode_tensors::<f32>(path, data) else {
        return;
    };
    let Ok(architecture) = architecture_from_metadata(path, &metadata) else {
        return;
    };
    let Ok(model) = build_from_tensors(path, &architecture, &tensors, "") else {
        return;
    };
    // A file can only claim what its tensors hold, so the network is as
    // small as the input; its input, though, is sized by the metadata.
    let input = match (model.input_shape(), &architecture) {
        ([], Architecture::Mlp { input, .. }) => vec![*input],
        (shape, _) => shape.to_vec(),
    };
    let len: Option<usize> = input.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if let Some(len) = len.filter(|&n| n > 0 && n <= 1 << 20) {
        let dims: Vec<usize> = std::iter::once(1).chain(input).collect();
        let x = Tensor::from_vec(vec![0.5f32; len], &dims).expect("the shape holds len");
        let _ = model.predict(&x);
    }
});
