#!/usr/bin/env python3
"""Kills `segmix fit` and `segmix embed` at random points and checks that nothing is lost or mixed.

    python3 scripts/fault_injection.py [--trials 20] [--binary target/release/segmix] [--tmpfs]

Fit trials alternate between two configurations (different K ranges and seeds) writing the same
folder, so the old and the new set differ. After each SIGKILL the script checks:

* the raw folder: with no committed staging folder, every file `manifest.json` lists is present and
  has the listed SHA-256 (the old set untouched, or the new set complete); with a committed staging
  folder (the run died while moving files into place), the staged files together with those
  already moved are exactly the new set;
* after `segmix report DIR` (any reader finishes a committed write): `manifest.json` is the old
  set's or the new set's, every file matches it, and `predict` loads the model.

Embed trials kill `segmix embed` sharing one embedding cache, then run it to completion and check
that the vectors equal those of `--no-cache` bit for bit, and that `--out` is either absent, the
previous complete file, or the new complete file. With `--tmpfs` (needs root) the cache lives on
a 256 KiB tmpfs, so cache writes fail with "no space left": every run must still succeed, with a
warning, and give the same vectors.

Exit status 0 when every trial passes. Kill times are drawn uniformly over an uninterrupted run's
duration for half the trials and over its last fifth (where the files are written) for the rest.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def set_of(m):
    return {e["name"]: e["sha256"] for e in m["files"]} if m else None


def check_set(folder, m, what):
    """Every file `m` lists is in `folder` with its SHA-256."""
    for name, digest in set_of(m).items():
        p = os.path.join(folder, name)
        if not os.path.exists(p):
            return f"{what}: {name} missing"
        if sha(p) != digest:
            return f"{what}: {name} is not the listed file"
    return None


def stagings(folder):
    return [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(".segmix-staging-")]


def run_killed(cmd, env, delay):
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        p.wait(timeout=delay)
        return p.returncode, p.stderr.read().decode()
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return None, ""


def timed(cmd, env):
    t = time.time()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return time.time() - t, r


def delay_for(trial, duration, rng):
    if trial % 2 == 0:
        return rng.uniform(0.0, duration)
    return rng.uniform(0.8 * duration, 1.05 * duration)


def fit_trials(args, env, work, rng):
    data = os.path.join(ROOT, "examples", "game_ads.csv")
    out = os.path.join(work, "fit")
    configs = [["--k", "2..4", "--seed", "1"], ["--k", "3..5", "--seed", "2"]]

    def cmd(c):
        return [args.binary, "fit", data, "--cat", "Country,Channel,Creative_Type", "--num", "CTR,CVR,ROAS",
                "--text", "Ad_Text", "--out", out, "-q"] + c

    timed(cmd(configs[1]), env)  # fills the embedding cache
    duration, _ = timed(cmd(configs[0]), env)
    failures, finished, rolled, changed = [], 0, 0, 0
    for trial in range(args.trials):
        old = manifest(os.path.join(out, "manifest.json"))
        delay = delay_for(trial, duration, rng)
        rc, err = run_killed(cmd(configs[(trial + 1) % 2]), env, delay)
        if rc is not None:
            finished += 1
            if rc != 0:
                failures.append(f"fit trial {trial}: exit {rc}: {err}")
                continue
        committed = [s for s in stagings(out) if os.path.exists(os.path.join(s, "manifest.json"))]
        if committed:
            rolled += 1
            expected = manifest(os.path.join(committed[0], "manifest.json"))
            for name, digest in set_of(expected).items():
                p = os.path.join(committed[0], name)
                p = p if os.path.exists(p) else os.path.join(out, name)
                if not os.path.exists(p) or sha(p) != digest:
                    failures.append(f"fit trial {trial} (killed at {delay:.2f} s): staged set incomplete at {name}")
        else:
            expected = manifest(os.path.join(out, "manifest.json"))
            problem = check_set(out, expected, f"fit trial {trial} raw")
            if problem:
                failures.append(f"{problem} (killed at {delay:.2f} s)")
        changed += set_of(expected) != set_of(old)
        r = subprocess.run([args.binary, "report", out, "-q"], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"fit trial {trial}: report failed: {r.stderr}")
            continue
        now = manifest(os.path.join(out, "manifest.json"))
        problem = check_set(out, now, f"fit trial {trial} after report")
        if problem:
            failures.append(problem)
        for name in ["model.json", "assignments.csv", "selection.csv", "clusters.json"]:
            if set_of(now).get(name) != set_of(expected).get(name):
                failures.append(f"fit trial {trial}: after report, {name} is neither the old set's nor the new one's")
        if stagings(out):
            failures.append(f"fit trial {trial}: staging folders left after report")
        pred = os.path.join(work, "pred.csv")
        r = subprocess.run([args.binary, "predict", os.path.join(out, "model.json"), data, "--out", pred, "-q"],
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"fit trial {trial}: predict failed: {r.stderr}")
    print(f"fit: {args.trials} trials (uninterrupted run {duration:.2f} s), {finished} finished before the kill, "
          f"{rolled} killed after the commit point and rolled forward, {changed} left the new set, "
          f"{len(failures)} failures")
    return failures


def embed_trials(args, env, work, rng, cache, label):
    data = os.path.join(work, "texts.csv")
    if not os.path.exists(data):
        words = ["bonus", "level", "squad", "epic", "loot", "raid", "quest", "coins", "arena", "daily", "hero",
                 "puzzle", "match", "free", "spins", "win", "battle", "castle", "dragon", "race"]
        r = random.Random(7)
        with open(data, "w") as f:
            f.write("t\n")
            for i in range(1500):
                f.write(" ".join(r.choice(words) for _ in range(r.randint(3, 14))) + f" {i}\n")
    ref = os.path.join(work, "ref.npy")
    if not os.path.exists(ref):
        timed([args.binary, "embed", data, "--text", "t", "--out", ref, "--no-cache", "-q"], env)
    ref_bytes = open(ref, "rb").read()
    env = dict(env, SEGMIX_CACHE=cache)
    out = os.path.join(work, f"emb-{label}.npy")
    os.makedirs(cache, exist_ok=True)
    duration, _ = timed([args.binary, "embed", data, "--text", "t", "--out", out, "-q"], env)
    os.remove(out)
    for f in os.listdir(cache):  # start from an empty cache: the kills land in its appends
        p = os.path.join(cache, f)
        shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    failures, warned = [], 0
    for trial in range(args.trials):
        before = open(out, "rb").read() if os.path.exists(out) else None
        delay = delay_for(trial, duration, rng)
        run_killed([args.binary, "embed", data, "--text", "t", "--out", out, "-q"], env, delay)
        if os.path.exists(out):
            now = open(out, "rb").read()
            if now != ref_bytes and now != before:
                failures.append(f"embed {label} trial {trial} (killed at {delay:.2f} s): --out is a partial file")
        r = subprocess.run([args.binary, "embed", data, "--text", "t", "--out", out, "-q"], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"embed {label} trial {trial}: the next run failed: {r.stderr}")
            continue
        warned += "warning" in r.stderr
        if open(out, "rb").read() != ref_bytes:
            failures.append(f"embed {label} trial {trial} (killed at {delay:.2f} s): vectors differ from --no-cache")
    print(f"embed ({label}): {args.trials} trials (uninterrupted run {duration:.2f} s), {warned} runs warned, "
          f"{len(failures)} failures")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "segmix"))
    ap.add_argument("--tmpfs", action="store_true", help="also run the embed trials with the cache on a tiny tmpfs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="segmix-faults-")
    env = dict(os.environ, SEGMIX_CACHE=os.path.join(work, "cache"))
    default_model = os.path.expanduser("~/.cache/segmix/models/all-MiniLM-L6-v2")
    if "SEGMIX_MODEL" not in env and os.path.isdir(default_model):
        env["SEGMIX_MODEL"] = default_model  # the sandboxed cache holds no model
    failures = fit_trials(args, env, work, rng)
    failures += embed_trials(args, env, work, rng, os.path.join(work, "cache-embed"), "disk")
    if args.tmpfs:
        mnt = os.path.join(work, "tmpfs")
        os.makedirs(mnt)
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], capture_output=True, text=True)
        if mount.returncode != 0:
            print(f"embed (tmpfs): not run, the tmpfs could not be mounted (needs root): {mount.stderr.strip()}")
        else:
            try:
                failures += embed_trials(args, env, work, rng, mnt, "tmpfs")
            finally:
                subprocess.run(["umount", mnt])
    for f in failures:
        print("FAIL", f)
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
