//! The tape inspector: the material's apple graph with every value and
//! derivative, scopes, and the table, DOT and SVG views of it.

use nabla_autograd::inspect::number;
use nabla_autograd::{NodeKind, Param, Summary, Tape, Trace};
use nabla_tensor::Tensor;

/// 2 apples at 100, tax 1.1: price 220; ∂/∂apple 2.2, ∂/∂count 110, ∂/∂tax 200.
fn apple_trace() -> Trace {
    let tape = Tape::<f64>::new();
    let apple = tape.var(Tensor::scalar(100.0)).named("apple");
    let count = tape.var(Tensor::scalar(2.0)).named("apple count");
    let tax = tape.var(Tensor::scalar(1.1)).named("tax");
    let price = apple.mul(count).unwrap().mul(tax).unwrap().named("price");
    let g = tape.backward(price).unwrap();
    Trace::of(&tape, Some(&g))
}

fn value(s: &Summary) -> f64 {
    s.values.as_ref().unwrap()[0]
}

#[test]
fn the_apple_graph_has_every_value_and_derivative() {
    let t = apple_trace();
    assert_eq!(t.nodes.len(), 5);
    let forward: Vec<f64> = t.nodes.iter().map(|n| value(&n.value)).collect();
    let backward: Vec<f64> = t
        .nodes
        .iter()
        .map(|n| value(n.grad.as_ref().unwrap()))
        .collect();
    for (got, want) in forward.iter().zip([100.0, 2.0, 1.1, 200.0, 220.0]) {
        assert!((got - want).abs() < 1e-9, "{forward:?}");
    }
    for (got, want) in backward.iter().zip([2.2, 110.0, 200.0, 1.1, 1.0]) {
        assert!((got - want).abs() < 1e-9, "{backward:?}");
    }
    assert_eq!(t.nodes[0].kind, NodeKind::Input);
    assert_eq!(t.nodes[4].kind, NodeKind::Op("mul"));
    assert_eq!(t.nodes[4].inputs, [3, 2]);
    assert_eq!(t.nodes[4].name.as_deref(), Some("price"));
}

#[test]
fn the_table_prints_values_derivatives_and_rules() {
    let table = apple_trace().table();
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap()
            .to_string()
    };
    assert!(
        row("0 ").contains("apple") && row("0 ").contains("100") && row("0 ").contains("2.2"),
        "{table}"
    );
    assert!(
        row("4 ").contains("220") && row("4 ").contains("price"),
        "{table}"
    );
    assert!(table.contains("mul: ∂/∂a = b, ∂/∂b = a"), "{table}");
}

#[test]
fn dot_and_svg_carry_the_values_on_the_edges() {
    let t = apple_trace();
    let dot = t.dot();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert_eq!(dot.matches(" -> ").count(), 4, "{dot}");
    // The edge out of the apple's price: 100 forward, 2.2 back.
    assert!(
        dot.contains("n0 -> n3 [label=<100<br/><font color=\"#c0392b\">2.2</font>>]"),
        "{dot}"
    );
    let svg = t.svg();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<g class=\"node\"").count(), 5);
    assert_eq!(svg.matches("class=\"edge\"").count(), 4);
    assert!(
        svg.contains(">2.2</text>") && svg.contains(">110</text>") && svg.contains(">200</text>")
    );
    // Every element opened is closed.
    assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
}

#[test]
fn scopes_are_recorded_only_when_asked_and_nest() {
    let mut tape = Tape::<f64>::new();
    let x = tape.var(Tensor::scalar(2.0));
    let y = tape.scope(
        || unreachable!("names are built only when recorded"),
        || x.mul(x).unwrap(),
    );
    assert!(Trace::of(&tape, None).nodes[y.id()].scope.is_none());
    tape.reset();
    tape.set_record_scopes(true);
    let x = tape.var(Tensor::scalar(2.0));
    let y = tape.scope(
        || "0: Block".into(),
        || tape.scope(|| "relu".into(), || x.relu().unwrap()),
    );
    let z = y.add_scalar(1.0).unwrap();
    let t = Trace::of(&tape, None);
    assert_eq!(t.nodes[y.id()].scope.as_deref(), Some("0: Block / relu"));
    assert_eq!(t.nodes[z.id()].scope, None);
    assert!(t.nodes[z.id()].grad.is_none());
}

