"""The exporter contract as core keeps it (`separate_file`, `plan_outputs`).

Writers are opened with the song's and the stems' names; a per-song exporter gets one writer per
song and every stem's block in one call; writers receive blocks with --peak already applied (clip,
or one gain for the whole song); a failure mid-song leaves nothing; and an exporter written for the
open() that took no names is refused by name before any song is separated.
"""

from __future__ import annotations

import logging
import types
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import soundfile

from tests.training_fixtures import set_gain_checkpoint
from unmix.core import api
from unmix.core.errors import PluginError, UnmixError
from unmix.core.hookspecs import hookimpl
from unmix.core.interfaces import ExportOptions, SongInput
from unmix.core.plugins import plugin_manager
from unmix.core.separation.prediction import Engine, exporter_for, output_files, plan_outputs, separate_file

RATE = 8000
MASK = 0.8  # the gain model's target is 0.8 times the song, its rest 0.2 times it
NORMALIZED_PEAK = 10 ** (-0.1 / 20)
TEMPLATE = "{song}_{stem}.{ext}"
STEMS = ("vocals", "rest")


class RecordingWriter:
    """Keeps in memory what core hands it, as a third-party writer would encode it."""

    def __init__(self, path: Path, keeps_peaks: bool, names: dict[str, Any]) -> None:
        self.path = path
        self.keeps_peaks = keeps_peaks
        self.names = names
        self.blocks: list[Any] = []
        self.state = "open"

    def close(self) -> None:
        self.state = "closed"

    def abort(self) -> None:
        self.state = "aborted"


class RecordingStemWriter(RecordingWriter):
    def write(self, block: np.ndarray) -> None:
        self.blocks.append(np.array(block))

    def audio(self) -> np.ndarray:
        return np.concatenate(self.blocks, axis=1)


class RecordingSongWriter(RecordingWriter):
    def write_stems(self, blocks: dict[str, np.ndarray]) -> None:
        self.blocks.append({stem: np.array(block) for stem, block in blocks.items()})

    def audio(self, stem: str) -> np.ndarray:
        return np.concatenate([blocks[stem] for blocks in self.blocks], axis=1)


class RecordingExporter:
    """A third-party style exporter that keeps its writers, so a test can see what core opened and wrote."""

    name = extension = "rec"
    keeps_peaks = False

    def __init__(self) -> None:
        self.writers: list[Any] = []

    def open(self, path: Path, sample_rate: int, channels: int, options: ExportOptions, *, song: str,
             stem: str | None, stems: tuple[str, ...]) -> RecordingWriter:
        kind = RecordingSongWriter if getattr(self, "per_song", False) else RecordingStemWriter
        names = {"song": song, "stem": stem, "stems": stems, "sample_rate": sample_rate, "channels": channels}
        writer = kind(path, self.keeps_peaks, names)
        self.writers.append(writer)
        return writer


class FloatRecordingExporter(RecordingExporter):
    keeps_peaks = True


class SongRecordingExporter(RecordingExporter):
    per_song = True


