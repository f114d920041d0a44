#!/usr/bin/env python3
"""Sentence-embedding speed of segmix against sentence-transformers (PyTorch) and onnxruntime, same
texts, same run.

Two workloads, as in the embeddings issue:
  * 4,096 short ad-copy sentences (~25 tokens), drawn from the demo generator's phrase banks;
  * 512 long texts (~128 tokens).
segmix: `segmix embed --no-cache` (the model load is excluded: segmix reports the embedding time).
PyTorch: SentenceTransformer.encode(batch_size=64) after a warm-up, on the same cores.
onnxruntime (fp32, CPU provider, 2 intra-op threads): the model exported once with torch.onnx,
then the same recipe as the others: sort by length, pad per batch of 64, masked mean pooling,
L2 normalisation. Its vectors are checked against sentence-transformers' before it is timed.
Each prints texts/s; the ratios are segmix / peer.

Run:  cargo build --release && pip install sentence-transformers onnxruntime onnx
      python3 scripts/bench_embed.py
On a GPU machine (segmix's WGSL encoder against sentence-transformers on CUDA, same GPU, fp32
both; PyTorch with batches of 256 there):
      python3 scripts/bench_embed.py --device gpu --short 65536 --long 8192
With --device gpu the script also prints `segmix bench --embed` for the two batch shapes the
workloads form (512 × 32 and 128 × 128 tokens): steady-state texts/s and TFLOP/s of the encoder
alone, and the device time per stage (matmul, attention, layer norm, embeddings, pooling) from
timestamp queries, plus the read-back: where the time goes.
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


def segmix_rate(binary, texts, work, model, device):
    path = os.path.join(work, "texts.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        w.writerows([t] for t in texts)
    cmd = [binary, "embed", path, "--text", "text", "--out", os.path.join(work, "out.npy"), "--no-cache",
           "--device", device]
    if model:
        cmd += ["--model", model]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    seconds = float(re.search(r" in ([0-9.]+)s", out).group(1))
    return len(texts) / seconds


def torch_rate(model, texts, batch):
    model.encode(texts[:batch], batch_size=batch)
    t = time.perf_counter()
    model.encode(texts, batch_size=batch)
    return len(texts) / (time.perf_counter() - t)


def segmix_profile(binary, model, device, shape):
    cmd = [binary, "bench", "--embed", shape, "--reps", "5", "--device", device, "-q"]
    if model:
        cmd += ["--model", model]
    import json

    r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["embed"]
    line = (f"  encoder {shape}: {r['sentences_per_second']:.0f} texts/s, {r['tflops']:.2f} TFLOP/s, "
            f"{r['seconds_per_batch'] * 1e3:.2f} ms per batch")
    if r.get("stages"):
        total = sum(r["stages"].values())
        parts = ", ".join(f"{k} {v * 1e3:.2f} ms ({100 * v / total:.0f}%)"
                          for k, v in sorted(r["stages"].items(), key=lambda kv: -kv[1]))
        line += f"\n    device time: {parts}"
    if r.get("readback_seconds") is not None:
        line += f"\n    read-back of the batch's vectors: {r['readback_seconds'] * 1e3:.3f} ms"
    return line


def onnx_session(model_dir, work):
    import onnxruntime as ort
    import torch
    from transformers import AutoModel

    path = os.path.join(work, "minilm.onnx")
    if not os.path.exists(path):
        base = AutoModel.from_pretrained(model_dir).eval()

        class Wrapped(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, ids, mask, types):
                return self.m(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state

        ids = torch.ones((2, 8), dtype=torch.long)
        axes = {k: {0: "b", 1: "l"} for k in ["input_ids", "attention_mask", "token_type_ids", "hidden"]}
        torch.onnx.export(Wrapped(base), (ids, ids, torch.zeros_like(ids)), path, opset_version=17, dynamo=False,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["hidden"],
                          dynamic_axes=axes)
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count()
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def onnx_encode(session, tokenizer, texts, max_length=256, batch=64):
    import numpy as np

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="np")
        hidden = session.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                                    "attention_mask": enc["attention_mask"].astype(np.int64),
                                    "token_type_ids": enc["token_type_ids"].astype(np.int64)})[0]
        m = enc["attention_mask"][..., None].astype(np.float32)
        v = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        out[idx] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return out


def onnx_rate(session, tokenizer, texts):
    onnx_encode(session, tokenizer, texts[:64])
    t = time.perf_counter()
    onnx_encode(session, tokenizer, texts)
    return len(texts) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.expanduser(os.environ.get("SEGMIX_CACHE", "~/.cache/segmix")) + "/models/all-MiniLM-L6-v2")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "segmix"))
    ap.add_argument("--work", default=os.path.join(ROOT, "bench_data"))
    ap.add_argument("--short", type=int, default=4096)
    ap.add_argument("--long", type=int, default=512)
    ap.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu",
                    help="segmix's --device; with gpu, sentence-transformers runs on CUDA when torch has it")
    ap.add_argument("--torch-batch", type=int, help="sentence-transformers batch size (64 on CPU, 256 on CUDA)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    import torch
    from sentence_transformers import SentenceTransformer

    rng = random.Random(1)
    torch_device = "cuda" if a.device == "gpu" and torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(a.model, device=torch_device)
    batch = a.torch_batch or (256 if torch_device == "cuda" else 64)
    print(f"segmix --device {a.device}; sentence-transformers on {torch_device}, batches of {batch}")
    tok = model.tokenizer
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {os.cpu_count()} cores")
    session = None
    try:
        import numpy as np

        session = onnx_session(a.model, a.work)
        probe = ["Claim 500 free gems today!", "Team up with friends and rebuild your guild together."]
        agree = (onnx_encode(session, tok, probe) * model.encode(probe, normalize_embeddings=True)).sum(1).min()
        if agree < 0.9999:
            sys.exit(f"onnxruntime vectors disagree with sentence-transformers (cosine {agree})")
        import onnxruntime

        print(f"onnxruntime {onnxruntime.__version__}, {os.cpu_count()} intra-op threads")
    except ImportError as e:
        print(f"onnxruntime not measured ({e}); pip install onnxruntime onnx")
    for name, texts in [("short", short_texts(a.short, rng)), ("long", long_texts(a.long, rng))]:
        mean_tokens = sum(len(tok(t)["input_ids"]) for t in texts[:512]) / min(512, len(texts))
        ours = segmix_rate(a.binary, texts, a.work, a.model, a.device)
        theirs = torch_rate(model, texts, batch)
        line = (f"{name:5}: {len(texts)} texts, {mean_tokens:.0f} tokens on average: segmix {ours:.0f} texts/s | "
                f"PyTorch {theirs:.0f} texts/s (ratio {ours / theirs:.2f})")
        if session is not None:
            ort_rate = onnx_rate(session, tok, texts)
            line += f" | onnxruntime {ort_rate:.0f} texts/s (ratio {ours / ort_rate:.2f})"
        print(line, flush=True)
    if a.device != "cpu":
        for shape in ["512x32", "128x128"]:
            print(segmix_profile(a.binary, a.model, a.device, shape), flush=True)


if __name__ == "__main__":
    main()
