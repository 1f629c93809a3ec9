"""graphwren on AWS Lambda: deployment, and a local Lambda endpoint for tests and offline use.

* ``graphwren.aws.emulator.LambdaEmulator``: the Lambda Invoke API and Runtime
  API on loopback; worker processes run AWS's own runtime interface client.
* ``graphwren.aws.deploy``: build the zip + dependency layer, or use a
  container image, and create/update/remove the function.
* ``graphwren.aws.cli.add_commands``: ``graphwren lambda deploy|status|remove|emulate|build``.
"""
from __future__ import annotations

# The names live with the backend that invokes the function; deploy and the emulator reuse them.
from ..runtime.backends.lambda_names import DEFAULT_MEMORY, DEFAULT_TIMEOUT, HANDLER, function_name

__all__ = ["DEFAULT_MEMORY", "DEFAULT_TIMEOUT", "HANDLER", "function_name"]
