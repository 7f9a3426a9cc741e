// VideoBoost's page. It calls the API itself (same origin, the page's cookie when the server
// has a token) so an upload meets exactly the API's limits, checks and messages.
"use strict";

const $ = (id) => document.getElementById(id);
const MiB = 2 ** 20;
let about = null;

// ------------------------------------------------------------------ small helpers

function fmtSize(w, h) { return `${w}×${h}`; }

function fmtSeconds(ms) { return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`; }

// Python's "{:g}" for the limits, so the message reads as the API's own.
function g(x) { return String(Number(x.toPrecision(6))); }

function showError(status, message) {
  const box = $("error");
  box.replaceChildren();
  const code = document.createElement("b");
  code.textContent = status ? String(status) : "error";
  box.append(code, document.createTextNode(message));
  box.hidden = false;
}

function clearError() { $("error").hidden = true; $("error").replaceChildren(); }

async function errorMessage(response) {
  if (response.status === 401) {
    return "the server needs its API token: reload this page and enter it";
  }
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error;
  } catch (_) { /* not JSON */ }
  return response.statusText || "the request failed";
}

// The API's own wording for an upload over its byte limit (service/guard.py, too_large).
function tooLarge(size, limit) {
  return `upload is ${(size / MiB).toFixed(1)} MiB, above the limit of ${g(limit / MiB)} MiB`;
}

function options() {
  const fields = {};
  const height = $("opt-height").value.trim();
  if (height) fields.height = height;
  const pp = {};
  const unsharp = Number($("opt-unsharp").value);
  const contrast = Number($("opt-contrast").value);
  if (unsharp > 0) pp.unsharp_amount = unsharp;
  if (contrast !== 1) pp.contrast = contrast;
  if (Object.keys(pp).length) fields.postprocess = JSON.stringify(pp);
  return fields;
}

function form(field, file) {
  const data = new FormData();
  data.append(field, file, file.name);
  for (const [key, value] of Object.entries(options())) data.append(key, value);
  return data;
}

function stem(name) { return (name || "upload").replace(/\.[^.]*$/, "").slice(0, 80) || "upload"; }

// ------------------------------------------------------------------ bicubic, as Pillow does it

// Pillow's BICUBIC (a = -0.5, pixel centres at +0.5, taps renormalised at the borders,
// horizontal pass first, each pass rounded to 8 bits): the project's bicubic baseline.
function cubic(x) {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function taps(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 2 * filterscale;
  const out = [];
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const start = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - start;
    const weights = new Float64Array(count);
    let total = 0;
    for (let k = 0; k < count; k++) {
      weights[k] = cubic((k + start - center + 0.5) / filterscale);
      total += weights[k];
    }
    if (total !== 0) for (let k = 0; k < count; k++) weights[k] /= total;
    out.push({ start, weights });
  }
  return out;
}

function clip8(v) { return v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v + 0.5); }

function bicubic(src, outW, outH) {
  const { width: w, height: h, data } = src;
  const mid = new Uint8ClampedArray(outW * h * 4);
  const xs = taps(w, outW);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < outW; x++) {
      const { start, weights } = xs[x];
      let r = 0, gg = 0, b = 0;
      for (let k = 0; k < weights.length; k++) {
        const p = (y * w + start + k) * 4;
        r += data[p] * weights[k]; gg += data[p + 1] * weights[k]; b += data[p + 2] * weights[k];
      }
      const q = (y * outW + x) * 4;
      mid[q] = clip8(r); mid[q + 1] = clip8(gg); mid[q + 2] = clip8(b); mid[q + 3] = 255;
    }
  }
  const out = new ImageData(outW, outH);
  const ys = taps(h, outH);
  for (let y = 0; y < outH; y++) {
    const { start, weights } = ys[y];
    for (let x = 0; x < outW; x++) {
      let r = 0, gg = 0, b = 0;
      for (let k = 0; k < weights.length; k++) {
        const p = ((start + k) * outW + x) * 4;
        r += mid[p] * weights[k]; gg += mid[p + 1] * weights[k]; b += mid[p + 2] * weights[k];
      }
      const q = (y * outW + x) * 4;
      out.data[q] = clip8(r); out.data[q + 1] = clip8(gg); out.data[q + 2] = clip8(b);
      out.data[q + 3] = 255;
    }
  }
  return out;
}

function pixelsOf(source, w, h) {
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, w, h);
  return ctx.getImageData(0, 0, w, h);
}

function paint(canvas, imageData) {
  canvas.width = imageData.width; canvas.height = imageData.height;
  canvas.getContext("2d").putImageData(imageData, 0, 0);
}

// ------------------------------------------------------------------ the model's story

function fillStory(info) {
  const m = info.model;
  const x = m.scale ? `×${m.scale}` : "";
  $("story-model").textContent = m.version ? `${m.name} v${m.version} ${x}` : `${m.tag} ${x}`;
  $("story-tier").textContent = `tier: ${m.tier || "not recorded"} · ${m.mode}`;
  const rt = info.runtime;
  if (rt) {
    $("story-runtime").textContent = `${rt.name} (${rt.precision}) · ${rt.fps.toFixed(1)} frames/s`;
    $("story-runtime-how").textContent =
      `at ${fmtSize(rt.size[0], rt.size[1])} input, ${rt.how}${rt.host ? ` · ${rt.host}` : ""}`;
  } else {
    $("story-runtime").textContent = "not chosen yet";
  }
  const list = $("story-tracks");
  list.replaceChildren();
  const tracks = Object.entries(m.tracks || {});
  if (!tracks.length) {
    const li = document.createElement("li");
    li.textContent = "not benchmarked yet";
    list.append(li);
  }
  for (const [track, gain] of tracks) {
    const li = document.createElement("li");
    li.dataset.track = track;
    const name = document.createElement("span");
    name.textContent = track;
    const value = document.createElement("span");
    value.className = `gain ${gain >= 0 ? "up" : "down"}`;
    value.textContent = `${gain >= 0 ? "+" : ""}${gain.toFixed(2)} dB`;
    li.append(name, value);
    list.append(li);
  }
  $("story-registry").textContent = m.version
    ? `${m.name}, version ${m.version}` : "a file import (no registry version)";
  const link = $("mlflow-link");
  if (m.mlflow_url) { link.href = m.mlflow_url; link.hidden = false; }
  const l = info.limits;
  $("limits").textContent = `limits: ${g(l.image_bytes / MiB)} MiB per picture, ` +
    `${g(l.video_bytes / MiB)} MiB per clip, ${l.max_input_pixels} pixels per frame, ` +
    `${l.max_video_frames} frames`;
}

async function loadStory() {
  const r = await fetch("/ui/about.json", { credentials: "same-origin" });
  if (!r.ok) { showError(r.status, await errorMessage(r)); return; }
  about = await r.json();
  fillStory(about);
  document.body.dataset.ready = "true";
}

// ------------------------------------------------------------------ pictures

let imageUrl = null;

async function upscaleImage(file) {
  clearError();
  $("image-result").hidden = true;
  document.body.dataset.busy = "image";
  try {
    if (about && file.size > about.limits.image_bytes) {
      showError(413, tooLarge(file.size, about.limits.image_bytes));
      return;
    }
    const started = performance.now();
    const r = await fetch("/upscale", { method: "POST", body: form("image", file), credentials: "same-origin" });
    if (!r.ok) { showError(r.status, await errorMessage(r)); return; }
    const blob = await r.blob();
    const elapsed = performance.now() - started;
    const [lr, sr] = await Promise.all([
      createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" }),
      createImageBitmap(blob, { colorSpaceConversion: "none" }),
    ]);
    paint($("bicubic-canvas"), bicubic(pixelsOf(lr, lr.width, lr.height), sr.width, sr.height));
    if (imageUrl) URL.revokeObjectURL(imageUrl);
    imageUrl = URL.createObjectURL(blob);
    const img = $("sr-image");
    img.width = sr.width; img.height = sr.height;
    img.src = imageUrl;
    await img.decode();
    $("in-size").textContent = fmtSize(lr.width, lr.height);
    $("out-size").textContent = fmtSize(sr.width, sr.height);
    $("elapsed").textContent = fmtSeconds(elapsed);
    $("image-note").textContent = [r.headers.get("X-VideoBoost-Note"),
      r.headers.get("X-VideoBoost-Runtime") && `runtime ${r.headers.get("X-VideoBoost-Runtime")}`]
      .filter(Boolean).join(" · ");
    const link = $("download-image");
    link.href = imageUrl;
    link.download = `${stem(file.name)}_videoboost.png`;
    $("image-result").hidden = false;
  } catch (err) {
    showError(0, `the picture could not be shown: ${err.message || err}`);
  } finally {
    delete document.body.dataset.busy;
    document.body.dataset.imageDone = String(Date.now());
  }
}

function setDivider(percent) {
  $("compare").style.setProperty("--pos", `${percent}%`);
}

// ------------------------------------------------------------------ clips

let videoUrl = null;
let sourceUrl = null;

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

function showProgress(p) {
  const bar = $("video-progress");
  const text = $("progress-text");
  if (p.state === "waiting") {
    bar.removeAttribute("value");
    text.textContent = "queued: waiting for a free video slot";
  } else if (p.total > 0) {
    bar.max = p.total; bar.value = p.frames;
    text.textContent = p.frames >= p.total && p.state === "running"
      ? `${p.frames} / ${p.total} frames: writing the MP4`
      : `${p.frames} / ${p.total} frames`;
  } else {
    bar.removeAttribute("value");
    text.textContent = `${p.frames} frames`;
  }
}

// The job's progress, streamed; resolves when it stops running.
function follow(taskId) {
  return new Promise((resolve) => {
    const events = new EventSource(`/ui/progress?task_id=${encodeURIComponent(taskId)}`);
    events.onmessage = (e) => {
      const p = JSON.parse(e.data);
      showProgress(p);
      if (p.state === "done" || p.state === "failed") { events.close(); resolve(p.state); }
    };
    events.onerror = () => { events.close(); resolve("unknown"); };
  });
}

async function taskStatus(taskId) {
  for (;;) {
    const r = await fetch(`/upscale_video/status?task_id=${encodeURIComponent(taskId)}`,
      { credentials: "same-origin" });
    if (!r.ok) return { error: r };
    const s = await r.json();
    if (s.status !== "in_progress" && s.status !== "pending") return s;
    await sleep(400);
  }
}

function once(target, event) {
  return new Promise((resolve, reject) => {
    target.addEventListener(event, resolve, { once: true });
    target.addEventListener("error", () => reject(new Error(`cannot decode (${event})`)), { once: true });
  });
}

async function frameAt(video, t, w, h) {
  video.currentTime = t;
  await once(video, "seeked");
  return pixelsOf(video, w, h);
}

async function preview(file, resultUrl, frames, fps) {
  const box = $("preview");
  box.replaceChildren();
  const src = document.createElement("video");
  const out = document.createElement("video");
  for (const v of [src, out]) { v.muted = true; v.preload = "auto"; v.playsInline = true; }
  if (sourceUrl) URL.revokeObjectURL(sourceUrl);
  sourceUrl = URL.createObjectURL(file);
  src.src = sourceUrl; out.src = resultUrl;
  try {
    await Promise.all([once(src, "loadeddata"), once(out, "loadeddata")]);
  } catch (_) {
    $("video-in-size").textContent = "not decodable here";
    box.textContent = "No preview: this browser cannot decode the source clip (the result above is complete).";
    return;
  }
  $("video-in-size").textContent = fmtSize(src.videoWidth, src.videoHeight);
  const count = Math.max(1, Math.min(3, frames));
  for (let i = 0; i < count; i++) {
    const index = Math.min(frames - 1, Math.floor(((i + 1) * frames) / (count + 1)));
    const t = (index + 0.5) / fps;
    const lr = await frameAt(src, t, src.videoWidth, src.videoHeight);
    const sr = await frameAt(out, t, out.videoWidth, out.videoHeight);
    const pair = [["bicubic", bicubic(lr, sr.width, sr.height)], ["VideoBoost", sr]];
    for (const [name, pixels] of pair) {
      const fig = document.createElement("figure");
      const canvas = document.createElement("canvas");
      paint(canvas, pixels);
      const cap = document.createElement("figcaption");
      cap.textContent = `frame ${index + 1}: ${name}`;
      fig.append(canvas, cap);
      box.append(fig);
    }
  }
}

async function upscaleVideo(file) {
  clearError();
  $("video-result").hidden = true;
  document.body.dataset.busy = "video";
  const box = $("video-progress-box");
  try {
    if (about && file.size > about.limits.video_bytes) {
      showError(413, tooLarge(file.size, about.limits.video_bytes));
      return;
    }
    const started = performance.now();
    box.hidden = false;
    showProgress({ state: "waiting", frames: 0, total: 0 });
    $("progress-text").textContent = "uploading and checking the clip";
    const r = await fetch("/upscale_video/submit", { method: "POST", body: form("video", file), credentials: "same-origin" });
    if (!r.ok) { box.hidden = true; showError(r.status, await errorMessage(r)); return; }
    const { task_id: taskId } = await r.json();
    await follow(taskId);
    const status = await taskStatus(taskId);
    if (status.error) { box.hidden = true; showError(status.error.status, await errorMessage(status.error)); return; }
    const got = await fetch(`/upscale_video/get?task_id=${encodeURIComponent(taskId)}`, { credentials: "same-origin" });
    if (!got.ok || status.status !== "completed") {
      box.hidden = true;
      showError(got.status, await errorMessage(got));
      return;
    }
    const blob = await got.blob();
    const elapsed = performance.now() - started;
    if (videoUrl) URL.revokeObjectURL(videoUrl);
    videoUrl = URL.createObjectURL(blob);
    const player = $("result-video");
    player.src = videoUrl;
    await once(player, "loadedmetadata");
    const frames = Number(got.headers.get("X-VideoBoost-Frames") || 0);
    const fps = Number(got.headers.get("X-VideoBoost-Fps") || 25);
    $("video-out-size").textContent = fmtSize(player.videoWidth, player.videoHeight);
    $("video-frames").textContent = `${frames} at ${g(fps)} fps`;
    $("video-elapsed").textContent = fmtSeconds(elapsed);
    $("video-note").textContent = got.headers.get("X-VideoBoost-Note") || "";
    const link = $("download-video");
    link.href = videoUrl;
    link.download = `${stem(file.name)}_videoboost.mp4`;
    box.hidden = true;
    $("video-result").hidden = false;
    await preview(file, videoUrl, frames, fps);
  } catch (err) {
    box.hidden = true;
    showError(0, `the clip could not be shown: ${err.message || err}`);
  } finally {
    delete document.body.dataset.busy;
    document.body.dataset.videoDone = String(Date.now());
  }
}

// ------------------------------------------------------------------ wiring

function dropZone(zone, input, handle) {
  input.addEventListener("change", () => { if (input.files[0]) handle(input.files[0]); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) handle(file);
  });
}

function selectTab(name) {
  for (const other of ["image", "video"]) {
    $(`tab-${other}`).setAttribute("aria-selected", String(other === name));
    $(`panel-${other}`).hidden = other !== name;
  }
  clearError();
}

document.addEventListener("DOMContentLoaded", () => {
  $("tab-image").addEventListener("click", () => selectTab("image"));
  $("tab-video").addEventListener("click", () => selectTab("video"));
  dropZone($("image-drop"), $("image-input"), upscaleImage);
  dropZone($("video-drop"), $("video-input"), (file) => {
    upscaleVideo(file);
  });
  $("compare-slider").addEventListener("input", (e) => setDivider(e.target.value));
  $("actual-pixels").addEventListener("change", (e) => {
    $("viewport").classList.toggle("actual", e.target.checked);
  });
  $("opt-unsharp").addEventListener("input", (e) => {
    $("opt-unsharp-value").textContent = Number(e.target.value) ? Number(e.target.value).toFixed(1) : "off";
  });
  $("opt-contrast").addEventListener("input", (e) => {
    $("opt-contrast-value").textContent = Number(e.target.value).toFixed(2);
  });
  $("options").addEventListener("submit", (e) => e.preventDefault());
  loadStory();
});
