"""The helpers every one-line error message shares: the "did you mean" hint and a library error's first line."""

from __future__ import annotations

from unmix.core.errors import did_you_mean, first_line


def test_names_the_closest_known_name():
    assert did_you_mean("batch_sise", ["epochs", "batch_size", "learning_rate"]) == " (did you mean 'batch_size'?)"


def test_is_empty_when_nothing_is_close():
    assert did_you_mean("zzz", ["epochs", "batch_size"]) == ""
    assert did_you_mean("epochs", []) == ""


def test_ignore_case_matches_folded_and_shows_the_known_spelling():
    assert did_you_mean("UNET", ["unet"]) == ""
    assert did_you_mean("UNET", ["unet"], ignore_case=True) == " (did you mean 'unet'?)"
    assert did_you_mean("hourglas", ["Hourglass", "UNet"], ignore_case=True) == " (did you mean 'Hourglass'?)"


def test_first_line_quotes_only_the_first_line_or_the_class():
    assert first_line(ValueError("\n  bad header  \nTraceback detail\nmore")) == "bad header"
    assert first_line(KeyError()) == "KeyError"
