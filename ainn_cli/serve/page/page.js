// The ainn page: upload or record, convert through the server's queue, listen A/B, read strength (draw.js draws).
// Everything comes from this server (no other host); uploads are raw request bodies, one file each.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { config: null, source: null, reference: null, outputUrl: null, sourceUrl: null };
const WAIT_S = 0.5;  // a status request returns at a change of state, or after this long (progress)

// ---- the server -----------------------------------------------------------------------------------------

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("the server cannot be reached (is `ainn serve` still running?)");
  }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error((body && body.error) || `the server answered ${response.status}`);
  return body;
}

function postJson(path, data) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
}

function sizeText(bytes) {
  for (const [unit, scale] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) {
    if (bytes >= scale) return `${(bytes / scale).toPrecision(3)} ${unit}`;
  }
  return `${bytes} bytes`;
}

async function upload(file) {
  const limit = state.config.max_bytes;
  if (file.size > limit) {
    throw new Error(`${file.name}: ${sizeText(file.size)} is over the page's limit of ${sizeText(limit)}`);
  }
  return api(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
}

async function waitFor(job, onProgress) {
  let status = job;
  while (status.state === "queued" || status.state === "running") {
    onProgress(status);
    status = await api(`/api/jobs/${encodeURIComponent(status.id)}?wait=${WAIT_S}`);
  }
  if (status.state === "failed") throw new Error(status.error);
  return status;
}

// ---- choosing recordings ------------------------------------------------------------------------------------

function say(id, text, kind) {
  const el = $(id);
  el.textContent = text || "";
  el.dataset.kind = kind || "error";
}

function oneFile(files) {
  if (files.length !== 1) throw new Error(`choose one file at a time (${files.length} were given)`);
  return files[0];
}

async function choose(role, files) {
  const message = `${role}-message`;
  say(message, "");
  try {
    const file = oneFile(files);
    $(`${role}-name`).textContent = `uploading ${file.name}…`;
    const uploaded = await upload(file);
    state[role] = uploaded;
    $(`${role}-name`).textContent = `${uploaded.name} · ${uploaded.seconds.toFixed(2)} s`;
    const url = URL.createObjectURL(file);
    $(`${role}-player`).src = url;
    if (role === "source") state.sourceUrl = url;
    if (uploaded.warnings.length) say(message, uploaded.warnings.join("; "), "warning");
  } catch (err) {
    state[role] = null;
    $(`${role}-name`).textContent = "";
    say(message, err.message);
  }
}

function watchPicker(role) {
  const input = $(`${role}-file`);
  input.addEventListener("change", () => { choose(role, input.files); input.value = ""; });
  const box = $(`${role}-box`);
  box.addEventListener("dragover", (event) => { event.preventDefault(); box.classList.add("over"); });
  box.addEventListener("dragleave", () => box.classList.remove("over"));
  box.addEventListener("drop", (event) => {
    event.preventDefault();
    box.classList.remove("over");
    choose(role, event.dataTransfer.files);
  });
}

// ---- recording from the microphone (16-bit wav made here, which every libsndfile reads) ----------------------

const recorder = { stream: null, context: null, node: null, chunks: [] };

async function toggleRecording() {
  if (recorder.stream) return stopRecording();
  say("source-message", "");
  try {
    recorder.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    say("source-message", `the microphone is not available (${err.message})`);
    return;
  }
  recorder.context = new AudioContext();
  const input = recorder.context.createMediaStreamSource(recorder.stream);
  recorder.node = recorder.context.createScriptProcessor(4096, 1, 1);
  recorder.chunks = [];
  recorder.node.onaudioprocess = (event) => recorder.chunks.push(new Float32Array(event.inputBuffer.getChannelData(0)));
  input.connect(recorder.node);
  recorder.node.connect(recorder.context.destination);
  $("record").textContent = "Stop";
  $("record").classList.add("recording");
}

async function stopRecording() {
  const rate = recorder.context.sampleRate;
  recorder.node.disconnect();
  recorder.stream.getTracks().forEach((track) => track.stop());
  await recorder.context.close();
  recorder.stream = null;
  $("record").textContent = "Record";
  $("record").classList.remove("recording");
  const wav = encodeWav(recorder.chunks, rate);
  await choose("source", [new File([wav], "recording.wav", { type: "audio/wav" })]);
}

function encodeWav(chunks, rate) {
  const count = chunks.reduce((n, c) => n + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * count));
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * count, true); text(8, "WAVEfmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * count, true);
  let at = 44;
  for (const chunk of chunks) {
    for (const x of chunk) { view.setInt16(at, Math.max(-1, Math.min(1, x)) * 32767, true); at += 2; }
  }
  return view.buffer;
}

// ---- converting -------------------------------------------------------------------------------------------

function referenceMode() {
  return document.querySelector("input[name=reference-mode]:checked").value;
}

function showProgress(status) {
  $("progress").hidden = false;
  const bar = $("progress-bar");
  if (status.state === "queued") {
    bar.removeAttribute("value");
    const ahead = status.position;
    $("progress-text").textContent = `queued: ${ahead} ${ahead === 1 ? "conversion" : "conversions"} before this one`;
  } else {
    bar.value = status.estimate > 0 ? Math.min(status.elapsed / status.estimate, 0.97) : 0.5;
    $("progress-text").textContent = `converting… ${status.elapsed.toFixed(1)} s (about ${status.estimate.toFixed(1)} s)`;
  }
}

