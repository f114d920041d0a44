"""``SegMix``: the joint latent class model as a scikit-learn estimator."""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _native
from ._explain import Explanation, from_clusters_json
from ._tables import Tabular, is_tabular, matrix_table, to_arrow


class SegmixWarning(UserWarning):
    """A warning about the data or the fit (few-valued columns, a K at the end of its range, ...)."""


def _k_range(k: Any) -> tuple[int, int]:
    """``k`` as an inclusive (K_min, K_max)."""
    bad = ValueError(
        f"k={k!r}: give one number of classes (4), a range (range(2, 9): K = 2..8), consecutive "
        "numbers ([2, 3, 4]) or a string ('2..8')"
    )
    if k is None:
        return (2, 8)
    if isinstance(k, (bool, np.bool_)):
        raise bad
    if isinstance(k, (int, np.integer)):
        return (int(k), int(k))
    if isinstance(k, str):
        lo, sep, hi = k.partition("..")
        try:
            return (int(lo), int(hi if sep else lo))
        except ValueError:
            raise bad from None
    if isinstance(k, range):
        if k.step != 1 or len(k) == 0:
            raise bad
        return (k.start, k.stop - 1)
    try:
        ks = sorted({int(v) for v in k})
    except (TypeError, ValueError):
        raise bad from None
    if not ks or ks != list(range(ks[0], ks[-1] + 1)):
        raise bad
    return (ks[0], ks[-1])


def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        raise TypeError(f"{what}={value!r}: give a column name or a list of column names") from None


def _warn(messages: Sequence[str]) -> None:
    for m in messages:
        warnings.warn(m, SegmixWarning, stacklevel=3)


