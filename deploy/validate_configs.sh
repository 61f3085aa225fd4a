#!/usr/bin/env bash
# Validate the deployment files with the platforms' own tooling, offline once the tools are cached.
#
#   bash deploy/validate_configs.sh            # installs the tools on first use (npm registry), then runs them
#
# - vercel.json: the Vercel CLI's own config validator (the compiled schema check `vercel build`/`vercel deploy`
#   run first), taken from the `vercel` npm package, plus @vercel/build-utils for its error messages;
# - serverless.yml and deploy/lambda-streaming/serverless.yml: `serverless@3 package` with
#   configValidationMode: error (v3 packages offline; v4 needs a login), dummy values for required variables;
# - render.yaml: Render's published JSON schema when RENDER_SCHEMA names a local copy of
#   https://render.com/schema/render.yaml.json (Render's own validator, `render blueprints validate`, needs an
#   account); otherwise the structural checks in tests/deploy/test_deploy_files.py.
#
# Tools are cached under $GROK2API_TOOLS (default ~/.cache/grok2api/deploy-tools); the pytest suite runs the same
# checks when that cache exists.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS=${GROK2API_TOOLS:-$HOME/.cache/grok2api/deploy-tools}
VERCEL_CLI=64.0.2
BUILD_UTILS=14.21.1
SERVERLESS=3.40.0
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3

install_tools() {
  mkdir -p "$TOOLS"
  cd "$TOOLS"
  [ -f package.json ] || echo '{"private": true}' > package.json
  if [ ! -f vercel/config-validator.mjs ]; then
    echo "installing the Vercel CLI's config validator (vercel@$VERCEL_CLI, @vercel/build-utils@$BUILD_UTILS) ..."
    npm install --no-audit --no-fund --loglevel=error "@vercel/build-utils@$BUILD_UTILS" >/dev/null
    npm pack --loglevel=error "vercel@$VERCEL_CLI" >/dev/null
    mkdir -p vercel && tar -xzf "vercel-$VERCEL_CLI.tgz" -C vercel --strip-components=3 package/dist/chunks/config-validator.mjs
    rm -f "vercel-$VERCEL_CLI.tgz"
  fi
  if [ ! -x node_modules/.bin/sls ]; then
    echo "installing serverless@$SERVERLESS ..."
    npm install --no-audit --no-fund --loglevel=error "serverless@$SERVERLESS" >/dev/null
  fi
  cat > validate-vercel.mjs <<'EOF'
import { readFileSync } from 'node:fs';
import { getConfigValidator } from './vercel/config-validator.mjs';
import { getPrettyError } from '@vercel/build-utils';
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const validate = getConfigValidator();
if (validate(config)) {
  console.log('vercel.json: valid (Vercel CLI config validator)');
} else {
  console.log(`vercel.json: INVALID - ${getPrettyError(validate.errors[0]).message}`);
  process.exit(1);
}
EOF
  cd "$ROOT"
}

validate_vercel() {
  (cd "$TOOLS" && node validate-vercel.mjs "$ROOT/vercel.json")
}

validate_serverless() {
  local dir=$1 out
  out=$(mktemp -d)
  # `package.artifact` must exist; an empty placeholder is enough to package the CloudFormation template.
  local made=""
  if [ ! -f dist/lambda-x86_64.zip ]; then
    mkdir -p dist && "$PY" -c "import zipfile; zipfile.ZipFile('dist/lambda-x86_64.zip', 'w').writestr('run.sh', '')"
    made=1
  fi
  (
    cd "$dir"
    API_KEYS=validate ADMIN_PASSWORD=validate AWS_ACCESS_KEY_ID=AKIAVALIDATE AWS_SECRET_ACCESS_KEY=validate \
      SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off \
      "$TOOLS/node_modules/.bin/sls" package --package "$out" >"$out/log.txt" 2>&1 || { cat "$out/log.txt"; exit 1; }
  ) || { [ -n "$made" ] && rm -f dist/lambda-x86_64.zip; exit 1; }  # never leave the placeholder to be deployed
  [ -n "$made" ] && rm -f dist/lambda-x86_64.zip
  "$PY" - "$out" "$dir" <<'EOF'
import json, sys
template = json.load(open(f"{sys.argv[1]}/cloudformation-template-update-stack.json"))
kinds = sorted({r["Type"] for r in template["Resources"].values() if r["Type"].startswith(("AWS::Lambda", "AWS::Events", "AWS::ApiGatewayV2"))})
print(f"{sys.argv[2]}/serverless.yml: packaged by serverless@3 ({len(template['Resources'])} resources: {', '.join(kinds)})")
# What the packaged template grants and configures for async video jobs (the buffered deployment's `videos`).
functions = {r["Properties"]["FunctionName"]: r["Properties"] for r in template["Resources"].values()
             if r["Type"] == "AWS::Lambda::Function"}
worker_id, worker = next(((rid, r["Properties"]) for rid, r in template["Resources"].items()
                          if r["Type"] == "AWS::Lambda::Function"
                          and r["Properties"]["FunctionName"].endswith("-videos")), (None, None))
if worker is not None:
    statements = [s for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"
                  for p in r["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    grants = [json.dumps(s["Resource"]) for s in statements if "lambda:InvokeFunction" in s["Action"]]
    configs = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"
               and r["Properties"]["FunctionName"] == {"Ref": worker_id}]
    assert any(worker["FunctionName"] in grant for grant in grants), ("no invoke grant on the worker", grants)
    assert worker["Timeout"] >= 300, worker["Timeout"]
    assert configs and configs[0]["MaximumEventAgeInSeconds"] <= 300 and configs[0]["MaximumRetryAttempts"] == 2
    print(f"  videos worker: timeout {worker['Timeout']} s, event age <= {configs[0]['MaximumEventAgeInSeconds']} s,"
          f" {configs[0]['MaximumRetryAttempts']} retries, invokable by the role: {worker['FunctionName']}")
EOF
  rm -rf "$out"
}

validate_render() {
  if [ -n "${RENDER_SCHEMA:-}" ]; then
    "$PY" - "$RENDER_SCHEMA" <<'EOF'
import json, sys
import jsonschema, yaml
schema = json.load(open(sys.argv[1]))
errors = list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(open("render.yaml"))))
for error in errors:
    print(f"render.yaml: INVALID at {'/'.join(map(str, error.absolute_path))}: {error.message}")
print("render.yaml: valid (Render's published schema)" if not errors else "")
sys.exit(bool(errors))
EOF
  else
    echo "render.yaml: schema check skipped (set RENDER_SCHEMA=<local copy of render.com/schema/render.yaml.json>)"
  fi
}

install_tools
validate_vercel
validate_serverless .
validate_serverless deploy/lambda-streaming
validate_render
