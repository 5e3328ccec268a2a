//! Pictures, rendered offline with the DejaVu Sans font shipped in the binary:
//! training curves, the confusion matrix, misclassified digits, and the
//! tangent-line and descent-path pictures of the material's demos.
//! Every picture is written as PNG and (except the digit grid) SVG, atomically.

use anyhow::{anyhow, Context, Result};
use clap::Args;
use nabla::nn::file::atomic_write;
use nabla::nn::Module;
use nabla_data::ImageDataset;
use nabla_train::EpochMetrics;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const SIZE: (u32, u32) = (800, 500);

/// The flags of `nabla plot`.
#[derive(Args)]
pub struct PlotArgs {
    /// A metrics file written by `nabla train --metrics-out`.
    metrics: PathBuf,
    /// Where to write loss.png/svg and accuracy.png/svg (r2.png/svg for regression).
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
}

/// Runs `nabla plot`.
pub fn run(a: PlotArgs) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(&a.metrics).with_context(|| format!("{}", a.metrics.display()))?;
    let mut history = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let m: EpochMetrics = serde_json::from_str(line).map_err(|e| {
            anyhow!(
                "{}: line {}: not a metrics record: {e}",
                a.metrics.display(),
                i + 1
            )
        })?;
        history.push(m);
    }
    if history.is_empty() {
        anyhow::bail!("{}: no metrics records", a.metrics.display());
    }
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("--out-dir {}", a.out_dir.display()))?;
    let xy = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
            .collect()
    };
    let classes = history.iter().any(|m| m.train_accuracy.is_some());
    let loss = a.out_dir.join("loss");
    line_chart(
        &loss,
        "Loss",
        "epoch",
        if classes {
            "cross-entropy"
        } else {
            "loss (standardised units)"
        },
        &[
            ("train", xy(&|m| Some(m.train_loss))),
            ("validation", xy(&|m| m.val.as_ref().map(|s| s.loss))),
            ("test", xy(&|m| m.test.as_ref().map(|s| s.loss))),
        ],
    )?;
    let acc = a.out_dir.join(if classes { "accuracy" } else { "r2" });
    if classes {
        line_chart(
            &acc,
            "Accuracy",
            "epoch",
            "accuracy (%)",
            &[
                ("train", xy(&|m| m.train_accuracy.map(|v| 100.0 * v))),
                ("validation", xy(&|m| m.val_accuracy().map(|v| 100.0 * v))),
                ("test", xy(&|m| m.test_accuracy().map(|v| 100.0 * v))),
            ],
        )?;
    } else {
        line_chart(
            &acc,
            "Coefficient of determination",
            "epoch",
            "R²",
            &[
                ("validation", xy(&|m| m.val.as_ref().and_then(|s| s.r2))),
                ("test", xy(&|m| m.test.as_ref().and_then(|s| s.r2))),
            ],
        )?;
    }
    println!(
        "wrote {0}.png, {0}.svg, {1}.png and {1}.svg",
        loss.display(),
        acc.display()
    );
    if history.iter().any(|m| !m.probes.is_empty()) {
        let (grads, units) = crate::charts::probe_charts(&history, &a.out_dir)?;
        println!(
            "wrote {0}.png, {0}.svg, {1}.png and {1}.svg (probes)",
            grads.display(),
            units.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to be valid; a failure here would
        // only mean text is drawn without it.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e}")
}

/// Writes `<stem>.png` and `<stem>.svg` using the same drawing code for both backends.
macro_rules! both_backends {
    ($stem:expr, $size:expr, |$root:ident| $body:block) => {{
        register_font();
        let stem: &Path = $stem;
        let (w, h) = $size;
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        {
            let $root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            $body
            $root.present().map_err(err)?;
        }
        let img = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| anyhow!("bad image buffer"))?;
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        atomic_write(&stem.with_extension("png"), &png)?;
        let mut svg = String::new();
        {
            let $root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            $body
            $root.present().map_err(err)?;
        }
        atomic_write(&stem.with_extension("svg"), svg.as_bytes())?;
    }};
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A scatter of (x, y) points, one colour per series.
pub fn scatter_chart(
    stem: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    chart(stem, title, xlabel, ylabel, series, None, false)
}

/// A chart of several (x, y) series.
pub fn line_chart(
    stem: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    line_chart_in(stem, title, xlabel, ylabel, series, None)
}

/// [`line_chart`] with the y axis over `y` when given (a percentage's 0–100),
/// else fitted to the data.
pub fn line_chart_in(
    stem: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    y: Option<(f64, f64)>,
) -> Result<()> {
    chart(stem, title, xlabel, ylabel, series, y, true)
}

/// Series as points, joined by lines when `joined`, on axes fitted to them
/// (the y axis over `y` when given).
fn chart(
    stem: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    y: Option<(f64, f64)>,
    joined: bool,
) -> Result<()> {
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    let (x0, x1) = bounds(all.iter().map(|p| p.0));
    let (y0, y1) = y.unwrap_or_else(|| bounds(all.iter().map(|p| p.1)));
    both_backends!(stem, SIZE, |root| {
        draw_lines(
            &root,
            title,
            xlabel,
            ylabel,
            (x0, x1),
            (y0, y1),
            series,
            joined,
        )?;
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    xr: (f64, f64),
    yr: (f64, f64),
    series: &[(&str, Vec<(f64, f64)>)],
    joined: bool,
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .map_err(err)?;
    // Epochs and steps are whole numbers: no tick at epoch 1.5.
    let whole = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .all(|(x, _)| x.fract() == 0.0);
    let span = (xr.1 - xr.0).max(0.0) as usize;
    let whole_only = |v: &f64| match v.fract() == 0.0 {
        true => format!("{v:.0}"),
        false => String::new(),
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(xlabel)
        .y_desc(ylabel)
        .label_style(("sans-serif", 14));
    if whole {
        mesh.x_labels((span + 1).clamp(2, 10))
            .x_label_formatter(&whole_only);
    }
    mesh.draw().map_err(err)?;
    for (i, (name, points)) in series
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| !p.is_empty())
    {
        let color = PALETTE[i % PALETTE.len()];
        if joined {
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        let dots = chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 3 + u32::from(!joined), color.filled())),
            )
            .map_err(err)?;
        if !joined {
            dots.label(*name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    Ok(())
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad, hi + pad)
}

/// The material's tangent picture: `f` on [0, 20) and its tangent line.
pub fn tangent(f: fn(f64) -> f64, slope: f64, intercept: f64, stem: &Path) -> Result<()> {
    let xs: Vec<f64> = (0..200).map(|i| i as f64 * 0.1).collect();
    let curve: Vec<(f64, f64)> = xs.iter().map(|&x| (x, f(x))).collect();
    let line: Vec<(f64, f64)> = xs.iter().map(|&x| (x, slope * x + intercept)).collect();
    let title = format!("f(x) = 0.01x² + 0.1x and its tangent at x = 5 (slope {slope:.4})");
    line_chart(
        stem,
        &title,
        "x",
        "f(x)",
        &[("f(x)", curve), ("tangent", line)],
    )
}

/// The path of gradient descent over circles of constant `x0² + x1²`.
pub fn descent_path(points: &[(f64, f64)], stem: &Path) -> Result<()> {
    both_backends!(stem, (600, 600), |root| {
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Gradient descent on x0² + x1² (lr 0.1)", ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-4.5f64..4.5, -4.5f64..4.5)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("x0")
            .y_desc("x1")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        for r in [1.0f64, 2.0, 3.0, 4.0, 5.0] {
            let circle: Vec<(f64, f64)> = (0..=100)
                .map(|i| i as f64 / 100.0 * std::f64::consts::TAU)
                .map(|t| (r * t.cos(), r * t.sin()))
                .collect();
            chart
                .draw_series(LineSeries::new(circle, RGBColor(200, 200, 200)))
                .map_err(err)?;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                PALETTE[0].stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 4, PALETTE[1].filled())),
            )
            .map_err(err)?;
    });
    Ok(())
}

/// A heat map of `confusion[true][predicted]` with the counts written in.
pub fn confusion_matrix(confusion: &[Vec<usize>], classes: &[String], stem: &Path) -> Result<()> {
    let n = confusion.len();
    let max = confusion
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    // Row 0 (true class 0) is drawn at the top: y = n - 1 - t.
    let label = |v: &SegmentValue<usize>, flip: bool| match v {
        SegmentValue::CenterOf(i) if *i < n => name(classes, if flip { n - 1 - *i } else { *i }),
        _ => String::new(),
    };
    both_backends!(stem, (720, 720), |root| {
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Confusion matrix (rows: true, columns: predicted)",
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d(
                (0..n.saturating_sub(1)).into_segmented(),
                (0..n.saturating_sub(1)).into_segmented(),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .x_desc("predicted")
            .y_desc("true")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        for (t, row) in confusion.iter().enumerate() {
            for (p, &count) in row.iter().enumerate() {
                // Log scale, so the few errors show beside the diagonal.
                let shade = ((count as f64 + 1.0).ln() / (max + 1.0).ln()).clamp(0.0, 1.0);
                let c = (255.0 * (1.0 - shade)) as u8;
                let y = n - 1 - t;
                let cell = [
                    (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                ];
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        cell,
                        RGBColor(c, c, 255).filled(),
                    )))
                    .map_err(err)?;
                let color = if shade > 0.6 { WHITE } else { BLACK };
                let style = ("sans-serif", 13)
                    .into_font()
                    .color(&color)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart
                    .draw_series(std::iter::once(Text::new(
                        count.to_string(),
                        (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                        style,
                    )))
                    .map_err(err)?;
            }
        }
    });
    Ok(())
}

/// Up to 100 misclassified test digits in a grid, each labelled `true→predicted`.
pub fn misclassified_grid(
    model: &dyn Module<f32>,
    test: &ImageDataset,
    classes: &[String],
    batch_size: usize,
    path: &Path,
) -> Result<()> {
    register_font();
    let mut wrong = Vec::new();
    let indices: Vec<usize> = (0..test.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = test.batch(chunk)?;
        let probs = nabla_train::probabilities(model, &batch.x)?;
        for (k, p) in probs.argmax_axis(1)?.into_iter().enumerate() {
            if p != batch.labels[k] && wrong.len() < 100 {
                wrong.push((chunk[k], batch.labels[k], p));
            }
        }
    }
    let (cols, cell, scale) = (10u32, 64u32, 2u32);
    let rows = (wrong.len() as u32).div_ceil(cols).max(1);
    let (w, h) = (cols * cell, rows * cell);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        for (k, &(i, t, p)) in wrong.iter().enumerate() {
            let (cx, cy) = ((k as u32 % cols) * cell, (k as u32 / cols) * cell);
            for (j, &v) in test.pixels(i).iter().enumerate() {
                let (x, y) = (j as u32 % 28, j as u32 / 28);
                let c = 255 - v;
                let x0 = (cx + 4 + x * scale) as i32;
                let y0 = (cy + y * scale) as i32;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + scale as i32, y0 + scale as i32)],
                    RGBColor(c, c, c).filled(),
                ))
                .map_err(err)?;
            }
            let label = format!("{}→{}", name(classes, t), name(classes, p));
            root.draw(&Text::new(
                label,
                (cx as i32 + 4, (cy + 57) as i32),
                ("sans-serif", 11).into_font().color(&RED),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| anyhow!("bad image buffer"))?;
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    atomic_write(path, &png)?;
    Ok(())
}