async function convert() {
  say("message", "");
  const asFile = referenceMode() === "file";
  const request = {
    source: state.source && state.source.id,
    reference: asFile && state.reference ? state.reference.id : null,
    emotion: asFile ? null : $("emotion").value,
    strength: $("as-reference").checked ? null : Number($("strength").value),
    tempo: asFile && $("tempo").checked,
  };
  if (!request.source) return say("message", "choose a source recording first");
  if (asFile && !request.reference) return say("message", "choose a reference recording, or pick an emotion");
  $("convert").disabled = true;
  try {
    const done = await waitFor(await postJson("/api/convert", request), showProgress);
    await showResult(done);
  } catch (err) {
    say("message", err.message);
  } finally {
    $("progress").hidden = true;
    $("convert").disabled = false;
  }
}

async function showResult(status) {
  const result = status.result;
  const response = await fetch(`/api/output/${encodeURIComponent(status.id)}`);
  if (!response.ok) throw new Error("the converted audio could not be fetched; convert again");
  if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
  state.outputUrl = URL.createObjectURL(await response.blob());
  const player = $("output-player");
  player.src = state.outputUrl;
  player.dataset.samples = result.output.samples;
  $("ab-source").src = state.sourceUrl;
  $("download").href = state.outputUrl;
  $("download").download = result.output.name;
  $("sentence").textContent = result.sentence;
  showNumbers(result.converted);
  drawReading($("reference-reading"), result.reading);
  const pictures = $("pictures");
  pictures.replaceChildren();
  for (const [what, picture] of Object.entries(result.pictures)) {
    if (picture) pictures.append(drawPicture(picture, what));
  }
  if (result.warnings.length) say("message", result.warnings.join("; "), "warning");
  $("result").hidden = false;
  // the output's picture is drawn when asked for, after the audio is playable
  pictures.append(drawPicture(await api(`/api/picture/${encodeURIComponent(status.id)}`), "output"));
}

function showNumbers(c) {
  const rows = [["emotion", c.emotion], ["strength", c.strength]];
  if (c.prosody) {
    const p = c.prosody;
    rows.push(["pitch", `${p.pitch_semitones >= 0 ? "+" : ""}${p.pitch_semitones.toFixed(1)} st, range ×${p.pitch_range.toFixed(2)}`]);
    rows.push(["loudness", `${p.energy_db >= 0 ? "+" : ""}${p.energy_db.toFixed(1)} dB`]);
    rows.push(["duration", `×${p.duration.toFixed(2)}`]);
  }
  rows.push(["real-time factor", c.rtf], ["source", `${c.seconds} s`]);
  $("numbers").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", k), el("dd", String(v))]));
}

function switchAB() {
  const a = $("ab-source"), b = $("output-player");
  const [from, to] = a.paused && !b.paused ? [b, a] : [a, b];
  const at = from.duration ? from.currentTime / from.duration : 0;
  const playing = !from.paused || (a.paused && b.paused);
  from.pause();
  if (to.duration) to.currentTime = at * to.duration;
  if (playing) to.play();
}

// ---- the strength view --------------------------------------------------------------------------------------

async function readStrength(files) {
  say("strength-message", "");
  $("strength-reading").replaceChildren();
  $("strength-picture").replaceChildren();
  try {
    const file = oneFile(files);
    $("strength-name").textContent = `uploading ${file.name}…`;
    const uploaded = await upload(file);
    $("strength-name").textContent = `${uploaded.name} · ${uploaded.seconds.toFixed(2)} s`;
    const job = await postJson("/api/strength", { upload: uploaded.id });
    const done = await waitFor(job, (s) => {
      $("strength-progress").textContent = s.state === "queued" ? `queued: ${s.position} before this one` : "reading…";
    });
    drawReading($("strength-reading"), done.result.reading);
    $("strength-picture").append(drawPicture(done.result.picture, done.result.name));
    if (done.result.warnings.length) say("strength-message", done.result.warnings.join("; "), "warning");
  } catch (err) {
    $("strength-name").textContent = "";
    say("strength-message", err.message);
  } finally {
    $("strength-progress").textContent = "";
  }
}

// ---- wiring -------------------------------------------------------------------------------------------------

function showStrength() {
  const asReference = $("as-reference").checked;
  $("strength").disabled = asReference;
  $("strength-value").textContent = asReference ? "as the reference" : Number($("strength").value).toFixed(2);
}

function showReferenceMode() {
  const asFile = referenceMode() === "file";
  $("reference-file-row").hidden = !asFile;
  $("reference-player").hidden = !asFile;
  $("emotion-row").hidden = asFile;
  $("tempo").disabled = !asFile || !state.config.tempo;
  $("as-reference").disabled = !asFile;  // a prototype has no strength of its own
  if (!asFile && $("as-reference").checked) { $("as-reference").checked = false; showStrength(); }
}

async function start() {
  try {
    state.config = await api("/api/config");
  } catch (err) {
    say("message", err.message);
    return;
  }
  const c = state.config;
  $("model").textContent = `model ${c.model} on ${c.device} · uploads up to ${sizeText(c.max_bytes)}, ${c.max_seconds / 60} min`;
  $("emotion").replaceChildren(...c.emotions.map((e) => el("option", e)));
  $("tempo").checked = c.tempo_default;
  watchPicker("source");
  watchPicker("reference");
  const strengthFile = $("strength-file");
  strengthFile.addEventListener("change", () => { readStrength(strengthFile.files); strengthFile.value = ""; });
  $("strength").addEventListener("input", showStrength);
  $("as-reference").addEventListener("change", showStrength);
  document.querySelectorAll("input[name=reference-mode]").forEach((r) => r.addEventListener("change", showReferenceMode));
  $("record").addEventListener("click", toggleRecording);
  $("convert").addEventListener("click", convert);
  $("ab-switch").addEventListener("click", switchAB);
  showStrength();
  showReferenceMode();
  document.body.dataset.ready = "yes";
}

start();
