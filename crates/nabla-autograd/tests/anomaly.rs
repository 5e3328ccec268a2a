//! Anomaly detection: the first NaN or ±∞ names its op, node, layer and cause.

use nabla_autograd::anomaly::Phase;
use nabla_autograd::{Error, Tape};
use nabla_tensor::Tensor;

fn anomaly(e: Error) -> (Phase, &'static str, usize, Option<String>, String) {
    let text = e.to_string();
    match e {
        Error::Anomaly {
            phase,
            op,
            node,
            layer,
            ..
        } => (phase, op, node, layer, text),
        other => panic!("expected an anomaly, got {other}"),
    }
}

fn tensor(v: &[f64]) -> Tensor<f32> {
    Tensor::from_f64s(v, &[v.len()]).unwrap()
}

#[test]
fn a_log_of_zero_is_named_with_its_layer() {
    let tape = Tape::<f32>::new();
    tape.set_detect_anomaly(true);
    tape.set_record_scopes(true);
    let x = tape.var(tensor(&[1.0, 0.0, 2.0]));
    let e = tape.scope(|| "3: Loss".into(), || x.log()).unwrap_err();
    let (phase, op, node, layer, text) = anomaly(e);
    assert_eq!((phase, op, node), (Phase::Forward, "log", 1));
    assert_eq!(layer.as_deref(), Some("3: Loss"));
    assert!(text.contains("log of 0"), "{text}");
    assert!(text.contains("±∞ in 1 of 3 values"), "{text}");
    assert!(text.contains("(node 1, layer 3: Loss)"), "{text}");
}

#[test]
fn an_exp_overflow_gives_its_largest_input() {
    let tape = Tape::<f32>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(tensor(&[1.0, 1e4]));
    let (_, op, _, layer, text) = anomaly(x.mul_scalar(1.0).unwrap().exp().unwrap_err());
    assert_eq!(op, "exp");
    assert_eq!(layer, None);
    assert!(text.contains("exp overflow, largest input 10000"), "{text}");
}

#[test]
fn a_gradient_that_is_not_finite_is_caught_in_backward() {
    // √0 is 0, but its slope there is infinite.
    let tape = Tape::<f32>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(tensor(&[0.0, 4.0]));
    let y = x.sqrt().unwrap().sum().unwrap();
    let (phase, op, node, _, text) = anomaly(tape.backward(y).unwrap_err());
    assert_eq!((phase, op, node), (Phase::Backward, "sqrt", 1));
    assert!(text.contains("the gradient for input 0 holds ±∞"), "{text}");
    assert!(text.contains("infinite slope at 0"), "{text}");
}

#[test]
fn an_input_already_not_finite_is_said_so() {
    let tape = Tape::<f32>::new();
    tape.set_detect_anomaly(true);
    let w = tape.var(tensor(&[f64::NAN, 1.0]));
    let (_, op, _, _, text) = anomaly(w.add_scalar(1.0).unwrap_err());
    assert_eq!(op, "add_scalar");
    assert!(
        text.contains("its input 0 already holds NaN in 1 of 2 values"),
        "{text}"
    );
}

#[test]
fn without_the_mode_values_pass_through() {
    let tape = Tape::<f32>::new();
    let x = tape.var(tensor(&[0.0]));
    let y = x.log().unwrap();
    assert!(y.value().data()[0].is_infinite());
    let y = x.sqrt().unwrap().sum().unwrap();
    assert!(tape.backward(y).unwrap().get(x).unwrap().data()[0].is_infinite());
}

#[test]
fn the_finiteness_test_sees_every_position() {
    use nabla_autograd::all_finite;
    for len in [0usize, 1, 15, 16, 17, 40] {
        let mut d = vec![1.0f32; len];
        assert!(all_finite(&d));
        for at in 0..len {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                d[at] = bad;
                assert!(!all_finite(&d), "{bad} at {at} of {len}");
                d[at] = f32::MAX;
            }
        }
        assert!(all_finite(&d), "f32::MAX is finite");
    }
}
