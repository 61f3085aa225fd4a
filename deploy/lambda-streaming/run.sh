#!/bin/sh
# The streaming Lambda's handler: the Lambda Web Adapter layer (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this
# script, waits until something listens on $PORT, then forwards each invocation to it as plain HTTP and streams the
# response back through the Function URL (AWS_LWA_INVOKE_MODE=response_stream).
# api.index:app is the same app Vercel serves; a bad configuration makes it answer 500 with the problems.
cd "${LAMBDA_TASK_ROOT:-$(dirname "$0")}" || exit 1
export PYTHONPATH="${LAMBDA_TASK_ROOT:-.}${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m uvicorn api.index:app --host 127.0.0.1 --port "${PORT:-8000}" \
  --no-access-log --timeout-keep-alive 75 --lifespan on
