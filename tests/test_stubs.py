"""The type stubs of the compiled core (_core.pyi) against the built module, with mypy's stubtest:
a function or property added to the bindings and not to the stubs fails here."""

import subprocess
import sys
from pathlib import Path


def test_core_stubs_match_the_built_module(tmp_path):
    allowlist = Path(__file__).parent / "stubtest_allowlist.txt"
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "deephash_engine._core", "--allowlist", str(allowlist)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)  # cwd: mypy's cache stays out of the tree
    assert out.returncode == 0, out.stdout + out.stderr
