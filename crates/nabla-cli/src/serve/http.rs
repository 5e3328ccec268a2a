//! The server: three static files, the list of models, and the analysis of
//! a drawing, each request held to [`Limits`]. Every refusal is a 4xx with
//! a JSON body `{"error": "…"}` saying what was wrong.

use super::report::{analyse, Failure};
use super::{Limits, Served};
use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Semaphore;

const INDEX: &str = include_str!("page/index.html");
const APP: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

/// At most this many analyses run at once; others wait (within the timeout).
const CONCURRENT: usize = 4;

/// What every handler shares.
struct App {
    models: Vec<Served>,
    limits: Limits,
    bucket: Mutex<Bucket>,
    running: Semaphore,
}

/// A token bucket: `rate` tokens a second, holding at most `rate`.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl App {
    /// Takes a token, or says no.
    fn admit(&self) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let rate = f64::from(self.limits.rate);
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A refusal: its status and the one-line message in its JSON body.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (status, Json(body)).into_response()
}

/// The router, on `models` under `limits`.
fn router(models: Vec<Served>, limits: Limits) -> Router {
    let app = Arc::new(App {
        models,
        bucket: Mutex::new(Bucket {
            tokens: f64::from(limits.rate),
            last: Instant::now(),
        }),
        running: Semaphore::new(CONCURRENT),
        limits,
    });
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/models", get(models_list))
        .route("/api/explain", post(explain_drawing))
        .method_not_allowed_fallback(wrong_method)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .with_state(app)
}

/// Serves until Ctrl-C, printing the address first (a test reads it).
pub async fn serve(addr: SocketAddr, models: Vec<Served>, limits: Limits) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let names: Vec<String> = models
        .iter()
        .map(|m| format!("{} ({})", m.id, m.info.summary))
        .collect();
    println!("serving http://{bound}/ with {}", names.join(", "));
    println!("draw a digit there; Ctrl-C stops the server");
    std::io::stdout().flush().ok();
    axum::serve(listener, router(models, limits))
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await
        .context("serving")?;
    Ok(())
}

/// A static file: nothing on it is fetched from elsewhere, which the
/// content security policy also enforces.
fn page(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data: blob:",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn models_list(State(app): State<Arc<App>>) -> Response {
    let infos: Vec<_> = app.models.iter().map(|m| &m.info).collect();
    Json(infos).into_response()
}

async fn not_found(uri: Uri) -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        format!("no such page: {}", uri.path()),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    let allowed = if uri.path() == "/api/explain" {
        "POST, with the drawing as the body"
    } else {
        "GET"
    };
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} {}: use {allowed}", uri.path()),
    )
}

/// The query of `/api/explain`: `model=ID` (default: the first model) and
/// `target=K` (default, or `auto`: the prediction).
fn parse_query(app: &App, query: Option<&str>) -> Result<(usize, Option<usize>), String> {
    let mut model = None;
    let mut target = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "model" => {
                let found = app.models.iter().position(|m| m.id == value);
                let ids: Vec<&str> = app.models.iter().map(|m| m.id.as_str()).collect();
                model = Some(found.ok_or_else(|| {
                    format!("model={value}: no such model (served: {})", ids.join(", "))
                })?);
            }
            "target" if value.is_empty() || value == "auto" => target = None,
            "target" => {
                target =
                    Some(value.parse::<usize>().map_err(|_| {
                        format!("target={value}: expected a class number, or auto")
                    })?);
            }
            _ => return Err(format!("{key}: unknown parameter (model and target are)")),
        }
    }
    if app.models.is_empty() {
        return Err("no model is served".into());
    }
    Ok((model.unwrap_or(0), target))
}

async fn explain_drawing(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !app.admit() {
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests: at most {} analyses a second",
                app.limits.rate
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let (model, target) = match parse_query(&app, query.as_deref()) {
        Ok(q) => q,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !kind.starts_with("image/") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {}: send the drawing as image/png or image/jpeg",
                if kind.is_empty() { "missing" } else { kind }
            ),
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than {} bytes; a drawing needs far less",
                    app.limits.body_bytes
                ),
            )
        }
        Err(e) => return refuse(e.status(), format!("cannot read the body: {e}")),
    };
    let Ok(_permit) = tokio::time::timeout(app.limits.timeout, app.running.acquire()).await else {
        return busy(&app);
    };
    let worker = {
        let app = Arc::clone(&app);
        tokio::task::spawn_blocking(move || analyse(&app.models[model], &body, target, &app.limits))
    };
    match tokio::time::timeout(app.limits.timeout, worker).await {
        Err(_) => busy(&app),
        Ok(Err(join)) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the analysis failed: {join}"),
        ),
        Ok(Ok(Err(Failure::Client(e)))) => refuse(StatusCode::BAD_REQUEST, e),
        Ok(Ok(Err(Failure::Server(e)))) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the analysis failed: {e}"),
        ),
        Ok(Ok(Ok((json, timings)))) => {
            let mut r = (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                json,
            )
                .into_response();
            if let Ok(timing) = HeaderValue::from_str(&timings.header()) {
                r.headers_mut()
                    .insert(header::HeaderName::from_static("server-timing"), timing);
            }
            r
        }
    }
}

fn busy(app: &App) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the server is busy: the analysis did not finish within {} s",
            app.limits.timeout.as_secs()
        ),
    )
}
