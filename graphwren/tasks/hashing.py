"""Which bucket a key goes to: a hash equal for equal keys, the same in every process.

Keys that compare equal must land in the same bucket on every worker, or a
reduction splits one group in two. Python's numeric hash is the model: it is
defined by sys.hash_info, equal across int/float/Decimal/Fraction/complex and
numpy scalars, and not salted per process. str/bytes/datetime hashes are
salted, so those get a hash of their own; NaN's hash is its id (3.10+), so
every NaN gets one fixed value (NaN != NaN: any fixed bucket is right).
"""
from __future__ import annotations

import datetime
import numbers
import pickle
import sys
import zlib
from typing import Any


# -- hashing keys to buckets ---------------------------------------------------
# Keys that compare equal must land in the same bucket on every worker, or a
# reduction splits one group in two. Python's numeric hash is the model: it is
# defined by sys.hash_info, equal across int/float/Decimal/Fraction/complex and
# numpy scalars, and not salted per process. str/bytes/datetime hashes are
# salted, so those get a hash of their own; NaN's hash is its id (3.10+), so
# every NaN gets one fixed value (NaN != NaN: any fixed bucket is right).
_MASK = 0xFFFFFFFF


_NAN = 0  # sys.hash_info.nan, the value NaN hashed to before 3.10


_US_PER_DAY = 86_400_000_000


def _fold(h: int) -> int:
    # Fold the high bits in (hash(0.5) == 2**60, whose low 32 bits are all zero) by
    # adding, not xor-ing: xor with a negative hash's sign bits would map -n onto n-1.
    return (h + (h >> 32)) & _MASK


def portable_hash(key: Any) -> int:
    """A 32-bit hash, equal for keys that compare equal, and the same in every process."""
    t = type(key)
    if t is str:
        return zlib.crc32(key.encode("utf-8", "surrogatepass"))
    if t is int:
        if 0 <= key <= 0xFFFFFFFF:
            return key  # == hash(key) for these: no call on the hot path
        return _fold(hash(key))
    if t is float:
        if key != key:
            return _NAN
        h = hash(key)
        return (h + (h >> 32)) & 0xFFFFFFFF  # _fold, inlined
    if t is bytes:
        return zlib.crc32(key)
    if t is tuple:
        h = 0x345678
        for item in key:
            h = ((h * 1000003) ^ portable_hash(item)) & 0xFFFFFFFFFFFF
        return h & 0xFFFFFFFF
    if key is None:
        return 0
    if t is bool:
        return int(key)
    return _other_hash(key)


def _other_hash(key: Any) -> int:
    """The slow path: subclasses, other numbers, numpy scalars, sets, dates, the rest."""
    if isinstance(key, str):  # np.str_, StrEnum, other str subclasses equal to their text
        return zlib.crc32(str.encode(key, "utf-8", "surrogatepass"))
    if isinstance(key, (bytes, memoryview)):
        hash(key)  # a writable memoryview cannot be a key: raise what a dict would
        return zlib.crc32(key)
    if isinstance(key, tuple):  # namedtuples equal plain tuples
        return portable_hash(tuple(key))
    if isinstance(key, frozenset):  # order-free, like frozenset's own hash
        return sum(portable_hash(k) for k in key) & _MASK
    if isinstance(key, (numbers.Number, datetime.timedelta)) or _is_numpy_bool(key):
        h = hash(key)  # unsalted for numbers (and timedelta: a tuple of ints); TypeError for sNaN
        return _fold(h) if key == key else _NAN
    if isinstance(key, (datetime.date, datetime.time)):
        return _time_hash(key)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(key, np.datetime64):
        return _datetime64_hash(key, np)
    hash(key)  # unhashable keys (lists, dicts, sets) raise TypeError here, not hash by pickle
    try:
        return zlib.crc32(pickle.dumps(key, protocol=5))
    except Exception:  # noqa: BLE001
        return hash(key) & _MASK


def _is_numpy_bool(key: Any) -> bool:
    np = sys.modules.get("numpy")  # a numpy scalar means numpy is imported already
    return np is not None and isinstance(key, np.bool_)


def _time_hash(key) -> int:
    """date, datetime (aware ones by their UTC instant, as == compares them) and time.

    A date hashes as its midnight: np.datetime64 days equal both, though they differ.
    """
    if isinstance(key, datetime.date):
        us = key.toordinal() * _US_PER_DAY
        if not isinstance(key, datetime.datetime):
            return _fold(hash(us))
    else:
        us = 0
    us += (key.hour * 3600 + key.minute * 60 + key.second) * 1_000_000 + key.microsecond
    offset = key.utcoffset()
    if offset is not None:
        us -= offset // datetime.timedelta(microseconds=1)
    return _fold(hash(us))


def _datetime64_hash(key, np) -> int:
    """np.datetime64 equals the date/datetime it stands for; hash it as that when it can."""
    if key != key:  # NaT
        return _NAN
    as_us = key.astype("datetime64[us]")
    if as_us == key:
        value = as_us.item()  # a datetime, or an int outside datetime's years
        if isinstance(value, (datetime.date, datetime.time)):
            return _time_hash(value)
    return _fold(hash(key.astype("datetime64[ns]").astype(np.int64).item()))


def check_hashable(key: Any, record: Any, op: str) -> None:
    try:
        hash(key)
    except TypeError:
        raise TypeError(f"{op}: the key {key!r} of record {record!r} is unhashable "
                        f"({type(key).__name__}); return a tuple/str/int key instead") from None