#[test]
fn parameters_are_named_from_their_ids() {
    let tape = Tape::<f32>::new();
    let w = Param::new(Tensor::from_f64s(&[1.0, 2.0], &[2]).unwrap());
    let x = tape.param(&w);
    let loss = x.sum().unwrap();
    let g = tape.backward(loss).unwrap();
    let mut t = Trace::of(&tape, Some(&g));
    t.name_params([(w.id(), "0.weight".to_string())]);
    assert_eq!(t.nodes[0].kind, NodeKind::Param);
    assert_eq!(t.nodes[0].name.as_deref(), Some("0.weight"));
    assert_eq!(
        t.nodes[0].grad.as_ref().unwrap().values,
        Some(vec![1.0, 1.0])
    );
}

#[test]
fn numbers_and_summaries_read_as_a_person_writes_them() {
    assert_eq!(number(100.0 * 2.0 * 1.1), "220");
    assert_eq!(number(2.0 * 1.1), "2.2");
    assert_eq!(number(0.012345), "0.01235");
    assert_eq!(number(1.5e-7), "1.5e-7");
    assert_eq!(number(-3.0), "-3");
    let s = Summary::of(
        &(0..10)
            .map(|i| i as f64)
            .chain([f64::NAN])
            .collect::<Vec<_>>(),
    );
    assert_eq!(s.count, 11);
    assert_eq!(s.non_finite, 1);
    assert_eq!(s.describe(), "μ 4.5 σ 2.87 [0, 9], 1 not finite");
    assert_eq!(Summary::of(&[1.0f32, -2.0]).describe(), "[1, -2]");
}

#[test]
fn an_empty_tape_makes_an_empty_but_valid_drawing() {
    let t = Trace::of(&Tape::<f32>::new(), None);
    let svg = t.svg();
    assert!(
        svg.starts_with("<svg") && !svg.contains("width=\"-"),
        "{svg}"
    );
    assert!(t.dot().starts_with("digraph"));
    assert!(t.table().starts_with("node"));
}

/// The numbers after `key="` in every element of the SVG that has it.
fn attrs(svg: &str, element: &str, key: &str) -> Vec<f64> {
    svg.split(element)
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            let at = tag.find(&format!(" {key}=\""))? + key.len() + 3;
            tag[at..].split('"').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn a_long_chain_of_layers_is_drawn_in_bands_cut_between_layers() {
    let tape = Tape::<f64>::new();
    tape.set_record_scopes(true);
    let mut x = tape.var(Tensor::from_vec(vec![0.5, -1.0, 2.0], &[3]).unwrap());
    for i in 0..30 {
        let w = tape.var(Tensor::from_vec(vec![1.1, 0.9, 1.0], &[3]).unwrap());
        x = tape.scope(
            || format!("{i}: a layer of the chain"),
            || x.mul(w).unwrap().tanh().unwrap(),
        );
    }
    let loss = x.sum().unwrap();
    let g = tape.backward(loss).unwrap();
    let svg = Trace::of(&tape, Some(&g)).svg();
    let width: f64 = attrs(&svg, "<svg", "width")[0];
    let height: f64 = attrs(&svg, "<svg", "height")[0];
    assert!(width <= 1800.0, "width {width}");
    assert!(height > 3.0 * 150.0, "several bands: height {height}");
    // Edges into the next band are routed through the gap between bands.
    assert!(svg.contains(" V"), "no edge crosses into a band below");
    // No layer's box is cut: the 30 boxes do not overlap.
    let boxes: Vec<(f64, f64, f64, f64)> = svg
        .split("<g class=\"scope\">")
        .skip(1)
        .map(|g| {
            let n = |k: &str| attrs(g, "<rect", k)[0];
            (n("x"), n("y"), n("width"), n("height"))
        })
        .collect();
    assert_eq!(boxes.len(), 30);
    for (i, a) in boxes.iter().enumerate() {
        assert!(a.0 + a.2 <= width, "box {i} leaves the drawing");
        for (j, b) in boxes.iter().enumerate().skip(i + 1) {
            let apart =
                a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
            assert!(apart, "boxes {i} and {j} overlap: {a:?} {b:?}");
        }
    }
}
