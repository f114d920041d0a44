"""Tables in: pandas and Polars DataFrames, pyarrow tables, anything with the Arrow C stream
interface, and numpy arrays, handed to the native module as Arrow streams.

Only the columns a fit or a prediction reads cross over. pyarrow tables, Polars frames and other
Arrow producers pass their buffers without a copy; a pandas column is converted by pyarrow
(numeric columns without a copy where pandas allows it). Nulls, ``NaN``, ``None`` and ``pd.NA``
are all missing values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyarrow as pa


@dataclass
class Tabular:
    """A table ready for the native module: an Arrow stream producer and a name for messages."""

    stream: Any
    source: str
    columns: list[str]


def _module(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def is_tabular(X: Any) -> bool:
    """Whether ``X`` is a table with named columns (not a plain matrix)."""
    if _module(X) == "scipy":
        # Sparse matrices (a DOK matrix is a dict) go to scikit-learn's validation, which refuses them.
        return False
    return (
        _module(X) in ("pandas", "polars")
        and hasattr(X, "columns")
        or isinstance(X, (pa.Table, pa.RecordBatch, pa.RecordBatchReader, dict))
        or hasattr(X, "__arrow_c_stream__")
        or hasattr(X, "__arrow_c_array__")
    )


def column_names(X: Any) -> list[str]:
    """The column names of a table."""
    if isinstance(X, dict):
        return [str(c) for c in X]
    if _module(X) == "pandas":
        return [str(c) for c in X.columns]
    if _module(X) == "polars":
        return list(X.columns)
    if isinstance(X, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        return list(X.schema.names)
    return list(pa.table(X).schema.names)


def _pandas_column(df: Any, name: str) -> pa.Array | pa.ChunkedArray:
    matches = [c for c in df.columns if str(c) == name]
    if len(matches) > 1:
        raise ValueError(f"the DataFrame has {len(matches)} columns named {name!r}; rename the copies")
    col = df[matches[0]]
    try:
        return pa.array(col, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise TypeError(
            f"column {name!r} (dtype {col.dtype}) cannot be read: {e}. "
            "Give it one type: numbers for a metric, strings for a category or text"
        ) from None


def to_arrow(X: Any, wanted: Sequence[str]) -> Tabular:
    """``X`` as an Arrow stream producer holding the ``wanted`` columns it has (a prediction
    table may lack some: they are missing on every row)."""
    mod = _module(X)
    if isinstance(X, dict):
        import pandas as pd

        X = pd.DataFrame(X)
        mod = "pandas"
    if mod == "pandas" and hasattr(X, "columns"):
        names = {str(c) for c in X.columns}
        present = [c for c in wanted if c in names]
        arrays = [_pandas_column(X, c) for c in present]
        table = pa.table(dict(zip(present, arrays))) if present else pa.table({"__empty__": pa.nulls(len(X))})
        return Tabular(table, "<pandas DataFrame>", present)
    if mod == "polars" and hasattr(X, "columns"):
        present = [c for c in wanted if c in X.columns]
        # Polars hands its buffers over through the C stream interface, without a copy.
        return Tabular(X.select(present) if present else X, "<polars DataFrame>", present)
    if isinstance(X, (pa.Table, pa.RecordBatch)):
        present = [c for c in wanted if c in X.schema.names]
        return Tabular(X.select(present) if present else X, f"<pyarrow {type(X).__name__}>", present)
    if hasattr(X, "__arrow_c_stream__") or hasattr(X, "__arrow_c_array__"):
        table = pa.table(X) if not hasattr(X, "__arrow_c_stream__") else X
        names = column_names(table)
        present = [c for c in wanted if c in names]
        return Tabular(table, f"<{type(X).__name__}>", present)
    raise TypeError(
        f"cannot read a table from {type(X).__name__}: pass a pandas or Polars DataFrame, a pyarrow Table, "
        "an object with the Arrow C stream interface, or a 2-D numeric array"
    )


def matrix_table(X: np.ndarray, names: Sequence[str]) -> Tabular:
    """A validated numeric matrix (float64, NaN missing) as an Arrow table, one column each."""
    F = np.asfortranarray(X, dtype=np.float64)
    columns = {name: pa.array(F[:, j], from_pandas=False) for j, name in enumerate(names)}
    return Tabular(pa.table(columns), "<array>", list(names))
