"""The parameter server under Redis faults: replies lost on the wire, restarts with and without persistence.

No update may be lost or applied twice while the call reports success; a
restart that lost the data is an error naming the tensor, never a silent
restart from zeros.
"""
from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

import faultkit as fk
import graphwren as gw
from faultproxy import RedisReplyCutter
from graphwren.errors import ParameterServerError
from graphwren.sandbox import redis_answers


def test_an_add_whose_reply_is_cut_is_retried_and_applied_once(redis_server):
    cutter = RedisReplyCutter(redis_server.port)
    try:
        ps = gw.ParameterServer(f"redis://127.0.0.1:{cutter.port}/0", "cut", init={"w": np.zeros(1000)},
                                piece_bytes=2048)   # 4 pieces: 4 scripts per add
        cutter.arm(b"EVALSHA", times=6)
        for _ in range(20):
            ps.add("w", np.ones(1000))
        assert cutter.cuts == 6                        # the script ran, the reply never came back
        assert np.array_equal(ps.get("w"), np.full(1000, 20.0))
    finally:
        cutter.close()


def test_training_rides_out_a_restart_of_a_persistent_redis(redis_server, fault_table):
    ps = gw.ParameterServer(redis_server.url, "aof", init={"w": np.zeros(500)}, retry_seconds=20)
    done, errors = [], []

    def worker():
        try:
            for _ in range(300):
                ps.add("w", np.ones(500))
                time.sleep(0.002)
            done.append(1)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    assert not done, "training ended before the restart: the scenario tested nothing"
    redis_server.restart(0.5)                          # AOF with fsync always: nothing acknowledged is lost
    for t in threads:
        t.join(90)
    ok = not errors and len(done) == 4 and np.array_equal(ps.get("w"), np.full(500, 1200.0))
    fault_table.record("parameter server: redis restarted (AOF) mid-training",
                       fk.Outcome("correct" if ok else "wrong", repr(errors[:1]), 0.0, []))
    assert ok, errors


class EphemeralRedis(fk.RedisServer):
    """A redis-server that keeps nothing across a restart (no AOF, no RDB)."""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not redis_answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not come up on port {self.port}")
            time.sleep(0.01)


def test_a_restart_that_lost_the_data_is_an_error_naming_the_tensor(tmp_path, fault_table):
    server = EphemeralRedis(tmp_path)
    try:
        ps = gw.ParameterServer(server.url, "gone", init={"w": np.zeros(100)}, retry_seconds=10)
        ps.add("w", np.ones(100))
        server.restart(0.2)
        with pytest.raises(ParameterServerError, match=r"tensor 'w' .*lost data") as info:
            ps.add("w", np.ones(100))
        with pytest.raises(ParameterServerError):
            ps.get("w")
        fault_table.record("parameter server: redis restarted without persistence",
                           fk.Outcome("clear error", str(info.value)[:80], 0.0, []))
    finally:
        server.stop()
