"""read_parquet's splits from sizes: row groups packed into splits, big files cut by row-group ranges.

A row group is the smallest unit pyarrow reads, so it is the unit here: each
weighs the bytes it decodes to (its column chunks' uncompressed sizes, of the
projected columns only), and splits take row groups, file after file, up to
the same target read_text uses (``sizing.split_target``), each file counting
``sizing.OPEN_COST`` once, where it starts (as read_text's blocks of a big
file do: charging every continuation would cut a big file into splits of a
row group or two when the target is near the open cost). Many small files share a
split; a file with many row groups spreads over several; a row group over the
target is a split of its own. A split never mixes files of different schemas
(its table would need one). ``npartitions=`` cuts the row groups into that many
contiguous splits of about equal bytes instead.

Sizes come from the footers, read at plan time (in parallel, a ranged read of
each file's end). Over ``tables.MAX_PLAN_FOOTERS`` files, planning reads a
sample of footers for the ratio of decoded to stored bytes and packs by the
listing's sizes: big files are cut into byte ranges, and each task reads its
files' footers and takes the row groups whose middle lies in its ranges
(Spark's rule), so the ranges of a file read each row group once.
"""
from __future__ import annotations

import dataclasses

from ..logical import offline
from ..tasks.tables import BYTES, ROWS, row_group_bytes
from . import sizing
from .explain import human_bytes


@dataclasses.dataclass
class ParquetSplits:
    """The splits of one read_parquet and what explain() says of them."""

    splits: list[list[tuple]]   # pieces (store URL, key, size, kind, lo, hi): see tasks.tables.ROWS/BYTES
    label: str
    task_bytes: int             # decoded bytes of the largest split
    total_bytes: int            # decoded bytes of all splits

    def source_gets(self, whole_file: bool) -> dict[str, int]:
        """{store: GETs} the tasks make (``tasks.tables.ReadParquetSplit``): one for a whole file read with
        every column (``whole_file``), else about three a piece: the footer, and pyarrow's coalesced
        ranged reads of the column chunks (one or more)."""
        gets: dict[str, int] = {}
        for split in self.splits:
            for store_url, _key, size, kind, lo, hi in split:
                if size == 0:
                    continue
                where = store_url.split("?", 1)[0]
                whole = whole_file and kind == ROWS and lo == 0 and hi is None
                gets[where] = gets.get(where, 0) + (1 if whole else 3)
        return gets


# -- packing: pure functions over weights, so the property tests can drive them --------------------
def pack(weights: list[list[int]], target: int, schemas: list | None = None) -> list[list[tuple[int, int, int]]]:
    """Greedy packing of row groups into splits up to ``target``: each split a list of (file, lo, hi).

    ``weights[f][g]`` is row group g of file f; a file counts OPEN_COST once,
    with its first row group; a split closes before a file whose schema
    (``schemas[f]``) differs from the split's.
    """
    splits: list[list[tuple[int, int, int]]] = []
    current: list[tuple[int, int, int]] = []
    filled, schema = 0, None
    for f, ws in enumerate(weights):
        if not ws:
            continue
        if current and schemas is not None and schemas[f] != schema:
            splits.append(current)
            current, filled = [], 0
        schema = None if schemas is None else schemas[f]
        for g, w in enumerate(ws):
            cost = w + (sizing.OPEN_COST if g == 0 else 0)
            if current and filled + cost > target:
                splits.append(current)
                current, filled = [], 0
            if current and current[-1][0] == f:
                current[-1] = (f, current[-1][1], g + 1)
            else:
                current.append((f, g, g + 1))
            filled += cost
    if current:
        splits.append(current)
    return splits


def balanced(units: list[tuple[int, int, int]], weights: list[int], n: int) -> list[list[tuple[int, int, int]]]:
    """``units`` (file, lo, hi) in order cut into exactly ``n`` contiguous splits of about equal weight.

    Each unit goes to the split holding its weighted middle, kept so that no
    split is empty while units remain for it; with fewer units than ``n``
    the last splits are empty. Adjacent units of one file in a split merge.
    """
    out: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    total = sum(w + 1 for w in weights)   # +1: units of no bytes still spread
    u = len(units)
    cum, prev = 0, -1
    for i, (unit, w) in enumerate(zip(units, weights)):
        if u <= n:
            k = i
        else:
            middle = int(n * (cum + (w + 1) / 2) / total)
            k = min(max(middle, prev, n - (u - i)), prev + 1, n - 1)
        split = out[k]
        if split and split[-1][0] == unit[0] and split[-1][2] == unit[1]:
            split[-1] = (unit[0], split[-1][1], unit[2])
        else:
            split.append(unit)
        cum, prev = cum + w + 1, k
    return out


# -- the plan for one read_parquet ----------------------------------------------------------------
def plan(expr, settings: dict) -> ParquetSplits | None:
    """The splits of a ReadParquet node, or None while explain() may not read what they need."""
    skip = offline.skips(expr.urlpath)
    if skip and "files" not in expr.__dict__:
        return None
    files = expr.files
    sized = "footers" in expr.__dict__ or ("listing_model" in expr.__dict__ and not expr.footers_at_plan)
    if skip and not sized:   # a compute() before has listed the files but not read what sizes them
        return None
    if expr.footers_at_plan:
        return _from_footers(expr, files, settings)
    return _from_listing(expr, files, settings)


