"""graphwren on AWS Lambda: deployment, and a local Lambda endpoint for tests and offline use.

* ``graphwren.aws.emulator.LambdaEmulator``: the Lambda Invoke API and Runtime
  API on loopback; worker processes run AWS's own runtime interface client.
* ``graphwren.aws.deploy``: build the zip + dependency layer, or use a
  container image, and create/update/remove the function.
* ``graphwren.aws.cli.add_commands``: ``graphwren lambda deploy|status|remove|emulate|build``.
"""
from __future__ import annotations

DEFAULT_MEMORY = 2048
DEFAULT_TIMEOUT = 900
HANDLER = "graphwren.runtime.lambda_handler.handler"


def function_name(memory: int | None = None, version: str | None = None) -> str:
    """The function for this graphwren version and memory size: versions never clash."""
    if version is None:
        from .. import __version__ as version
    memory = DEFAULT_MEMORY if memory is None else int(memory)
    safe = "".join(c if c.isalnum() else "-" for c in version)
    return f"graphwren-{safe}-{memory}mb"
