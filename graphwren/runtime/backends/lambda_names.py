"""The Lambda function's name and defaults, shared by the backend (which invokes) and graphwren.aws (which deploys)."""
from __future__ import annotations

DEFAULT_MEMORY = 2048
DEFAULT_TIMEOUT = 900
HANDLER = "graphwren.runtime.lambda_handler.handler"


def function_name(memory: int | None = None, version: str | None = None) -> str:
    """The function for this graphwren version and memory size: versions never clash."""
    if version is None:
        from ...version import __version__ as version
    memory = DEFAULT_MEMORY if memory is None else int(memory)
    safe = "".join(c if c.isalnum() else "-" for c in version)
    return f"graphwren-{safe}-{memory}mb"
