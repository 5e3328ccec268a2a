//! The documented meaning of accumulation, repeated backward, zeroing,
//! intermediate gradients, no-grad mode and parameters.

use nabla_autograd::{Gradients, Param, Tape};
use nabla_tensor::Tensor;

fn s(v: f64) -> Tensor<f64> {
    Tensor::scalar(v)
}

#[test]
fn a_variable_used_twice_gets_both_contributions() {
    // y = x·x + x  ⇒  dy/dx = 2x + 1 = 7 at x = 3.
    let tape = Tape::<f64>::new();
    let x = tape.var(s(3.0));
    let y = x.mul(x).unwrap().add(x).unwrap();
    let g = tape.backward(y).unwrap();
    assert_eq!(g.get(x).unwrap().item().unwrap(), 7.0);
}

#[test]
fn backward_twice_returns_same_gradients_and_backward_into_accumulates() {
    let tape = Tape::<f64>::new();
    let x = tape.var(s(2.0));
    let y = x.mul_scalar(5.0).unwrap();
    let g1 = tape.backward(y).unwrap();
    let g2 = tape.backward(y).unwrap();
    assert_eq!(g1.get(x), g2.get(x));
    let mut acc = Gradients::new();
    tape.backward_into(y, &mut acc).unwrap();
    tape.backward_into(y, &mut acc).unwrap();
    assert_eq!(acc.get(x).unwrap().item().unwrap(), 10.0);
    acc.zero();
    assert_eq!(acc.get(x).unwrap().item().unwrap(), 0.0);
}

#[test]
fn intermediate_gradients_are_readable() {
    // z = (x + 1)·3: dz/d(x+1) = 3.
    let tape = Tape::<f64>::new();
    let x = tape.var(s(1.0));
    let h = x.add_scalar(1.0).unwrap();
    let z = h.mul_scalar(3.0).unwrap();
    let g = tape.backward(z).unwrap();
    assert_eq!(g.get(h).unwrap().item().unwrap(), 3.0);
    assert_eq!(g.get(z).unwrap().item().unwrap(), 1.0);
}

#[test]
fn no_grad_results_are_constants() {
    let tape = Tape::<f64>::new();
    let x = tape.var(s(2.0));
    let frozen = tape.no_grad(|| x.mul_scalar(10.0).unwrap());
    assert!(!frozen.requires_grad());
    assert!(tape.grad_enabled(), "no_grad restores the previous mode");
    let y = frozen.mul(x).unwrap(); // 20·x, but only the direct path counts
    let g = tape.backward(y).unwrap();
    assert_eq!(g.get(x).unwrap().item().unwrap(), 20.0);
    assert!(g.get(frozen).is_none());
    // Constants never receive gradients.
    let c = tape.constant(s(4.0));
    let g = tape.backward(c.mul(x).unwrap()).unwrap();
    assert!(g.get(c).is_none());
}

#[test]
fn parameter_gradients_accumulate_across_tapes_until_zeroed() {
    let w = Param::new(s(3.0));
    let mut grads = Gradients::new();
    for x in [1.0, 2.0] {
        let tape = Tape::<f64>::new();
        let y = tape.param(&w).mul(tape.constant(s(x))).unwrap();
        tape.backward_into(y, &mut grads).unwrap();
    }
    assert_eq!(grads.param(&w).unwrap().item().unwrap(), 3.0); // 1 + 2
    grads.zero();
    assert_eq!(grads.param(&w).unwrap().item().unwrap(), 0.0);
    // A parameter registered twice on one tape sums both uses.
    let tape = Tape::<f64>::new();
    let (a, b) = (tape.param(&w), tape.param(&w));
    let g = tape.backward(a.mul(b).unwrap()).unwrap();
    assert_eq!(g.param(&w).unwrap().item().unwrap(), 6.0);
    // A clone is a distinct parameter.
    let w2 = w.clone();
    assert!(g.param(&w2).is_none());
}
