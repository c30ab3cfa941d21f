// The runs page: the list of runs, and the chosen run in full (loss curve, evaluation, plots,
// configuration). Both are fetched again every 2 seconds, so a training in progress shows each new
// epoch as it is written, without reloading.
"use strict";

(() => {
  const { api, el, number, decibels } = unmix;
  const POLL_MS = 2000;
  const tableBody = document.querySelector("#runs-table tbody");
  const compareButton = document.getElementById("compare");
  const ticked = new Set();
  let selected = unmix.query("run");
  let shownStamp = null;

  function statusOf(run) {
    if (run.training) return "training";
    if (run.stop_reason) return `stopped: ${run.stop_reason}`;
    if (run.planned_epochs && run.epochs >= run.planned_epochs) return "finished";
    return run.epochs ? "not running" : "not started";
  }

  function renderList(runs) {
    tableBody.replaceChildren(...runs.map((run) => {
      const box = el("input", { type: "checkbox", checked: ticked.has(run.name), "aria-label": `compare ${run.name}`,
        onchange: (event) => {
          if (event.target.checked) ticked.add(run.name); else ticked.delete(run.name);
          compareButton.disabled = ticked.size !== 2;
        } });
      const link = el("a", { href: `/runs?run=${encodeURIComponent(run.name)}`, text: run.name,
        onclick: (event) => { event.preventDefault(); select(run.name); } });
      const epochs = run.planned_epochs ? `${run.epochs} / ${run.planned_epochs}` : String(run.epochs);
      const best = run.best && run.best.value !== null && run.best.value !== undefined
        ? `${number(run.best.value)} (epoch ${run.best.epoch})` : "–";
      return el("tr", { class: run.name === selected ? "selected" : null, "data-run": run.name },
        el("td", {}, box), el("td", {}, link), el("td", { text: run.model }), el("td", { text: run.target || "–" }),
        el("td", { class: "number", text: epochs }), el("td", { class: "number", text: number(run.last && run.last.loss) }),
        el("td", { class: "number", text: best }),
        el("td", { class: "number", text: run.headline ? `${decibels(run.headline.model)} dB` : "–" }),
        el("td", { class: run.training ? "live" : null, text: statusOf(run) }));
    }));
    compareButton.disabled = ticked.size !== 2;
  }

  compareButton.addEventListener("click", () => {
    const [a, b] = [...ticked];
    window.location.href = `/runs/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
  });

  function renderRun(run) {
    document.getElementById("run-details").hidden = false;
    document.getElementById("run-title").textContent = run.name;
    const epochs = run.planned_epochs ? `${run.epochs} of ${run.planned_epochs} epochs` : `${run.epochs} epochs`;
    document.getElementById("run-status").textContent =
      `${run.model} · ${statusOf(run)} · ${epochs} · updated ${unmix.ago(run.updated)}`;
    const stamp = JSON.stringify([run.updated, run.epochs, run.evaluation && run.evaluation.updated, run.plots]);
    if (stamp === shownStamp) return;
    shownStamp = stamp;
    const chart = document.getElementById("loss-chart");
    chart.dataset.epochs = run.epochs;
    unmix.drawLineChart(chart, unmix.lossSeries(run, "#2563eb"));
    document.getElementById("evaluation").replaceChildren(unmix.evaluationTable(run.evaluation),
                                                          unmix.songTable(run.evaluation) || "");
    const version = encodeURIComponent(String(run.updated));
    document.getElementById("plots").replaceChildren(...(run.plots.length ? run.plots.map((plot) =>
      el("figure", {}, el("img", { src: `${plot.url}?v=${version}`, alt: plot.name, loading: "lazy" }),
         el("figcaption", { text: plot.name }))) : [el("p", { class: "hint", text: "no plots yet" })]));
    document.getElementById("configuration").textContent = JSON.stringify(run.configuration, null, 2);
    document.getElementById("configuration-error").textContent = run.configuration_error || "";
  }

  function select(name) {
    selected = name;
    shownStamp = null;
    history.replaceState(null, "", `/runs?run=${encodeURIComponent(name)}`);
    for (const row of tableBody.children) row.classList.toggle("selected", row.dataset.run === name);
    refreshRun();
  }

  async function refreshList() {
    try {
      const answer = await api("/api/runs");
      document.getElementById("runs-error").textContent = answer.runs.length ? "" : "no run folders under --runs yet";
      if (!selected && answer.runs.length) select(answer.runs[0].name);
      renderList(answer.runs);
    } catch (error) {
      document.getElementById("runs-error").textContent = error.message;
    }
  }

  async function refreshRun() {
    if (!selected) return;
    try {
      renderRun(await api(`/api/runs/${encodeURIComponent(selected)}`));
    } catch (error) {
      document.getElementById("runs-error").textContent = error.message;
    }
  }

  async function poll() {
    await refreshList();
    await refreshRun();
    setTimeout(poll, POLL_MS);
  }

  poll();
})();
