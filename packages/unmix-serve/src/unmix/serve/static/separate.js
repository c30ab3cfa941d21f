// The separate page: choose a model and a song, follow the job while it waits and runs, then listen
// to the mixture and every stem, see their waveforms and download them. Everything goes through the
// JSON API (POST /api/separations, GET /api/separations/{id}).
"use strict";

(() => {
  const { api, el } = unmix;
  const form = document.getElementById("separate-form");
  const modelSelect = document.getElementById("model");
  const fileInput = document.getElementById("file");
  const drop = document.getElementById("drop");
  const fileName = document.getElementById("file-name");
  const uriInput = document.getElementById("uri");
  const formError = document.getElementById("form-error");
  const jobsSection = document.getElementById("jobs");
  const POLL_MS = 500;
  let chosenFile = null;
  let maxUploadBytes = Infinity;
  const cards = new Map();

  function megabytes(bytes) {
    if (bytes < 1e6) return `${Math.ceil(bytes / 1e3)} kB`;
    return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
  }

  async function loadModels() {
    try {
      const answer = await api("/api/models");
      maxUploadBytes = answer.max_upload_bytes;
      document.getElementById("limit").textContent = `uploads up to ${megabytes(maxUploadBytes)}`;
      modelSelect.replaceChildren();
      if (!answer.models.length) {
        modelSelect.append(el("option", { value: "", text: "no runs under --runs" }));
        return;
      }
      const groups = { run: el("optgroup", { label: "trained runs" }), export: el("optgroup", { label: "exported models" }) };
      const remembered = localStorage.getItem("unmix-model");
      for (const model of answer.models) {
        groups[model.kind].append(el("option", { value: model.id, disabled: !model.ready,
          selected: model.id === remembered && model.ready, text: `${model.id} (${model.description})` }));
      }
      for (const group of Object.values(groups)) if (group.children.length) modelSelect.append(group);
      if (!modelSelect.value || modelSelect.selectedOptions[0].disabled) {
        const first = [...modelSelect.options].find((option) => !option.disabled);
        if (first) first.selected = true;
      }
    } catch (error) {
      formError.textContent = error.message;
    }
  }

  function choose(file) {
    chosenFile = file;
    fileName.textContent = file ? `${file.name} (${megabytes(file.size)})` : "no file chosen";
    if (file) uriInput.value = "";
    formError.textContent = file && file.size > maxUploadBytes
      ? `${file.name} is ${megabytes(file.size)}, more than this server accepts (${megabytes(maxUploadBytes)})` : "";
  }

  fileInput.addEventListener("change", () => choose(fileInput.files[0] || null));
  uriInput.addEventListener("input", () => { if (uriInput.value.trim()) { fileInput.value = ""; choose(null); } });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (event) => {
    const file = event.dataTransfer.files[0];
    if (file) choose(file);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    const uri = uriInput.value.trim();
    if (!modelSelect.value) { formError.textContent = "choose a model first"; return; }
    if (!chosenFile && !uri) { formError.textContent = "drop or choose an audio file, or paste a link"; return; }
    if (chosenFile && chosenFile.size > maxUploadBytes) {
      formError.textContent = `${chosenFile.name} is larger than this server accepts (${megabytes(maxUploadBytes)})`;
      return;
    }
    const body = new FormData();
    body.append("model", modelSelect.value);
    if (chosenFile) body.append("file", chosenFile, chosenFile.name); else body.append("uri", uri);
    const button = document.getElementById("submit");
    button.disabled = true;
    button.textContent = chosenFile ? "Uploading…" : "Sending…";
    try {
      const job = await api("/api/separations", { method: "POST", body });
      localStorage.setItem("unmix-model", modelSelect.value);
      showJob(job, true);
      fileInput.value = "";
      uriInput.value = "";
      choose(null);
    } catch (error) {
      formError.textContent = error.message;
    } finally {
      button.disabled = false;
      button.textContent = "Separate";
    }
  });

  function ordinal(number) {
    const suffix = number % 10 === 1 && number % 100 !== 11 ? "st" : number % 10 === 2 && number % 100 !== 12 ? "nd"
      : number % 10 === 3 && number % 100 !== 13 ? "rd" : "th";
    return `${number}${suffix}`;
  }

  function statusText(job) {
    if (job.status === "queued") {
      return job.queue_position === 1 ? "waiting: next in line" : `waiting: ${ordinal(job.queue_position)} in line`;
    }
    if (job.status === "running") {
      return job.stage === "separating" ? `separating: ${Math.round(100 * job.progress)}%` : `${job.stage}…`;
    }
    if (job.status === "failed") return `failed: ${job.error}`;
    const seconds = job.files.length ? job.files[0].seconds : 0;
    return `done: ${seconds.toFixed(1)} s of audio in ${(job.finished - job.started).toFixed(1)} s`;
  }

  function stemLabel(file, job) {
    if (file.stem === "mixture") return "mixture";
    return file.stem === "rest" ? "rest (everything else)" : `${file.stem} (target)`;
  }

  function player(file, job) {
    const canvas = el("canvas", { class: "waveform", "data-stem": file.stem, title: "click to play from here" });
    const audio = el("audio", { controls: true, preload: "auto", src: file.url, "data-stem": file.stem });
    const redraw = () => unmix.drawWaveform(canvas, file.peaks, audio.duration ? audio.currentTime / audio.duration : 0);
    audio.addEventListener("timeupdate", redraw);
    audio.addEventListener("play", () => {
      for (const other of document.querySelectorAll("audio")) if (other !== audio) other.pause();
    });
    canvas.addEventListener("click", (event) => {
      if (!audio.duration) return;
      audio.currentTime = (event.offsetX / canvas.clientWidth) * audio.duration;
      audio.play();
    });
    window.addEventListener("resize", redraw);
    requestAnimationFrame(redraw);
    return el("div", { class: `stem stem-${file.stem === "mixture" ? "mixture" : file.stem === "rest" ? "rest" : "target"}` },
      el("div", { class: "stem-head" }, el("strong", { text: stemLabel(file, job) }),
         el("a", { class: "download", href: file.url, download: file.name, text: `download ${file.name}` })),
      canvas, audio);
  }

  function render(job) {
    let card = cards.get(job.id);
    if (!card) {
      card = el("article", { class: "card job", "data-job": job.id },
        el("div", { class: "job-head" }, el("h2", { text: job.song }),
           el("span", { class: "hint", text: `${job.model} · ${new Date(job.created * 1000).toLocaleString()}` })),
        el("p", { class: "status" }), el("progress", { max: 1, value: 0 }), el("div", { class: "stems" }));
      cards.set(job.id, card);
    }
    card.dataset.status = job.status;
    card.querySelector("h2").textContent = job.song;
    const status = card.querySelector(".status");
    status.textContent = statusText(job);
    status.classList.toggle("error", job.status === "failed");
    const progress = card.querySelector("progress");
    progress.hidden = job.status === "done" || job.status === "failed";
    if (job.status === "running" && job.stage === "separating") progress.value = job.progress;
    else progress.removeAttribute("value");
    const stems = card.querySelector(".stems");
    if (job.status === "done" && !stems.children.length) stems.append(...job.files.map((file) => player(file, job)));
    return card;
  }

  function showJob(job, first) {
    const card = render(job);
    if (!card.isConnected) {
      if (first) jobsSection.prepend(card); else jobsSection.append(card);
    }
    if (job.status === "queued" || job.status === "running") setTimeout(() => follow(job.id), POLL_MS);
  }

  async function follow(id) {
    try {
      showJob(await api(`/api/separations/${encodeURIComponent(id)}`), true);
    } catch (error) {
      const card = cards.get(id);
      if (card) card.querySelector(".status").textContent = error.message;
      if (!error.status) setTimeout(() => follow(id), 2000);
    }
  }

  async function loadJobs() {
    try {
      const answer = await api("/api/separations");
      for (const job of answer.separations) showJob(job, false);
    } catch (error) {
      formError.textContent = error.message;
    }
  }

  loadModels();
  loadJobs();
})();
