// Two runs side by side (/runs/compare?a=RUN&b=RUN): both loss curves on one chart, both evaluation
// tables, and the configuration keys whose values differ. Refreshed every 2 seconds like the runs page.
"use strict";

(() => {
  const { api, el } = unmix;
  const POLL_MS = 2000;
  const COLOURS = { a: "#2563eb", b: "#dc2626" };
  const pickers = { a: document.getElementById("run-a"), b: document.getElementById("run-b") };
  const chosen = { a: unmix.query("a"), b: unmix.query("b") };
  let shownStamp = null;

  function flatten(value, prefix = "", into = {}) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, into);
    } else {
      into[prefix] = JSON.stringify(value);
    }
    return into;
  }

  function side(run, letter) {
    const epochs = run.planned_epochs ? `${run.epochs} of ${run.planned_epochs} epochs` : `${run.epochs} epochs`;
    const evaluationPlot = run.plots.find((plot) => plot.name.startsWith("evaluation"));
    return [el("h2", {}, el("span", { class: `swatch swatch-${letter}` }), `${letter.toUpperCase()}: `,
                el("a", { href: `/runs?run=${encodeURIComponent(run.name)}`, text: run.name })),
            el("p", { class: "hint", text: `${run.model} · target ${run.target || "?"} · ${epochs}${run.training ? " · training" : ""}` }),
            unmix.evaluationTable(run.evaluation),
            evaluationPlot ? el("img", { src: `${evaluationPlot.url}?v=${encodeURIComponent(String(run.updated))}`,
                                         alt: evaluationPlot.name, class: "plot" }) : null];
  }

  function differences(a, b) {
    const [left, right] = [flatten(a.configuration), flatten(b.configuration)];
    const keys = [...new Set([...Object.keys(left), ...Object.keys(right)])].sort()
      .filter((key) => left[key] !== right[key] && !key.startsWith("environment.name"));
    if (!keys.length) return el("p", { class: "hint", text: "the two configurations are the same" });
    const head = el("tr", {}, el("th", { text: "setting" }), el("th", { text: `A: ${a.name}` }), el("th", { text: `B: ${b.name}` }));
    return el("div", { class: "scroll" }, el("table", { id: "differences-table" }, el("thead", {}, head), el("tbody", {},
      keys.map((key) => el("tr", {}, el("td", { text: key }), el("td", { class: "mono", text: left[key] ?? "–" }),
                                     el("td", { class: "mono", text: right[key] ?? "–" }))))));
  }

  async function loadPickers() {
    const answer = await api("/api/runs");
    for (const [letter, picker] of Object.entries(pickers)) {
      picker.replaceChildren(...answer.runs.map((run) => el("option", { value: run.name, text: run.name,
                                                                      selected: run.name === chosen[letter] })));
      if (!chosen[letter] && answer.runs.length) chosen[letter] = answer.runs[letter === "a" ? 0 : Math.min(1, answer.runs.length - 1)].name;
      picker.value = chosen[letter];
      picker.addEventListener("change", () => {
        chosen[letter] = picker.value;
        shownStamp = null;
        history.replaceState(null, "", `/runs/compare?a=${encodeURIComponent(chosen.a)}&b=${encodeURIComponent(chosen.b)}`);
        refresh();
      });
    }
  }

  async function refresh() {
    const error = document.getElementById("compare-error");
    if (!chosen.a || !chosen.b) { error.textContent = "pick two runs"; return; }
    try {
      const [a, b] = await Promise.all([chosen.a, chosen.b].map((name) => api(`/api/runs/${encodeURIComponent(name)}`)));
      error.textContent = "";
      const stamp = JSON.stringify([a.name, a.updated, a.epochs, b.name, b.updated, b.epochs]);
      if (stamp === shownStamp) return;
      shownStamp = stamp;
      unmix.drawLineChart(document.getElementById("loss-chart"),
        [...unmix.lossSeries(a, COLOURS.a, "A "), ...unmix.lossSeries(b, COLOURS.b, "B ")]);
      document.getElementById("side-a").replaceChildren(...side(a, "a"));
      document.getElementById("side-b").replaceChildren(...side(b, "b"));
      document.getElementById("differences").replaceChildren(differences(a, b));
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  async function poll() {
    await refresh();
    setTimeout(poll, POLL_MS);
  }

  loadPickers().catch((failure) => { document.getElementById("compare-error").textContent = failure.message; })
    .then(poll);
})();
