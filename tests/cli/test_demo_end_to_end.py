"""`nox -s demo` in miniature: demo songs -> quickstart training -> a separated song -> the evaluation table,
each step the real `unmix` command, with a tiny band hourglass and one epoch so it fits the suite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.helpers import CONFIGURATIONS, clean_environment, run_unmix

# The real `unmix` command end to end on a real collection, for tens of seconds.
pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TINY_QUICKSTART = {
    "base": (CONFIGURATIONS / "quickstart.jsonc").as_posix(),
    "environment": {"name": "tiny-quickstart"},
    "collection": {"validation_ratio": 0.25, "test_data_count": 1},
    "training": {"epoch": {"count": 1}, "batch_size": 4,
                 "model": {"options": {"bands": 16, "stacks": 2, "filters": 8}}},
}


def test_a_shortened_demo_runs_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    environment = clean_environment(UNMIX_COLLECTION_DIR=str(data), TF_CPP_MIN_LOG_LEVEL="2")
    made = run_unmix("datasets", "demo", str(data), "--songs", "4", "--seconds", "6", env=environment)
    assert made.returncode == 0, made.stderr

    configuration = tmp_path / "tiny-quickstart.jsonc"
    configuration.write_text(json.dumps(TINY_QUICKSTART))
    trained = run_unmix("train", str(configuration), "--workingdir", str(tmp_path), env=environment, timeout=300)
    assert trained.returncode == 0, trained.stderr
    run = Path(trained.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    assert (run / "weights" / "best.keras").is_file()

    song_folder = data / json.loads((data / "demo.json").read_text())["split"]["test"][0]
    target, rate = soundfile.read(next(song_folder.glob("guitar_*.wav")), dtype="float32")
    rest, _ = soundfile.read(next(song_folder.glob("rest_*.wav")), dtype="float32")
    song = tmp_path / "song.wav"
    soundfile.write(song, target + rest, rate)
    separated = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output",
                          str(tmp_path / "separated"), env=environment, timeout=300)
    assert separated.returncode == 0, separated.stderr
    stems = sorted((tmp_path / "separated").rglob("*.wav"))
    assert [path.name for path in stems] == ["song_guitar.wav", "song_rest.wav"]
    guitar, guitar_rate = soundfile.read(stems[0], dtype="float32")
    assert guitar_rate == rate and guitar.shape == target.shape and np.abs(guitar).max() > 0

    evaluated = run_unmix("evaluate", "--run-folder", str(run), "--collection", str(data), env=environment,
                          timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "1 songs; medians over songs in dB; target = guitar" in evaluated.stdout
    for stem in ("target", "rest"):
        for metric in ("museval_sdr", "sdr"):
            assert re.search(rf"^{stem} +{metric} +-?\d+\.\d\d +-?\d+\.\d\d +-?\d+\.\d\d", evaluated.stdout, re.M)
    report = json.loads((run / "evaluation.json").read_text())
    assert {score["method"] for score in report["songs"]} == {"model", "mixture", "oracle"}
