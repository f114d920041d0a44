#!/usr/bin/env python3
"""Tiny random sentence transformers of each encoder architecture segmix runs besides BERT, and
their reference vectors from sentence-transformers (PyTorch, CPU), for the parity tests.

For each of RoBERTa, XLM-RoBERTa and DistilBERT (and two BERTs with a Dense head after pooling,
shaped like LaBSE's and distiluse's) it builds a random-weight model (hidden 32,
2 layers, 4 heads, seeded) with a small WordPiece tokenizer (RoBERTa-style special tokens where
the architecture has them: <s> <pad> </s>, padding index 1, so position ids start at 2), saves
it as a sentence-transformers folder (Transformer -> mean Pooling -> Normalize) under
tests/fixtures/encoders/<name>/, and writes the normalized vectors of a fixed list of texts to
tests/fixtures/encoders/<name>/reference.json. Run once; the output is checked in.

    pip install torch transformers sentence-transformers
    python3 scripts/make_encoder_fixtures.py [NAME ...]   (only those fixtures)
"""

import json
import os
import sys

import torch
from sentence_transformers import SentenceTransformer, models
from tokenizers import Tokenizer, models as tmodels, pre_tokenizers, processors
from transformers import (BertConfig, BertModel, DistilBertConfig, DistilBertModel, PreTrainedTokenizerFast, RobertaConfig, RobertaModel,
                          XLMRobertaConfig, XLMRobertaModel)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "encoders")
WORDS = ("claim free gems now daily reward login play with old friends guild today stunning 4k graphics "
         "remember classic rpg climb ranked ladder prove best team up chat trade explore world weather heroes "
         "story life new season live join arena limited offer ends soon").split()
TEXTS = [
    "claim free gems now",
    "a",
    "play with old friends in the guild today",
    "stunning 4k graphics",
    "remember the classic rpg",
    "climb the ranked ladder and prove you are the best",
    "new season live join the arena now limited offer ends soon daily reward login",
    "unknownword another unknownword",
]


def tokenizer(bos, eos, pad, unk, extra):
    specials = [bos, pad, eos, unk] + extra
    vocab = {t: i for i, t in enumerate(specials + sorted(set(WORDS)))}
    tok = Tokenizer(tmodels.WordPiece(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A {eos}", special_tokens=[
        (bos, vocab[bos]), (eos, vocab[eos])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk,
                                   cls_token=bos, sep_token=eos, model_max_length=64)
    return fast, len(vocab), vocab[pad]


def build(name, make, pooling_mode="mean", dense=None, normalize=True):
    torch.manual_seed(sum(map(ord, name)))
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    if name == "distilbert" or name.startswith("bert"):
        fast, vocab, pad = tokenizer("[CLS]", "[SEP]", "[PAD]", "[UNK]", ["[MASK]"])
    else:
        fast, vocab, pad = tokenizer("<s>", "</s>", "<pad>", "<unk>", ["<mask>"])
    model = make(vocab, pad)
    model.eval()
    hf = os.path.join(out, "hf")
    model.save_pretrained(hf, safe_serialization=True)
    fast.save_pretrained(hf)
    transformer = models.Transformer(hf, max_seq_length=60)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode=pooling_mode)
    modules = [transformer, pooling]
    if dense:
        # A Dense head as LaBSE's and distiluse's: Linear + Tanh after pooling.
        modules.append(models.Dense(transformer.get_word_embedding_dimension(), dense,
                                    activation_function=torch.nn.Tanh()))
    if normalize:
        modules.append(models.Normalize())
    st = SentenceTransformer(modules=modules, device="cpu")
    st.save(out)
    # The folder segmix reads: the saved sentence-transformers model; drop the intermediate copy.
    for f in os.listdir(hf):
        os.remove(os.path.join(hf, f))
    os.rmdir(hf)
    os.remove(os.path.join(out, "README.md"))  # a generated model card
    st = SentenceTransformer(out, device="cpu")
    vectors = st.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    ids = [fast(t)["input_ids"] for t in TEXTS]
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"model_type": model.config.model_type, "texts": TEXTS, "input_ids": ids,
                   "vectors": [[round(float(v), 7) for v in row] for row in vectors]}, f)
    print(name, model.config.model_type, "pad", pad, "dim", vectors.shape)


def main():
    only = set(sys.argv[1:])
    if only:
        global build
        full = build
        build = lambda name, *a, **k: full(name, *a, **k) if name in only else None  # noqa: E731
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                  max_position_embeddings=66, hidden_act="gelu")
    build("roberta", lambda v, pad: RobertaModel(RobertaConfig(vocab_size=v, pad_token_id=pad, type_vocab_size=1,
                                                               bos_token_id=0, eos_token_id=2, **common),
                                                 add_pooling_layer=False))
    build("xlm-roberta", lambda v, pad: XLMRobertaModel(XLMRobertaConfig(vocab_size=v, pad_token_id=pad,
                                                                         type_vocab_size=1, bos_token_id=0,
                                                                         eos_token_id=2, **common),
                                                        add_pooling_layer=False))
    build("distilbert", lambda v, pad: DistilBertModel(DistilBertConfig(vocab_size=v, pad_token_id=pad, dim=32,
                                                                        n_layers=2, n_heads=4, hidden_dim=48,
                                                                        max_position_embeddings=64,
                                                                        activation="gelu")))
    # Dense heads: LaBSE's shape (CLS pooling, Dense + Tanh, Normalize) and distiluse's (mean
    # pooling, Dense + Tanh, no Normalize: segmix normalizes, so the directions are compared).
    bert = lambda v, pad: BertModel(BertConfig(vocab_size=v, pad_token_id=pad, **common),  # noqa: E731
                                    add_pooling_layer=False)
    build("bert-dense-cls", bert, pooling_mode="cls", dense=24)
    build("bert-dense-mean", bert, pooling_mode="mean", dense=24, normalize=False)


if __name__ == "__main__":
    main()
