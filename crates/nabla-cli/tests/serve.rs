//! `nabla serve` over real HTTP: the page and its files, a drawn digit
//! explained by each shipped model, every kind of bad request refused with
//! a 4xx and a message (and the server still answering afterwards), the
//! rate limit, and the models it refuses to start with. The page itself is
//! tested in a browser by `tests/browser/live_page.mjs`.

mod common;

use common::{fails_with, nabla};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// A running `nabla serve`, stopped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    // Held open: a server whose stdout is closed ends at its next line.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nabla"))
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary runs");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        Server {
            child,
            addr,
            _stdout: stdout,
        }
    }

    /// Sends one request and reads the whole response.
    fn request(&self, method: &str, path: &str, kind: Option<&str>, body: &[u8]) -> Response {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(k) = kind {
            head.push_str(&format!("Content-Type: {k}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        // A server may answer (413) before reading a large body, and close.
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        Response::parse(&raw)
    }

    fn get(&self, path: &str) -> Response {
        self.request("GET", path, None, b"")
    }

    fn explain(&self, query: &str, png: &[u8]) -> Response {
        self.request(
            "POST",
            &format!("/api/explain{query}"),
            Some("image/png"),
            png,
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response");
        let headers = String::from_utf8_lossy(&raw[..split]).to_lowercase();
        let status = headers[9..12].parse().unwrap();
        let mut body = raw[split + 4..].to_vec();
        if headers.contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        Response {
            status,
            headers,
            body,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a refusal: this status and a JSON message containing `needle`.
    fn refused(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let message = self.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
        assert!(!message.contains('\n'), "one line: {message:?}");
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

fn png(img: &image::GrayImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    bytes
}

/// Test digit `i`, white ink on black at 8× as the page's pad draws it.
fn drawn(i: usize) -> (Vec<u8>, usize) {
    let test = nabla_data::embedded_mnist().unwrap().test;
    let mut img = image::GrayImage::new(280, 280);
    for (j, &v) in test.pixels(i).iter().enumerate() {
        let (x, y) = ((j % 28) as u32, (j / 28) as u32);
        for dy in 0..8 {
            for dx in 0..8 {
                img.put_pixel(28 + 8 * x + dx, 28 + 8 * y + dy, image::Luma([v]));
            }
        }
    }
    (png(&img), test.label(i))
}

#[test]
fn the_page_and_its_files_are_served_from_the_binary() {
    let s = Server::start(&[]);
    let page = s.get("/");
    assert_eq!(page.status, 200);
    assert!(page.headers.contains("content-type: text/html"));
    assert!(page
        .headers
        .contains("content-security-policy: default-src 'self'"));
    assert!(page.text().contains(r#"<canvas id="pad""#));
    for (path, kind) in [("/app.js", "text/javascript"), ("/style.css", "text/css")] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.headers.contains(kind), "{path}: {}", r.headers);
        // Nothing is fetched from elsewhere.
        assert!(!r.text().contains("http://") && !r.text().contains("https://"));
    }
    let models = s.get("/api/models").json();
    let ids: Vec<&str> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cnn", "mlp"]);
    let cnn = &models[0];
    assert_eq!(cnn["layers"][0]["shape"], serde_json::json!([16, 24, 24]));
    assert_eq!(cnn["classes"].as_array().unwrap().len(), 10);
}

#[test]
fn a_drawn_digit_goes_forward_and_back_through_each_shipped_model() {
    let s = Server::start(&[]);
    for model in ["cnn", "mlp"] {
        let mut right = 0;
        for i in 0..6 {
            let (png, label) = drawn(i);
            let r = s.explain(&format!("?model={model}"), &png);
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(
                r.headers.contains("server-timing: decode;dur="),
                "{}",
                r.headers
            );
            let v = r.json();
            assert_eq!(v["model"], model);
            let p: Vec<f64> = serde_json::from_value(v["probabilities"].clone()).unwrap();
            let wish: Vec<f64> = serde_json::from_value(v["wish"].clone()).unwrap();
            let predicted = v["predicted"].as_u64().unwrap() as usize;
            // Without a target, the cost is taken against the prediction.
            assert_eq!(v["target"].as_u64().unwrap() as usize, predicted);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4);
            assert!((wish[predicted] - (1.0 - p[predicted])).abs() < 1e-5);
            assert!(wish.iter().sum::<f64>().abs() < 1e-5);
            right += usize::from(predicted == label);
            let layers = v["layers"].as_array().unwrap();
            assert!(layers.len() >= 3, "{model}");
            for l in layers {
                let n: u64 = l["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap())
                    .product();
                assert_eq!(l["activation"]["q"].as_array().unwrap().len() as u64, n);
                assert_eq!(l["wish"]["q"].as_array().unwrap().len() as u64, n);
            }
            assert_eq!(v["input"].as_array().unwrap().len(), 784);
            assert_eq!(v["sensitivity"]["q"].as_array().unwrap().len(), 784);
        }
        assert!(right >= 5, "{model}: only {right} of 6 digits read right");
        // A chosen target: it alone is to be raised, and the cost is its.
        let (png, label) = drawn(0);
        let other = (label + 1) % 10;
        let v = s
            .explain(&format!("?model={model}&target={other}"), &png)
            .json();
        assert_eq!(v["target"].as_u64().unwrap() as usize, other);
        let wish: Vec<f64> = serde_json::from_value(v["wish"].clone()).unwrap();
        for (k, w) in wish.iter().enumerate() {
            assert_eq!(*w > 0.0, k == other, "{model}: class {k} wish {w}");
        }
        let p_other = v["probabilities"][other].as_f64().unwrap();
        let loss = v["loss"].as_f64().unwrap();
        assert!((loss - -p_other.max(1e-30).ln()).abs() < 1e-3 * (1.0 + loss));
    }
}

#[test]
fn bad_requests_get_a_4xx_with_a_message_and_the_server_keeps_answering() {
    let s = Server::start(&[]);
    let (digit, _) = drawn(0);
    s.get("/api/explain").refused(405, "use POST");
    s.request("POST", "/", None, b"").refused(405, "use GET");
    s.get("/secret/../etc/passwd").refused(404, "no such page");
    s.request("POST", "/api/explain", None, &digit)
        .refused(415, "Content-Type missing");
    s.request("POST", "/api/explain", Some("text/plain"), &digit)
        .refused(415, "image/png");
    s.explain("", b"").refused(400, "no body");
    s.explain("", b"hello, world")
        .refused(400, "not a PNG or JPEG");
    s.explain("", &digit[..digit.len() / 2])
        .refused(400, "not a readable PNG or JPEG");
    let blank = png(&image::GrayImage::from_pixel(280, 280, image::Luma([255])));
    s.explain("", &blank).refused(400, "no ink");
    let wide = png(&image::GrayImage::new(2000, 10));
    s.explain("", &wide).refused(400, "at most 1024x1024");
    // A PNG header claiming 100000² pixels is refused before decoding.
    let mut huge = png(&image::GrayImage::new(1, 1));
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let r = s.explain("", &huge);
    assert_eq!(r.status, 400, "{}", r.text());
    s.explain("?model=zzz", &digit)
        .refused(400, "no such model (served: cnn, mlp)");
    s.explain("?target=12", &digit).refused(400, "0 to 9");
    s.explain("?target=seven", &digit)
        .refused(400, "expected a class number");
    s.explain("?colour=red", &digit)
        .refused(400, "unknown parameter");
    s.explain("", &vec![0u8; 3 << 20])
        .refused(413, "larger than");
    // Still serving, and still right.
    assert_eq!(s.get("/api/models").status, 200);
    assert_eq!(s.explain("", &digit).status, 200);
}

#[test]
fn requests_past_the_rate_get_429_until_the_bucket_refills() {
    let s = Server::start(&["--rate", "3"]);
    let (digit, _) = drawn(0);
    let statuses: Vec<u16> = (0..8)
        .map(|_| s.explain("?model=mlp", &digit).status)
        .collect();
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = s.explain("?model=mlp", &digit);
    if r.status == 429 {
        assert!(r.headers.contains("retry-after: 1"));
        r.refused(429, "at most 3 analyses a second");
    }
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(s.explain("?model=mlp", &digit).status, 200);
}

#[test]
fn serve_refuses_what_it_cannot_serve_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails_with(
        &nabla(&["serve", "--model", "absent.safetensors"], d),
        "absent.safetensors",
    );
    std::fs::write(
        d.join("rows.csv"),
        "a,b,y\n1,2,0\n2,1,1\n3,3,0\n1,1,1\n2,2,0\n",
    )
    .unwrap();
    let o = nabla(
        &[
            "train",
            "--csv",
            "rows.csv",
            "--target",
            "y",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            "table.safetensors",
        ],
        d,
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    fails_with(
        &nabla(&["serve", "--model", "table.safetensors", "--port", "0"], d),
        "serve draws digits",
    );
    let running = Server::start(&[]);
    let port = running.addr.port().to_string();
    fails_with(
        &nabla(&["serve", "--port", &port], d),
        &format!("cannot listen on 127.0.0.1:{port}"),
    );
}
