"""The entry point (`[project.entry-points.unmix]` in pyproject.toml): registers the source by name.

Every `unmix` command imports this module, so it stays light: soundfile loads only when a tone
is synthesised.
"""

from __future__ import annotations

from unmix.core.hookspecs import Register, hookimpl
from unmix_example_tone.source import ToneSource


@hookimpl
def register_sources(register: Register) -> None:
    register("tone", ToneSource())
