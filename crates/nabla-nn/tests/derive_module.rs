//! `#[derive(Module)]`: parameter and buffer names as PyTorch's state dict
//! writes them, the visitors agree with each other, a derived network
//! trains through the graph (gradients checked in f64), and saves and loads
//! in one call each, strictly.

use nabla_autograd::{Param, Reduction, Result, Tape, Target, Var};
use nabla_nn::{
    check_model_gradients, load_state, save_state, state_dict, Dropout, Init, Linear,
    ModelCheckOptions, ModelFileError, Module, Tanh,
};
use nabla_tensor::{Float, Rng, Tensor};
use std::collections::HashMap;

/// Two dense layers around a list of hidden ones (tanh between them: smooth,
/// so central differences need not straddle a kink), an optional dropout, a
/// trained scale of its own, a buffer and plain settings.
#[derive(Module)]
#[module(crate = nabla_nn)]
struct Net<T: Float> {
    fc1: Linear<T>,
    hidden: Vec<Linear<T>>,
    act: Tanh,
    drop: Option<Dropout>,
    fc2: Linear<T>,
    scale: Param<T>,
    #[module(buffer)]
    seen: Tensor<T>,
    width: usize,
}

impl<T: Float> Net<T> {
    fn new(rng: &mut Rng, dropout: bool) -> Self {
        Net {
            fc1: Linear::new(4, 5, Init::He, rng),
            hidden: vec![
                Linear::new(5, 5, Init::He, rng),
                Linear::new(5, 5, Init::He, rng),
            ],
            act: Tanh,
            drop: dropout.then(|| Dropout::new(0.5).unwrap()),
            fc2: Linear::new(5, 3, Init::Xavier, rng),
            scale: Param::new(Tensor::full(&[1], T::from_f64(1.5))),
            seen: Tensor::zeros(&[1]),
            width: 5,
        }
    }

    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let mut h = self.act.forward(self.fc1.forward(x)?)?;
        for layer in &self.hidden {
            h = self.act.forward(layer.forward(h)?)?;
        }
        if let Some(d) = &self.drop {
            h = d.forward(h)?;
        }
        let y = self.fc2.forward(h)?;
        y.mul(x.tape().param(&self.scale))
    }
}

#[test]
fn names_follow_pytorch_and_the_visitors_agree() {
    let mut net = Net::<f32>::new(&mut Rng::seed(1), true);
    let names: Vec<String> = net.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "fc1.weight",
            "fc1.bias",
            "hidden.0.weight",
            "hidden.0.bias",
            "hidden.1.weight",
            "hidden.1.bias",
            "fc2.weight",
            "fc2.bias",
            "scale"
        ]
    );
    let buffers: Vec<String> = net.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(buffers, ["seen"]);
    // The mutable walks visit the same parameters in the same order.
    let ids: Vec<_> = net.named_params().iter().map(|(_, p)| p.id()).collect();
    let mut each = Vec::new();
    net.for_each_param_mut(&mut |p| each.push(p.id()));
    assert_eq!(each, ids);
    let mut named_mut = Vec::new();
    net.visit_params_mut("net", &mut |n, p| named_mut.push((n, p.id())));
    assert_eq!(named_mut[0].0, "net.fc1.weight");
    assert_eq!(named_mut.iter().map(|(_, id)| *id).collect::<Vec<_>>(), ids);
    assert_eq!(net.num_params(), 4 * 5 + 5 + 2 * (25 + 5) + 5 * 3 + 3 + 1);
    let children: Vec<String> = net.children_mut().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        children,
        ["fc1", "hidden.0", "hidden.1", "act", "drop", "fc2"]
    );
    assert_eq!(
        net.describe(),
        "Net[fc1: Linear(4 → 5), hidden: [Linear(5 → 5), Linear(5 → 5)], act: Tanh, drop: Dropout(0.5), fc2: Linear(5 → 3)]"
    );
    assert!(!net.couples_batch());
}

