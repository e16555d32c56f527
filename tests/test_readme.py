"""Every ```python block of README.md runs, in order, in one namespace, and
prints what the ```text block right after it says (blocks without one may
print anything).  The README defines its own small stand-in data."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def readme_blocks(text):
    """[(python source, expected output or None)] in README order."""
    blocks = []
    matches = list(FENCE.finditer(text))
    for i, match in enumerate(matches):
        if match.group(1) != "python":
            continue
        expected = None
        if i + 1 < len(matches):
            after = matches[i + 1]
            if after.group(1) == "text" and text[match.end() : after.start()].strip() == "":
                expected = after.group(2)
        blocks.append((match.group(2), expected))
    return blocks


def test_readme_blocks_are_found_with_their_outputs():
    blocks = readme_blocks(README.read_text())
    assert len(blocks) >= 5
    assert sum(expected is not None for _, expected in blocks) >= 4


def test_every_readme_python_block_runs_and_prints_what_the_readme_says(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")  # the time-series block trains an LSTMDetector
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # the blocks write models/ and alerts.db
    namespace = {"__name__": "readme"}
    for number, (source, expected) in enumerate(readme_blocks(README.read_text()), start=1):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(source, f"README.md python block {number}", "exec"), namespace)
        if expected is not None:
            assert out.getvalue() == expected, f"README.md python block {number} printed:\n{out.getvalue()}"
    namespace["pipe"].close()
