"""Regenerate ``knative-serving-v1-service.json`` (run by hand, never by the tests).

The JSON Schema is exported from the pydantic models of Knative Serving's CRDs that PyPI's
``cloudcoil-models-knative-serving`` ships (generated from Knative's own OpenAPI schemas), then made strict: every
object that lists its properties also gets ``additionalProperties: false``, so a misspelt key fails (Kubernetes
would prune it silently, Cloud Run rejects it).

    python -m venv /tmp/kn && /tmp/kn/bin/pip install cloudcoil-models-knative-serving==1.17.0.1
    /tmp/kn/bin/python tests/deploy/schemas/make_knative_schema.py > tests/deploy/schemas/knative-serving-v1-service.json
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any


def strict(node: Any) -> Any:
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def main() -> None:
    from cloudcoil.models.knative_serving.serving import v1  # type: ignore[import-not-found]

    schema = strict(v1.Service.model_json_schema(by_alias=True))
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Knative Serving v1 Service, exported from cloudcoil-models-knative-serving "
        f"{version('cloudcoil.models.knative_serving')} by make_knative_schema.py (made strict).",
        **schema,
    }
    json.dump(schema, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