def _from_footers(expr, files: list[tuple], settings: dict) -> ParquetSplits:
    footers = expr.footers
    weights = [row_group_bytes(m, expr.columns) for m in footers]
    total = sum(map(sum, weights))
    if expr.nparts is not None:
        units = [(f, g, g + 1) for f, ws in enumerate(weights) for g in range(len(ws))]
        groups = balanced(units, [w for ws in weights for w in ws], expr.nparts)
    else:
        keys = [_schema_key(m, expr.columns) for m in footers]
        groups = pack(weights, sizing.split_target(total, len(files), settings), keys)
    # An empty split still reads one file's empty selection: its table keeps the schema.
    empty = next((f for f, m in enumerate(footers) if m is not None), 0)
    groups = [g or [(empty, 0, 0)] for g in groups] or [[(empty, 0, 0)]]
    nrg = [0 if m is None else m.num_row_groups for m in footers]
    splits = [[_rows_piece(files[f], lo, hi, nrg[f]) for f, lo, hi in g] for g in groups]
    sizes = [sum(sum(weights[f][lo:hi]) for f, lo, hi in g) for g in groups]
    how = _how(len(files), splits, expr.nparts, total, all(len(s) == 1 and s[0][5] is None for s in splits))
    rgs = sum(nrg)
    label = (f"read_parquet({_files(files)}, {rgs:,} row group{'s' if rgs != 1 else ''} {how})")
    return ParquetSplits(splits, label, max(sizes, default=0), total)


def _schema_key(footer, columns) -> tuple | None:
    """What the table read from a file looks like (names and types of the columns read): splits never mix two."""
    if footer is None:
        return None
    schema = footer.schema.to_arrow_schema()
    fields = [schema.field(c) for c in columns if c in schema.names] if columns else list(schema)
    return tuple((f.name, str(f.type)) for f in fields)


def _rows_piece(file: tuple, lo: int, hi: int, nrg: int) -> tuple:
    store_url, key, size = file
    return (store_url, key, size, ROWS, lo, None if lo == 0 and hi == nrg else hi)


def _from_listing(expr, files: list[tuple], settings: dict) -> ParquetSplits:
    """Too many files to read every footer: pack by the listing's sizes, tasks read their footers.

    Packing runs on each file's estimated decoded bytes (``ReadParquet.estimated_bytes``), the same unit
    as with footers; a piece cut from a big file maps back to stored bytes in proportion.
    """
    est = [expr.estimated_bytes(size) for _, _, size in files]
    total = sum(est)
    if expr.nparts is not None:
        per = -(-expr.nparts // len(files))   # with fewer files than splits, cut each into byte ranges
        units, weights = [], []
        for f, (_, _, size) in enumerate(files):
            step = max(1, -(-size // per))
            for start in range(0, max(size, 1), step):
                end = min(start + step, size)
                units.append((f, start, end))
                weights.append(est[f] * (end - start) // size if size else 0)
        groups = balanced(units, weights, expr.nparts)
        sizes = [sum(est[f] * (hi - lo) // files[f][2] for f, lo, hi in g if files[f][2]) for g in groups]
        splits = [[_stored_piece(files[f], lo, hi) for f, lo, hi in g] for g in groups]
    else:
        scaled = [(str(f), "", e, None) for f, e in enumerate(est)]   # pack_files on decoded bytes
        target = sizing.split_target(total, len(files), settings)
        groups = [[(int(p[0]), p[2], p[3]) for p in split] for split in sizing.pack_files(scaled, target)]
        sizes = [sum(hi - lo for _, lo, hi in g) for g in groups]
        splits = [[_stored_piece(files[f], *_to_stored(lo, hi, est[f], files[f][2])) for f, lo, hi in g]
                  for g in groups]
    # An empty split reads the first file's footer and no row group (rows 0..0): a table of its schema.
    splits = [split or [(*files[0], ROWS, 0, 0)] for split in splits]
    how = _how(len(files), splits, expr.nparts, total, all(len(s) == 1 and s[0][5] is None for s in splits))
    return ParquetSplits(splits, f"read_parquet({_files(files)}, footers read by the tasks, {how})",
                         max(sizes, default=0), total)


def _to_stored(lo: int, hi: int, est: int, size: int) -> tuple[int, int]:
    """Decoded bytes [lo, hi) of a file estimated at ``est`` as stored bytes, in proportion (ends kept)."""
    if est <= 0:
        return 0, size
    return (0 if lo == 0 else size * lo // est), (size if hi >= est else size * hi // est)


def _stored_piece(file: tuple, start: int, end: int) -> tuple:
    """The piece of ``file`` of stored bytes [start, end): the whole file, or a byte range (footer read by the task)."""
    store_url, key, size = file
    if start == 0 and end >= size:
        return (store_url, key, size, ROWS, 0, None)
    return (store_url, key, size, BYTES, start, end)


def _files(files: list[tuple]) -> str:
    n = len(files)
    return f"{n:,} file{'s' if n != 1 else ''}, {human_bytes(sum(f[2] for f in files))}"


def _how(nfiles: int, splits: list, nparts: int | None, total: int, one_per_file: bool) -> str:
    k = len(splits)
    each = f"of ~{human_bytes(total / k)} decoded"
    if nparts is not None:
        return f"in {k:,} split{'s' if k != 1 else ''} (npartitions={nparts}) {each}"
    if k == nfiles and one_per_file:
        return "one split per file" if k > 1 else "one split"
    if k < nfiles:
        return f"packed into {k:,} split{'s' if k != 1 else ''} {each}"
    return f"in {k:,} splits {each}"


def unlisted(expr) -> tuple[int, str]:
    """(split count, label) for explain() over remote files it did not list or size."""
    paths = offline.paths_of(expr.urlpath)
    globbed = any(map(offline.has_glob, paths))
    what = "? files" if globbed else f"{len(paths)} file{'s' if len(paths) != 1 else ''}"
    n = expr.nparts if expr.nparts is not None else offline.UNKNOWN
    return n, f"read_parquet({what}, size unknown)"
