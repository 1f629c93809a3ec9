"""``graphwren lambda deploy|status|remove|emulate|build``; graphwren/cli.py calls ``add_commands``."""
from __future__ import annotations

import argparse
import json
import sys

from . import DEFAULT_MEMORY, DEFAULT_TIMEOUT


def add_commands(subparsers) -> argparse.ArgumentParser:
    """Register the ``lambda`` command group; each subcommand sets ``func(args) -> int``."""
    lam = subparsers.add_parser("lambda", help="deploy graphwren to AWS Lambda, or emulate Lambda locally")
    sub = lam.add_subparsers(dest="lambda_command", metavar="{deploy,status,remove,emulate,build}")
    sub.required = True

    d = sub.add_parser("deploy", help="build and publish the runtime; create or update the function")
    d.add_argument("--bucket", help="S3 bucket for the dependency layer (zip deployment) and the workers' data")
    d.add_argument("--memory", type=int, default=DEFAULT_MEMORY, help="MB (128..10240; default %(default)s)")
    d.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds (1..900; default %(default)s)")
    d.add_argument("--image", help="container image URI in ECR (built from graphwren's Dockerfile) instead of a zip")
    d.add_argument("--role", help="execution role ARN (default: create/update role graphwren-lambda)")
    d.add_argument("--name", help="function name (default graphwren-<version>-<memory>mb)")
    d.add_argument("--module", action="append", default=[], dest="modules",
                   help="ship one of your own modules/packages with the function (repeatable)")
    d.add_argument("--layer-zip", help="use this prebuilt dependency layer zip instead of building one")
    d.add_argument("--python", help="Lambda Python version (default: this interpreter's)")
    d.set_defaults(func=_deploy)

    s = sub.add_parser("status", help="the deployed function: version, runtime, memory, timeout, concurrency")
    s.add_argument("--memory", type=int, default=DEFAULT_MEMORY)
    s.add_argument("--name")
    s.set_defaults(func=_status)

    r = sub.add_parser("remove", help="delete the function")
    r.add_argument("--memory", type=int, default=DEFAULT_MEMORY)
    r.add_argument("--name")
    r.set_defaults(func=_remove)

    e = sub.add_parser("emulate", help="serve the Lambda Invoke and Runtime APIs on loopback (no account needed)")
    e.add_argument("--port", type=int, default=9001)
    e.add_argument("--workers", type=int, default=2, help="concurrent executions (worker processes)")
    e.add_argument("--memory", type=int, default=DEFAULT_MEMORY)
    e.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    e.add_argument("--name")
    e.set_defaults(func=_emulate)

    b = sub.add_parser("build", help="build the function zip and dependency layer and report their sizes")
    b.add_argument("--out", default=".", help="directory for function.zip and layer.zip")
    b.add_argument("--python")
    b.add_argument("--module", action="append", default=[], dest="modules")
    b.set_defaults(func=_build)
    return lam


def _fail(exc) -> int:
    print(f"graphwren lambda: {exc}", file=sys.stderr)
    return 1


def _deploy(args) -> int:
    from .deploy import DeployError, deploy
    try:
        report = deploy(bucket=args.bucket, memory=args.memory, timeout=args.timeout, image=args.image,
                        role=args.role, name=args.name, modules=args.modules, layer_zip=args.layer_zip,
                        python=args.python, log=lambda m: print(m, file=sys.stderr))
    except DeployError as exc:
        return _fail(exc)
    print(json.dumps(report, indent=2))
    return 0


def _status(args) -> int:
    from .deploy import DeployError, status
    try:
        print(json.dumps(status(args.name, args.memory), indent=2))
    except DeployError as exc:
        return _fail(exc)
    return 0


def _remove(args) -> int:
    from .deploy import DeployError, remove
    try:
        print(f"removed {remove(args.name, args.memory)}")
    except DeployError as exc:
        return _fail(exc)
    return 0


def _emulate(args) -> int:
    from .emulator import serve
    serve(args.port, workers=args.workers, timeout=args.timeout, memory=args.memory, name=args.name)
    return 0


def _build(args) -> int:
    import os

    from .deploy import UNZIPPED_LIMIT, DeployError, build_function_zip, build_layer
    os.makedirs(args.out, exist_ok=True)
    try:
        fn = build_function_zip(os.path.join(args.out, "function.zip"), args.modules)
        layer = build_layer(os.path.join(args.out, "layer.zip"), python=args.python)
    except DeployError as exc:
        return _fail(exc)
    total = fn.unzipped + layer.unzipped
    print(json.dumps({"function_zip": fn.path, "function_zipped": fn.zipped, "function_unzipped": fn.unzipped,
                      "layer_zip": layer.path, "layer_zipped": layer.zipped, "layer_unzipped": layer.unzipped,
                      "layer_packages": layer.packages, "unzipped_total_mb": round(total / 2**20, 1),
                      "unzipped_limit_mb": UNZIPPED_LIMIT // 2**20}, indent=2))
    return 0


def main(argv=None) -> int:
    """Stand-alone entry (``python -m graphwren.aws.cli lambda ...``) until graphwren/cli.py wires it."""
    parser = argparse.ArgumentParser(prog="graphwren")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
