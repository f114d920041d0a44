"""``segmix.ray.fit`` on a local Ray cluster of worker processes: the same model and classes as
one machine whatever the number of shards, a killed worker restarted to the same result, a bad
shard's error naming its file and row."""

import os
import signal
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import segmix
from segmix import SegMix

ray = pytest.importorskip("ray")
import segmix.ray  # noqa: E402

from conftest import ROLES  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster (4 logical CPUs on any machine), started once for this module, with
    the sandboxed embedding cache in its workers' environment."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # tests never reach the network
    env = {k: os.environ[k] for k in ("SEGMIX_CACHE", "SEGMIX_MODEL", "NODEVICE_SELECT") if k in os.environ}
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", runtime_env={"env_vars": env})
    yield
    ray.shutdown()


def table(n=4000, seed=0):
    """Three segments over a category, a log-normal metric with missing values, a 1–5 rating and
    a spend."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 3, n)
    df = pd.DataFrame(
        {
            "channel": np.array(["search", "social", "video"])[(g + (rng.random(n) < 0.2)) % 3],
            "ctr": np.exp(-4 + 0.7 * g + 0.3 * rng.standard_normal(n)),
            "rating": (1 + g + rng.integers(0, 3, n)).astype(float),
            "spend": 100 * g + 40 * rng.random(n),
        }
    )
    df.loc[rng.random(n) < 0.05, "ctr"] = np.nan
    return df


def files(df, folder, parts):
    """``df`` as ``parts`` Parquet files of unequal sizes, in order."""
    os.makedirs(folder, exist_ok=True)
    cuts = np.linspace(0, len(df), parts + 1).astype(int)
    cuts[1] = max(1, cuts[1] // 3)
    out = []
    for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        out.append(os.path.join(folder, f"part-{i}.parquet"))
        df.iloc[a:b].to_parquet(out[-1])
    return out


MODEL = dict(k=range(2, 5), cat=["channel"], num=["ctr", "rating", "spend"], log=["ctr"], n_init=2, tol=1e-9, seed=3)


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", segmix.SegmixWarning)
        return segmix.ray.fit(*args, **kwargs)


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def test_any_number_of_shards_gives_one_machines_fit(cluster, tmp_path):
    df = table()
    paths = files(df, tmp_path / "parts", 4)
    # The sample is the whole table: the fit is SegMix.fit's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", segmix.SegmixWarning)
        one = SegMix(**MODEL).fit(df)
    full = quiet_fit(paths, SegMix(**MODEL), shards=2)
    assert full.k_ == one.k_ and close(full.loglik_, one.loglik_), (full.loglik_, one.loglik_)
    assert (full.labels_ == one.labels_).all()
    rows = [len(pd.read_parquet(p)) for p in paths]
    assert full.ray_.shard_rows == [rows[0] + rows[1], rows[2] + rows[3]] and full.ray_.refits.empty
    # A sample of 900 rows for the sweep, every K refitted on all rows over the shards: the same
    # whatever the number of shards; the reference is one shard in this process, without Ray.
    ref = quiet_fit(paths, SegMix(**MODEL), shards=1, sample_rows=900, in_process=True)
    assert ref.ray_.sample_rows < len(df) and len(ref.ray_.refits) == 3
    assert ref.ray_.traffic["iterations"] > 0 and ref.ray_.traffic["bytes_received"] > 0
    for shards in (2, 3, 4):
        got = quiet_fit(paths, SegMix(**MODEL), shards=shards, sample_rows=900)
        assert got.ray_.sample_rows == ref.ray_.sample_rows
        assert got.k_ == ref.k_ and close(got.loglik_, ref.loglik_), (shards, got.loglik_, ref.loglik_)
        assert (got.labels_ == ref.labels_).all(), shards
        assert np.allclose(got.means_, ref.means_, rtol=1e-9, atol=1e-12)
    # The fitted model predicts like any other.
    assert (got.predict(df) == ref.labels_).all()


def test_shards_write_their_assignments(cluster, tmp_path):
    df = table(1500, seed=1)
    paths = files(df, tmp_path / "parts", 3)
    got = quiet_fit(paths, SegMix(**MODEL), shards=3, sample_rows=600, assignments=tmp_path / "out")
    assert got.ray_.assignments == [str(tmp_path / "out" / f"part-{s:05d}.parquet") for s in range(3)]
    out = pd.concat([pd.read_parquet(p) for p in got.ray_.assignments], ignore_index=True)
    assert (out["row"].to_numpy() == np.arange(len(df))).all()
    post = out[[f"post_{c}" for c in range(1, got.k_ + 1)]].to_numpy()
    assert np.allclose(post, got.predict_proba(df), atol=1e-12)
    assert (out["class"].to_numpy() - 1 == got.predict(df)).all()
    assert not hasattr(got, "labels_")


def _shard_pids():
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith("ray::_Shard")}


@pytest.mark.parametrize("wait", [False, True], ids=["next_request_finds_it_dead", "next_request_finds_it_restarted"])
def test_a_killed_worker_restarts_and_the_fit_ends_the_same(cluster, tmp_path, wait):
    df = table(3000, seed=2)
    paths = files(df, tmp_path / "parts", 3)
    ref = quiet_fit(paths, SegMix(**MODEL), shards=3, sample_rows=800)
    state = {"refitting": False, "killed": None}

    def kill_a_shard(event, info):
        # Once the shards hold their rows and the driver's state (the refits), SIGKILL one worker
        # process; either the next request reaches the dead actor (Ray raises) or, after waiting
        # for Ray to restart it, a fresh actor without the state (it says so).
        if event == "status" and "refitting" in info["line"]:
            state["refitting"] = True
        if state["killed"] or not state["refitting"] or event != "iteration" or info["iteration"] != 2:
            return
        before = _shard_pids()
        os.kill(max(before), signal.SIGKILL)
        state["killed"] = max(before)
        deadline = time.time() + 60
        while wait and not (_shard_pids() - before) and time.time() < deadline:
            time.sleep(0.05)

    got = quiet_fit(paths, SegMix(**MODEL, progress=kill_a_shard), shards=3, sample_rows=800)
    assert state["killed"], "a worker was killed"
    assert sum(got.ray_.restarts) >= 1, got.ray_.restarts
    assert got.k_ == ref.k_ and close(got.loglik_, ref.loglik_), (got.loglik_, ref.loglik_)
    assert (got.labels_ == ref.labels_).all()


def test_a_restarted_actor_is_set_up_again_before_it_answers(cluster, tmp_path):
    """Ray restarts a killed actor before the next request reaches it: the fresh actor says it
    was not set up, and the transport replays the requests that set it up, then asks again."""
    from segmix.ray import _Shard, _Transport

    paths = files(table(600, seed=4), tmp_path / "parts", 2)
    roles = dict(cat=["channel"], num=["ctr", "rating", "spend"], text=None, log=["ctr"], log1p=[])
    engine = dict(device="cpu", text_model=None, text_prefix=None, no_cache=True)
    actor = ray.remote(_Shard).options(max_restarts=2, max_task_retries=0)
    actors = [actor.remote([p], [p], roles, engine) for p in paths]
    transport = _Transport(actors, [[p] for p in paths], max_restarts=2)
    summary = b'JSON"Summary"'  # the protocol's first request; it keeps the shard's sorted values
    ties = b'JSON{"Ties":{"columns":[[],[1.0,2.0,3.0],[]]}}'  # answered from them
    transport.call([summary] * 2, True)
    before = transport.call([ties] * 2, False)
    pid = ray.get(actors[1].pid.remote())
    ray.kill(actors[1], no_restart=False)
    deadline = time.time() + 60
    while time.time() < deadline:  # until the restarted actor answers
        try:
            if ray.get(actors[1].pid.remote()) != pid:
                break
        except ray.exceptions.RayActorError:
            time.sleep(0.1)
    with pytest.raises(ray.exceptions.RayTaskError, match="before it was set up"):
        ray.get(actors[1].handle.remote(ties))
    assert transport.call([ties] * 2, False) == before
    assert transport.restarts == [0, 1]
    for a in actors:
        ray.kill(a)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def test_a_bad_row_in_one_shard_fails_with_its_file_and_row(cluster, tmp_path):
    df = table(1200, seed=3)
    df.loc[1000, "ctr"] = -0.5  # ctr is modelled on the log scale
    paths = files(df, tmp_path / "parts", 3)
    first = len(pd.read_parquet(paths[0])) + len(pd.read_parquet(paths[1]))
    with pytest.raises(ValueError, match=rf"part-2\.parquet: row {1000 - first}, column \"ctr\".*--log"):
        quiet_fit(paths, SegMix(**MODEL), shards=3)
    with pytest.raises(ValueError, match="cat=, num= and/or text="):
        segmix.ray.fit(paths, SegMix(k=2))


def test_a_ray_dataset_with_text_embedded_on_the_workers(cluster, ads):
    sample = ads.iloc[::10].reset_index(drop=True)
    model = SegMix(k=range(2, 4), **ROLES, text="Ad_Text", pca_dims=4, n_init=2, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", segmix.SegmixWarning)
        one = model.fit(sample)
    got = quiet_fit(ray.data.from_pandas(sample).repartition(3), model, shards=3)
    assert sum(got.ray_.shard_rows) == len(sample) and len(got.ray_.shard_rows) == 3
    # Each worker embeds its own texts: the vectors agree with one machine's to float32 rounding.
    assert got.k_ == one.k_ and close(got.loglik_, one.loglik_, 1e-6), (got.loglik_, one.loglik_)
    assert (got.labels_ == one.labels_).all()
    # Explained before the actors went: the sample is the whole table here, so the explanation
    # is one machine's.
    mine, theirs = got.explain(), one.explain()
    assert [c.size for c in mine.classes] == [c.size for c in theirs.classes]
    for a, b in zip(mine.classes, theirs.classes):
        assert [p.text for p in a.prototypes] == [p.text for p in b.prototypes] and a.prototypes
        assert list(a.keywords["word"]) == list(b.keywords["word"])
    with pytest.raises(ValueError, match="explain=.*segmix.ray.fit"):
        got.explain(prototypes=2)
