"""A real S3 API on loopback for tests: moto in server mode on a free 127.0.0.1 port, with fake credentials."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import boto3
from moto.server import ThreadedMotoServer

from tests.support.net import free_port

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@contextlib.contextmanager
def moto_s3_server(bucket: str, *, set_environ: bool = True) -> Iterator[str]:
    """Start moto on 127.0.0.1, create ``bucket`` there and yield the server's URL; stop it on exit.

    ``set_environ``: put the fake credentials into ``os.environ`` unless some are set already (for the rest of
    the process: the boto3 clients of a gateway running in this process find them there), and create the bucket
    with whatever the environment then holds. Without it the environment is left alone and only the client that
    creates the bucket is given the fake credentials (a test that sets them itself, per test).
    """
    credentials: dict[str, str] = {}
    if set_environ:
        for name, value in FAKE_CREDENTIALS.items():
            os.environ.setdefault(name, value)
    else:
        credentials = {"aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                       "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", **credentials).create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()
