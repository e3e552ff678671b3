"""The installed package: a wheel built from this tree carries everything a user needs."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a build needs is the package and its metadata; the rest stays behind (and
# build/ and *.egg-info are written into the copy, never into the checkout).
LEFT_BEHIND = (".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
               "demo-out", "runs", "docs", "benchmarks", "tests")


def run(cmd, **kw):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_has_every_preset(tmp_path):
    """Build a wheel (no network: --no-build-isolation, --no-index), install it with
    --no-deps into a fresh venv that borrows this environment's TensorFlow and friends
    through a .pth file (not its editable speechgen), and, from outside the checkout,
    list the presets and load every one, ``demo`` by name as ``--config demo`` does."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*LEFT_BEHIND))
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, src])
    (wheel,) = wheels.glob("speechgen-*.whl")

    env = tmp_path / "env"
    run([sys.executable, "-m", "venv", "--without-pip", env])
    python = env / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    # Paths in a .pth go on sys.path after the venv's own site-packages; the .pth files
    # in them (the editable install's finder) are not run, so only the wheel's
    # speechgen can be imported.
    borrowed = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "borrowed.pth").write_text("".join(f"{p}\n" for p in borrowed))
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel])

    names = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    code = (
        "import speechgen, speechgen.config as c\n"
        "print(speechgen.__file__)\n"
        "assert not c.CONFIG_DIR.is_symlink()  # the files themselves, not a link\n"
        "print(' '.join(c.presets()))\n"
        "for name in c.presets():\n"
        "    c.load_config([name])\n"
        "print(c.load_config(['demo']).to_dict() == c.load_config([str(c.CONFIG_DIR / 'demo.yaml')]).to_dict())\n"
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    lines = run([python, "-c", code], cwd=outside, env=clean).splitlines()
    assert Path(lines[0]).is_relative_to(site), lines[0]  # the installed copy, not this checkout
    assert lines[1].split() == names and "demo" in names
    assert lines[2] == "True"
    # The command a user runs names them too.
    assert "demo" in run([env / "bin" / "speechgen", "train", "--help"], cwd=outside, env=clean)
