"""Explanations as Python objects: ``clusters.json`` as dataclasses and DataFrames.

Classes are numbered from 0 here, as in ``labels_`` and ``predict``; ``number`` is the 1-based
class of the CLI's files and the report (``class 1`` is index 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Prototype:
    """A member row of the class nearest its mean."""

    row: int
    text: str
    distance: float
    posterior: float


@dataclass(frozen=True)
class ClassExplanation:
    """Everything the explanation says about one class."""

    index: int
    number: int
    size: int
    weight: float
    #: Member texts nearest the class mean (Euclidean, then Mahalanobis distance).
    prototypes: list[Prototype]
    prototypes_mahalanobis: list[Prototype]
    #: The decoder's keywords (what the embedding says): columns ``word``, ``score``.
    keywords: pd.DataFrame
    #: Log-odds contrast keywords (what the texts say): columns ``word``, ``score`` (z).
    contrast_keywords: pd.DataFrame
    #: Per categorical column: ``level``, ``share``, ``population``, ``lift``.
    categorical: dict[str, pd.DataFrame]
    #: Per categorical column: up to three over-represented levels.
    over_represented: dict[str, list[str]]
    #: One row per metric: ``mean``, ``sd``, ``overall_mean``, ``overall_sd``, ``z`` (original units).
    metrics: pd.DataFrame
    #: A prompt that asks an LLM to name the class.
    prompt: str
    label: str | None = None

    def __repr__(self) -> str:
        words = ", ".join(self.keywords["word"].head(5)) if len(self.keywords) else "—"
        return f"<class {self.index}: {self.size} rows, weight {self.weight:.3f}, keywords: {words}>"


@dataclass(frozen=True)
class Explanation:
    """Every class explained, how strongly each variable separates them, and their hierarchy."""

    classes: list[ClassExplanation]
    #: ``variable``, ``kind``, ``measure`` (Cramér's V or η²), ``power`` in [0, 1].
    power: pd.DataFrame
    #: The classes combined pairwise by entropy, first step first (0-based classes).
    hierarchy: pd.DataFrame
    #: ``clusters.json`` as a dict.
    raw: dict[str, Any] = field(repr=False)

    def __getitem__(self, index: int) -> ClassExplanation:
        return self.classes[index]

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    def summary(self) -> pd.DataFrame:
        """One row per class: size, weight, top keywords of both kinds, over-represented levels."""
        rows = []
        for c in self.classes:
            rows.append(
                {
                    "class": c.index,
                    "size": c.size,
                    "weight": c.weight,
                    "keywords": ", ".join(c.keywords["word"].head(5)),
                    "contrast_keywords": ", ".join(c.contrast_keywords["word"].head(5)),
                    "over_represented": "; ".join(f"{k}: {', '.join(v)}" for k, v in c.over_represented.items() if v),
                    "label": c.label,
                }
            )
        return pd.DataFrame(rows).set_index("class")

    def to_json(self) -> str:
        """``clusters.json``'s text."""
        return json.dumps(self.raw, indent=2, ensure_ascii=False)

    def __repr__(self) -> str:
        return f"<Explanation of {len(self.classes)} classes>\n{self.summary().to_string()}"


def _protos(items: list[dict]) -> list[Prototype]:
    return [Prototype(int(p["row"]), p["text"], float(p["distance"]), float(p["posterior"])) for p in items]


def _words(items: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(items, columns=["word", "score"])


def from_clusters_json(text: str) -> Explanation:
    raw = json.loads(text)
    classes = []
    for c in raw["classes"]:
        categorical = {
            name: pd.DataFrame(p["levels"], columns=["level", "share", "population", "lift"])
            for name, p in c.get("categorical", {}).items()
        }
        over = {name: list(p.get("over_represented", [])) for name, p in c.get("categorical", {}).items()}
        metrics = pd.DataFrame.from_dict(c.get("metrics", {}), orient="index")
        if len(metrics):
            metrics = metrics[["mean", "sd", "overall_mean", "overall_sd", "z"]]
        classes.append(
            ClassExplanation(
                index=c["class"] - 1,
                number=c["class"],
                size=c["size"],
                weight=c["weight"],
                prototypes=_protos(c.get("prototypes", [])),
                prototypes_mahalanobis=_protos(c.get("prototypes_mahalanobis", [])),
                keywords=_words(c.get("keywords", [])),
                contrast_keywords=_words(c.get("contrast_keywords", [])),
                categorical=categorical,
                over_represented=over,
                metrics=metrics,
                prompt=c.get("prompt", ""),
                label=c.get("label"),
            )
        )
    power = pd.DataFrame(raw.get("variables", []), columns=["variable", "kind", "measure", "power"])
    hierarchy = pd.DataFrame(raw.get("hierarchy", []))
    return Explanation(classes=classes, power=power, hierarchy=hierarchy, raw=raw)