#[test]
fn a_derived_network_passes_the_gradient_check_in_f64() {
    let mut net = Net::<f64>::new(&mut Rng::seed(2), false);
    let x = Rng::seed(3).normal::<f64>(&[6, 4], 0.0, 1.0);
    let report = check_model_gradients(
        &mut net,
        |y| y.softmax_cross_entropy(Target::Indices(vec![0, 1, 2, 0, 1, 2]), Reduction::Mean),
        &x,
        &ModelCheckOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    // Every parameter got a gradient, the derived one of its own too.
    let tape = Tape::new();
    let y = net.forward(tape.constant(x)).unwrap();
    let loss = y.mean().unwrap();
    let grads = tape.backward(loss).unwrap();
    assert!(net
        .named_params()
        .iter()
        .all(|(_, p)| grads.param(p).is_some()));
}

#[test]
fn any_module_saves_and_loads_in_one_call_each_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let mut net = Net::<f32>::new(&mut Rng::seed(4), false);
    net.seen = Tensor::full(&[1], 7.0);
    save_state(
        &path,
        &net,
        HashMap::from([("note".into(), "hello".into())]),
    )
    .unwrap();
    let mut other = Net::<f32>::new(&mut Rng::seed(5), false);
    let meta = load_state(&path, &mut other).unwrap();
    assert_eq!(meta.get("note").map(String::as_str), Some("hello"));
    assert_eq!(state_dict(&net), state_dict(&other));
    assert_eq!(other.seen.item().unwrap(), 7.0);
    assert_eq!(other.width, 5);

    // A network of another shape is refused, naming the tensor.
    let mut smaller = Net::<f32>::new(&mut Rng::seed(6), false);
    smaller.hidden.pop();
    save_state(&path, &smaller, HashMap::new()).unwrap();
    let err = load_state(&path, &mut other).unwrap_err();
    assert!(
        matches!(&err, ModelFileError::MissingTensor { name, .. } if name == "hidden.1.weight"),
        "{err}"
    );
    let err = load_state(&path, &mut Net::<f32>::new(&mut Rng::seed(7), false));
    assert!(err.is_err());
    let mut wider = Net::<f32>::new(&mut Rng::seed(8), false);
    wider.fc1 = Linear::new(4, 6, Init::He, &mut Rng::seed(8));
    save_state(&path, &wider, HashMap::new()).unwrap();
    let err = load_state(&path, &mut other).unwrap_err().to_string();
    assert!(
        err.contains("tensor 'fc1.weight' has shape [6, 4], the model needs [5, 4]"),
        "{err}"
    );
}

/// A struct without a type parameter is a module of `f32`, and a unit
/// struct one without parameters.
#[derive(Module)]
#[module(crate = nabla_nn)]
struct Tiny {
    layer: Linear,
}

impl Tiny {
    fn forward<'t>(&self, x: Var<'t, f32>) -> Result<Var<'t, f32>> {
        self.layer.forward(x)
    }
}

#[test]
fn a_plain_struct_is_an_f32_module() {
    let tiny = Tiny {
        layer: Linear::new(2, 1, Init::He, &mut Rng::seed(0)),
    };
    let as_module: &dyn Module<f32> = &tiny;
    assert_eq!(as_module.describe(), "Tiny[layer: Linear(2 → 1)]");
    let y = as_module.predict(&Tensor::ones(&[3, 2])).unwrap();
    assert_eq!(y.dims(), &[3, 1]);
}

#[test]
fn an_ensemble_averages_its_members_probabilities_and_differentiates() {
    use nabla_nn::{Ensemble, MlpConfig};
    let member = |seed| {
        MlpConfig::new(3, &[4], 2)
            .init::<f64>(&mut Rng::seed(seed))
            .unwrap()
    };
    let mut e = Ensemble::new(vec![member(1), member(2)]).unwrap();
    let x = Rng::seed(3).normal::<f64>(&[5, 3], 0.0, 1.0);
    let probs = |m: &dyn Module<f64>| {
        let y = m.predict(&x).unwrap();
        let tape = Tape::new();
        tape.constant(y).softmax().unwrap().value()
    };
    let (a, b, both) = (probs(&e.members[0]), probs(&e.members[1]), probs(&e));
    for ((pa, pb), pe) in a.data().iter().zip(b.data()).zip(both.data()) {
        assert!((0.5 * (pa + pb) - pe).abs() < 1e-9, "{pa} {pb} {pe}");
    }
    let names: Vec<String> = e.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "members.0.0.weight");
    assert_eq!(names.len(), 8);
    let report = check_model_gradients(
        &mut e,
        |y| y.softmax_cross_entropy(Target::Indices(vec![0, 1, 1, 0, 1]), Reduction::Mean),
        &x,
        &ModelCheckOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    assert!(Ensemble::<f32>::new(vec![]).is_err());
}
