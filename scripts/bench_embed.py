#!/usr/bin/env python3
"""Sentence-embedding speed of segmix against sentence-transformers (PyTorch), same texts, same run.

Two workloads, as in the embeddings issue:
  * 4,096 short ad-copy sentences (~25 tokens), drawn from the demo generator's phrase banks;
  * 512 long texts (~128 tokens).
segmix: `segmix embed --no-cache` (the model load is excluded: segmix reports the embedding time).
PyTorch: SentenceTransformer.encode(batch_size=64) after a warm-up, on the same cores.
Both print texts/s; the ratio is segmix / PyTorch.

Run:  cargo build --release && pip install sentence-transformers && python3 scripts/bench_embed.py
"""

import argparse
import csv
import os
import random
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import gen_game_ads as g  # noqa: E402


def short_texts(n, rng):
    out = []
    while len(out) < n:
        seg = rng.choice(g.SEGMENTS)
        t = g.TEXT[seg]
        fill = {"n": rng.choice([100, 500, 3000]), "item": rng.choice(g.ITEMS), "genre": rng.choice(g.GENRES),
                "year": rng.choice([2003, 2009]), "fps": 60, "mins": 5}
        extra = f" {rng.choice(g.SHARED)}" if rng.random() < 0.6 else ""
        out.append(f"{rng.choice(t['hook']).format(**fill)} {rng.choice(t['cta'])}{extra} #{len(out)}")
    return out


def long_texts(n, rng):
    out = []
    while len(out) < n:
        seg = rng.choice(g.SEGMENTS)
        t = g.TEXT[seg]
        parts = [rng.choice(t["hook"]).format(n=500, item="sword", genre="RPG", year=2009, fps=60, mins=5)]
        while len(" ".join(parts).split()) < 95:
            parts.append(rng.choice(t["body"] + g.SHARED))
        out.append(" ".join(parts) + f" {rng.choice(t['cta'])} #{len(out)}")
    return out


def segmix_rate(binary, texts, work, model):
    path = os.path.join(work, "texts.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        w.writerows([t] for t in texts)
    cmd = [binary, "embed", path, "--text", "text", "--out", os.path.join(work, "out.npy"), "--no-cache"]
    if model:
        cmd += ["--model", model]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    seconds = float(re.search(r" in ([0-9.]+)s", out).group(1))
    return len(texts) / seconds


def torch_rate(model, texts, tokenizer_len):
    model.encode(texts[:64], batch_size=64)
    t = time.perf_counter()
    model.encode(texts, batch_size=64)
    return len(texts) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.expanduser(os.environ.get("SEGMIX_CACHE", "~/.cache/segmix")) + "/models/all-MiniLM-L6-v2")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "segmix"))
    ap.add_argument("--work", default=os.path.join(ROOT, "bench_data"))
    ap.add_argument("--short", type=int, default=4096)
    ap.add_argument("--long", type=int, default=512)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    import torch
    from sentence_transformers import SentenceTransformer

    rng = random.Random(1)
    model = SentenceTransformer(a.model, device="cpu")
    tok = model.tokenizer
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {os.cpu_count()} cores")
    for name, texts in [("short", short_texts(a.short, rng)), ("long", long_texts(a.long, rng))]:
        mean_tokens = sum(len(tok(t)["input_ids"]) for t in texts[:512]) / min(512, len(texts))
        ours = segmix_rate(a.binary, texts, a.work, a.model)
        theirs = torch_rate(model, texts, None)
        print(f"{name:5}: {len(texts)} texts, {mean_tokens:.0f} tokens on average: segmix {ours:.0f} texts/s, "
              f"sentence-transformers (PyTorch) {theirs:.0f} texts/s, ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