class OldExporter:
    """open() as it was before it took the song's and stems' names."""

    name = extension = "old"

    def open(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> None:
        raise AssertionError("core must not call an exporter that cannot take the names")


@pytest.fixture(scope="module", autouse=True)
def recording_plugin() -> None:
    """Registered in this process, as a plugin's entry point would register them (classes: a fresh
    exporter, with no writers yet, for every `exporter_for`)."""
    manager = plugin_manager()
    if "recording-writers" in manager.infos:
        return

    def register_exporters(register: Any) -> None:
        register("recording", RecordingExporter)
        register("recording-float", FloatRecordingExporter)
        register("recording-song", SongRecordingExporter)
        register("old-style", OldExporter)

    module = types.ModuleType("unmix_recording_writers")
    module.register_exporters = hookimpl(register_exporters)  # type: ignore[attr-defined]
    manager.register(module, "recording-writers", "unmix-recording-writers", "1.0")


@pytest.fixture(scope="module")
def engine(gain_run: Path) -> Engine:
    set_gain_checkpoint(gain_run, MASK)
    return api.create_engine(gain_run)


def write_song(path: Path, peak: float, seconds: float = 1.5, loudest_at_the_end: bool = False) -> np.ndarray:
    """Stereo tones scaled so that the largest sample is exactly `peak` (in the last 0.1 s if asked)."""
    time_axis = np.arange(int(seconds * RATE)) / RATE
    audio = np.stack([np.sin(2 * np.pi * 220 * time_axis), 0.7 * np.sin(2 * np.pi * 330 * time_axis)])
    if loudest_at_the_end:
        audio[:, : -RATE // 10] *= 0.5
    audio = (audio * (peak / np.abs(audio).max())).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio.T, RATE, subtype="FLOAT")
    return audio


def separate(engine: Engine, song: Path, folder: Path, format_name: str, peak: str = "clip") -> Any:
    exporter = exporter_for(format_name)
    separate_file(engine, song, folder, exporter, ExportOptions(peak=peak), TEMPLATE, progress=False)
    return exporter


# --------------------------------------------------------------------------------------------
# Names


def test_a_plugin_exporter_is_opened_per_stem_with_the_song_and_stem_names(engine, tmp_path):
    write_song(tmp_path / "My Song.wav", peak=0.5)
    exporter = separate(engine, tmp_path / "My Song.wav", tmp_path / "out", "recording")
    assert [(writer.path, writer.names, writer.state) for writer in exporter.writers] == [
        (tmp_path / "out" / f"My Song_{stem}.rec",
         {"song": "My Song", "stem": stem, "stems": STEMS, "sample_rate": RATE, "channels": 2}, "closed")
        for stem in STEMS
    ]


def test_a_per_song_exporter_gets_one_writer_and_every_stem_in_each_call(engine, tmp_path):
    audio = write_song(tmp_path / "My Song.wav", peak=0.5)
    exporter = separate(engine, tmp_path / "My Song.wav", tmp_path / "out", "recording-song")
    [writer] = exporter.writers
    assert writer.path == tmp_path / "out" / "My Song.rec"
    assert writer.names == {"song": "My Song", "stem": None, "stems": STEMS, "sample_rate": RATE, "channels": 2}
    assert writer.state == "closed"
    for blocks in writer.blocks:
        assert tuple(blocks) == STEMS and blocks["vocals"].shape == blocks["rest"].shape
    np.testing.assert_allclose(writer.audio("vocals") + writer.audio("rest"), audio, atol=1e-6)
    np.testing.assert_allclose(writer.audio("vocals"), MASK * audio, atol=5e-3)


def test_npz_holds_both_stems_of_a_song_that_add_up_to_it(engine, tmp_path):
    audio = write_song(tmp_path / "song.wav", peak=1.5)
    separate(engine, tmp_path / "song.wav", tmp_path / "out", "npz")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["song.npz"]
    with np.load(tmp_path / "out" / "song.npz") as archive:
        assert int(archive["sample_rate"]) == RATE
        np.testing.assert_allclose(archive["vocals"] + archive["rest"], audio, atol=1e-6)
        assert np.abs(archive["vocals"]).max() > 1.0  # float32 keeps what clip would cut


def test_an_exporter_written_for_the_old_open_is_refused_by_name():
    with pytest.raises(PluginError) as caught:
        exporter_for("old-style")
    message = str(caught.value)
    assert "plugin 'recording-writers' (from distribution unmix-recording-writers)" in message
    assert "exporter 'old-style'" in message and "song, stem, stems" in message
    assert "open(path, sample_rate, channels, options, *, song, stem, stems)" in message
    assert "\n" not in message


# --------------------------------------------------------------------------------------------
# Peaks


def test_clip_hands_writers_samples_within_full_scale_and_warns_naming_the_song(engine, tmp_path, caplog):
    audio = write_song(tmp_path / "loud.wav", peak=1.5)
    with caplog.at_level(logging.WARNING, logger="unmix"):
        kept = separate(engine, tmp_path / "loud.wav", tmp_path / "float", "recording-float")
    assert not caplog.records
    target, rest = (writer.audio() for writer in kept.writers)
    np.testing.assert_allclose(target + rest, audio, atol=1e-6)
    assert np.abs(target).max() > 1.0

    with caplog.at_level(logging.WARNING, logger="unmix"):
        clipped = separate(engine, tmp_path / "loud.wav", tmp_path / "clipped", "recording")
    for writer, unclipped in zip(clipped.writers, (target, rest), strict=True):
        np.testing.assert_array_equal(writer.audio(), np.clip(unclipped, -1.0, 1.0))
    count = int(np.count_nonzero(np.abs(target) > 1) + np.count_nonzero(np.abs(rest) > 1))
    [warning] = [record.getMessage() for record in caplog.records]
    assert f"song 'loud': {count} samples" in warning and "--peak normalize" in warning


@pytest.mark.parametrize("format_name", ["recording", "recording-song"])
def test_normalize_hands_writers_every_stem_scaled_by_one_gain(engine, tmp_path, format_name):
    """The loudest sample comes last and the song is longer than a read-back block: the gain is known only
    at the end, so the blocks wait in a scratch file, which is gone afterwards."""
    audio = write_song(tmp_path / "loud.wav", peak=1.5, seconds=9.0, loudest_at_the_end=True)
    exporter = separate(engine, tmp_path / "loud.wav", tmp_path / "out", format_name, peak="normalize")
    if format_name == "recording-song":
        target, rest = (exporter.writers[0].audio(stem) for stem in STEMS)
    else:
        target, rest = (writer.audio() for writer in exporter.writers)
    gain = float(np.sum((target + rest) * audio) / np.sum(audio * audio))
    np.testing.assert_allclose(target + rest, gain * audio, atol=1e-5)  # one gain for both stems
    assert max(np.abs(target).max(), np.abs(rest).max()) == pytest.approx(NORMALIZED_PEAK, rel=1e-5)
    assert gain == pytest.approx(NORMALIZED_PEAK / (MASK * 1.5), rel=1e-2)
    assert not any((tmp_path / "out").iterdir())


def test_normalize_leaves_a_song_whose_stems_fit_untouched(engine, tmp_path):
    audio = write_song(tmp_path / "quiet.wav", peak=0.9)
    exporter = separate(engine, tmp_path / "quiet.wav", tmp_path / "out", "recording", peak="normalize")
    target, rest = (writer.audio() for writer in exporter.writers)
    np.testing.assert_allclose(target + rest, audio, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Failures


@pytest.mark.parametrize("peak", ["clip", "normalize"])
def test_a_failure_mid_song_aborts_a_per_song_writer_and_leaves_nothing(engine, tmp_path, monkeypatch, peak):
    write_song(tmp_path / "song.wav", peak=0.5, seconds=4.0)
    output = tmp_path / "out"
    calls, present_at_failure = [], []
    predict = engine.model.predict

    def fails_on_the_fourth_call(inputs: np.ndarray) -> np.ndarray:
        calls.append(len(inputs))
        if len(calls) == 4:
            present_at_failure.append(sorted(path.name for path in output.iterdir()))
            raise RuntimeError("the network gave up")
        return predict(inputs)

    settings = attrs.evolve(engine.settings, prediction=attrs.evolve(engine.settings.prediction, chunk_seconds=1.0))
    monkeypatch.setattr(engine, "settings", settings)
    monkeypatch.setattr(engine.model, "predict", fails_on_the_fourth_call)
    for format_name in ("npz", "recording-song"):
        calls.clear()
        exporter = exporter_for(format_name)
        with pytest.raises(RuntimeError, match="gave up"):
            separate_file(engine, tmp_path / "song.wav", output, exporter, ExportOptions(peak=peak), TEMPLATE,
                          progress=False)
        assert not any(output.iterdir())
    assert exporter.writers[0].state == "aborted" and (exporter.writers[0].blocks == []) == (peak == "normalize")
    npz_files, recording_files = present_at_failure
    assert len(npz_files) == 2 + (peak == "normalize"), "a scratch file per stem, and core's with normalize"
    assert len(recording_files) == (peak == "normalize")


# --------------------------------------------------------------------------------------------
# File names of a per-song format


@pytest.mark.parametrize(("template", "name"), [
    ("{song}_{stem}.{ext}", "My Song.npz"),
    ("{stem}-{song}.{ext}", "My Song.npz"),
    ("{song} - {stem}.{ext}", "My Song.npz"),
    ("stems/{song}_{stem}.{ext}", "stems/My Song.npz"),
    ("{song}.{ext}", "My Song.npz"),
])
def test_a_per_song_format_names_its_file_without_the_stem(tmp_path, template, name):
    files = output_files("vocals", "My Song", tmp_path, template, "npz", per_song=True)
    assert files == {"vocals": tmp_path / name, "rest": tmp_path / name}


@pytest.mark.parametrize("template", ["{song}/{stem}.{ext}", "{stem}/{song}.{ext}"])
def test_a_template_that_names_no_file_without_the_stem_is_refused_for_a_per_song_format(tmp_path, template):
    with pytest.raises(UnmixError, match=r"names no file for a format that writes one file per song.*'\{song\}\."):
        output_files("vocals", "song", tmp_path, template, "npz", per_song=True)


def test_a_per_stem_format_still_needs_the_stem_in_its_template(tmp_path):
    with pytest.raises(UnmixError, match=r"include \{stem\}"):
        output_files("vocals", "song", tmp_path, "{song}.{ext}", "wav")


def test_plans_of_a_per_song_format_count_one_file_per_song(tmp_path):
    songs = [SongInput(name, tmp_path / "in" / f"{name}.wav") for name in ("a", "b")]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.npz").write_bytes(b"an earlier result")
    with pytest.raises(UnmixError, match=r"1 output file already exist.*'a\.npz'"):
        plan_outputs("vocals", songs, tmp_path / "out", TEMPLATE, "npz", overwrite=False, per_song=True)
    plans = plan_outputs("vocals", songs, tmp_path / "out", TEMPLATE, "npz", overwrite=True, per_song=True)
    assert plans == [{"vocals": tmp_path / "out" / f"{name}.npz", "rest": tmp_path / "out" / f"{name}.npz"}
                     for name in ("a", "b")]
    with pytest.raises(UnmixError, match="would both write"):
        plan_outputs("vocals", songs, tmp_path / "out", "all_{stem}.{ext}", "npz", overwrite=True, per_song=True)
