"""`unmix catalogue`'s inputs: manifests, globs and folders, and the one line each mistake gets before Ray starts."""

from __future__ import annotations

import fcntl
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.helpers import assert_one_line_error, run_unmix

SAMPLE_RATE = 8000


@pytest.fixture
def songs(tmp_path: Path) -> Path:
    folder = tmp_path / "songs"
    (folder / "disc 2").mkdir(parents=True)
    rng = np.random.default_rng(5)
    for path in (folder / "intro.wav", folder / "disc 2" / "outro.flac"):
        soundfile.write(path, rng.normal(0, 0.1, SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    return folder


def catalogue(*arguments: str, run: Path, environment: dict[str, str], output: Path):
    return run_unmix("catalogue", *arguments, "--run-folder", str(run), "--output", str(output), env=environment)


def test_manifests_globs_and_folders_list_the_same_songs(songs, tmp_path, unmix_free_folder):
    from unmix.ray.manifest import list_songs

    output = tmp_path / "stems"
    (tmp_path / "list.txt").write_text("# two songs, one relative to the manifest\nsongs/intro.wav\n\n"
                                       f"{songs / 'disc 2' / 'outro.flac'}\nsongs/intro.wav\n")
    (tmp_path / "list.csv").write_text("title,uri\nIntro,songs/intro.wav\nOutro,songs/disc 2/outro.flac\n")
    expected = sorted([(str((songs / "intro.wav").resolve()), "intro"),
                       (str((songs / "disc 2" / "outro.flac").resolve()), "outro")])
    for spec in (str(tmp_path / "list.txt"), str(tmp_path / "list.csv"), str(songs), f"{songs}/**/*.*"):
        assert sorted((song.uri, song.name) for song in list_songs(spec, output)) == expected, spec
    missing = list_songs(str(_manifest(tmp_path, "missing.wav\n")), output)
    assert [(song.uri, song.name) for song in missing] == [(str((tmp_path / "missing.wav").resolve()), None)]


def _manifest(folder: Path, text: str, name: str = "manifest.txt") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_every_input_mistake_is_one_line_before_ray_starts(songs, tmp_path, gain_run, gain_environment):
    output = tmp_path / "stems"

    def refused(spec: str, *fragments: str, extra: tuple[str, ...] = ()) -> None:
        result = catalogue(spec, *extra, run=gain_run, environment=gain_environment, output=output)
        assert_one_line_error(result, *fragments)

    refused(str(tmp_path / "nowhere"), "neither a folder, a manifest file")
    refused(str(tmp_path / "*.mp3"), "matches no files")
    refused(str(_manifest(tmp_path, "title\nIntro\n", "no-uri.csv")), "has no 'uri' column", "title")
    refused(str(_manifest(tmp_path, "# nothing\n\n")), "lists no songs")
    refused(str(_manifest(tmp_path, f"{songs / 'intro.wav'}\nftp://example.org/song.wav\n")), "line 2",
            "ftp://example.org/song.wav")
    refused(str(songs), "no Ray head node answers at '127.0.0.1:1'", extra=("--ray", "127.0.0.1:1"))
    twins = tmp_path / "twins"
    (twins / "a").mkdir(parents=True)
    (twins / "b").mkdir()
    for folder in ("a", "b"):
        soundfile.write(twins / folder / "song.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    refused(f"{twins}/*/song.wav", "both named 'song'")

    output.mkdir()
    (output / "intro_vocals.wav").write_bytes(b"someone else's file")
    refused(str(songs), "intro_vocals.wav", "was not written by this catalogue", "--overwrite")
    assert (output / "intro_vocals.wav").read_bytes() == b"someone else's file"


def test_a_second_catalogue_into_the_same_output_is_refused(songs, tmp_path, gain_run, gain_environment):
    state = tmp_path / "stems" / ".unmix-catalogue"
    state.mkdir(parents=True)
    with open(state / "lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = catalogue(str(songs), run=gain_run, environment=gain_environment, output=tmp_path / "stems")
    assert_one_line_error(result, "another `unmix catalogue` is writing into")


def test_the_model_is_given_once(songs, tmp_path, gain_run, gain_environment):
    result = run_unmix("catalogue", str(songs), "--output", str(tmp_path / "stems"), env=gain_environment)
    assert result.returncode == 2 and "give one of --run-folder RUN or --model FILE" in result.stderr
