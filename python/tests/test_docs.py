"""Runs every Python example of docs/guides/python.md as its own program: the guide cannot
rot without this test failing."""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "guides" / "python.md"


def examples() -> List[str]:
    return re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), flags=re.S | re.M)


def test_the_guide_has_examples() -> None:
    assert len(examples()) >= 7


@pytest.mark.parametrize("index", range(len(examples())))
def test_guide_example_runs(index: int) -> None:
    code = examples()[index]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "python")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"example {index + 1} failed:\n{code}\n{done.stdout}\n{done.stderr}"
