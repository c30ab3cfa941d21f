// Shared by every page: the API client, DOM building without innerHTML (names come from files and
// requests, so they are only ever text), the waveform and line-chart drawing, number formats.
"use strict";

const unmix = (() => {
  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      throw new Error("the server does not answer; is `unmix serve` still running?");
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error ? body.error : `the server answered ${response.status}`;
      const failure = new Error(message);
      failure.status = response.status;
      throw failure;
    }
    return body;
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attributes = {}) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    return node;
  }

  function number(value, digits = 4) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (Math.abs(value) >= 1000 || (Math.abs(value) < 0.001 && value !== 0)) return value.toExponential(2);
    return Number(value.toPrecision(digits)).toString();
  }

  function decibels(value) {
    return value === null || value === undefined ? "–" : value.toFixed(2);
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : `${Math.round(100 * value)}%`;
  }

  function ago(seconds) {
    if (!seconds) return "never";
    const elapsed = Math.max(0, Date.now() / 1000 - seconds);
    if (elapsed < 60) return `${Math.round(elapsed)} s ago`;
    if (elapsed < 3600) return `${Math.round(elapsed / 60)} min ago`;
    if (elapsed < 86400) return `${Math.round(elapsed / 3600)} h ago`;
    return new Date(seconds * 1000).toLocaleString();
  }

  // A waveform outline (peaks 0..1, one per column) on a canvas, the played part in a stronger colour.
  function drawWaveform(canvas, peaks, played = 0) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, width, height);
    if (!peaks.length) return;
    const middle = height / 2;
    const step = width / peaks.length;
    const styles = getComputedStyle(canvas);
    for (let index = 0; index < peaks.length; index += 1) {
      const x = index * step;
      const half = Math.max(ratio / 2, peaks[index] * middle * 0.95);
      context.fillStyle = x / width < played ? styles.getPropertyValue("--played") : styles.getPropertyValue("--wave");
      context.fillRect(x, middle - half, Math.max(step - 0.5 * ratio, ratio), 2 * half);
    }
  }

  function niceTicks(low, high, count) {
    const span = high - low || 1;
    const raw = span / count;
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => span / s <= count) || 10 * magnitude;
    const ticks = [];
    for (let tick = Math.ceil(low / step) * step; tick <= high + step * 1e-9; tick += step) ticks.push(tick);
    return ticks;
  }

  // Lines over epochs in an <svg>: series = [{label, colour, dashed, points: [[x, y], ...]}]. The y axis
  // is logarithmic when every value is positive and they span more than a factor of 20, as losses do.
  function drawLineChart(target, series, options = {}) {
    const width = 720;
    const height = 320;
    const margin = { left: 64, right: 16, top: 16, bottom: 40 };
    target.replaceChildren();
    target.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const points = series.flatMap((line) => line.points).filter(([, y]) => y !== null && Number.isFinite(y));
    if (!points.length) {
      const empty = svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" });
      empty.textContent = options.empty || "no epochs yet";
      target.append(empty);
      return;
    }
    const xs = points.map(([x]) => x);
    const ys = points.map(([, y]) => y);
    const logarithmic = Math.min(...ys) > 0 && Math.max(...ys) / Math.min(...ys) > 20;
    const scaleY = logarithmic ? Math.log10 : (value) => value;
    let [yLow, yHigh] = [Math.min(...ys.map(scaleY)), Math.max(...ys.map(scaleY))];
    const padding = (yHigh - yLow) * 0.06 || Math.abs(yHigh) * 0.1 || 1;
    yLow -= padding;
    yHigh += padding;
    const xLow = Math.min(...xs);
    const xHigh = Math.max(...xs, xLow + 1);
    const px = (x) => margin.left + ((x - xLow) / (xHigh - xLow)) * (width - margin.left - margin.right);
    const py = (y) => height - margin.bottom - ((scaleY(y) - yLow) / (yHigh - yLow)) * (height - margin.top - margin.bottom);

    const axes = svg("g", { class: "axes" });
    for (const tick of niceTicks(xLow, xHigh, 8).filter((t) => Number.isInteger(t))) {
      axes.append(svg("line", { x1: px(tick), x2: px(tick), y1: margin.top, y2: height - margin.bottom, class: "grid" }));
      const label = svg("text", { x: px(tick), y: height - margin.bottom + 16, "text-anchor": "middle" });
      label.textContent = tick;
      axes.append(label);
    }
    const yTicks = niceTicks(yLow, yHigh, 5);
    for (const tick of yTicks) {
      const value = logarithmic ? 10 ** tick : tick;
      axes.append(svg("line", { x1: margin.left, x2: width - margin.right, y1: py(value), y2: py(value), class: "grid" }));
      const label = svg("text", { x: margin.left - 6, y: py(value) + 4, "text-anchor": "end" });
      label.textContent = number(value, 3);
      axes.append(label);
    }
    const xTitle = svg("text", { x: (width + margin.left) / 2, y: height - 6, "text-anchor": "middle", class: "title" });
    xTitle.textContent = "epoch";
    const yTitle = svg("text", { x: 14, y: height / 2, "text-anchor": "middle", class: "title",
                                 transform: `rotate(-90 14 ${height / 2})` });
    yTitle.textContent = logarithmic ? "loss (log scale)" : "loss";
    axes.append(xTitle, yTitle);
    target.append(axes);

    series.forEach((line, index) => {
      const valid = line.points.filter(([, y]) => y !== null && Number.isFinite(y));
      if (!valid.length) return;
      const path = valid.map(([x, y], i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
      const group = svg("g", { class: "series", "data-label": line.label });
      group.append(svg("path", { d: path, stroke: line.colour, fill: "none", "stroke-width": 2,
                                 "stroke-dasharray": line.dashed ? "6 4" : "none" }));
      if (valid.length <= 80) {
        for (const [x, y] of valid) {
          const dot = svg("circle", { cx: px(x), cy: py(y), r: 3, fill: line.colour });
          const tip = svg("title");
          tip.textContent = `${line.label}, epoch ${x}: ${number(y, 5)}`;
          dot.append(tip);
          group.append(dot);
        }
      }
      const legendY = margin.top + 6 + index * 18;
      group.append(svg("line", { x1: width - margin.right - 170, x2: width - margin.right - 146, y1: legendY,
                                 y2: legendY, stroke: line.colour, "stroke-width": 2,
                                 "stroke-dasharray": line.dashed ? "6 4" : "none" }));
      const legend = svg("text", { x: width - margin.right - 140, y: legendY + 4, class: "legend" });
      legend.textContent = line.label;
      group.append(legend);
      target.append(group);
    });
  }

  // The loss columns of a run's epochs as chart series: loss solid, val_loss dashed.
  function lossSeries(run, colour, prefix = "") {
    const lines = [];
    for (const column of ["loss", "val_loss"]) {
      if (!run.columns.includes(column)) continue;
      lines.push({ label: `${prefix}${column}`, colour, dashed: column !== "loss",
                   points: run.epoch_rows.map((row) => [row.epoch, row[column]]) });
    }
    return lines;
  }

  function evaluationTable(evaluation) {
    if (!evaluation) return el("p", { class: "hint", text: "Not evaluated yet: run `unmix evaluate --run-folder RUN`." });
    const head = el("tr", {}, ["stem", "metric", "model", "mixture (floor)", "oracle (ceiling)", "gap closed"]
      .map((title) => el("th", { text: title })));
    const rows = evaluation.rows.map((row) => el("tr", {},
      el("td", { text: row.stem }), el("td", { text: row.metric }),
      el("td", { class: "number", text: decibels(row.model) }), el("td", { class: "number", text: decibels(row.mixture) }),
      el("td", { class: "number", text: decibels(row.oracle) }), el("td", { class: "number", text: percent(row.gap_closed) })));
    const note = el("p", { class: "hint" },
      `${evaluation.songs.length} test song${evaluation.songs.length === 1 ? "" : "s"}, medians in dB; `,
      `target = ${evaluation.target}. `,
      "Gap closed: how far the model got from the mixture (doing nothing) towards the ideal ratio mask.");
    return el("div", { class: "evaluation" }, el("table", { class: "evaluation-table" }, el("thead", {}, head),
                                                   el("tbody", {}, rows)), note);
  }

  function songTable(evaluation) {
    if (!evaluation || !evaluation.songs.length) return null;
    const head = el("tr", {}, ["song", "model", "mixture", "oracle"].map((title) => el("th", { text: title })));
    const rows = evaluation.songs.map((song) => el("tr", {}, el("td", { text: song.song }),
      ...["model", "mixture", "oracle"].map((method) => el("td", { class: "number", text: decibels(song[method]) }))));
    return el("details", {}, el("summary", { text: `target ${evaluation.metric} per song (dB)` }),
              el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
  }

  function query(name) {
    return new URLSearchParams(window.location.search).get(name);
  }

  return { api, el, svg, number, decibels, percent, ago, drawWaveform, drawLineChart, lossSeries, evaluationTable,
           songTable, query };
})();