fn name(classes: &[String], i: usize) -> String {
    classes.get(i).cloned().unwrap_or_else(|| i.to_string())
}

/// The filters of a convolution weight `[O, C, kh, kw]` as a grid: one row
/// per filter, one tile per input channel, each tile scaled to its own range
/// with large weights dark and small ones light (the book's `gray_r`), drawn
/// `zoom` pixels per weight with a 2-pixel gap between tiles. Returns the
/// image size.
/// The most filters (rows) and input channels (columns) a grid of filters
/// with several input channels shows.
pub const MAX_GRID: usize = 16;

pub fn filter_grid(
    weight: &nabla::tensor::Tensor<f32>,
    zoom: u32,
    path: &Path,
) -> Result<(u32, u32)> {
    let &[o, c, kh, kw] = weight.dims() else {
        anyhow::bail!(
            "filters need a [out, in, kh, kw] weight, got {}",
            weight.shape()
        );
    };
    // Filters of one input channel (the first layer on grey images) wrap
    // into rows of up to 8; several channels give one row per filter, of at
    // most MAX_GRID filters and MAX_GRID channels (50 × 20 tiles of 5×5
    // read as noise; the caller says what was left out).
    let (cols, rows) = if c == 1 {
        let cols = o.clamp(1, 8);
        (cols, o.div_ceil(cols))
    } else {
        (c.min(MAX_GRID), o.min(MAX_GRID))
    };
    let gap = 2u32;
    // Sizes in u128, so that no weight shape or --zoom can overflow them.
    let side = |count: usize, kernel: usize| {
        count as u128 * (kernel as u128 * u128::from(zoom) + u128::from(gap)) + u128::from(gap)
    };
    let (w, h) = (side(cols, kw), side(rows, kh));
    if w * h > 64 << 20 {
        anyhow::bail!("a {w}×{h} filter grid is too large to draw; use a smaller --zoom");
    }
    // Both fit in u32 now: their product is at most 64 Mi.
    let (w, h) = (w as u32, h as u32);
    let (tw, th) = (kw as u32 * zoom, kh as u32 * zoom);
    // Gaps (and unused cells) in a blue-grey that no weight maps to.
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([90, 120, 160]));
    let area = kh * kw;
    for (t, tile) in weight.data().chunks_exact(area.max(1)).enumerate() {
        let (lo, hi) = tile
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let (col, row) = if c == 1 {
            (t % cols, t / cols)
        } else {
            (t % c, t / c)
        };
        if col >= cols || row >= rows {
            continue;
        }
        let (x0, y0) = (gap + col as u32 * (tw + gap), gap + row as u32 * (th + gap));
        for (k, &v) in tile.iter().enumerate() {
            let shade = (255.0 * (1.0 - (v - lo) / span)).round().clamp(0.0, 255.0) as u8;
            let (kx, ky) = ((k % kw) as u32, (k / kw) as u32);
            for dy in 0..zoom {
                for dx in 0..zoom {
                    img.put_pixel(
                        x0 + kx * zoom + dx,
                        y0 + ky * zoom + dy,
                        image::Rgb([shade; 3]),
                    );
                }
            }
        }
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    atomic_write(path, &png)?;
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_of_many_filters_shows_at_most_max_grid_of_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.png");
        // Caffe's LeNet's second layer: 50 filters over 20 channels.
        let w = nabla::tensor::Tensor::from_vec(
            (0..50 * 20 * 25).map(|i| (i % 7) as f32).collect(),
            &[50, 20, 5, 5],
        )
        .unwrap();
        let (width, height) = filter_grid(&w, 4, &path).unwrap();
        let side = |n: u32| n * (5 * 4 + 2) + 2;
        assert_eq!((width, height), (side(16), side(16)));
        // Fewer than the cap: all of them.
        let w = nabla::tensor::Tensor::from_vec(vec![0.5; 3 * 2 * 9], &[3, 2, 3, 3]).unwrap();
        let (width, height) = filter_grid(&w, 1, &path).unwrap();
        assert_eq!((width, height), (2 * 5 + 2, 3 * 5 + 2));
    }
}