def _floats(buf: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(buf, dtype=np.float64).reshape(shape)


class _Progress:
    """The ``progress`` parameter as the native module's callback: a tqdm bar over the sweep's
    restarts (``True``), the user's callable, or nothing."""

    def __init__(self, progress: Any):
        self.callback: Callable[[str, dict], Any] | None = None
        self.bar = None
        if progress is True or progress == "tqdm":
            try:
                from tqdm.auto import tqdm
            except ImportError:
                raise ImportError("progress=True shows a tqdm bar: pip install tqdm") from None
            self.tqdm = tqdm
            self.callback = self._bar
        elif callable(progress):
            self.callback = progress
        elif progress not in (None, False):
            raise TypeError(f"progress={progress!r}: give True (a tqdm bar), a callable(event, info), or None")

    def _bar(self, event: str, info: dict) -> None:
        if event == "embed":
            if info["total"] == 0:  # every text came from the cache
                return
            if self.bar is None or self.bar.desc != "embedding":
                self.close()
                self.bar = self.tqdm(total=info["total"], desc="embedding", unit="text", leave=False)
            self.bar.n = info["done"]
            self.bar.refresh()
        elif event == "sweep":
            self.close()
            self.bar = self.tqdm(total=info["total"], desc="fitting", unit="fit", leave=False)
        elif event == "run" and self.bar is not None:
            self.bar.set_postfix_str(f"K={info['k']} restart {info['restart']}/{info['n_init']}")
        elif event == "run_finished" and self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SegMix(ClusterMixin, BaseEstimator):
    """Latent segments of a table of categorical columns, a free-text column and numeric metrics.

    One joint latent class model is fitted by EM for every K of ``k`` (a multinomial per
    categorical column times a Gaussian over the PCA-reduced text embedding and the
    standardized metrics), and the K with the lowest ``criterion`` is kept; degenerate fits
    (a class on a spike) are never selected. The same engine as the ``segmix`` command: a model
    saved here predicts from the command and the reverse.

    Parameters
    ----------
    k : int, range, consecutive ints or "a..b", default None
        Numbers of classes to fit; None fits K = 2..8.
    cat, num, text : column names, default None
        Column roles: categorical columns, numeric columns (metrics), and one free-text column
        (embedded with the sentence transformer ``text_model``). They can also be given to
        ``fit``. Without any, a numeric matrix is modelled column by column, and a DataFrame's
        numeric columns are metrics and its category/bool columns categorical.
    log, log1p : column names, default None
        Numeric columns modelled as ln v (positive, multiplicative metrics) or ln(1 + v) (counts).
    covariance : {"full", "diag", "spherical", "tied"}, default "full"
    criterion : {"bic", "icl", "aic"}, default "bic"
    n_init : int, default 5
        Restarts per K run to convergence (the best of max(8, 4 n_init) screened starts).
    max_iter : int, default 300
    tol : float, default 1e-6
        Convergence tolerance on the per-row change of the log-likelihood.
    reg : float, default 1e-6
        Ridge added to every covariance diagonal, in standardized units.
    seed : int, default 0
        Fits on the CPU are bit-for-bit reproducible for a seed.
    device : {"auto", "cpu", "gpu"}, default "auto"
    text_model : str, default None
        The sentence transformer: a folder, "multilingual", "minilm" or a hub id; None:
        $SEGMIX_MODEL, else all-MiniLM-L6-v2.
    text_prefix : str, default None
        A prefix put before every text instead of the model's default prompt.
    pca_dims : int, default 32
        PCA components kept of the text embedding.
    cache : bool, default True
        Read and write the on-disk embedding cache.
    progress : bool or callable, default None
        True: a tqdm bar; a callable: ``progress(event, info)`` with events ``embed``, ``sweep``,
        ``run``, ``iteration``, ``run_finished`` and ``status``; None: quiet.

    Attributes
    ----------
    k_ : int
        The selected number of classes.
    labels_ : ndarray of shape (n_rows,)
        Most probable class of each fitted row (0-based).
    weights_, means_, covariances_ : ndarray
        Class weights, means and covariances over ``continuous_`` (standardized metrics and
        PCA text scores); ``covariances_`` is shaped as scikit-learn's GaussianMixture shapes it
        for ``covariance``.
    categorical_probabilities_ : dict of DataFrame
        Per categorical column, P(level | class), classes as rows.
    continuous_ : list of str
        The coordinates of ``means_``.
    loglik_, bic_, icl_, aic_, n_params_ : float, float, float, float, int
        The selected model's log-likelihood (on the data's own scale) and criteria.
    n_iter_, converged_ : int, bool
    selection_ : DataFrame
        Every restart of every K (``selection.csv``).
    criteria_ : DataFrame
        Per K: the best eligible fit's log-likelihood and criteria, restarts and degenerate ones.
    degenerate_ : dict
        Per K, how many restarts ended degenerate (never selected).
    n_features_in_, feature_names_in_
        The columns the model reads.
    """

    def __init__(
        self,
        k=None,
        *,
        cat=None,
        num=None,
        text=None,
        log=None,
        log1p=None,
        covariance="full",
        criterion="bic",
        n_init=5,
        max_iter=300,
        tol=1e-6,
        reg=1e-6,
        seed=0,
        device="auto",
        text_model=None,
        text_prefix=None,
        pca_dims=32,
        cache=True,
        progress=None,
    ):
        self.k = k
        self.cat = cat
        self.num = num
        self.text = text
        self.log = log
        self.log1p = log1p
        self.covariance = covariance
        self.criterion = criterion
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.reg = reg
        self.seed = seed
        self.device = device
        self.text_model = text_model
        self.text_prefix = text_prefix
        self.pca_dims = pca_dims
        self.cache = cache
        self.progress = progress

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        return tags

    # -- inputs -------------------------------------------------------------------------------

    def _table(self, X: Any, cat, num, text, *, fitting: bool) -> Tabular:
        """``X`` as an Arrow table of its role columns; sets the roles when ``fitting``."""
        cat = _names(cat if cat is not None else self.cat, "cat")
        num = _names(num if num is not None else self.num, "num")
        text = text if text is not None else self.text
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text={text!r}: give the name of one text column")
        if fitting:
            if not (cat or num or text):
                return self._infer(X)
            if not is_tabular(X):
                raise TypeError(
                    "cat=/num=/text= name columns: pass a pandas or Polars DataFrame, a pyarrow Table or "
                    f"another Arrow table, not {type(X).__name__}"
                )
            self._matrix = False
            self.cat_, self.num_, self.text_ = cat, num, text
            roles = cat + num + ([text] if text else [])
            self.n_features_in_ = len(roles)
            self.feature_names_in_ = np.asarray(roles, dtype=object)
            return to_arrow(X, roles)
        check_is_fitted(self)
        roles = list(self.feature_names_in_) if hasattr(self, "feature_names_in_") else list(self.num_)
        if self._matrix:
            X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
            return matrix_table(X, self.num_)
        if not is_tabular(X):
            X = np.asarray(X)
            if X.ndim == 2 and X.shape[1] == len(roles) and not self.cat_ and not self.text_:
                return matrix_table(X.astype(np.float64), self.num_)
            raise TypeError(
                f"this model reads the columns {roles}: pass a DataFrame or Arrow table with them, "
                f"not {type(X).__name__}"
            )
        return to_arrow(X, roles)

    def _infer(self, X: Any) -> Tabular:
        """Roles without names: a numeric matrix, or a DataFrame whose dtypes say the roles."""
        if is_tabular(X) and not self._all_numeric(X):
            frame = X if type(X).__module__.split(".")[0] == "pandas" else None
            if frame is None:
                import pyarrow as pa

                frame = pa.table(X).to_pandas() if not isinstance(X, dict) else pd.DataFrame(X)
            cat, num = [], []
            for name in frame.columns:
                dt = frame[name].dtype
                if isinstance(dt, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dt):
                    cat.append(str(name))
                elif pd.api.types.is_numeric_dtype(dt):
                    num.append(str(name))
                else:
                    raise TypeError(
                        f"column {str(name)!r} holds {dt} values: name the roles, e.g. "
                        f"SegMix(text={str(name)!r}) for free text or cat=[{str(name)!r}] for a category"
                    )
            return self._table(frame, cat, num, None, fitting=True)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", ensure_min_samples=2)
        self._matrix = True
        names = [str(c) for c in getattr(self, "feature_names_in_", [f"x{j}" for j in range(X.shape[1])])]
        self.cat_, self.num_, self.text_ = [], names, None
        return matrix_table(X, names)

    @staticmethod
    def _all_numeric(X: Any) -> bool:
        mod = type(X).__module__.split(".")[0]
        if mod == "pandas" and hasattr(X, "dtypes"):
            return all(
                pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d) for d in X.dtypes
            )
        return False

    def _engine(self, embeddings: Any, progress: _Progress) -> dict:
        """The native calls' arguments shared by fitting and scoring: where to run, the
        embedder, precomputed vectors, progress."""
        return dict(
            device=str(self.device),
            text_model=self.text_model,
            text_prefix=self.text_prefix,
            no_cache=not self.cache,
            embeddings=self._embeddings(embeddings),
            progress=progress.callback,
        )

    def _em_args(self) -> dict:
        """The native fits' model arguments: the K range, the covariance type, the criterion and
        the EM settings."""
        return dict(
            k=_k_range(self.k),
            covariance=str(self.covariance),
            criterion=str(self.criterion),
            n_init=int(self.n_init),
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            reg=float(self.reg),
            seed=int(self.seed),
            pca_dims=int(self.pca_dims),
        )

    @staticmethod
    def _embeddings(embeddings: Any) -> tuple[bytes, int, int] | None:
        if embeddings is None:
            return None
        E = np.asarray(embeddings, dtype=np.float32)
        if E.ndim != 2:
            raise ValueError(f"embeddings: a 2-D array of one vector per row, not shape {E.shape}")
        return (np.ascontiguousarray(E).tobytes(), E.shape[0], E.shape[1])

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, X, y=None, *, cat=None, num=None, text=None, embeddings=None):
        """Fits every K and keeps the best; ``y`` is ignored. ``embeddings``: precomputed text
        vectors, one row per row of ``X`` (instead of the sentence transformer)."""
        _k_range(self.k)  # a bad k fails before the table is read
        table = self._table(X, cat, num, text, fitting=True)
        if self.text_ is None and embeddings is not None:
            raise ValueError("embeddings= gives the vectors of a text column: name it with text=")
        progress = _Progress(self.progress)
        try:
            fitted, said = _native.fit(
                table.stream,
                source=table.source,
                cat=self.cat_,
                num=self.num_,
                text=self.text_,
                log=_names(self.log, "log"),
                log1p=_names(self.log1p, "log1p"),
                **self._em_args(),
                **self._engine(embeddings, progress),
            )
        finally:
            progress.close()
        _warn(said)
        _warn(fitted.warnings())
        self._fitted = fitted
        self._set_model(fitted.model_json())
        resp, k = fitted.posteriors()
        self.posteriors_ = _floats(resp, (-1, k))
        self.labels_ = self.posteriors_.argmax(axis=1).astype(np.int64)
        self.selection_ = self._selection(json.loads(fitted.selection_json()))
        return self

    def _set_model(self, model_json: str) -> None:
        m = json.loads(model_json)
        self._model_json = model_json
        params, fit = m["params"], m["fit"]
        k, p = params["k"], params["p"]
        self.k_ = int(fit["k"])
        self.continuous_ = list(m["continuous"])
        self.weights_ = np.asarray(params["weights"], dtype=np.float64)
        self.means_ = np.asarray(params["means"], dtype=np.float64).reshape(k, p)
        full = np.asarray(params["covariances"], dtype=np.float64).reshape(k, p, p)
        self.covariances_ = {
            "full": full,
            "diag": np.diagonal(full, axis1=1, axis2=2).copy() if p else np.zeros((k, 0)),
            "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1) if p else np.zeros(k),
            "tied": full[0],
        }[params["cov_type"]]
        probs, at = {}, 0
        alpha = np.asarray(params["alpha"], dtype=np.float64).reshape(k, -1) if params["n_levels"] else None
        for col, n in zip(m["schema"]["categorical"], params["n_levels"]):
            probs[col["name"]] = pd.DataFrame(alpha[:, at : at + n], columns=col["levels"])
            at += n
        self.categorical_probabilities_ = probs
        self.loglik_ = float(fit["loglik"])
        crit = fit["criteria"]
        self.bic_, self.icl_, self.aic_ = float(crit["bic"]), float(crit["icl"]), float(crit["aic"])
        self.n_params_ = int(fit["n_params"])
        self.n_iter_ = int(fit["iterations"])
        self.converged_ = bool(fit["converged"])
        rows = []
        for s in fit.get("per_k", []):
            c = s.get("criteria") or {}
            rows.append(
                {
                    "k": s["k"],
                    "loglik": s["loglik"] if s.get("loglik") is not None else math.nan,
                    "bic": c.get("bic", math.nan),
                    "icl": c.get("icl", math.nan),
                    "aic": c.get("aic", math.nan),
                    "restarts": s.get("restarts", 0),
                    "degenerate": s.get("degenerate", 0),
                }
            )
        self.criteria_ = pd.DataFrame(rows).set_index("k") if rows else pd.DataFrame()
        self.degenerate_ = {int(r["k"]): int(r["degenerate"]) for r in rows}

    @staticmethod
    def _selection(runs: list[dict]) -> pd.DataFrame:
        rows = []
        for r in runs:
            row = {key: v for key, v in r.items() if key not in ("criteria", "trace")}
            row.update(r.get("criteria", {}))
            row["degenerate"] = "; ".join(r.get("degenerate", []) or [])
            row["empty_classes"] = list(r.get("empty_classes", []))
            rows.append(row)
        return pd.DataFrame(rows)

    def fit_predict(self, X, y=None, **fit_params):
        """Fits and returns each row's most probable class (0-based)."""
        return self.fit(X, y, **fit_params).labels_

    # -- scoring ------------------------------------------------------------------------------

    def _score(self, X, embeddings=None):
        check_is_fitted(self)
        table = self._table(X, None, None, None, fitting=False)
        progress = _Progress(self.progress)
        try:
            resp, k, loglik, expected, said = _native.predict(
                self._model_json,
                table.stream,
                source=table.source,
                **self._engine(embeddings, progress),
            )
        finally:
            progress.close()
        _warn(said)
        post = _floats(resp, (-1, k))
        return post, _floats(loglik, (-1,)), [(name, _floats(v, (-1,))) for name, v in expected]

    def predict_proba(self, X, embeddings=None):
        """Each row's class posteriors, shape (n_rows, k_)."""
        return self._score(X, embeddings)[0]

    def predict(self, X, embeddings=None):
        """Each row's most probable class (0-based)."""
        return self.predict_proba(X, embeddings).argmax(axis=1).astype(np.int64)

    def score_samples(self, X, embeddings=None):
        """Each row's log-likelihood under the model, on the data's own scale."""
        return self._score(X, embeddings)[1].copy()

    def score(self, X, y=None, embeddings=None):
        """Mean log-likelihood per row (as scikit-learn's GaussianMixture.score)."""
        return float(self.score_samples(X, embeddings).mean())

    def bic(self, X, embeddings=None):
        """BIC of the fitted model on ``X``: −2 ℓ(X) + n_params · ln n (lower is better)."""
        ll = self.score_samples(X, embeddings)
        return float(-2.0 * ll.sum() + self.n_params_ * math.log(len(ll)))

    def aic(self, X, embeddings=None):
        """AIC of the fitted model on ``X``: −2 ℓ(X) + 2 n_params."""
        return float(-2.0 * self.score_samples(X, embeddings).sum() + 2.0 * self.n_params_)

    def predict_metrics(self, X, embeddings=None) -> pd.DataFrame:
        """Each metric's expected value given the rest of the row (its categoricals, text and
        other metrics, never itself), in the metric's units: ``expected_<metric>`` columns."""
        _, _, expected = self._score(X, embeddings)
        return pd.DataFrame({name: values for name, values in expected})

    # -- explanations and files ---------------------------------------------------------------

    def _rows(self):
        check_is_fitted(self)
        fitted = getattr(self, "_fitted", None)
        if fitted is None:
            raise ValueError(
                "explanations need the rows the model was fitted on, and this model was loaded "
                "(from model.json or a pickle) without them; fit it again to explain it"
            )
        return fitted

    def explain(self, prototypes=5, keywords=10, min_df=3) -> Explanation:
        """Every class explained: member prototypes, keywords of two kinds, categorical and
        metric profiles, the variables' discriminative power, the class hierarchy, and a prompt
        per class for an LLM."""
        explained = getattr(self, "_explained", None)
        if getattr(self, "_fitted", None) is None and explained is not None:
            # Fitted on Ray: explained on the sample before the shards went (segmix.ray.fit's explain=).
            options, clusters = explained
            asked = dict(prototypes=prototypes, keywords=keywords, min_df=min_df)
            if asked != options:
                raise ValueError(
                    f"this model was fitted on Ray and explained with {options}; pass "
                    f"explain={asked} to segmix.ray.fit for another explanation"
                )
            return from_clusters_json(clusters)
        return from_clusters_json(
            self._rows().explain(prototypes=prototypes, keywords=keywords, min_df=min_df, seed=int(self.seed))
        )

    def report(self, path, prototypes=5, keywords=10, min_df=3, tsne=False):
        """Writes the folder ``segmix fit --out`` writes (model.json, assignments.csv,
        selection.csv, clusters.json, report.html, report.md) to ``path``; returns the path of
        report.html."""
        said = self._rows().report(
            os.fspath(path), prototypes=prototypes, keywords=keywords, min_df=min_df, tsne=tsne, seed=int(self.seed)
        )
        _warn(said)
        return os.path.join(os.fspath(path), "report.html")

    def save(self, path) -> None:
        """Writes the model as ``model.json`` (the command's format: ``segmix predict`` reads it)."""
        check_is_fitted(self)
        _native.write_atomic(os.fspath(path), self._model_json)

    @classmethod
    def load(cls, path) -> "SegMix":
        """A fitted estimator from a ``model.json`` written by ``save`` or ``segmix fit``; it
        predicts and scores, and explains only after a new fit."""
        with open(path, encoding="utf-8") as f:
            text = f.read()
        _native.check_model(os.fspath(path), text)
        m = json.loads(text)
        schema, fit = m["schema"], m["fit"]
        numeric = schema["numeric"]
        est = cls(
            k=range(fit["k_range"][0], fit["k_range"][1] + 1),
            cat=[c["name"] for c in schema["categorical"]] or None,
            num=[c["name"] for c in numeric] or None,
            text=(schema.get("text") or {}).get("column"),
            log=[c["name"] for c in numeric if c.get("transform") == "log"] or None,
            log1p=[c["name"] for c in numeric if c.get("transform") == "log1p"] or None,
            covariance=m["params"]["cov_type"],
            criterion=fit["criterion"],
            n_init=fit["n_init"],
            seed=fit["seed"],
        )
        est.cat_ = [c["name"] for c in schema["categorical"]]
        est.num_ = [c["name"] for c in numeric]
        est.text_ = (schema.get("text") or {}).get("column")
        roles = est.cat_ + est.num_ + ([est.text_] if est.text_ else [])
        est._matrix = False
        est.n_features_in_ = len(roles)
        est.feature_names_in_ = np.asarray(roles, dtype=object)
        est._set_model(text)
        return est

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_fitted", None)
        return state
