"""runtime.prefetch: results in order, a bound on what is computed ahead, no deadlock when nested."""
from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphwren.runtime.prefetch import Prefetcher

WAIT_S = 30   # bound on any wait below; none is expected to come near it

_pool = Prefetcher(4, "gw-test-prefetch")
_serial = Prefetcher(1, "gw-test-serial")   # one thread: what it ran is known once it is idle


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(), max_size=30), st.integers(1, 6))
def test_results_come_in_order_and_exactly_ahead_are_computed_ahead(values, ahead):
    pool = _serial
    started = []
    thunks = [(lambda i=i, v=v: started.append(i) or v) for i, v in enumerate(values)]
    out = []
    for value in pool.iter(thunks, ahead=ahead):
        out.append(value)
        # The generator is paused at its yield: with one thread, a task queued now runs after all it
        # submitted, so ``started`` is then everything computed so far.
        pool._executor().submit(lambda: None).result(WAIT_S)
        assert started == list(range(min(len(values), len(out) + ahead)))
    assert out == values


def test_the_next_result_is_computed_while_the_previous_one_is_in_use():
    second_started = threading.Event()

    def second():
        second_started.set()
        return 2

    it = _pool.iter([lambda: 1, second], ahead=1)
    assert next(it) == 1
    assert second_started.wait(WAIT_S)   # the consumer still holds 1
    assert list(it) == [2]


def test_an_exception_arrives_in_its_place():
    def boom():
        raise ValueError("third")
    it = _pool.iter([lambda: 1, lambda: 2, boom, lambda: 4])
    assert [next(it), next(it)] == [1, 2]
    with pytest.raises(ValueError, match="third"):
        next(it)


def test_stopping_early_starts_nothing_more():
    later = threading.Event()
    ran = []

    def thunk(i):
        def run():
            if i:
                later.wait(WAIT_S)   # 1 holds the only thread until the consumer has stopped
            ran.append(i)
            return i
        return run

    pool = Prefetcher(1, "gw-test-early")
    it = pool.iter([thunk(i) for i in range(10)], ahead=3)
    assert next(it) == 0
    it.close()   # 1..3 were submitted: 1 may be running, 2 and 3 are waiting and get cancelled
    later.set()
    pool._executor().submit(lambda: None).result(WAIT_S)   # one thread: all before this has finished
    assert ran in ([0], [0, 1])


@pytest.mark.parametrize("threads", [1, 2])
def test_calling_it_from_inside_its_own_threads_does_not_deadlock(threads):
    pool = Prefetcher(threads, f"gw-test-nested-{threads}")

    def inner(k):
        return lambda: sum(pool.iter([lambda j=j: j * k for j in range(5)])) + sum(pool.map(lambda j: j, [k, k]))

    result = []
    runner = threading.Thread(target=lambda: result.append(list(pool.iter([inner(k) for k in range(6)]))),
                              daemon=True)
    runner.start()
    runner.join(WAIT_S)
    assert not runner.is_alive(), "nested prefetch deadlocked"
    assert result == [[10 * k + 2 * k for k in range(6)]]


def test_map_keeps_order():
    assert _pool.map(lambda x: x * x, list(range(40))) == [x * x for x in range(40)]
    assert _pool.map(str, []) == []


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="at least one thread, got 0"):
        Prefetcher(0, "x")
    with pytest.raises(ValueError, match="ahead must be at least 1, got 0"):
        list(_pool.iter([lambda: 1], ahead=0))
