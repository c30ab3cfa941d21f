"""The `unmix serve` app through its HTTP API, in process (starlette's test client): real uploads
separated by the real gain-mask run, jobs that wait their turn or fail, and every way a request
could try to leave --runs or --jobs."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path
from urllib.parse import quote, unquote

import anyio
import attrs
import numpy as np
import pytest
import soundfile
from starlette.testclient import TestClient

from tests.serve import serve_sources
from tests.serve.audio_files import write_song
from tests.training_fixtures import register_gain_model
from unmix.core.runs import RunFolder, training_lock
from unmix.serve.app import ServeSettings, create_app
from unmix.serve.jobs import Job


@pytest.fixture(scope="module")
def jobs_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def app(runs_folder: Path, jobs_folder: Path):
    register_gain_model()
    serve_sources.register_test_sources()
    return create_app(ServeSettings(runs=runs_folder, jobs=jobs_folder, max_upload_bytes=2_000_000))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_song(tmp_path_factory.mktemp("songs") / "a song.wav")


def upload(client: TestClient, model: str, path: Path, name: str | None = None):
    with path.open("rb") as handle:
        return client.post("/api/separations", data={"model": model},
                           files={"file": (name or path.name, handle, "application/octet-stream")})


def finished(client: TestClient, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/separations/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def one_line_error(response, status: int, *fragments: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_models_lists_every_run_with_the_upload_limit(client, run_name):
    answer = client.get("/api/models").json()
    models = {model["id"]: model for model in answer["models"]}
    assert models[run_name] == {"id": run_name, "run": run_name, "kind": "run", "description": "numpy:gain-mask",
                                "ready": True}
    assert f"{run_name}-copy" in models
    assert answer["max_upload_bytes"] == 2_000_000


def test_an_upload_is_separated_into_stems_that_add_up_to_it(client, app, run_name, song, jobs_folder):
    engines = app.state.jobs.engines
    loads_before = engines.loads
    response = upload(client, run_name, song)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/separations/{job['id']}"
    assert job["status"] in ("queued", "running", "done") and job["song"] == "a_song"

    done = finished(client, job["id"])
    assert done["status"] == "done", done
    assert done["progress"] == 1.0 and done["queue_position"] is None and done["error"] is None
    assert [file["stem"] for file in done["files"]] == ["mixture", "vocals", "rest"]
    stems = {}
    for file in done["files"]:
        answer = client.get(file["url"])
        assert answer.status_code == 200
        assert answer.content == (jobs_folder / job["id"] / "files" / file["name"]).read_bytes()
        stems[file["stem"]], rate = soundfile.read(io.BytesIO(answer.content), dtype="float64")
        assert rate == 22050
        assert file["seconds"] == pytest.approx(1.5, abs=1e-3)
        assert 50 < len(file["peaks"]) <= 600 and max(file["peaks"]) <= 1.0
    mixture, vocals, rest = stems["mixture"], stems["vocals"], stems["rest"]
    assert vocals.shape == rest.shape == mixture.shape == (33075, 2)
    np.testing.assert_allclose(vocals + rest, mixture, atol=1e-6)
    assert 0.01 < np.abs(vocals).max() and 0.01 < np.abs(rest).max(), "the gain mask splits the song between both"
    assert max(done["files"][0]["peaks"]) == pytest.approx(np.abs(mixture).max(), abs=1e-3)

    again = finished(client, upload(client, run_name, song, "second.flac.wav").json()["id"])
    assert again["status"] == "done" and again["song"] == "second.flac"
    assert engines.loads - loads_before <= 1, "the second job used the engine the first one loaded"
    listed = [entry["id"] for entry in client.get("/api/separations").json()["separations"]]
    assert listed.index(again["id"]) < listed.index(job["id"]), "newest first"


def test_an_uploaded_file_name_cannot_place_the_file_elsewhere(client, run_name, song, jobs_folder):
    job = upload(client, run_name, song, "../../../tmp/.hidden tune?.wav").json()
    done = finished(client, job["id"])
    assert done["status"] == "done" and done["song"] == "hidden_tune"
    assert sorted(path.name for path in (jobs_folder / job["id"] / "files").iterdir()) == [
        "hidden_tune.wav", "hidden_tune_rest.wav", "hidden_tune_vocals.wav"]
    part = client.get(done["files"][1]["url"], headers={"range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100, "players can seek"


def test_a_second_job_waits_for_the_first(client, run_name, song):
    serve_sources.GATE.clear()
    serve_sources.ENTERED.clear()
    try:
        first = client.post("/api/separations", data={"model": run_name, "uri": "gate://held"}).json()
        assert serve_sources.ENTERED.wait(10), "the worker did not start the first job"
        running = client.get(f"/api/separations/{first['id']}").json()
        assert running["status"] == "running" and running["stage"] == "fetching the song"
        second = upload(client, run_name, song).json()
        third = upload(client, run_name, song).json()
        assert (second["status"], second["queue_position"]) == ("queued", 1)
        assert (third["status"], third["queue_position"]) == ("queued", 2)
        time.sleep(0.3)
        assert client.get(f"/api/separations/{second['id']}").json()["status"] == "queued"
    finally:
        serve_sources.GATE.set()
    jobs = [finished(client, job["id"]) for job in (first, second, third)]
    assert [job["status"] for job in jobs] == ["done"] * 3
    assert jobs[0]["song"] == "held" and jobs[0]["files"][0]["name"] == "held.wav"
    assert jobs[0]["finished"] <= jobs[1]["started"] and jobs[1]["finished"] <= jobs[2]["started"]


@pytest.mark.parametrize(("link", "fragments"), [
    ("broken://song", ["broken.wav", "not audio"]),
    ("crash://song", ["internal error", "RuntimeError", "server's log"]),
])
def test_a_failing_job_says_why_in_one_line_and_the_server_goes_on(client, run_name, song, link, fragments):
    failed = finished(client, client.post("/api/separations", data={"model": run_name, "uri": link}).json()["id"])
    assert failed["status"] == "failed" and failed["files"] == []
    assert "\n" not in failed["error"] and "Traceback" not in failed["error"]
    for fragment in fragments:
        assert fragment in failed["error"], failed["error"]
    assert "/" not in failed["error"], "no server path in the message"
    assert finished(client, upload(client, run_name, song).json()["id"])["status"] == "done"


@pytest.mark.parametrize(("content", "fragments"), [
    (b"just some text, not a song\n" * 50, ["notes.wav", "not audio"]),
    (b"", ["notes.wav", "empty"]),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", ["notes.wav"]),
])
def test_an_upload_that_is_not_audio_is_refused_before_any_work(client, run_name, jobs_folder, content, fragments):
    before = set(jobs_folder.iterdir())
    response = client.post("/api/separations", data={"model": run_name},
                           files={"file": ("notes.wav", content, "audio/wav")})
    message = one_line_error(response, 415, *fragments)
    assert str(jobs_folder) not in message
    assert set(jobs_folder.iterdir()) == before, "the refused upload left nothing behind"
    assert client.get("/api/models").status_code == 200


@pytest.mark.parametrize(("form", "status", "fragment"), [
    ({}, 400, "choose a model"),
    ({"model": "RUN"}, 400, "send an audio file"),
    ({"model": "RUN", "uri": "/etc/passwd"}, 400, "upload the file instead"),
    ({"model": "RUN", "uri": "file:///etc/passwd"}, 400, "upload the file instead"),
    ({"model": "RUN", "uri": "nothing://claims-this"}, 400, "source"),
    ({"model": "../RUN"}, 400, "not a plain name"),
    ({"model": "/etc"}, 400, "not a plain name"),
    ({"model": "RUN/export/../../x.onnx"}, 400, "not a plain name"),
    ({"model": "RUN/weights/best.npz"}, 400, "neither a run name"),
    ({"model": "no-such-run"}, 404, "no run 'no-such-run'"),
    ({"model": "RUN/export/missing.onnx"}, 404, "no exported model"),
])
def test_a_bad_form_gets_one_clear_line(client, run_name, form, status, fragment):
    data = {key: value.replace("RUN", run_name) for key, value in form.items()}
    one_line_error(client.post("/api/separations", data=data), status, fragment)


def test_an_upload_over_the_limit_is_refused_with_413(runs_folder, tmp_path, run_name):
    app = create_app(ServeSettings(runs=runs_folder, jobs=tmp_path / "jobs", max_upload_bytes=100_000))
    big = write_song(tmp_path / "long.wav", seconds=4)
    with TestClient(app) as small_client:
        one_line_error(upload(small_client, run_name, big), 413, "limit of 0.1 MB", "--max-upload-mb")

        def chunks():  # no Content-Length: the body is counted as it arrives
            with big.open("rb") as handle:
                while block := handle.read(16384):
                    yield block

        chunked = small_client.post("/api/separations", content=chunks(),
                                    headers={"content-type": "multipart/form-data; boundary=x"})
        one_line_error(chunked, 413, "--max-upload-mb")
        assert small_client.get("/api/models").status_code == 200
    assert not any((tmp_path / "jobs").iterdir())


def raw_get(app, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written, `..` included: HTTP clients resolve dot segments before sending,
    a hand-made request (as curl --path-as-is sends) does not, and the server then sees it."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": unquote(path), "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
             "state": {}}
    anyio.run(app, scope, receive, send)
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return sent[0]["status"], body


ESCAPES = ["..", "%2e%2e", "%2E%2E", ".%2e", "..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..%5C..%5Cwindows",
           "%2e%2e%2f%2e%2e%2fconfiguration.jsonc", ".training.lock", "%00"]


@pytest.fixture(scope="module")
def done_job(client, run_name, song) -> dict:
    return finished(client, upload(client, run_name, song).json()["id"])


@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("template", [
    "/api/runs/{x}",
    "/api/runs/{x}/plots/loss.png",
    "/api/runs/{run}/plots/{x}",
    "/api/separations/{x}",
    "/api/separations/{x}/files/{file}",
    "/api/separations/{job}/files/{x}",
])
def test_no_path_parameter_leads_out_of_its_folder(app, client, run_name, done_job, template, escape):
    path = template.format(x=escape, run=run_name, job=done_job["id"], file=done_job["files"][1]["name"])
    answers = [raw_get(app, path)]
    if ".." not in path:  # a client would send /x/.. as / (the raw request above sends it as written)
        answers.append((client.get(path).status_code, client.get(path).content))
    for status, body in answers:
        assert status in (400, 404), (path, status, body[:200])
        assert b"root:" not in body and b"Traceback" not in body and b'"error"' in body, body[:200]
    assert client.get(f"/api/runs/{run_name}").status_code == 200


def test_an_absolute_path_in_a_url_is_no_route(app):
    for path in ("/api/runs//etc/passwd", "/api/separations//etc/passwd/files/x", "/static/../../../../etc/passwd"):
        status, body = raw_get(app, path)
        assert status in (400, 404) and b"root:" not in body, (path, status, body[:200])


def test_symlinks_out_of_runs_are_refused(client, runs_folder, run_name, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(runs_folder / run_name, outside)
    (outside / "plots" / "secret.png").write_bytes(b"\x89PNG secret")
    link = runs_folder / "linked-out"
    link.symlink_to(outside, target_is_directory=True)
    inside_link = runs_folder / run_name / "plots" / "outside.png"
    inside_link.symlink_to(outside / "plots" / "secret.png")
    try:
        assert "linked-out" not in [run["name"] for run in client.get("/api/runs").json()["runs"]]
        one_line_error(client.get("/api/runs/linked-out"), 404)
        one_line_error(client.get("/api/runs/linked-out/plots/secret.png"), 404)
        one_line_error(client.post("/api/separations", data={"model": "linked-out"}), 404)
        one_line_error(client.get(f"/api/runs/{run_name}/plots/outside.png"), 404)
    finally:
        link.unlink()
        inside_link.unlink()


def test_unknown_runs_jobs_and_files_are_404(client, run_name, done_job):
    one_line_error(client.get("/api/runs/20000101-000000-nothing"), 404, "no run")
    one_line_error(client.get(f"/api/runs/{run_name}/plots/nothing.png"), 404, "no plot")
    one_line_error(client.get(f"/api/runs/{run_name}/plots/configuration.jsonc"), 404)
    one_line_error(client.get("/api/separations/" + "0" * 32), 404, "no separation job")
    one_line_error(client.get("/api/separations/not-a-job"), 404)
    one_line_error(client.get(f"/api/separations/{done_job['id']}/files/job.json"), 404, "has no file")
    one_line_error(client.get("/no/such/page"), 404, "/runs")


def test_the_pages_and_their_files_are_served(client):
    for path, marker in (("/", b"separate-form"), ("/runs", b"loss-chart"), ("/runs/compare?a=x&b=y", b"run-a"),
                         ("/static/common.js", b"drawLineChart"), ("/static/style.css", b".waveform")):
        answer = client.get(path)
        assert answer.status_code == 200 and marker in answer.content, path
        assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_runs_list_and_details_with_evaluation(client, run_name):
    runs = {run["name"]: run for run in client.get("/api/runs").json()["runs"]}
    assert list(runs) == sorted(runs, reverse=True)
    summary = runs[run_name]
    assert summary["model"] == "numpy:gain-mask" and summary["target"] == "vocals"
    assert (summary["epochs"], summary["planned_epochs"], summary["training"]) == (1, 1, False)
    assert summary["evaluated"] and summary["headline"]["metric"] == "museval_sdr"

    run = client.get(f"/api/runs/{quote(run_name)}").json()
    assert run["columns"][:2] == ["epoch", "loss"]
    assert [row["epoch"] for row in run["epoch_rows"]] == [1.0] and run["epoch_rows"][0]["loss"] > 0
    assert run["configuration"]["training"]["model"]["name"] == "gain-mask"
    assert run["state"]["epoch"] == 1 and run["model_description"]["backend"] == "numpy"
    evaluation = run["evaluation"]
    rows = {(row["stem"], row["metric"]): row for row in evaluation["rows"]}
    sdr = rows[("target", "museval_sdr")]
    assert sdr["oracle"] > sdr["mixture"]
    assert sdr["gap_closed"] == pytest.approx((sdr["model"] - sdr["mixture"]) / (sdr["oracle"] - sdr["mixture"]))
    assert [song["song"] for song in evaluation["songs"]] and set(evaluation["songs"][0]) >= {"model", "oracle"}
    plots = [plot["name"] for plot in run["plots"]]
    assert plots[0] == "loss.png" and "evaluation_sdr.png" in plots
    assert any(name.startswith("spectrograms_") for name in plots)
    for plot in run["plots"]:
        image = client.get(plot["url"])
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


def test_a_run_in_training_shows_each_new_epoch(client, runs_folder, run_name):
    live = runs_folder / f"{run_name}-live"
    shutil.copytree(runs_folder / run_name, live)
    (live / "evaluation.json").unlink()
    results = live / "results.csv"
    url = f"/api/runs/{live.name}"
    try:
        with training_lock(RunFolder(live)):
            before = client.get(url).json()
            assert before["training"] and before["epochs"] == 1 and before["evaluation"] is None
            for epoch in (2, 3):
                with results.open("a", newline="") as handle:
                    csv.writer(handle, delimiter=";").writerow([epoch, 0.01 / epoch, 0.5, 0.3])
                grown = client.get(url).json()
                assert grown["epochs"] == epoch and grown["last"]["loss"] == pytest.approx(0.01 / epoch)
            with results.open("a") as handle:
                handle.write("4;0.00")  # a row the training is still writing
            assert client.get(url).json()["epochs"] == 3
        assert not client.get(url).json()["training"]
    finally:
        shutil.rmtree(live)


def test_requests_from_other_sites_are_refused(runs_folder, tmp_path, run_name, song):
    app = create_app(ServeSettings(runs=runs_folder, jobs=tmp_path / "jobs",
                                   hosts=frozenset({"127.0.0.1", "localhost", "testserver"})))
    with TestClient(app) as local:
        foreign = local.post("/api/separations", data={"model": run_name},
                             headers={"origin": "http://evil.example"})
        one_line_error(foreign, 403, "other sites")
        one_line_error(local.get("/api/runs", headers={"host": "evil.example:8000"}), 400, "answers to")
        same = local.post("/api/separations", data={"model": run_name, "uri": "broken://x"},
                          headers={"origin": "http://testserver"})
        assert same.status_code == 202, same.text


def test_jobs_of_an_earlier_server_are_listed_and_unfinished_ones_failed(runs_folder, tmp_path, run_name, song):
    jobs = tmp_path / "jobs"
    with TestClient(create_app(ServeSettings(runs=runs_folder, jobs=jobs))) as first:
        done = finished(first, upload(first, run_name, song).json()["id"])
    cut = Job(id="f" * 32, model=run_name, song="cut", source="upload", created=time.time(), mixture="cut.wav",
              status="running", stage="separating")
    (jobs / cut.id / "files").mkdir(parents=True)
    (jobs / cut.id / "job.json").write_text(json.dumps(attrs.asdict(cut)))  # as a killed server leaves it
    with TestClient(create_app(ServeSettings(runs=runs_folder, jobs=jobs))) as second:
        assert second.get(f"/api/separations/{done['id']}").json()["status"] == "done"
        assert second.get(done["files"][1]["url"]).status_code == 200
        again = second.get(f"/api/separations/{cut.id}").json()
        assert again["status"] == "failed" and "server stopped" in again["error"]


def write_half_mask_export(run: Path) -> Path:
    """An ONNX file as `unmix export` writes them, for the gain run: its network is a constant mask of 0.5."""
    onnx = pytest.importorskip("onnx", reason="exported models need unmix-onnx[export]")
    pytest.importorskip("unmix.onnx", reason="exported models need unmix-onnx")
    from onnx import TensorProto, helper

    from unmix.core.config.jsonc import load_jsonc
    from unmix.onnx import metadata

    shape = json.loads((run / "model.json").read_text())["input_shape"]
    tensor = helper.make_tensor_value_info
    nodes = [helper.make_node("Mul", ["input", "zero"], ["zeros"]),
             helper.make_node("Add", ["zeros", "half"], ["mask"])]
    graph = helper.make_graph(nodes, "half-mask", [tensor("input", TensorProto.FLOAT, ["batch", *shape])],
                              [tensor("mask", TensorProto.FLOAT, ["batch", *shape])],
                              [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
                               helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    configuration = load_jsonc(run / "configuration.jsonc")
    onnx.helper.set_model_props(model, {
        metadata.FORMAT: metadata.FORMAT_VERSION, metadata.UNMIX_VERSION: "test", metadata.RUN: run.name,
        metadata.MODEL: "numpy:gain-mask", metadata.KIND: "spectrogram", metadata.TARGET: "vocals",
        metadata.SAMPLE_RATE: "8000", metadata.CHANNELS: "1", metadata.INPUT_SHAPE: json.dumps(shape),
        metadata.PARAMETERS: "0", metadata.GRAPH: json.dumps({"graph": "predict"}),
        metadata.CONFIGURATION: json.dumps(configuration)})
    path = run / "export" / "half.onnx"
    path.parent.mkdir(exist_ok=True)
    onnx.save(model, str(path))
    return path


def test_an_exported_model_separates_on_its_runtime(client, runs_folder, run_name, tmp_path):
    export = write_half_mask_export(runs_folder / f"{run_name}-copy")
    song = write_song(tmp_path / "at the model's rate.wav", sample_rate=8000, channels=1)  # nothing resampled away
    model = f"{run_name}-copy/export/{export.name}"
    listed = {entry["id"]: entry for entry in client.get("/api/models").json()["models"]}
    assert listed[model]["kind"] == "export"
    assert client.get(f"/api/runs/{run_name}-copy").json()["exports"] == [export.name]
    done = finished(client, client.post("/api/separations", data={"model": model},
                                        files={"file": (song.name, song.read_bytes())}).json()["id"])
    assert done["status"] == "done", done
    mixture, vocals, rest = (soundfile.read(io.BytesIO(client.get(file["url"]).content))[0] for file in done["files"])
    np.testing.assert_allclose(vocals + rest, mixture, atol=1e-6)
    np.testing.assert_allclose(vocals, 0.5 * mixture, atol=1e-4)

    export.write_bytes(b"not an onnx model")
    broken = finished(client, client.post("/api/separations", data={"model": model},
                                          files={"file": (song.name, song.read_bytes())}).json()["id"])
    assert broken["status"] == "failed" and "not an ONNX model" in broken["error"], broken
    assert "--runs/" in broken["error"] and str(runs_folder) not in broken["error"]
