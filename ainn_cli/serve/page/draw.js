// Drawing for the ainn page: a reading (category, probabilities, strength, cue M) and a picture of mel and F0.
// Loaded before page.js, which calls drawReading and drawPicture.
"use strict";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function drawReading(container, reading) {
  container.replaceChildren();
  if (!reading) { container.append(el("p", "no reference: the model's prototype emotion", "quiet")); return; }
  const head = el("p", "", "reading-head");
  head.append(el("span", reading.label, "label"), el("span", ` strength ${reading.strength.toFixed(2)}`));
  container.append(head);
  const bars = el("div", undefined, "bars");
  const sorted = Object.entries(reading.probabilities).sort((x, y) => y[1] - x[1]);
  for (const [label, p] of sorted) {
    const bar = el("span", undefined, "bar");
    bar.style.width = `${(100 * p).toFixed(1)}%`;
    if (label === reading.label) bar.classList.add("top");
    const track = el("span", undefined, "track");
    track.append(bar);
    bars.append(el("span", label), track, el("span", `${(100 * p).toFixed(1)} %`, "num"));
  }
  container.append(bars, el("p", "cue M over time", "quiet small"), drawCue(reading));
}

function drawCue(reading) {
  const canvas = sized(el("canvas"), 420, 70);
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, cue = reading.cue;
  g.fillStyle = "#f3f5f8"; g.fillRect(0, 0, w, h);
  g.beginPath(); g.moveTo(0, h);
  cue.forEach((v, i) => g.lineTo(((i + 0.5) / cue.length) * w, h - v * (h - 4)));
  g.lineTo(w, h); g.closePath();
  g.fillStyle = "rgba(0, 150, 170, 0.3)"; g.fill();
  g.strokeStyle = "#008a9c"; g.lineWidth = 1.5; g.stroke();
  g.fillStyle = "#555"; g.font = "11px sans-serif";
  g.fillText("0 s", 3, h - 3); g.fillText(`${reading.seconds.toFixed(1)} s`, w - 36, h - 3);
  return canvas;
}

function sized(canvas, width, height) {
  canvas.width = width; canvas.height = height;
  return canvas;
}

const COLOURS = [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]];

function colour(v) {  // 0..255 -> an RGB triple of a magma-like map
  const x = (v / 255) * (COLOURS.length - 1), i = Math.min(Math.floor(x), COLOURS.length - 2), t = x - i;
  return COLOURS[i].map((c, k) => c + t * (COLOURS[i + 1][k] - c));
}

function drawPicture(picture, title) {
  const figure = el("figure", undefined, "picture");
  const cols = picture.columns, bins = 80;
  const mel = Uint8Array.from(atob(picture.mel), (ch) => ch.charCodeAt(0));
  const image = new ImageData(cols, bins);
  for (let b = 0; b < bins; b++) {
    for (let c = 0; c < cols; c++) {
      const [r, g, bl] = colour(mel[b * cols + c]);
      const at = 4 * ((bins - 1 - b) * cols + c);
      image.data[at] = r; image.data[at + 1] = g; image.data[at + 2] = bl; image.data[at + 3] = 255;
    }
  }
  const canvas = sized(el("canvas"), 480, 110);
  const g = canvas.getContext("2d");
  const tile = sized(document.createElement("canvas"), cols, bins);
  tile.getContext("2d").putImageData(image, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(tile, 0, 0, canvas.width, canvas.height);
  drawF0(g, picture.f0, canvas.width, canvas.height);
  figure.append(el("figcaption", `${title} · ${picture.seconds.toFixed(2)} s · F0 (cyan, 60–600 Hz, log)`), canvas);
  figure.dataset.what = title;
  return figure;
}

function drawF0(g, f0, w, h) {
  const y = (hz) => h - (Math.log(hz / 60) / Math.log(10)) * h;
  g.strokeStyle = "#5ff"; g.lineWidth = 2; g.beginPath();
  let drawing = false;
  f0.forEach((hz, i) => {
    const x = ((i + 0.5) / f0.length) * w;
    if (hz > 0) { if (drawing) g.lineTo(x, y(hz)); else g.moveTo(x, y(hz)); drawing = true; } else drawing = false;
  });
  g.stroke();
}
