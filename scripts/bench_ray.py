#!/usr/bin/env python3
"""The Ray path's overhead: the same fit over shards on a local Ray cluster and in one process,
in one run, with what every EM iteration moves.

A seeded table of numeric rows (default 10,000,000 × 5, four Gaussian segments) is written as
`--files` Parquet files (generated in chunks; kept in `--data` between runs). Then, each `--runs`
times (median reported):

- one process: `segmix.ray.fit(files, model, shards=1, in_process=True)` — the same algorithm
  (schema from summaries, sweep on the seeded sample, every K refitted on all rows) without Ray;
- Ray: `segmix.ray.fit(files, model, shards=--workers)` on a local cluster of `--workers` CPUs
  (started once, before the timings; the actors' start and their reading of the files are timed).

Both fits gather the posteriors to the driver and skip the explanation (`explain=False`).

Reported: the median wall times and the overhead (Ray over one process, minus one); the
per-iteration traffic of the Ray fit (bytes to and from the shards, the driver's own time and the
time waiting for the shards, per E-step); both fits' log-likelihoods (checked equal to 1e-9).
With `--full`, `SegMix.fit` on the whole table in memory (the full sweep on every row) once,
for context. Needs: `pip install './python[ray]'`.

    python3 scripts/bench_ray.py [--rows 10000000] [--files 8] [--workers 2] [--runs 3] [--full]
"""

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = [f"x{j}" for j in range(5)]


def write_table(folder: Path, rows: int, files: int, seed: int = 0) -> list[str]:
    """The table as `files` Parquet files, generated chunk by chunk (never whole in memory)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f"rows-{rows}-files-{files}-seed-{seed}.done"
    paths = [str(folder / f"part-{i:03d}.parquet") for i in range(files)]
    if stamp.exists():
        return paths
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(4, 5))
    scales = rng.uniform(0.5, 1.5, size=(4, 5))
    for i, path in enumerate(paths):
        n = rows * (i + 1) // files - rows * i // files
        labels = rng.integers(0, 4, size=n)
        X = centres[labels] + rng.normal(size=(n, 5)) * scales[labels]
        pq.write_table(pa.table({c: X[:, j] for j, c in enumerate(COLUMNS)}), path, row_group_size=1 << 20)
    stamp.write_text("ok")
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--k", default="3..5")
    ap.add_argument("--n-init", type=int, default=2)
    ap.add_argument("--sample-rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", default="/tmp/segmix-bench-ray")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--json", help="write the numbers here too")
    a = ap.parse_args()
    import ray

    import segmix
    import segmix.ray
    from segmix import SegMix

    warnings.simplefilter("ignore", segmix.SegmixWarning)
    lo, hi = (int(v) for v in a.k.split(".."))
    model = SegMix(k=range(lo, hi + 1), num=COLUMNS, n_init=a.n_init, seed=0, device="cpu")
    t = time.perf_counter()
    files = write_table(Path(a.data), a.rows, a.files)
    print(f"table: {a.rows:,} rows x {len(COLUMNS)} in {a.files} Parquet files ({time.perf_counter() - t:.1f} s)")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=a.workers, include_dashboard=False, logging_level="ERROR")
    one, dist = [], []
    for run in range(a.runs):
        t = time.perf_counter()
        ref = segmix.ray.fit(files, model, shards=1, sample_rows=a.sample_rows, in_process=True, explain=False)
        one.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = segmix.ray.fit(files, model, shards=a.workers, sample_rows=a.sample_rows, explain=False)
        dist.append(time.perf_counter() - t)
        same = abs(got.loglik_ - ref.loglik_) <= 1e-9 * abs(ref.loglik_) and got.k_ == ref.k_
        print(
            f"run {run + 1}: one process {one[-1]:.1f} s, Ray x{a.workers} {dist[-1]:.1f} s; "
            f"K={got.k_} loglik {got.loglik_:.6f} vs {ref.loglik_:.6f} ({'same' if same else 'DIFFERENT'})"
        )
        assert same, "the Ray fit must equal the single-process fit"
    tr = got.ray_.traffic
    it = max(1, tr["iterations"])
    numbers = {
        "rows": a.rows,
        "workers": a.workers,
        "k": a.k,
        "n_init": a.n_init,
        "sample_rows": got.ray_.sample_rows,
        "one_process_s": statistics.median(one),
        "ray_s": statistics.median(dist),
        "overhead": statistics.median(dist) / statistics.median(one) - 1,
        "e_steps": tr["iterations"],
        "bytes_per_iteration": (tr["bytes_sent"] + tr["bytes_received"]) / it,
        "bytes_sent_per_iteration": tr["bytes_sent"] / it,
        "bytes_received_per_iteration": tr["bytes_received"] / it,
        "driver_ms_per_iteration": 1000 * tr["driver_seconds"] / it,
        "wait_ms_per_iteration": 1000 * tr["wait_seconds"] / it,
        "k_selected": int(got.k_),
        "loglik": got.loglik_,
    }
    if a.full:
        X = np.concatenate([pq.read_table(f).to_pandas()[COLUMNS].to_numpy() for f in files])
        t = time.perf_counter()
        full = SegMix(k=range(lo, hi + 1), n_init=a.n_init, seed=0, device="cpu").fit(X)
        numbers["full_sweep_s"] = time.perf_counter() - t
        numbers["full_sweep_loglik"] = full.loglik_
        numbers["full_sweep_k"] = int(full.k_)
    print(json.dumps(numbers, indent=2))
    print(
        f"median: one process {numbers['one_process_s']:.1f} s, Ray on {a.workers} workers "
        f"{numbers['ray_s']:.1f} s: overhead {100 * numbers['overhead']:+.1f}%; per E-step "
        f"{numbers['bytes_per_iteration'] / 1024:.1f} KiB moved, driver {numbers['driver_ms_per_iteration']:.2f} ms, "
        f"waiting {numbers['wait_ms_per_iteration']:.1f} ms"
    )
    if a.json:
        Path(a.json).write_text(json.dumps(numbers, indent=2))
    ray.shutdown()


if __name__ == "__main__":
    main()
