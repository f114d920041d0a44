"""Shared fixtures: a sandboxed embedding cache, the `segmix` command, the demo table."""

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def sandbox(tmp_path_factory):
    """The embedding cache in a temporary folder, never the user's; the default model read (not
    written) from where `.ci/run` or a first run put it."""
    root = Path(os.environ.get("SEGMIX_CACHE") or Path.home() / ".cache" / "segmix")
    model = os.environ.get("SEGMIX_MODEL") or str(root / "models" / "all-MiniLM-L6-v2")
    old = {k: os.environ.get(k) for k in ("SEGMIX_CACHE", "SEGMIX_MODEL")}
    os.environ["SEGMIX_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["SEGMIX_MODEL"] = model
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def cli():
    """The `segmix` command: $SEGMIX_BIN, else the newest of target/{release,debug}/segmix
    (`cargo test` builds the debug one)."""
    if os.environ.get("SEGMIX_BIN"):
        return os.environ["SEGMIX_BIN"]
    found = [p for p in (REPO / "target" / "release" / "segmix", REPO / "target" / "debug" / "segmix") if p.exists()]
    if not found:
        pytest.fail("no segmix binary: run `cargo build -p segmix-cli` (or `cargo test`) first, or set SEGMIX_BIN")
    return str(max(found, key=lambda p: p.stat().st_mtime))


def run_cli(cli, *args):
    r = subprocess.run([cli, "-q", *map(str, args)], capture_output=True, text=True, env=os.environ.copy())
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="session")
def ads():
    return pd.read_csv(REPO / "examples" / "game_ads.csv")


ROLES = dict(cat=["Country", "Channel", "Creative_Type"], num=["CTR", "CVR", "ROAS"])
