"""Fits past one machine on a Ray cluster: one actor per shard keeps its rows (and its GPU, when
it has one) across the whole fit, and the driver merges the shards' answers in shard order.

    import segmix, segmix.ray
    model = segmix.SegMix(k=range(2, 9), cat=["country", "channel"], num=["ctr", "roas"],
                          log=["ctr", "roas"], text="copy")
    fitted = segmix.ray.fit(["s3-mount/part-0.parquet", ...], model, shards=8,
                            assignments="out/assignments")

The fit is ``segmix::pipeline::sharded`` (the same Rust code as one machine): the schema from the
shards' merged summaries, the sweep on a seeded sample gathered on the driver (the same rows
whatever the split), every K's best restart refitted on all rows by EM over the shards, K chosen
by the criterion on all rows. Results do not depend on scheduling: the answers are merged in
shard order. A shard whose actor dies (a lost node, a killed process) is restarted by Ray
(``max_restarts``), reloads its rows from its files (or its dataset blocks), is brought back to the
driver's state, and the fit goes on to the same result.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from . import _native
from ._estimator import SegMix, _floats, _names, _Progress, _warn

__all__ = ["fit", "RayFit"]

#: How long a lost actor may take to come back (Ray restarting it, reading its files again).
_RECOVERY_SECONDS = 600

#: Extensions of the files a shard reads (by the library's own readers).
_TABLE_EXTENSIONS = (".parquet", ".pq", ".arrow", ".feather", ".ipc", ".arrows", ".csv", ".tsv", ".txt")


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError("segmix.ray needs Ray: pip install 'ray[data]'") from None
    return ray


@dataclass
class RayFit:
    """What a fit on Ray did besides the model (``fitted.ray_``)."""

    #: Rows of each shard, in shard order.
    shard_rows: list[int]
    #: What each shard read (its files, or its dataset blocks).
    shard_sources: list[list[str]]
    #: Rows in the seeded sample the sweep ran on.
    sample_rows: int
    #: Every K's refit on all rows (empty when the sample was the whole table).
    refits: pd.DataFrame
    #: The per-iteration exchange: E-steps, bytes sent and received, seconds waiting for the
    #: shards, seconds the driver spent itself.
    traffic: dict
    #: Times each shard's actor was lost and restarted during the fit.
    restarts: list[int]
    #: The assignment files the shards wrote (empty when the posteriors were gathered).
    assignments: list[str] = field(default_factory=list)


class _NotSetUp(RuntimeError):
    """A restarted actor was asked for something its lost state held (raised on the actor,
    caught by the driver's transport, which sets the actor up again)."""


class _Shard:
    """The actor: one shard's rows, embedded once, answering the driver's requests."""

    def __init__(self, parts: list, sources: list[str], roles: dict, engine: dict):
        tables = []
        for p in parts:
            if isinstance(p, (str, os.PathLike)):
                tables.append(os.fspath(p))
            else:  # a split of a Ray Dataset: its blocks as one Arrow table
                import pyarrow as pa

                ray = _ray()
                blocks = [ray.get(ref) for ref in p.to_arrow_refs()]
                tables.append(pa.concat_tables(blocks) if blocks else pa.table({}))
        self._shard = _native.Shard(tables, sources, **roles, **engine)

    def handle(self, request: bytes) -> bytes:
        try:
            return self._shard.handle(request)
        except _native.ShardNotSetUp as e:
            # The native module's exception class is not importable by pickle; this one is.
            raise _NotSetUp(str(e)) from None

    def pid(self) -> int:
        return os.getpid()


class _Transport:
    """Carries the driver's requests to the actors and their answers back, in shard order; when
    an actor dies, waits for Ray to restart it, replays the requests that set its state, and
    asks again."""

    def __init__(self, actors: list, sources: list[list[str]], max_restarts: int):
        self.actors = actors
        self.sources = sources
        self.max_restarts = max_restarts
        self.replay: list[list[bytes]] = [[] for _ in actors]
        self.restarts = [0] * len(actors)

    def call(self, requests: list[bytes], keeps_state: bool) -> list[bytes]:
        refs = [a.handle.remote(r) for a, r in zip(self.actors, requests)]
        answers = [self._answer(i, ref, r) for i, (ref, r) in enumerate(zip(refs, requests))]
        if keeps_state:
            for log, r in zip(self.replay, requests):
                log.append(r)
        return answers

    def _answer(self, i: int, ref: Any, request: bytes) -> bytes:
        ray = _ray()
        recovering, delay, deadline = False, 0.05, 0.0
        while True:
            try:
                if ref is None:
                    for r in self.replay[i]:
                        ray.get(self.actors[i].handle.remote(r))
                    ref = self.actors[i].handle.remote(request)
                return ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None)
                if not isinstance(cause, _NotSetUp):
                    # The shard's own error (a bad row, a missing column): the message one machine gives.
                    raise (cause if isinstance(cause, BaseException) else e) from None
                error: Exception = e  # restarted before this request reached it (Ray raised nothing)
            except ray.exceptions.RayActorError as e:
                error = e  # died (Ray restarts it) or unavailable while it restarts
            # One loss per recovery, however many attempts find the actor still restarting.
            if not recovering:
                recovering, deadline = True, time.monotonic() + _RECOVERY_SECONDS
                self.restarts[i] += 1
                if self.restarts[i] > self.max_restarts:
                    raise RuntimeError(
                        f"shard {i} ({', '.join(self.sources[i])}) was lost {self.restarts[i]} times "
                        f"(max_restarts={self.max_restarts}): {error}"
                    ) from None
            elif time.monotonic() > deadline:
                raise RuntimeError(
                    f"shard {i} ({', '.join(self.sources[i])}) did not come back within "
                    f"{_RECOVERY_SECONDS} s of its loss: {error}"
                ) from None
            time.sleep(delay)
            delay = min(1.0, 2 * delay)
            ref = None


