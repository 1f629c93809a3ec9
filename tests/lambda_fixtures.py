"""Fixtures for the Lambda tests: a local Lambda endpoint (real awslambdaric workers)."""
from __future__ import annotations

import pytest

from graphwren import config
from graphwren.aws.emulator import LambdaEmulator
from graphwren.runtime.backends.lambda_ import TOKEN_ENV

DUP = "gw-test-duplicates"      # delivers every async event twice
SHORT = "gw-test-short"         # a 2 s timeout


@pytest.fixture(scope="session")
def lambda_emulator(s3_endpoint, redis_url):
    """One emulator for the session; workers inherit the moto S3 endpoint and fake credentials."""
    em = LambdaEmulator(default=False)
    em.start()
    try:
        em.add_function(workers=2, timeout=30)          # graphwren-<version>-2048mb
        em.add_function(name=DUP, workers=2, timeout=30, duplicate_events=True)
        em.add_function(name=SHORT, workers=1, timeout=2)
        yield em
    finally:
        em.stop()


@pytest.fixture
def lambda_settings(lambda_emulator, monkeypatch):
    """Settings that send every task through boto3 -> the emulator -> awslambdaric -> the handler."""
    monkeypatch.setenv(TOKEN_ENV, lambda_emulator.token)   # the emulator refuses requests without it
    for fn in lambda_emulator.functions.values():
        fn.errors.clear()
    yield {"backend": "lambda", "lambda_endpoint": lambda_emulator.endpoint,
           "lambda_max_workers": 8, "progress": False, "task_timeout": 60}
    assert lambda_emulator.drain(30), "invocations still queued after the test"
    config.reset()
