//! Backward that reports each parameter's gradient as soon as it is final:
//! the reports equal the store's gradients bit for bit, come once per
//! parameter, the last layer first, and an observer's error stops the pass.

use nabla_autograd::{Error, Gradients, Param, ParamId, Tape};
use nabla_tensor::{Rng, Tensor};

struct Net {
    w1: Param<f32>,
    b1: Param<f32>,
    w2: Param<f32>,
    unused: Param<f32>,
}

fn net() -> Net {
    let mut rng = Rng::seed(11);
    Net {
        w1: Param::new(rng.normal(&[6, 4], 0.0, 1.0)),
        b1: Param::new(rng.normal(&[6], 0.0, 1.0)),
        w2: Param::new(rng.normal(&[3, 6], 0.0, 1.0)),
        unused: Param::new(rng.normal(&[2], 0.0, 1.0)),
    }
}

/// `Σ tanh(tanh(x W1ᵀ + b1) W2ᵀ) + Σ tanh(x W1ᵀ)`: W1 is registered twice.
fn run(net: &Net, observe: bool) -> (Gradients<f32>, Vec<(ParamId, Tensor<f32>)>) {
    let x: Tensor<f32> = Rng::seed(3).normal(&[5, 4], 0.0, 1.0);
    let tape = Tape::new();
    let xv = tape.constant(x);
    let _ = tape.param(&net.unused);
    let h = xv
        .matmul_t(tape.param(&net.w1))
        .and_then(|z| z.add(tape.param(&net.b1)))
        .and_then(|z| z.tanh())
        .unwrap();
    let y = h.matmul_t(tape.param(&net.w2)).unwrap().tanh().unwrap();
    let side = xv.matmul_t(tape.param(&net.w1)).unwrap().tanh().unwrap();
    let loss = y.sum().unwrap().add(side.sum().unwrap()).unwrap();
    let mut grads = Gradients::new();
    let mut seen = Vec::new();
    if observe {
        tape.backward_into_observed(loss, &mut grads, &mut |id, g| {
            seen.push((id, g.clone()));
            Ok(())
        })
        .unwrap();
    } else {
        tape.backward_into(loss, &mut grads).unwrap();
    }
    (grads, seen)
}

#[test]
fn every_parameter_is_reported_once_with_the_bits_of_the_store() {
    let net = net();
    let (plain, _) = run(&net, false);
    let (observed, seen) = run(&net, true);
    let ids: Vec<ParamId> = seen.iter().map(|s| s.0).collect();
    // W2 is finished before the first layer; W1, used twice, is reported
    // once, after both uses; the unused parameter never.
    assert_eq!(ids.len(), 3, "{ids:?}");
    let at = |p: &Param<f32>| ids.iter().position(|&i| i == p.id());
    assert!(at(&net.w2).unwrap() < at(&net.b1).unwrap());
    assert!(at(&net.w2).unwrap() < at(&net.w1).unwrap());
    assert_eq!(at(&net.unused), None);
    for (id, g) in &seen {
        let p = [&net.w1, &net.b1, &net.w2]
            .into_iter()
            .find(|p| p.id() == *id)
            .unwrap();
        assert_eq!(g, plain.param(p).unwrap());
        assert_eq!(observed.param(p), plain.param(p));
    }
}

#[test]
fn an_observer_error_stops_the_pass() {
    let tape = Tape::<f32>::new();
    let w = Param::new(Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
    let loss = tape.param(&w).mul_scalar(3.0).unwrap().sum().unwrap();
    let mut grads = Gradients::new();
    let err = tape
        .backward_into_observed(loss, &mut grads, &mut |_, _| {
            Err(Error::invalid("observer", "refused".to_string()))
        })
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}
