// End-to-end test of `nabla serve` in a real browser (headless Chromium):
// draws a 3 and a 7 with the mouse on each shipped model, checks the
// prediction, that every layer's views and the input views were redrawn,
// that picking a target changes the backward views, and that the page
// fetched nothing from anywhere else. Screenshots and the stroke-to-page
// timings are written to artifacts/.
//
//   node live_page.mjs            (after `cargo build --release`)
//   NABLA_BIN=path/to/nabla CHROMIUM=path/to/chromium node live_page.mjs
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..', '..');
const bin = process.env.NABLA_BIN || join(root, 'target', 'release', 'nabla');
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const artifacts = join(here, 'artifacts');
mkdirSync(artifacts, { recursive: true });

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures += 1;
}

// Starts the server on a free port and resolves with its address.
function startServer() {
  const server = spawn(bin, ['serve', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    server.on('error', reject);
    server.on('exit', (code) => reject(new Error(`nabla serve exited with ${code}: ${out}`)));
    server.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/serving (http:\/\/[\d.:]+\/)/);
      if (m) resolve({ server, url: m[1] });
    });
  });
}

// Points of a digit on the 280×280 pad, as strokes (lists of [x, y]).
function arc(cx, cy, r, from, to, n = 24) {
  const pts = [];
  for (let i = 0; i <= n; i++) {
    const a = ((from + ((to - from) * i) / n) * Math.PI) / 180;
    pts.push([cx + r * Math.cos(a), cy + r * Math.sin(a)]);
  }
  return pts;
}
const DIGITS = {
  3: [[...arc(140, 95, 50, -150, 90), ...arc(140, 190, 45, -90, 150).slice(1)]],
  7: [[[70, 60], [210, 60], [165, 145], [120, 230]]],
};

async function draw(page, strokes) {
  const box = await page.locator('#pad').boundingBox();
  const sx = box.width / 280;
  const sy = box.height / 280;
  for (const stroke of strokes) {
    const [x0, y0] = stroke[0];
    await page.mouse.move(box.x + x0 * sx, box.y + y0 * sy);
    await page.mouse.down();
    for (const [x, y] of stroke.slice(1)) {
      await page.mouse.move(box.x + x * sx, box.y + y * sy, { steps: 4 });
    }
    await page.mouse.up();
  }
  await page.waitForFunction(() => window.nabla.settled() && window.nabla.updates > 0);
}

// Every drawn view, as data URLs, to tell which ones changed.
const views = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll('canvas.layer-view, #input28, #sensitivity')].map((c) => c.toDataURL()),
  );

