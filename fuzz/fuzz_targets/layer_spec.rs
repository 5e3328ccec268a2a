//! The layer spec language: parse a spec for an input shape, and where it
//! fits and is small, build the network and run a batch of two through it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabla::nn::{Init, NetSpec};
use nabla::tensor::{Rng, Tensor};

/// Networks beyond this many parameters are parsed and planned, not built:
/// the limit that matters, `MAX_PARAMS`, is checked by the planner itself.
const BUILD_MAX_PARAMS: usize = 1 << 20;

/// Nor beyond this many output values per sample, over all layers.
const BUILD_MAX_VALUES: usize = 1 << 22;

/// Nor beyond this many multiply-adds per sample (a kernel of 472×472 on a
/// padded 908×908 image is valid and merely slow: minutes, not a hang).
const BUILD_MAX_WORK: usize = 1 << 26;

fuzz_target!(|data: &[u8]| {
    let (shape, text) = match data.split_first() {
        Some((&pick, rest)) => (pick, String::from_utf8_lossy(rest)),
        None => return,
    };
    let input: &[usize] = match shape % 4 {
        0 => &[1, 28, 28],
        1 => &[3, 8, 8],
        2 => &[784],
        _ => &[5],
    };
    let Ok(net) = NetSpec::parse(input, &text) else {
        return;
    };
    let Ok(shapes) = net.state_shapes() else {
        return;
    };
    let params: usize = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    // Every layer's output is bounded by the planner (MAX_ACTIVATION); a
    // run keeps them all, so the target runs only nets whose outputs fit
    // well inside the fuzzer's memory limit.
    let Ok(plan) = net.plan() else {
        return;
    };
    let values: usize = plan
        .iter()
        .map(|l| l.output.iter().product::<usize>())
        .sum();
    let work: usize = plan
        .iter()
        .map(|l| l.multiply_adds())
        .fold(0, usize::saturating_add);
    if params > BUILD_MAX_PARAMS || values > BUILD_MAX_VALUES || work > BUILD_MAX_WORK {
        return;
    }
    let Ok(model) = net.build::<f32>(Init::He, &mut Rng::seed(1)) else {
        return;
    };
    let len: usize = input.iter().product();
    let dims: Vec<usize> = std::iter::once(2).chain(input.iter().copied()).collect();
    let x = Tensor::from_vec(vec![0.25f32; 2 * len], &dims).expect("the shape holds 2·len");
    let _ = model.predict(&x);
});
