//! One analysis: an image's bytes in, the page's JSON out. The drawing is
//! preprocessed exactly as `nabla predict` does it, then run forward and
//! back by [`nabla::nn::explain`].

use super::{Limits, Served};
use nabla::nn::explain;
use nabla::tensor::Tensor;
use nabla_data::{decode_image, preprocess_digit};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// The page's view of one pass. Large arrays are [`Levels`].
#[derive(Serialize)]
pub struct Report {
    /// The model that ran.
    pub model: String,
    /// The preprocessed 28×28 input, row-major, 0–255.
    pub input: Vec<u8>,
    /// The softmax of the scores.
    pub probabilities: Vec<f32>,
    /// The class with the highest probability.
    pub predicted: usize,
    /// The class the cost was taken against.
    pub target: usize,
    /// `C = −ln p[target]`.
    pub loss: f32,
    /// `−∂C/∂z` per score: what the output layer wants.
    pub wish: Vec<f32>,
    /// Every layer: its output and `−∂C/∂output`, what it is asked to change.
    pub layers: Vec<LayerReport>,
    /// `−∂C/∂x` per input pixel: where more ink (positive) or less would serve the target.
    pub sensitivity: Levels,
}

/// One layer of a [`Report`].
#[derive(Serialize)]
pub struct LayerReport {
    /// `0: Linear(784 → 100)`.
    pub name: String,
    /// `[C, H, W]` or `[N]`.
    pub shape: Vec<usize>,
    /// The layer's output.
    pub activation: Levels,
    /// `−∂C/∂output`.
    pub wish: Levels,
}

/// Values sent as signed levels of their largest magnitude, which is all a
/// colour needs and a seventh of the JSON of full floats: value ≈ `q / 127 · scale`.
#[derive(Serialize)]
pub struct Levels {
    /// The largest magnitude (0 when every value is 0).
    pub scale: f32,
    /// Each value as an integer in −127..=127.
    pub q: Vec<i8>,
}

impl Levels {
    fn of(values: impl Iterator<Item = f32> + Clone) -> Self {
        let scale = values.clone().fold(0.0f32, |m, v| m.max(v.abs()));
        let q = values
            .map(|v| {
                if scale > 0.0 && v.is_finite() {
                    (v / scale * 127.0).round() as i8
                } else {
                    0
                }
            })
            .collect();
        Levels { scale, q }
    }
}

/// Where a pass spent its time, in milliseconds (sent as `Server-Timing`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Decoding the PNG and preprocessing it to 28×28.
    pub decode: f64,
    /// Waiting for the model's lock.
    pub wait: f64,
    /// The forward and backward passes.
    pub net: f64,
    /// Writing the JSON.
    pub json: f64,
}

impl Timings {
    /// The header's value: `decode;dur=0.41, net;dur=2.10, json;dur=0.62`.
    pub fn header(&self) -> String {
        format!(
            "decode;dur={:.2}, wait;dur={:.2}, net;dur={:.2}, json;dur={:.2}",
            self.decode, self.wait, self.net, self.json
        )
    }
}

/// Runs `model` on the image in `bytes`, against `target` (default: the
/// prediction), and writes the page's JSON.
///
/// # Errors
/// [`Failure::Client`] for an image that cannot be read, is too large or
/// has no ink, and for a target past the classes; [`Failure::Server`] when
/// the network itself fails (a bug, answered with 500).
pub fn analyse(
    model: &Served,
    bytes: &[u8],
    target: Option<usize>,
    limits: &Limits,
) -> Result<(String, Timings), Failure> {
    let mut t = Timings::default();
    let start = Instant::now();
    let classes = model.info.classes.len();
    if let Some(k) = target {
        if k >= classes {
            return Err(Failure::Client(format!(
                "target {k}: the model has {classes} classes (0 to {})",
                classes - 1
            )));
        }
    }
    let pixels = decode(bytes, limits)?;
    t.decode = ms(start);
    let x = Tensor::from_vec(pixels.to_vec(), &[1, pixels.len()])
        .map_err(|e| Failure::Server(e.to_string()))?;
    let locked = Instant::now();
    let net = model
        .net
        .lock()
        .map_err(|_| Failure::Server("a previous analysis panicked".into()))?;
    t.wait = ms(locked);
    let ran = Instant::now();
    let e = explain(&net, &x, target).map_err(|e| Failure::Server(e.to_string()))?;
    drop(net);
    t.net = ms(ran);
    let written = Instant::now();
    let layers = e
        .layers
        .iter()
        .map(|l| LayerReport {
            name: l.name.clone(),
            shape: l.output.dims().to_vec(),
            activation: Levels::of(l.output.data().iter().copied()),
            wish: Levels::of(l.gradient.data().iter().map(|g| -g)),
        })
        .collect();
    let report = Report {
        model: model.id.clone(),
        input: pixels
            .iter()
            .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect(),
        probabilities: e.probabilities,
        predicted: e.predicted,
        target: e.target,
        loss: e.loss,
        wish: e.wish,
        layers,
        sensitivity: Levels::of(e.input_gradient.data().iter().map(|g| -g)),
    };
    let json = serde_json::to_string(&report).map_err(|e| Failure::Server(e.to_string()))?;
    t.json = ms(written);
    Ok((json, t))
}

/// Why an analysis gave no report.
#[derive(Debug)]
pub enum Failure {
    /// The request was wrong (400).
    Client(String),
    /// nabla failed (500).
    Server(String),
}

/// The drawing's 784 pixels, after checking its size before decoding.
fn decode(bytes: &[u8], limits: &Limits) -> Result<[f32; 784], Failure> {
    if bytes.is_empty() {
        return Err(Failure::Client(
            "the request has no body: send the drawing as a PNG or JPEG".into(),
        ));
    }
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Failure::Client(format!("the body is not a readable image: {e}")))?
        .into_dimensions()
        .map_err(|e| Failure::Client(format!("the body is not a PNG or JPEG image: {e}")))?;
    let side = limits.image_side;
    if w > side || h > side {
        return Err(Failure::Client(format!(
            "the image is {w}x{h} pixels; the page sends at most {side}x{side}"
        )));
    }
    let img = decode_image(Path::new("the drawing"), bytes)
        .map_err(|e| Failure::Client(e.to_string()))?;
    preprocess_digit(&img).map_err(|e| Failure::Client(format!("the drawing: {e}")))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