async function main() {
  const { server, url } = await startServer();
  const browser = await chromium.launch({
    executablePath: browserPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const results = { cpu: cpus()[0]?.model, browser: browser.version(), url, timings: {} };
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    const foreign = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(url)) foreign.push(r.url());
    });
    const consoleErrors = [];
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    await page.goto(url);
    await page.waitForSelector('#models button');
    const models = await page.$$eval('#models button', (bs) => bs.map((b) => b.dataset.value));
    check(models.join(',') === 'cnn,mlp', `the page offers the shipped models (${models})`);

    for (const model of models) {
      await page.click(`#models button[data-value="${model}"]`);
      let before = await views(page);
      for (const digit of [3, 7]) {
        await page.click('#clear');
        const start = await page.evaluate(() => window.nabla.updates);
        await draw(page, DIGITS[digit]);
        const last = await page.evaluate(() => window.nabla.last);
        const updates = (await page.evaluate(() => window.nabla.updates)) - start;
        check(last.model === model, `${model}: the report is the chosen model's`);
        check(last.predicted === digit, `${model}: a drawn ${digit} is predicted as ${last.predicted} (${updates} updates while drawing)`);
        const after = await views(page);
        const layers = await page.$$eval('.layer', (ls) => ls.length);
        const unchanged = after.map((v, i) => (v === before[i] ? i : -1)).filter((i) => i >= 0);
        check(
          after.length === 2 * layers + 2 && layers > 0 && unchanged.length === 0,
          `${model}: all ${layers} layers' forward and backward views and both input views were redrawn for the ${digit}` +
            (unchanged.length ? ` (unchanged: ${unchanged})` : ''),
        );
        const text = await page.textContent('#prediction');
        check(text.trim().startsWith(String(digit)), `${model}: the page says "${text.trim()}"`);
        await page.screenshot({ path: join(artifacts, `live-${model}-${digit}.png`), fullPage: true });
        before = after;
      }
      // A target other than the prediction: the wish and the views behind it change, the forward ones do not.
      const forward = () => page.$$eval('canvas.forward', (cs) => cs.map((c) => c.toDataURL()));
      const backward = () => page.$$eval('canvas.backward, #sensitivity', (cs) => cs.map((c) => c.toDataURL()));
      const [f0, b0] = [await forward(), await backward()];
      await page.click('#targets button[data-value="1"]');
      await page.waitForFunction(() => window.nabla.settled() && window.nabla.last.target === 1);
      const wish = await page.$$eval('#wish span.bar i', (is) => is.map((i) => i.className));
      const [f1, b1] = [await forward(), await backward()];
      check(wish[1] === 'up' && wish.filter((c) => c === 'up').length === 1, `${model}: with target 1 only 1 is to be raised`);
      check(f1.every((v, i) => v === f0[i]), `${model}: the forward views stay as they were`);
      check(b1.every((v, i) => v !== b0[i]), `${model}: every backward view changed with the target`);
      await page.screenshot({ path: join(artifacts, `live-${model}-7-target-1.png`), fullPage: true });
      await page.click('#targets button[data-value="auto"]');
      await page.waitForFunction(() => window.nabla.settled() && window.nabla.last.target === 7);

      const timings = await page.evaluate(() => window.nabla.timings);
      const mine = timings.filter((t) => t.model === model);
      const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const pick = (f) => Number(median(mine.map(f)).toFixed(2));
      results.timings[model] = {
        updates: mine.length,
        total_ms: pick((t) => t.total),
        png_ms: pick((t) => t.encode),
        request_ms: pick((t) => t.request),
        server_decode_ms: pick((t) => t.server.decode),
        server_net_ms: pick((t) => t.server.net),
        server_json_ms: pick((t) => t.server.json),
        parse_ms: pick((t) => t.parse),
        render_ms: pick((t) => t.render),
      };
      await page.evaluate(() => { window.nabla.timings = []; });
    }
    check(foreign.length === 0, `the page fetched nothing from elsewhere${foreign.length ? `: ${foreign}` : ''}`);
    check(consoleErrors.length === 0, `no errors in the console${consoleErrors.length ? `: ${consoleErrors}` : ''}`);

    // A touch screen draws too (pointer events from a finger).
    const phone = await browser.newPage({ viewport: { width: 420, height: 900 }, hasTouch: true, isMobile: true });
    await phone.goto(url);
    await phone.waitForSelector('#models button');
    const box = await phone.locator('#pad').boundingBox();
    const cdp = await phone.context().newCDPSession(phone);
    const touch = (type, pts) => cdp.send('Input.dispatchTouchEvent', {
      type,
      touchPoints: pts.map(([x, y]) => ({ x: box.x + (x * box.width) / 280, y: box.y + (y * box.height) / 280 })),
    });
    const seven = DIGITS[7][0];
    await touch('touchStart', [seven[0]]);
    for (let i = 1; i < seven.length; i++) {
      const [xa, ya] = seven[i - 1];
      const [xb, yb] = seven[i];
      for (let s = 1; s <= 6; s++) await touch('touchMove', [[xa + ((xb - xa) * s) / 6, ya + ((yb - ya) * s) / 6]]);
    }
    await touch('touchEnd', []);
    await phone.waitForFunction(() => window.nabla.settled() && window.nabla.updates > 0);
    const touched = await phone.evaluate(() => window.nabla.last);
    check(touched.predicted === 7, `a 7 drawn with a finger is predicted as ${touched.predicted}`);
    await phone.screenshot({ path: join(artifacts, 'live-touch-7.png'), fullPage: true });
  } finally {
    await browser.close();
    server.kill('SIGINT');
  }
  writeFileSync(join(artifacts, 'timings.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`median stroke-to-page times (${results.cpu}, headless Chromium ${results.browser}):`);
  console.log(JSON.stringify(results.timings, null, 2));
  console.log(failures ? `${failures} check(s) failed` : 'live page: every check passed');
  console.log(`screenshots and timings in ${artifacts}`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(`live page test: ${e.stack || e}`);
  process.exit(1);
});
