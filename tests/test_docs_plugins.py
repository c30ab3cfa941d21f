"""docs/plugins.md stays true: its code parses, imports only public names, and the tutorial is the example's code."""

from __future__ import annotations

import ast
import re

import pytest

import unmix.core
from tests.helpers import REPOSITORY

DOCS = (REPOSITORY / "docs" / "plugins.md").read_text()
BLSTM = REPOSITORY / "examples" / "unmix-example-blstm"
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", DOCS, flags=re.DOTALL)


def test_every_python_example_parses():
    assert len(PYTHON_BLOCKS) >= 10
    for block in PYTHON_BLOCKS:
        ast.parse(block)


def test_examples_import_only_public_names_of_unmix_core():
    imported = set()
    for block in PYTHON_BLOCKS:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module == "unmix.core":
                imported |= {alias.name for alias in node.names}
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("unmix.core."):
                pytest.fail(f"docs/plugins.md imports from the internal module {node.module}")
    assert imported and imported <= set(unmix.core.__all__), imported - set(unmix.core.__all__)


def test_the_public_api_section_names_every_public_name():
    section = DOCS[DOCS.index("## The public API"):DOCS.index("## Names")]
    missing = [name for name in unmix.core.__all__ if f"`{name}`" not in section]
    assert not missing, f"public names docs/plugins.md does not list: {missing}"


@pytest.mark.parametrize("path", ["src/unmix_example_blstm/model.py", "src/unmix_example_blstm/plugin.py",
                                  "blstm.jsonc", "pyproject.toml"])
def test_the_tutorial_shows_the_example_plugins_files_as_they_are(path):
    assert (BLSTM / path).read_text().strip() in DOCS


def test_the_example_network_stays_under_100_lines():
    assert len((BLSTM / "src/unmix_example_blstm/model.py").read_text().splitlines()) < 100


def test_the_docs_do_not_send_plugin_authors_into_the_test_suite():
    assert "tests/" not in DOCS