def _files(data: Any) -> list[str] | None:
    """``data`` as a list of table files, or None when it is not paths."""
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if os.path.isdir(path):
            files = sorted(
                os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(_TABLE_EXTENSIONS)
            )
            if not files:
                raise ValueError(f"{path}: no table file (Parquet, Arrow IPC, CSV) in this folder")
            return files
        return [path]
    if isinstance(data, (list, tuple)) and data and all(isinstance(p, (str, os.PathLike)) for p in data):
        return [os.fspath(p) for p in data]
    return None


def _groups(n: int, shards: int) -> list[range]:
    """``n`` items in ``shards`` contiguous groups of sizes differing by at most one."""
    return [range(n * s // shards, n * (s + 1) // shards) for s in range(shards)]


def fit(
    data: Any,
    model: SegMix | None = None,
    *,
    shards: int | None = None,
    sample_rows: int = _native.SAMPLE_ROWS,
    assignments: str | os.PathLike | None = None,
    max_restarts: int = 3,
    num_cpus: float = 1,
    num_gpus: float = 0,
    in_process: bool = False,
    explain: bool | dict = True,
) -> SegMix:
    """Fits ``model`` (an unfitted :class:`segmix.SegMix` naming its ``cat``/``num``/``text``
    columns) on a Ray cluster and returns it fitted.

    ``data``: a ``ray.data.Dataset``, a folder of table files, or a list of files (Parquet, Arrow
    IPC or CSV, read by segmix's own readers on the actors; errors name the file and row). Files
    are split into ``shards`` contiguous groups in order; a dataset is split in order too. Rows are
    numbered in that order (``row`` in the assignments; the sample is drawn by these numbers).

    ``shards``: actors (default: one per file, at most one per CPU of the cluster).
    ``sample_rows``: rows gathered on the driver for the sweep (all rows when the table has no
    more). ``assignments``: a folder where each shard writes ``part-NNNNN.parquet`` (``row``,
    ``class``, ``max_posterior``, ``loglik``, ``post_k``); without it the posteriors are gathered
    into ``labels_`` and ``posteriors_``. ``max_restarts``: restarts of a lost actor before the fit
    fails. ``num_cpus``/``num_gpus``: each actor's Ray resources (give ``num_gpus=1`` with
    ``device="gpu"`` to put each shard on its own GPU). ``in_process``: run the shards in this
    process instead, without Ray (files only) — the single-process reference of the same
    algorithm. ``explain``: explain the classes before the actors go (``True``, or the options of
    ``SegMix.explain`` as a dict: ``prototypes``, ``keywords``, ``min_df``); ``fitted.explain()``
    then returns it. The explanation reads the sample's rows (their cells sent by the shards);
    class sizes are counted on every row.

    The fitted model predicts, scores, saves and loads as one fitted by ``SegMix.fit``;
    ``fitted.ray_`` (:class:`RayFit`) says how the fit ran.
    """
    est = clone(model) if model is not None else SegMix()
    cat, num, text = _names(est.cat, "cat"), _names(est.num, "num"), est.text
    if not (cat or num or text):
        raise ValueError("a fit on Ray reads named columns: give the model cat=, num= and/or text=")
    roles = dict(cat=cat, num=num, text=text, log=_names(est.log, "log"), log1p=_names(est.log1p, "log1p"))
    engine = dict(
        device=str(est.device), text_model=est.text_model, text_prefix=est.text_prefix, no_cache=not est.cache
    )
    files = _files(data)
    if in_process:
        if files is None:
            raise TypeError("in_process=True reads a folder of table files or a list of files")
        parts = _split_files(files, shards or 1)
        workers = [_Shard(p, p, roles, engine) for p in parts]
        return _run(est, roles, _InProcess(workers), parts, sample_rows, assignments, explain)
    ray = _ray()
    if not ray.is_initialized():
        ray.init()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if files is not None:
        parts = _split_files(files, shards or min(len(files), cpus))
        sources = parts
    elif isinstance(data, ray.data.Dataset):
        n_shards = shards or cpus
        if n_shards < 1:
            raise ValueError("shards must be at least 1")
        parts = [[split] for split in data.split(n_shards, equal=False)]
        sources = [[f"<ray dataset, shard {s}>"] for s in range(n_shards)]
    else:
        raise TypeError(
            f"segmix.ray.fit reads a ray.data.Dataset, a folder of table files or a list of files, "
            f"not {type(data).__name__}"
        )
    actor = ray.remote(_Shard).options(
        max_restarts=max_restarts, max_task_retries=0, num_cpus=num_cpus, num_gpus=num_gpus
    )
    actors = [actor.remote(p, src, roles, engine) for p, src in zip(parts, sources)]
    try:
        return _run(est, roles, _Transport(actors, sources, max_restarts), sources, sample_rows, assignments, explain)
    finally:
        for a in actors:
            ray.kill(a)


def _split_files(files: list[str], shards: int) -> list[list[str]]:
    if shards < 1:
        raise ValueError("shards must be at least 1")
    if shards > len(files):
        raise ValueError(f"shards={shards} for {len(files)} files: a shard reads whole files")
    return [[files[i] for i in g] for g in _groups(len(files), shards)]


class _InProcess:
    """The shards in this process: the same requests and answers, no Ray."""

    def __init__(self, shards: list[_Shard]):
        self.shards = shards
        self.restarts = [0] * len(shards)

    def call(self, requests: list[bytes], keeps_state: bool) -> list[bytes]:
        return [s.handle(r) for s, r in zip(self.shards, requests)]


def _run(
    est: SegMix,
    roles: dict,
    transport: Any,
    sources: list[list[str]],
    sample_rows: int,
    assignments: Any,
    explain: Any,
) -> SegMix:
    """The fit over ``transport``'s shards (reading the columns of ``roles``); sets ``est``'s
    fitted attributes."""
    if explain is True:
        explain = {}
    if explain is not False and not isinstance(explain, dict):
        raise TypeError(f"explain={explain!r}: give True, False, or a dict of SegMix.explain's options")
    options = dict(prototypes=5, keywords=10, min_df=3)
    if explain is not False:
        unknown = set(explain) - set(options)
        if unknown:
            raise TypeError(f"explain: unknown options {sorted(unknown)}; SegMix.explain takes {sorted(options)}")
        options.update(explain)
    n_shards = len(sources)
    progress = _Progress(est.progress)
    try:
        fitted = _native.fit_sharded(
            transport,
            n_shards,
            **est._em_args(),
            sample_rows=int(sample_rows),
            device=str(est.device),
            progress=progress.callback,
        )
        written: list[str] = []
        if assignments is not None:
            folder = os.fspath(assignments)
            os.makedirs(folder, exist_ok=True)
            paths = [os.path.join(folder, f"part-{s:05d}.parquet") for s in range(n_shards)]
            written = [w["path"] for w in json.loads(fitted.assign(transport, paths))]
        else:
            parts_post = fitted.posteriors(transport)
            est.posteriors_ = np.concatenate([_floats(p, (-1, k)) for p, k, _ in parts_post])
            est.labels_ = est.posteriors_.argmax(axis=1).astype(np.int64)
        clusters = None
        if explain is not False:
            clusters = fitted.explain(transport, device=str(est.device), seed=int(est.seed), **options)
    finally:
        progress.close()
    _warn(fitted.warnings())
    cat, num, text = roles["cat"], roles["num"], roles["text"]
    est.cat_, est.num_, est.text_ = cat, num, text
    feature_names = cat + num + ([text] if text else [])
    est._matrix = False
    est.n_features_in_ = len(feature_names)
    est.feature_names_in_ = np.asarray(feature_names, dtype=object)
    est._set_model(fitted.model_json())
    est._explained = (options, clusters) if clusters is not None else None
    est.selection_ = SegMix._selection(json.loads(fitted.selection_json()))
    refits = pd.DataFrame(
        [
            {
                "k": r["k"],
                "restart": r["restart"],
                "loglik": r["loglik"],
                **r["criteria"],
                "iterations": r["iterations"],
                "converged": r["converged"],
                "degenerate": "; ".join(r["degenerate"]),
            }
            for r in json.loads(fitted.refits_json())
        ]
    )
    est.ray_ = RayFit(
        shard_rows=list(fitted.shard_rows()),
        shard_sources=[[str(x) for x in src] for src in sources],
        sample_rows=int(fitted.sample_rows()),
        refits=refits,
        traffic=json.loads(fitted.traffic_json()),
        restarts=list(transport.restarts),
        assignments=written,
    )
    return est
