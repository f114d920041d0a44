#!/usr/bin/env python3
"""Reference sentence vectors for the embedder parity test, from the PyTorch implementation.

Computes all-MiniLM-L6-v2 vectors with sentence-transformers (normalize_embeddings=True, the
model's own max_seq_length of 256) for a fixed list of sentences and writes
tests/fixtures/minilm_reference.json. Run once; the output is checked in.

    pip install sentence-transformers
    python3 scripts/make_embedding_fixture.py --model ~/.cache/segmix/models/all-MiniLM-L6-v2
"""

import argparse
import hashlib
import json
import os

SENTENCES = [
    "Claim 500 free gems today!",
    "Log in now and grab your daily reward.",
    "Remember the classic RPG you grew up with?",
    "Stunning next-gen graphics in the palm of your hand.",
    "Climb the ranked ladder and prove you're the best.",
    "a",
    "OK",
    "Free!!! Free!!! Free!!!",
    "What's new in version 2.3.1? Bug fixes, a new guild hall & 3 heroes.",
    "(Limited offer) 50% off -- ends 12/31 at 23:59 UTC; terms apply.",
    "Café, naïve résumé: déjà vu at the Übermensch boutique.",
    "지금 바로 다운로드하고 무료 보석을 받으세요!",
    "今すぐダウンロードして、無料の宝石を手に入れよう！",
    "立即下载，领取免费宝石。",
    "Играй с друзьями и собирай награды каждый день.",
    "🔥 New season is LIVE 🎮 — join the arena now! 🏆",
    "email me at player.one@example.com or visit https://example.com/game?ref=ad_42",
    "The quick brown fox jumps over the lazy dog.",
    "Team up with friends and rebuild your guild together. Chat, trade and explore with players who never left.",
    "Experience the most beautiful open world ever made for phones. Explore a vast seamless world with dynamic "
    "weather, hand-crafted cutscenes and motion-captured heroes that bring the story to life.",
    "   leading and trailing spaces   ",
    "UPPERCASE AND lowercase AND MiXeD CaSe",
    "numbers 1 22 333 4444 55555 666666 7777777",
    # Longer than the 256-token limit: checks truncation matches.
    " ".join(["Every victory raises your rank and your reputation in the global arena."] * 30),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="all-MiniLM-L6-v2 folder")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "minilm_reference.json"))
    a = ap.parse_args()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(a.model, device="cpu")
    vectors = model.encode(SENTENCES, batch_size=8, normalize_embeddings=True)
    with open(os.path.join(a.model, "model.safetensors"), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    import sentence_transformers
    import torch

    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "sha256": sha,
        "made_with": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "vectors": [[float(f"{v:.8g}") for v in row] for row in vectors],
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(f"wrote {len(SENTENCES)} reference vectors to {a.out}")


if __name__ == "__main__":
    main()
