"""portable_hash agrees with ==, and with itself in every process; wide bag ops group like Counter."""
from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import math
import os
import selectors
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphwren as gw
from graphwren.tasks.hashing import portable_hash

HYP = settings(max_examples=200, deadline=None)
E2E = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NP_INTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
NP_FLOATS = [np.float16, np.float32, np.float64, np.longdouble]
NP_COMPLEX = [np.complex64, np.complex128]


def equal_forms(x) -> list:
    """Every representation of the number x (an int or a float) that holds it exactly."""
    forms = [x, decimal.Decimal(x), complex(x)]
    finite = math.isfinite(x)
    if finite:
        forms.append(fractions.Fraction(x))
        if x == int(x):
            forms.append(int(x))
            forms += [t(int(x)) for t in NP_INTS if np.iinfo(t).min <= int(x) <= np.iinfo(t).max]
    if x == 0:
        forms += [-0.0, False, np.bool_(False)]
    if x == 1:
        forms += [True, np.bool_(True)]
    forms.append(float(x))
    with np.errstate(over="ignore"):
        forms += [t(x) for t in NP_FLOATS + NP_COMPLEX]
    # keep the exact ones: Python compares int/float/complex exactly, numpy may round first
    return [f for f in forms if (f.item() if isinstance(f, np.generic) and not isinstance(
        f, np.longdouble) else f) == x and (not isinstance(f, np.longdouble) or f == float(x) == x)]


numbers_ = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-300, 300),
    st.floats(allow_nan=False, allow_infinity=True),
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda f: round(f * 4) / 4),  # dyadic, float32-exact
)


@HYP
@given(x=numbers_, data=st.data())
def test_equal_numbers_of_every_type_hash_equal(x, data):
    forms = equal_forms(x)
    for form in forms:
        assert form == x, (form, x)  # the premise: Python says they are equal
    hashes = {portable_hash(form) for form in forms}
    assert len(hashes) == 1, {repr(f): portable_hash(f) for f in forms}
    assert all(0 <= h <= 0xFFFFFFFF for h in hashes)
    # containers of equal numbers hash equal too
    xs = data.draw(st.lists(numbers_, max_size=4))
    a = tuple(xs)
    b = tuple(data.draw(st.sampled_from(equal_forms(v))) for v in xs)
    assert a == b and portable_hash(a) == portable_hash(b)
    fa = frozenset(xs)
    fb = frozenset(data.draw(st.sampled_from(equal_forms(v))) for v in fa)
    assert fa == fb and portable_hash(fa) == portable_hash(fb)


@HYP
@given(s=st.text(), b=st.binary())
def test_str_and_bytes_subclasses_hash_as_their_value(s, b):
    assert portable_hash(np.str_(s)) == portable_hash(s)
    assert portable_hash(np.bytes_(b)) == portable_hash(b) == portable_hash(memoryview(b))
    Point = collections.namedtuple("Point", "x y")
    assert portable_hash(Point(s, b)) == portable_hash((s, b))


def test_dates_and_times_hash_as_they_compare():
    utc = datetime.timezone.utc
    plus1 = datetime.timezone(datetime.timedelta(hours=1))
    groups = [
        # aware datetimes compare by their UTC instant
        [datetime.datetime(2020, 1, 1, 12, tzinfo=utc), datetime.datetime(2020, 1, 1, 13, tzinfo=plus1)],
        [datetime.timedelta(days=1), np.timedelta64(1, "D"), np.timedelta64(24, "h")],
        [datetime.datetime(2020, 1, 1, 9, 30), np.datetime64("2020-01-01T09:30")],
        [np.datetime64("2020-01-01T09:30"), np.datetime64("2020-01-01T09:30:00.000000000")],
        [np.datetime64("1970-01-02T09:30:00.000000001"), np.datetime64("1970-01-02T09:30:00.000000001000", "ps")],
        [datetime.date(2020, 1, 1), np.datetime64("2020-01-01")],
        [datetime.time(10, tzinfo=utc), datetime.time(11, tzinfo=plus1)],
    ]
    for group in groups:
        assert all(a == b for a in group for b in group), group
        assert len({portable_hash(k) for k in group}) == 1, group


def test_nan_and_unhashable():
    # NaN != NaN, so any bucket is right; it must only be one fixed bucket (hash(nan) is its id).
    def nans():
        return [float("nan"), np.float32("nan"), decimal.Decimal("NaN"), complex(math.nan, 1),
                np.datetime64("NaT"), np.timedelta64("NaT")]
    assert [portable_hash(k) for k in nans()] == [portable_hash(k) for k in nans()]
    with pytest.raises(TypeError):
        portable_hash([1, 2])
    with pytest.raises(TypeError):
        portable_hash((1, {"a": 1}))
    with pytest.raises(ValueError, match="writable memoryview"):  # as a dict says it
        portable_hash(memoryview(bytearray(b"x")))


