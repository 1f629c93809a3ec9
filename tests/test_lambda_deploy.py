"""Deployment against moto's Lambda / IAM / S3 APIs in server mode (nothing reaches AWS)."""
from __future__ import annotations

import io
import zipfile

import boto3
import pytest

import graphwren as gw
from graphwren.aws import function_name
from graphwren.aws import cli as aws_cli
from graphwren.aws.deploy import UNZIPPED_LIMIT, DeployError, build_function_zip, build_layer, deploy, remove, status, zip_listing


def _fake_wheel(folder, name="gwfakepkg", version="1.0"):
    """A tiny pure-Python wheel, so building a layer needs no network."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "VALUE = 42\n" + "# padding\n" * 1000)
        zf.writestr(f"{name}/tests/test_it.py", "def test(): pass\n")
        zf.writestr(f"{name}/include/x.h", "int x;\n")
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return path


@pytest.fixture(scope="module")
def layer_zip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheels")
    _fake_wheel(folder)
    out = str(tmp_path_factory.mktemp("layer") / "layer.zip")
    return build_layer(out, packages=["gwfakepkg"], pip_args=["--no-index", "--find-links", str(folder)])


@pytest.fixture
def aws(s3_url, s3_endpoint, monkeypatch):
    """moto's server answers Lambda, IAM and S3 on one port."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return boto3.client("lambda"), "gw-test"


def test_layer_builder(layer_zip):
    files = zip_listing(layer_zip.path)
    assert "python/gwfakepkg/__init__.py" in files
    assert not any("/tests/" in f or f.endswith(".h") for f in files)      # stripped
    assert layer_zip.unzipped == sum(files.values()) and layer_zip.zipped < layer_zip.unzipped
    assert layer_zip.packages == ["gwfakepkg-1.0"]


def test_function_zip_has_graphwren_and_user_modules(tmp_path, monkeypatch):
    (tmp_path / "gw_user_mod.py").write_text("def f(): return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    build = build_function_zip(str(tmp_path / "fn.zip"), modules=["gw_user_mod"])
    files = zip_listing(build.path)
    assert "graphwren/runtime/lambda_handler.py" in files and "gw_user_mod.py" in files
    assert not any("__pycache__" in f for f in files)
    assert build.unzipped < 5 * 2**20
    with pytest.raises(DeployError, match="cannot ship module 'gw_no_such_mod'"):
        build_function_zip(str(tmp_path / "fn2.zip"), modules=["gw_no_such_mod"])


def test_deploy_zip_status_update_remove(aws, layer_zip):
    lam, bucket = aws
    name = function_name(1024)
    report = deploy(bucket=bucket, memory=1024, timeout=120, layer_zip=layer_zip.path, log=lambda m: None)
    assert report["action"] == "created" and report["function"] == name == f"graphwren-{gw.__version__.replace('.', '-')}-1024mb"
    assert report["unzipped_total"] == report["function_unzipped"] + layer_zip.unzipped < UNZIPPED_LIMIT
    conf = lam.get_function_configuration(FunctionName=name)
    assert conf["MemorySize"] == 1024 and conf["Timeout"] == 120
    assert conf["Handler"] == "graphwren.runtime.lambda_handler.handler"
    assert conf["Environment"]["Variables"]["GRAPHWREN_VERSION"] == gw.__version__
    assert [layer["Arn"] for layer in conf["Layers"]] == [report["layer"]]
    # the uploaded function code is graphwren's source
    code = lam.get_function(FunctionName=name)["Code"]
    layer_name, layer_version = report["layer"].split(":")[-2:]
    layer = lam.get_layer_version(LayerName=layer_name, VersionNumber=int(layer_version))
    assert layer["Content"]["CodeSize"] == layer_zip.zipped
    assert layer["CompatibleRuntimes"] == [report["runtime"]]
    s3 = boto3.client("s3")
    assert s3.head_object(Bucket=bucket, Key=report["layer_key"].split("/", 3)[3])["ContentLength"] == layer_zip.zipped
    st = status(memory=1024)
    assert st["graphwren"] == gw.__version__ and st["memory"] == 1024 and st["timeout"] == 120
    # deploying again updates in place
    again = deploy(bucket=bucket, memory=1024, timeout=300, layer_zip=layer_zip.path, log=lambda m: None)
    assert again["action"] == "updated"
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 300
    assert code is not None
    assert remove(memory=1024) == name
    with pytest.raises(DeployError, match="graphwren lambda deploy"):
        status(memory=1024)


def test_deploy_image(aws):
    lam, bucket = aws
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/graphwren:0.1.0"
    report = deploy(image=uri, memory=512, timeout=60, log=lambda m: None)
    conf = lam.get_function_configuration(FunctionName=function_name(512))
    assert report["action"] == "created" and conf["PackageType"] == "Image"
    assert lam.get_function(FunctionName=function_name(512))["Code"]["ImageUri"] == uri
    remove(memory=512)


def test_deploy_bad_input(aws):
    with pytest.raises(DeployError, match="--bucket"):
        deploy(memory=1024, log=lambda m: None)
    with pytest.raises(DeployError, match="--timeout must be 1..900"):
        deploy(bucket="gw-test", timeout=1000, log=lambda m: None)
    with pytest.raises(DeployError, match="no Lambda function graphwren-.*-4096mb to remove"):
        remove(memory=4096)


def test_cli_registers_lambda_commands(aws, layer_zip, capsys):
    import argparse
    parser = argparse.ArgumentParser(prog="graphwren")
    aws_cli.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lambda", "deploy", "--bucket", "gw-test", "--memory", "256",
                              "--timeout", "60", "--layer-zip", layer_zip.path])
    assert args.func(args) == 0
    assert '"action": "created"' in capsys.readouterr().out
    args = parser.parse_args(["lambda", "status", "--memory", "256"])
    assert args.func(args) == 0 and '"memory": 256' in capsys.readouterr().out
    args = parser.parse_args(["lambda", "remove", "--memory", "256"])
    assert args.func(args) == 0
    assert args.func(args) == 1 and "no Lambda function" in capsys.readouterr().err
    for cmd in ("emulate", "build"):
        assert parser.parse_args(["lambda", cmd]).lambda_command == cmd
