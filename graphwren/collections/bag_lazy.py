"""Lazy results that are not bags: writes not run yet, and tables or frames built on the driver.

``to_textfiles(compute=False)`` (and to_parquet, to_avro) return a
``LazyWrite``; ``to_dataframe()`` a ``LazyFrame``; ``to_arrow()`` a
``LazyTable``. Each has compute() and explain(), like a Bag.
"""
from __future__ import annotations

import itertools

from ..tasks import bag_multi as tm

PANDAS_EXTRA = "to_dataframe needs pandas: pip install 'graphwren[dataframe]'"


def pandas():
    """The pandas module, or an ImportError naming the extra that installs it."""
    try:
        import pandas as module
    except ImportError:
        raise ImportError(PANDAS_EXTRA) from None
    return module


class _Lazy:
    """What the lazy results share: the bag they come from, explain()."""

    def __init__(self, bag):
        self.bag = bag

    def explain(self, **settings) -> str:
        return self.bag.explain(**settings)

    def __repr__(self) -> str:
        return f"graphwren.{type(self).__name__}<{self.bag.expr._describe()}>"


class LazyWrite(_Lazy):
    """A write not run yet: compute() writes the files and returns their URLs."""

    def __init__(self, bag, run, description: str):
        super().__init__(bag)
        self._run, self.description = run, description

    def compute(self, **settings) -> list[str]:
        return self._run(settings)


class LazyTable(_Lazy):
    """to_arrow(): compute() gives one pyarrow Table of every partition."""

    def compute(self, **settings):
        import pyarrow as pa
        parts, *_ = self.bag._run(settings, sink=tm.CollectTable(), description="to_arrow")
        tables = [p[0] for p in parts if p[0].num_columns]
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables, promote_options="default")


class LazyFrame(_Lazy):
    """to_dataframe(): compute() gives the pandas DataFrame of every partition, each indexed from 0 (dask)."""

    def __init__(self, bag, meta=None, columns=None):
        super().__init__(bag)
        self.meta, self.columns = meta, columns

    def compute(self, **settings):
        pd = pandas()
        parts, *_ = self.bag._run(settings, description="to_dataframe")
        meta = self._meta(pd, parts)
        cols, dtypes = list(meta.columns), meta.dtypes.to_dict()
        frames = [_frame(pd, part, cols, dtypes) for part in parts]
        return pd.concat(frames) if frames else meta

    def _meta(self, pd, parts):
        if self.meta is None:
            head = list(itertools.islice(itertools.chain.from_iterable(parts), 1))
            if not head:
                raise ValueError("to_dataframe: the bag is empty, so the columns cannot be inferred; "
                                 "pass meta= (a DataFrame, or {column: dtype})")
            return pd.DataFrame(head, columns=self.columns)
        if isinstance(self.meta, pd.DataFrame):
            return self.meta.iloc[:0]
        pairs = list(self.meta.items()) if isinstance(self.meta, dict) else list(self.meta)
        return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in pairs})


def _frame(pd, records: list, columns: list, dtypes: dict):
    """One partition as dask's to_dataframe makes it: pd.DataFrame(records, columns).astype(dtypes)."""
    return pd.DataFrame(list(records), columns=columns).astype(dtypes)