# -- the same hash in another process (other PYTHONHASHSEED) ---------------------------
CHILD = """
import sys, datetime, decimal, fractions, numpy as np
from decimal import Decimal
from fractions import Fraction
from graphwren.tasks.hashing import portable_hash
ns = {"datetime": datetime, "Decimal": Decimal, "Fraction": Fraction, "np": np,
      "nan": float("nan"), "inf": float("inf"), "frozenset": frozenset}
for line in sys.stdin:
    print(portable_hash(eval(line, ns)), flush=True)
"""


class Child:
    """A long-lived interpreter with another hash seed that hashes the keys we send (as repr)."""

    def __init__(self, seed: str):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    def hash(self, key) -> int:
        self.proc.stdin.write(repr(key).replace("\n", " ") + "\n")
        self.proc.stdin.flush()
        if not self.sel.select(timeout=30):
            raise AssertionError(f"the child did not answer within 30 s for {key!r}")
        line = self.proc.stdout.readline()
        assert line, f"the child exited (code {self.proc.poll()}) on {key!r}"
        return int(line)

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def children():
    kids = [Child("0"), Child("4242")]
    yield kids
    for kid in kids:
        kid.close()


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
    st.decimals(allow_nan=False), st.fractions(),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.datetimes(), st.dates(), st.timedeltas(),
    st.datetimes(timezones=st.sampled_from([datetime.timezone.utc,
                                            datetime.timezone(datetime.timedelta(hours=-5))])),
    st.integers(-(2**63), 2**63 - 1).map(np.int64), st.floats(width=32).map(np.float32),
    st.booleans().map(np.bool_),
)
keys = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
                    max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(key=keys)
def test_hash_is_the_same_in_processes_with_other_seeds(children, key):
    mine = portable_hash(key)
    for child in children:
        assert child.hash(key) == mine, key


# -- end to end: wide ops over mixed-type equal keys, against Counter ------------------
mixed_key = st.integers(-3, 3).flatmap(lambda x: st.sampled_from(equal_forms(x))) | \
    st.sampled_from(["a", np.str_("a"), ("t", 1), ("t", 1.0), (np.str_("t"), np.int64(1))])


@pytest.mark.parametrize("data", [
    [-1, -1.0, 7, np.int64(7)] * 50,
    [-1] * 50 + [-1.0] * 50 + [7] * 50 + [np.int64(7)] * 50,  # each partition sees one type
], ids=["interleaved", "blocks"])
def test_the_issue_example(data):
    got = gw.bag.from_sequence(data, npartitions=4).frequencies(npartitions=3).compute()
    assert sorted(c for _, c in got) == [100, 100]
    assert dict(got) == collections.Counter(data)


def comparable(ks) -> bool:
    """False when Python itself cannot group ``ks``: ``Decimal(0) == np.int8(0)`` raises TypeError
    ("argument must be an integer"; the other order answers True), so a dict or Counter of both fails
    in Python as in any bag's task. Such lists are left out of the property below."""
    return not (any(isinstance(k, decimal.Decimal) for k in ks) and any(isinstance(k, np.integer) for k in ks))


@E2E
@given(ks=st.lists(mixed_key, min_size=1, max_size=60).filter(comparable), nparts=st.integers(1, 4),
       nout=st.integers(2, 5))
def test_wide_ops_group_equal_keys_like_counter(ks, nparts, nout):
    records = [(k, i) for i, k in enumerate(ks)]
    b = gw.bag.from_sequence(records, npartitions=nparts)
    expected = collections.defaultdict(list)
    for k, i in records:
        expected[k].append(i)

    freq = b.pluck(0).frequencies(npartitions=nout).compute()
    assert len(freq) == len(expected)  # a group split over two buckets shows up twice
    assert dict(freq) == collections.Counter(ks)

    groups = b.groupby(first, npartitions=nout).compute()
    assert len(groups) == len(expected)
    assert {k: sorted(i for _, i in v) for k, v in groups} == dict(expected)

    sums = b.reduceby(first, add_index, npartitions=nout).compute()
    assert len(sums) == len(expected)
    assert {k: total for k, (_, total) in sums} == {k: sum(v) for k, v in expected.items()}

    distinct = b.pluck(0).distinct(npartitions=nout).compute()
    assert len(distinct) == len(expected)
    assert set(distinct) == set(expected)


def first(record):
    return record[0]


def add_index(a, b):
    """Folds records and partial results alike: (key, index sum)."""
    return a[0], a[1] + b[1]
