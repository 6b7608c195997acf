"""The type stubs of the compiled core (_core.pyi) against the built module, with mypy's stubtest:
a function or property added to the bindings and not to the stubs fails here."""

import subprocess
import sys
from pathlib import Path

from deephash_engine import build_info


def test_core_stubs_match_the_built_module(tmp_path):
    here = Path(__file__).parent
    allowlists = ["--allowlist", str(here / "stubtest_allowlist.txt")]
    if not build_info()["cuda"]:  # the GPU names then come from deephash_engine.gpu
        allowlists += ["--allowlist", str(here / "stubtest_allowlist_nocuda.txt")]
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "deephash_engine._core", *allowlists],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)  # cwd: mypy's cache stays out of the tree
    assert out.returncode == 0, out.stdout + out.stderr
