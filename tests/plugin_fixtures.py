"""Installing throwaway plugin distributions for tests, through real entry-point metadata."""

from __future__ import annotations

import textwrap
from pathlib import Path


def install_plugin_distribution(site: Path, distribution: str, version: str, modules: dict[str, str],
                                entry_points: dict[str, str]) -> Path:
    """Write modules plus a `.dist-info` folder into `site`, as pip would; put `site` on PYTHONPATH to use it."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[unmix]\n{lines}")
    return site
