//! Model files: bit-exact round trips, a file written by Python's safetensors,
//! and clear errors for corrupt, truncated and mismatched files.

use nabla_autograd::Tape;
use nabla_nn::file::{atomic_write, encode_tensors, read_tensors};
use nabla_nn::{
    load_sequential, save_state, Activation, Architecture, MlpConfig, ModelFileError, Module,
    Sequential,
};
use nabla_tensor::{Rng, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The metadata a file needs for `load_sequential`: its architecture
/// under `nabla` (the command line adds what the data was beside it).
fn meta(architecture: &Architecture) -> HashMap<String, String> {
    HashMap::from([(
        "nabla".to_string(),
        serde_json::json!({ "architecture": architecture }).to_string(),
    )])
}

fn spec(config: &MlpConfig) -> Architecture {
    Architecture::mlp(config)
}

fn save_model(
    path: &Path,
    model: &Sequential<f32>,
    architecture: &Architecture,
) -> Result<(), ModelFileError> {
    save_state(path, model, meta(architecture))
}

fn load_model<T: nabla_tensor::Float>(
    path: &Path,
) -> Result<(Sequential<T>, Architecture), ModelFileError> {
    load_sequential(path).map(|(m, a, _)| (m, a))
}

#[test]
fn save_then_load_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let config = MlpConfig::new(784, &[32, 16], 10).activation(Activation::Sigmoid);
    let model = config.init::<f32>(&mut Rng::seed(3)).unwrap();
    save_model(&path, &model, &spec(&config)).unwrap();
    let (loaded, loaded_spec) = load_model::<f32>(&path).unwrap();
    assert_eq!(loaded_spec, spec(&config));
    for ((n1, p1), (n2, p2)) in model.named_params().into_iter().zip(loaded.named_params()) {
        assert_eq!(n1, n2);
        assert_eq!(p1.value(), p2.value(), "{n1} differs");
    }
    let tape = Tape::new();
    let x = Tensor::<f32>::ones(&[2, 784]);
    let a = model.forward(tape.constant(x.clone())).unwrap().value();
    let b = loaded.forward(tape.constant(x)).unwrap().value();
    assert_eq!(a, b);
    // No temporary file is left next to it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_file_written_by_python_safetensors_loads() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mlp_4_3_2_tanh.safetensors");
    let (model, spec) = load_model::<f32>(&path).unwrap();
    assert_eq!(spec.summary(), "mlp 4-3-2 tanh");
    assert_eq!(
        model.describe(),
        "Sequential[Linear(4 → 3), Tanh, Linear(3 → 2)]"
    );
    for (name, p) in model.named_params() {
        let want: Vec<f32> = (1..=p.value().len())
            .map(|k| (0.01 * k as f64) as f32)
            .collect();
        assert_eq!(p.value().data(), &want[..], "{name}");
    }
    assert_eq!(
        model.named_params()[2].1.value().dims(),
        &[2, 3],
        "weights are [out, in]"
    );
}

fn write_raw(path: &Path, tensors: &[(&str, Tensor<f32>)], spec_json: Option<String>) {
    let named: Vec<(String, &Tensor<f32>)> =
        tensors.iter().map(|(n, t)| (n.to_string(), t)).collect();
    let meta = spec_json
        .map(|j| HashMap::from([("nabla".to_string(), j)]))
        .unwrap_or_default();
    atomic_write(path, &encode_tensors(path, &named, meta).unwrap()).unwrap();
}

