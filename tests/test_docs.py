"""Documentation that runs: the README's python blocks and the docstring examples."""

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = [
    "minirnn.functional",
    "minirnn.model",
    "minirnn.gradcheck",
    "minirnn.losses",
    "minirnn.init",
    "minirnn.bptt",
    "minirnn.clip",
    "minirnn.analysis",
]


def readme_blocks():
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_the_two_commands_first():
    head = (ROOT / "README.md").read_text().splitlines()[:10]
    assert any("make experiments" in line for line in head) and any("make test" in line for line in head)


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_python_block_runs(index, capsys):
    exec(compile(readme_blocks()[index], f"README.md block {index}", "exec"), {})
    out = capsys.readouterr().out
    if "summary()" in readme_blocks()[index]:
        assert "700" in out and "True" in out


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0


def test_doctests_exist_where_the_public_api_lives():
    counts = {}
    for name in ("minirnn.functional", "minirnn.model", "minirnn.bptt"):
        finder = doctest.DocTestFinder()
        counts[name] = sum(len(t.examples) for t in finder.find(importlib.import_module(name)))
    assert all(c > 0 for c in counts.values()), counts
