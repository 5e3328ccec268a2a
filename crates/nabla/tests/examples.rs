//! Runs every numbered example and checks the material's exact numbers.

#[allow(dead_code)]
#[path = "../examples/01_computational_graph.rs"]
mod ex01;
#[allow(dead_code)]
#[path = "../examples/02_numerical_diff.rs"]
mod ex02;
#[allow(dead_code)]
#[path = "../examples/03_gradient_descent.rs"]
mod ex03;
#[allow(dead_code)]
#[path = "../examples/04_simple_net.rs"]
mod ex04;
#[allow(dead_code)]
#[path = "../examples/05_autograd_fit.rs"]
mod ex05;
#[allow(dead_code)]
#[path = "../examples/06_two_layer_net.rs"]
mod ex06;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn ex01_apples_220_and_715() {
    ex01::main().unwrap();
    let (price, d) = ex01::apples().unwrap();
    assert!(close(price, 220.0, 1e-9));
    assert!(close(d[0], 2.2, 1e-12) && close(d[1], 110.0, 1e-9) && close(d[2], 200.0, 1e-12));
    let (total, d) = ex01::apples_and_oranges().unwrap();
    assert!(close(total, 715.0, 1e-9));
    for (got, want) in d.iter().zip([2.2, 110.0, 3.3, 165.0, 650.0]) {
        assert!(close(*got, want, 1e-9), "{d:?}");
    }
}

#[test]
fn ex02_slopes_and_tangent() {
    ex02::main().unwrap();
    let (slope, intercept) = ex02::tangent(5.0);
    assert!(close(slope, 0.2, 1e-9) && close(intercept, -0.25, 1e-9));
    assert!(close(ex02::tangent(10.0).0, 0.3, 1e-9));
    let g = ex02::partials().unwrap();
    assert!(close(g.data()[0], 6.0, 1e-6) && close(g.data()[1], 8.0, 1e-6));
}

#[test]
fn ex03_learning_rates() {
    ex03::main().unwrap();
    let good = ex03::descend(0.1, 100).unwrap();
    assert!(good.x.data().iter().all(|v| v.abs() < 1e-8), "{:?}", good.x);
    assert_eq!(good.history.len(), 101);
    assert_eq!(good.history[0].data(), &[-3.0, 4.0]);
    // The material's lr 0.9 for 200 steps: overshoots each step (x ← -0.8x) yet converges.
    let oscillating = ex03::descend(0.9, 200).unwrap();
    assert!(
        oscillating.history[1].data()[0] > 0.0,
        "the first step overshoots past 0"
    );
    assert!(oscillating.x.data().iter().all(|v| v.abs() < 1e-8));
    let diverged = ex03::descend(10.0, 100).unwrap();
    assert!(
        diverged
            .x
            .data()
            .iter()
            .any(|v| !v.is_finite() || v.abs() > 1e10),
        "lr 10 diverges"
    );
    let stuck = ex03::descend(1e-10, 100).unwrap();
    assert!(
        close(stuck.x.data()[0], -3.0, 1e-6) && close(stuck.x.data()[1], 4.0, 1e-6),
        "lr 1e-10 barely moves"
    );
}

#[test]
fn ex04_simple_net_numerical_equals_backprop() {
    ex04::main().unwrap();
    let (loss, numeric, backprop) = ex04::gradients().unwrap();
    // -ln(softmax(x·W)[2] + 1e-10).
    assert!(close(loss, 0.928_068_538_495_273_3, 1e-9), "{loss}");
    let book = [
        0.21924763,
        0.14356247,
        -0.36281009,
        0.32887144,
        0.2153437,
        -0.54421514,
    ];
    for ((n, b), want) in numeric.data().iter().zip(backprop.data()).zip(book) {
        assert!(
            close(*n, want, 1e-7) && close(*b, want, 1e-7),
            "{numeric:?} {backprop:?}"
        );
    }
}

#[test]
fn ex05_fits_y_equals_2x() {
    ex05::main().unwrap();
    let history = ex05::fit(50, 0.05).unwrap();
    let (w, l) = *history.last().unwrap();
    assert!(close(w, 2.0, 1e-6), "w = {w}");
    assert!(l < 1e-10);
    // First step by hand: loss = mean((x - 2x)²) = (1 + 4 + 9)/3; dL/dw = mean(2x(xw - y)) = -28/3.
    assert!(close(history[0].1, 14.0 / 3.0, 1e-12));
    assert!(close(history[0].0, 1.0 + 0.05 * 28.0 / 3.0, 1e-12));
}

#[test]
fn ex06_two_layer_net_reaches_100_percent() {
    assert_eq!(ex06::train(&[16], 200).unwrap(), 1.0);
    assert!(
        ex06::train(&[], 200).unwrap() < 0.95,
        "a linear classifier cannot separate the moons"
    );
}

#[allow(dead_code)]
#[path = "../examples/07_custom_module.rs"]
mod ex07;
#[allow(dead_code)]
#[path = "../examples/08_regression.rs"]
mod ex08;

#[test]
fn ex07_a_derived_module_learns_iris_and_survives_save_and_load() {
    ex07::main().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = ex07::run(200, dir.path()).unwrap();
    assert_eq!(out.test_rows, 30);
    // 27 of the 30 held-out flowers here; the floor leaves room for another
    // CPU's kernels rounding otherwise.
    assert!(out.accuracy >= 0.85, "iris test accuracy {}", out.accuracy);
    assert_eq!(
        out.accuracy, out.accuracy_after_loading,
        "the loaded network is the same"
    );
}

#[test]
fn ex08_regression_matches_the_least_squares_baseline() {
    ex08::main().unwrap();
    let out = ex08::run(150).unwrap();
    let (net, lin) = (out.network, out.linear);
    assert!(lin.r2 > 0.3, "least squares R² {}", lin.r2);
    assert!(net.r2 > 0.3, "network R² {}", net.r2);
    assert!(
        net.rmse < 1.1 * lin.rmse,
        "network RMSE {} against {}",
        net.rmse,
        lin.rmse
    );
    // The loss curve falls.
    let first = out.history.first().unwrap().train_loss;
    let last = out.history.last().unwrap().train_loss;
    assert!(last < 0.7 * first, "{first} → {last}");
}
