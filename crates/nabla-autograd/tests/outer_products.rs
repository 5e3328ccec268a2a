//! A store that keeps outer products: a weight's gradient on one row stays
//! as its two vectors, and every way of reading it gives the bits that
//! backward forms without being asked to keep it.

use nabla_autograd::{Gradients, Param, ParamGrad, Tape};
use nabla_tensor::{Rng, Tensor};

/// The loss `Σ sigmoid(x · op(W) + b)` on `rows` rows, with `W` stored
/// `[out, in]` (`transposed`, as a linear layer keeps it) or `[in, out]`.
/// Seven inputs, so a row of `W` is no whole number of vector lanes.
fn backward(keep: bool, rows: usize, transposed: bool) -> (Gradients<f32>, Param<f32>, Param<f32>) {
    let mut rng = Rng::seed(5);
    let (inputs, outputs) = (7, 5);
    let w_dims = if transposed {
        [outputs, inputs]
    } else {
        [inputs, outputs]
    };
    let w = Param::new(rng.normal(&w_dims, 0.0, 1.0));
    let b = Param::new(rng.normal(&[outputs], 0.0, 1.0));
    let x: Tensor<f32> = rng.normal(&[rows, inputs], 0.0, 1.0);
    let tape = Tape::new();
    let xv = tape.constant(x);
    let z = if transposed {
        xv.matmul_t(tape.param(&w))
    } else {
        xv.matmul(tape.param(&w))
    };
    let loss = z
        .unwrap()
        .add(tape.param(&b))
        .unwrap()
        .sigmoid()
        .unwrap()
        .sum()
        .unwrap();
    let mut grads = Gradients::new();
    grads.keep_outer_products(keep);
    tape.backward_into(loss, &mut grads).unwrap();
    (grads, w, b)
}

#[test]
fn a_one_row_weight_gradient_is_kept_as_its_vectors_and_forms_the_same_bits() {
    for transposed in [true, false] {
        let (kept, w, b) = backward(true, 1, transposed);
        let (formed, fw, fb) = backward(false, 1, transposed);
        let want = formed.param(&fw).unwrap();
        let Some(ParamGrad::Outer(o)) = kept.param_grad(&w) else {
            panic!("the weight's gradient was formed (transposed: {transposed})");
        };
        assert_eq!(o.shape(), want.shape());
        assert_eq!(o.to_dense(), *want, "transposed: {transposed}");
        // The bias's gradient is no outer product: formed as usual.
        assert!(matches!(kept.param_grad(&b), Some(ParamGrad::Dense(_))));
        assert_eq!(kept.param(&b), formed.param(&fb));
        // `param` sees formed gradients only; `param_mut` forms it.
        assert!(kept.param(&w).is_none());
        let mut kept = kept;
        assert_eq!(kept.param_mut(&w).unwrap(), want);
    }
}

#[test]
fn more_rows_or_a_store_that_does_not_keep_them_form_the_gradient() {
    let (kept, w, _) = backward(true, 3, true);
    assert!(matches!(kept.param_grad(&w), Some(ParamGrad::Dense(_))));
    let (formed, w, _) = backward(false, 1, true);
    assert!(matches!(formed.param_grad(&w), Some(ParamGrad::Dense(_))));
}

#[test]
fn a_weight_used_twice_gets_the_sum_in_the_usual_order() {
    let mut rng = Rng::seed(9);
    let w = Param::new(rng.normal::<f32>(&[6, 6], 0.0, 1.0));
    let x: Tensor<f32> = rng.normal(&[1, 6], 0.0, 1.0);
    let run = |keep: bool| {
        let tape = Tape::new();
        let wv = tape.param(&w);
        let h = tape
            .constant(x.clone())
            .matmul_t(wv)
            .unwrap()
            .tanh()
            .unwrap();
        let y = h.matmul_t(wv).unwrap().sigmoid().unwrap().sum().unwrap();
        let mut grads = Gradients::new();
        grads.keep_outer_products(keep);
        tape.backward_into(y, &mut grads).unwrap();
        grads.param(&w).cloned()
    };
    let (kept, formed) = (run(true), run(false));
    assert!(kept.is_some(), "a sum of two outer products is formed");
    assert_eq!(kept, formed);
}

#[test]
fn adding_to_a_kept_outer_product_forms_it_first() {
    // Two passes into one store, and one store added into another.
    let mut rng = Rng::seed(2);
    let w = Param::new(rng.normal::<f32>(&[4, 9], 0.0, 1.0));
    let xs: Vec<Tensor<f32>> = (0..2).map(|_| rng.normal(&[1, 9], 0.0, 1.0)).collect();
    let run = |keep: bool, store: &mut Gradients<f32>| {
        store.keep_outer_products(keep);
        for x in &xs {
            let tape = Tape::new();
            let y = tape
                .constant(x.clone())
                .matmul_t(tape.param(&w))
                .unwrap()
                .sigmoid()
                .unwrap()
                .sum()
                .unwrap();
            tape.backward_into(y, store).unwrap();
        }
    };
    let (mut kept, mut formed) = (Gradients::new(), Gradients::new());
    run(true, &mut kept);
    run(false, &mut formed);
    assert_eq!(kept.param(&w), formed.param(&w));

    let mut single = Gradients::new();
    single.keep_outer_products(true);
    let tape = Tape::new();
    let y = tape
        .constant(xs[0].clone())
        .matmul_t(tape.param(&w))
        .unwrap()
        .sum()
        .unwrap();
    tape.backward_into(y, &mut single).unwrap();
    assert!(matches!(single.param_grad(&w), Some(ParamGrad::Outer(_))));
    let mut sum = formed.clone();
    sum.add_param_grads(&single).unwrap();
    let mut want = formed.clone();
    let mut plain = Gradients::new();
    tape.backward_into(y, &mut plain).unwrap();
    want.add_param_grads(&plain).unwrap();
    assert_eq!(sum.param(&w), want.param(&w));
}
