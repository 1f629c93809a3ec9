"""Deploy graphwren's worker to AWS Lambda: a zip + dependency layer, or a container image.

Zip deployment (``deploy(bucket=...)``): the function package holds only the
``graphwren`` source (plus any ``modules`` of the user's that stage functions
import); the dependencies (numpy, pyarrow, cloudpickle, boto3, redis, ...)
are a layer built from manylinux wheels with ``pip download --platform``,
uploaded to the bucket (layers over 50 MB must come from S3). The unzipped
size of function + layer must stay under Lambda's 250 MB; ``build_layer``
strips what a worker never imports (tests, headers, Cython sources) and
reports the size.

Image deployment (``deploy(image=URI)``): build ``Dockerfile`` (FROM the AWS
Lambda Python base image), push it to ECR, and pass its URI.

One function per (graphwren version, memory size): ``graphwren-0-1-0-2048mb``,
so versions never clash and old drivers keep their function.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

from ..errors import DeployError
from ..version import __version__
from . import DEFAULT_MEMORY, DEFAULT_TIMEOUT, HANDLER, function_name

UNZIPPED_LIMIT = 250 * 1024 * 1024     # function + layers, unzipped
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # a zip passed inline to CreateFunction / PublishLayerVersion
ROLE_NAME = "graphwren-lambda"
PLATFORM = "manylinux2014_x86_64"
# What a worker imports; pinned to the driver's versions so pickles agree.
RUNTIME_PACKAGES = ["numpy", "pyarrow", "cloudpickle", "boto3", "redis", "hiredis", "tblib", "networkx", "tqdm", "blake3"]
PICKLE_PINNED = {"cloudpickle", "tblib"}
_STRIP_DIRS = {"__pycache__", "tests", "test", "include", "benchmarks"}
_STRIP_SUFFIXES = (".pyc", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp", ".c")
_KEEP_TEST_PACKAGES = {"numpy/testing"}   # numpy imports numpy.testing lazily; keep it whole


@dataclasses.dataclass
class Build:
    """A built Lambda function zip: where it is, its sizes, and the packages it holds."""

    path: str               # the zip file
    zipped: int             # bytes
    unzipped: int           # bytes once Lambda extracts it
    files: int
    packages: list[str]     # name==version


def _pins(packages: list[str]) -> list[str]:
    out = []
    for spec in packages:
        if any(c in spec for c in "=<>!~ "):
            out.append(spec)
            continue
        try:
            out.append(f"{spec}=={importlib.metadata.version(spec)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(spec)
    return out


def _skip(rel: str) -> bool:
    parts = rel.split("/")
    if any(rel.startswith(keep + "/") for keep in ("python/" + k for k in _KEEP_TEST_PACKAGES)):
        return "__pycache__" in parts or rel.endswith(".pyc")
    return any(p in _STRIP_DIRS for p in parts[:-1]) or rel.endswith(_STRIP_SUFFIXES)


def _zip_tree(root: pathlib.Path, out: str) -> Build:
    unzipped = files = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            if _skip(rel):
                continue
            info = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))   # reproducible: same code, same hash
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            zf.writestr(info, data)
            unzipped += len(data)
            files += 1
    return Build(out, os.path.getsize(out), unzipped, files, [])


def build_layer(out: str, packages: list[str] | None = None, python: str | None = None,
                platform: str = PLATFORM, pip_args: list[str] | None = None) -> Build:
    """The dependency layer (``python/`` tree) from manylinux wheels, as a zip at ``out``."""
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    wanted = packages if packages is not None else RUNTIME_PACKAGES
    reqs = _pins(wanted)
    with tempfile.TemporaryDirectory(prefix="graphwren-layer-") as tmp:
        wheels = pathlib.Path(tmp, "wheels")

        def download(reqs):
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--only-binary=:all:", "--platform", platform, "--python-version", python,
                   "--implementation", "cp", "--dest", str(wheels), *(pip_args or []), *reqs]
            return subprocess.run(cmd, capture_output=True, text=True)

        proc = download(reqs)
        if proc.returncode != 0 and "No matching distribution" in proc.stderr:
            # The driver's exact versions have no wheel for this platform/index: pin only what
            # pickles depend on (cloudpickle, tblib) and take the newest wheels of the rest.
            reqs = [r if r.split("=")[0] in PICKLE_PINNED else r.split("=")[0] for r in reqs]
            shutil.rmtree(wheels, ignore_errors=True)
            proc = download(reqs)
        if proc.returncode != 0:
            raise DeployError(f"pip could not download manylinux wheels for the layer ({' '.join(reqs)}):\n"
                              f"{proc.stderr.strip()[-2000:]}\nCheck network access to PyPI, or deploy a "
                              f"container image instead (graphwren lambda deploy --image URI).")
        tree = pathlib.Path(tmp, "layer", "python")
        tree.mkdir(parents=True)
        names = []
        for wheel in sorted(wheels.glob("*.whl")):
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(tree)
            names.append("-".join(wheel.name.split("-")[:2]))
        build = _zip_tree(tree.parent, out)
        build.packages = names
    if build.unzipped > UNZIPPED_LIMIT:
        raise DeployError(f"the dependency layer is {build.unzipped / 2**20:.0f} MB unzipped, over Lambda's "
                          f"{UNZIPPED_LIMIT / 2**20:.0f} MB limit; deploy a container image instead "
                          f"(up to 10 GB): graphwren lambda deploy --image URI")
    return build


def build_function_zip(out: str, modules: list[str] | None = None) -> Build:
    """graphwren's own source, plus the user's ``modules`` (packages or .py modules) by name."""
    with tempfile.TemporaryDirectory(prefix="graphwren-fn-") as tmp:
        root = pathlib.Path(tmp)
        src = pathlib.Path(__file__).resolve().parents[1]   # the graphwren package this module belongs to
        shutil.copytree(src, root / "graphwren", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in modules or []:
            root_name = name.split(".")[0]
            try:
                mod = __import__(root_name)
            except ImportError as exc:
                raise DeployError(f"cannot ship module {name!r} with the function: {exc}; "
                                  f"make it importable here (pip install -e, PYTHONPATH)") from None
            path = pathlib.Path(mod.__file__)
            if path.name == "__init__.py":
                shutil.copytree(path.parent, root / root_name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, root / path.name)
        build = _zip_tree(root, out)
    build.packages = ["graphwren"] + list(modules or [])
    return build


# --------------------------------------------------------------------------- AWS calls

def _clients(session=None):
    import boto3
    session = session or boto3.Session()
    if session.get_credentials() is None:
        raise DeployError("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE "
                          "(or run `aws configure`) before `graphwren lambda deploy`.")
    if session.region_name is None:
        raise DeployError("no AWS region: set AWS_DEFAULT_REGION (or a region in ~/.aws/config).")
    return session.client("lambda"), session.client("iam"), session.client("s3")


def ensure_role(iam, bucket: str | None, name: str = ROLE_NAME) -> str:
    """The execution role: CloudWatch logs, and read/write on the bucket graphwren stores into."""
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "lambda.amazonaws.com"}}]}
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                              Description="graphwren Lambda workers")["Role"]["Arn"]
    logs = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]}]}   # = AWSLambdaBasicExecutionRole
    iam.put_role_policy(RoleName=name, PolicyName="graphwren-logs", PolicyDocument=json.dumps(logs))
    if bucket:
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
             "Resource": f"arn:aws:s3:::{bucket}/*"},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}"}]}
        iam.put_role_policy(RoleName=name, PolicyName=f"graphwren-s3-{bucket}", PolicyDocument=json.dumps(policy))
    return arn


def _wait_updated(lam, name: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    pause = 0.2
    while True:
        conf = lam.get_function_configuration(FunctionName=name)
        if conf.get("State", "Active") != "Pending" and conf.get("LastUpdateStatus", "Successful") != "InProgress":
            if conf.get("State") == "Failed" or conf.get("LastUpdateStatus") == "Failed":
                raise DeployError(f"Lambda could not update {name}: {conf.get('StateReason') or conf.get('LastUpdateStatusReason')}")
            return conf
        if time.monotonic() > deadline:
            raise DeployError(f"Lambda function {name} was still updating after {timeout:g} s")
        time.sleep(pause)
        pause = min(pause * 2, 5)


def deploy(bucket: str | None = None, memory: int = DEFAULT_MEMORY, timeout: int = DEFAULT_TIMEOUT,
           image: str | None = None, role: str | None = None, name: str | None = None,
           modules: list[str] | None = None, layer_zip: str | None = None, packages: list[str] | None = None,
           python: str | None = None, prefix: str = "graphwren-deploy", session=None, log=print) -> dict:
    """Create or update the function for this graphwren version and memory size."""
    from botocore.exceptions import ClientError
    if not 128 <= int(memory) <= 10240:
        raise DeployError(f"--memory must be 128..10240 MB, got {memory}")
    if not 1 <= int(timeout) <= 900:
        raise DeployError(f"--timeout must be 1..900 seconds, got {timeout}")
    if image is None and not bucket:
        raise DeployError("a zip deployment uploads its dependency layer to S3: pass --bucket BUCKET "
                          "(or deploy a container image with --image URI)")
    lam, iam, s3 = _clients(session)
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    name = name or function_name(memory)
    role_arn = role or ensure_role(iam, bucket)
    env = {"Variables": {"GRAPHWREN_VERSION": __version__}}
    common = dict(Role=role_arn, Timeout=int(timeout), MemorySize=int(memory), Environment=env,
                  Description=f"graphwren {__version__} worker")
    report: dict = {"function": name, "memory": int(memory), "timeout": int(timeout),
                    "graphwren": __version__}
    with tempfile.TemporaryDirectory(prefix="graphwren-deploy-") as tmp:
        if image is not None:
            code = {"ImageUri": image}
            create = dict(PackageType="Image", Code=code, **common)
            update_code = dict(ImageUri=image)
            report["image"] = image
        else:
            fn_build = build_function_zip(os.path.join(tmp, "function.zip"), modules)
            if layer_zip is None:
                log(f"building the dependency layer for Python {python} ({PLATFORM}) ...")
                layer = build_layer(os.path.join(tmp, "layer.zip"), packages, python)
            else:
                with zipfile.ZipFile(layer_zip) as zf:
                    unz = sum(i.file_size for i in zf.infolist())
                layer = Build(layer_zip, os.path.getsize(layer_zip), unz, 0, [])
            total = fn_build.unzipped + layer.unzipped
            if total > UNZIPPED_LIMIT:
                raise DeployError(f"function + layer are {total / 2**20:.0f} MB unzipped, over Lambda's 250 MB; "
                                  f"deploy a container image instead (--image URI)")
            digest = hashlib.sha256(pathlib.Path(layer.path).read_bytes()).hexdigest()[:16]
            key = f"{prefix}/layer-{__version__}-py{python}-{digest}.zip"
            try:
                s3.upload_file(layer.path, bucket, key)
            except (ClientError, Exception) as exc:  # noqa: BLE001 - S3Transfer wraps ClientError
                raise DeployError(f"cannot upload the layer to s3://{bucket}/{key}: {exc}; check that the "
                                  f"bucket exists in this region and that you may write to it") from None
            layer_name = f"graphwren-deps-py{python.replace('.', '')}-{''.join(c if c.isalnum() else '-' for c in __version__)}"
            layer_arn = lam.publish_layer_version(
                LayerName=layer_name, Description=f"graphwren {__version__} dependencies",
                Content={"S3Bucket": bucket, "S3Key": key}, CompatibleRuntimes=[f"python{python}"],
                CompatibleArchitectures=["x86_64"])["LayerVersionArn"]
            zip_bytes = pathlib.Path(fn_build.path).read_bytes()
            create = dict(Runtime=f"python{python}", Handler=HANDLER, PackageType="Zip",
                          Code={"ZipFile": zip_bytes}, Layers=[layer_arn], Architectures=["x86_64"], **common)
            update_code = dict(ZipFile=zip_bytes)
            report.update(layer=layer_arn, layer_key=f"s3://{bucket}/{key}", layer_zipped=layer.zipped,
                          layer_unzipped=layer.unzipped, function_zipped=fn_build.zipped,
                          function_unzipped=fn_build.unzipped, unzipped_total=total,
                          unzipped_limit=UNZIPPED_LIMIT, runtime=f"python{python}")
            common_update = {"Layers": [layer_arn], "Runtime": f"python{python}", "Handler": HANDLER}
        try:
            lam.get_function_configuration(FunctionName=name)
            exists = True
        except lam.exceptions.ResourceNotFoundException:
            exists = False
        if exists:
            lam.update_function_code(FunctionName=name, **update_code)
            _wait_updated(lam, name)
            extra = common_update if image is None else {}
            lam.update_function_configuration(FunctionName=name, **common, **extra)
            report["action"] = "updated"
        else:
            for attempt in range(6):   # a brand-new role takes a few seconds to be assumable
                try:
                    lam.create_function(FunctionName=name, **create)
                    break
                except lam.exceptions.InvalidParameterValueException as exc:
                    if "role" not in str(exc).lower() or attempt == 5:
                        raise DeployError(f"Lambda refused to create {name}: {exc}") from None
                    time.sleep(2 * (attempt + 1))
            report["action"] = "created"
        conf = _wait_updated(lam, name)
    report["arn"] = conf.get("FunctionArn")
    return report


def status(name: str | None = None, memory: int = DEFAULT_MEMORY, session=None) -> dict:
    """What is deployed: version, runtime, memory, timeout, concurrency."""
    lam, _, _ = _clients(session)
    name = name or function_name(memory)
    try:
        got = lam.get_function(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        raise DeployError(f"no Lambda function {name}; run `graphwren lambda deploy --bucket BUCKET`") from None
    conf = got["Configuration"]
    out = {"function": name, "arn": conf.get("FunctionArn"), "state": conf.get("State"),
           "graphwren": ((conf.get("Environment") or {}).get("Variables") or {}).get("GRAPHWREN_VERSION"),
           "package": conf.get("PackageType"), "runtime": conf.get("Runtime"), "memory": conf.get("MemorySize"),
           "timeout": conf.get("Timeout"), "code_size": conf.get("CodeSize"),
           "layers": [layer.get("Arn") for layer in conf.get("Layers") or []],
           "reserved_concurrency": (got.get("Concurrency") or {}).get("ReservedConcurrentExecutions")}
    try:
        limits = lam.get_account_settings().get("AccountLimit", {})
        out["account_concurrency"] = limits.get("ConcurrentExecutions")
        out["unreserved_concurrency"] = limits.get("UnreservedConcurrentExecutions")
    except Exception:  # noqa: BLE001 - not every endpoint has account settings
        pass
    return out


def remove(name: str | None = None, memory: int = DEFAULT_MEMORY, session=None) -> str:
    lam, _, _ = _clients(session)
    name = name or function_name(memory)
    try:
        lam.delete_function(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        raise DeployError(f"no Lambda function {name} to remove") from None
    return name


def zip_listing(path_or_bytes) -> dict[str, int]:
    """name -> uncompressed size of a zip (tests and `graphwren lambda build` use it)."""
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    with zipfile.ZipFile(src) as zf:
        return {i.filename: i.file_size for i in zf.infolist()}