#[test]
fn corrupt_truncated_and_mismatched_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = MlpConfig::new(4, &[3], 2);
    let good = dir.path().join("good.safetensors");
    save_model(
        &good,
        &config.init::<f32>(&mut Rng::seed(0)).unwrap(),
        &spec(&config),
    )
    .unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 7]).unwrap();
    let err = load_model::<f32>(&truncated).unwrap_err();
    assert!(matches!(err, ModelFileError::Format { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("truncated.safetensors: not a valid safetensors file"));

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot json").unwrap();
    assert!(matches!(
        load_model::<f32>(&garbage),
        Err(ModelFileError::Format { .. })
    ));

    let missing_file = dir.path().join("nope.safetensors");
    assert!(matches!(
        load_model::<f32>(&missing_file),
        Err(ModelFileError::Io { .. })
    ));

    let json = meta(&spec(&config)).remove("nabla").unwrap();
    let w = |dims: &[usize]| Tensor::<f32>::zeros(dims);
    let shape = dir.path().join("shape.safetensors");
    write_raw(
        &shape,
        &[
            ("0.weight", w(&[3, 5])),
            ("0.bias", w(&[3])),
            ("2.weight", w(&[2, 3])),
            ("2.bias", w(&[2])),
        ],
        Some(json.clone()),
    );
    let err = load_model::<f32>(&shape).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("tensor '0.weight' has shape [3, 5], the model needs [3, 4]"),
        "{err}"
    );

    let missing = dir.path().join("missing.safetensors");
    write_raw(
        &missing,
        &[
            ("0.weight", w(&[3, 4])),
            ("0.bias", w(&[3])),
            ("2.weight", w(&[2, 3])),
        ],
        Some(json.clone()),
    );
    assert!(load_model::<f32>(&missing)
        .unwrap_err()
        .to_string()
        .ends_with("tensor '2.bias' is missing"));

    let extra = dir.path().join("extra.safetensors");
    write_raw(
        &extra,
        &[
            ("0.weight", w(&[3, 4])),
            ("0.bias", w(&[3])),
            ("2.weight", w(&[2, 3])),
            ("2.bias", w(&[2])),
            ("4.weight", w(&[1])),
        ],
        Some(json),
    );
    assert!(load_model::<f32>(&extra)
        .unwrap_err()
        .to_string()
        .ends_with("tensor '4.weight' is not a parameter of the model"));

    // Metadata claiming a network of 10¹² parameters is refused from the shapes
    // in the file, before anything is allocated.
    let huge = Architecture::Mlp {
        input: 784,
        hidden: vec![1 << 30],
        output: 10,
        activation: "relu".into(),
    };
    let lying = dir.path().join("lying.safetensors");
    write_raw(
        &lying,
        &[("0.weight", w(&[3, 4]))],
        Some(meta(&huge).remove("nabla").unwrap()),
    );
    assert!(load_model::<f32>(&lying)
        .unwrap_err()
        .to_string()
        .ends_with("tensor '0.weight' has shape [3, 4], the model needs [1073741824, 784]"));

    let no_spec = dir.path().join("plain.safetensors");
    write_raw(&no_spec, &[("x", w(&[1]))], None);
    assert!(matches!(
        load_model::<f32>(&no_spec),
        Err(ModelFileError::Spec { .. })
    ));
    assert_eq!(read_tensors::<f32>(&no_spec).unwrap().0.len(), 1);
}

#[test]
fn convnets_with_batch_norm_round_trip_with_their_running_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.safetensors");
    let net = nabla_nn::NetSpec::parse(
        &[1, 28, 28],
        "conv4k3p1,bn,relu,maxpool2,flatten,dropout0.5,linear10",
    )
    .unwrap();
    let model = net
        .build::<f32>(nabla_nn::Init::He, &mut Rng::seed(5))
        .unwrap();
    // Two training passes move the running statistics off their initial values.
    let tape = Tape::new();
    let x = Rng::seed(6).uniform::<f32>(&[8, 784], 0.0, 1.0);
    for _ in 0..2 {
        model.forward(tape.constant(x.clone())).unwrap();
    }
    let spec = Architecture::layers(&net);
    save_model(&path, &model, &spec).unwrap();
    let (mut loaded, loaded_spec) = load_model::<f32>(&path).unwrap();
    assert_eq!(loaded_spec, spec);
    assert_eq!(model.named_buffers(), loaded.named_buffers());
    assert_eq!(
        loaded.named_buffers()[2].1.item().unwrap(),
        2.0,
        "num_batches_tracked"
    );
    // PyTorch stores the counter as int64; so does nabla.
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        file.tensor("1.num_batches_tracked").unwrap().dtype(),
        safetensors::Dtype::I64
    );
    assert_eq!(
        file.tensor("1.running_mean").unwrap().dtype(),
        safetensors::Dtype::F32
    );
    // A loaded model evaluates (running statistics, no dropout): the same
    // outputs as the original switched to evaluation.
    let mut original = model;
    original.set_training(false);
    let a = original.forward(tape.constant(x.clone())).unwrap().value();
    let b = loaded.forward(tape.constant(x.clone())).unwrap().value();
    assert_eq!(a, b);
    // Strict: a missing buffer is named.
    let (mut tensors, meta) = read_tensors::<f32>(&path).unwrap();
    tensors.remove("1.running_var");
    let named: Vec<(String, &Tensor<f32>)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    let broken = dir.path().join("broken.safetensors");
    atomic_write(&broken, &encode_tensors(&broken, &named, meta).unwrap()).unwrap();
    let err = load_model::<f32>(&broken).unwrap_err().to_string();
    assert!(err.contains("'1.running_var' is missing"), "{err}");
    loaded.set_training(true);
    assert!(loaded.couples_batch());
}
