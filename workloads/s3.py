"""S3 workloads: the Parquet workloads of ``workloads.io`` through ``s3://`` URLs (s3fs), against an S3-compatible
server on 127.0.0.1 that the ``s3_server`` fixture starts around each case.

The server runs in the process that drives the case and listens on 127.0.0.1 only: the workers must run on the
same machine (``requires: {backends: [local]}``). Credentials are fake and travel in ``storage_options`` only;
no AWS environment variable is set.
"""

from __future__ import annotations

import logging
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any, Optional

from workloads.io import parquet_filter_pushdown, parquet_hive_partitioned

REGION = "us-east-1"
FAKE_KEY = "blessing-key"
FAKE_SECRET = "blessing-secret"


def s3_server() -> Iterator[dict[str, str]]:
    """Start moto's S3 server on a free port of 127.0.0.1 with one empty bucket; yield how to reach it; stop it.

    Yields ``endpoint_url``, ``bucket``, ``key`` and ``secret`` (the fixture's parameters for the case).
    """
    import boto3
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO: thousands of lines per case on the run's output.
    werkzeug_logger = logging.getLogger("werkzeug")
    level = werkzeug_logger.level
    werkzeug_logger.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    endpoint_url = None
    try:
        server.start()
        host, port = server.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        bucket = f"blessing-{uuid.uuid4().hex[:12]}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id=FAKE_KEY,
            aws_secret_access_key=FAKE_SECRET,
        )
        try:
            s3.create_bucket(Bucket=bucket)
        finally:
            s3.close()
        yield {"endpoint_url": endpoint_url, "bucket": bucket, "key": FAKE_KEY, "secret": FAKE_SECRET}
    finally:
        try:
            if endpoint_url is not None:
                _reset(endpoint_url)  # drop every bucket: the data would stay in this process's memory
        finally:
            listening = getattr(server, "_server", None)
            if listening is not None:
                server.stop()
                # moto's stop() ends the serving loop but leaves the listening socket open until garbage collection.
                listening.server_close()
            werkzeug_logger.setLevel(level)


def _reset(endpoint_url: str) -> None:
    """moto's reset endpoint: forget every bucket and object."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes through a proxy
    direct.open(urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST"), timeout=10).close()


def storage_options(endpoint_url: str, key: str, secret: str) -> dict[str, Any]:
    """s3fs options for the server (accepted by s3fs 2024.12 to 2026.x)."""
    return {"key": key, "secret": secret, "client_kwargs": {"endpoint_url": endpoint_url, "region_name": REGION}}


def s3_parquet_hive_partitioned(
    endpoint_url: str,
    bucket: str,
    key: str,
    secret: str,
    days: Optional[int] = None,
    target_bytes: Optional[int] = None,
    freq: str = "1s",
    partition_freq: str = "1D",
    partition_on: str = "name",
    seed: int = 23,
) -> dict[str, float]:
    """``parquet_hive_partitioned`` on ``s3://``: write hive-partitioned Parquet to the bucket and read it back, checked
    per partition (footers and rows read vs pandas' value_counts) and row by row (hash)."""
    return parquet_hive_partitioned(
        days=days,
        target_bytes=target_bytes,
        freq=freq,
        partition_freq=partition_freq,
        partition_on=partition_on,
        path=f"s3://{bucket}",
        storage_options=storage_options(endpoint_url, key, secret),
        seed=seed,
    )


def s3_parquet_filter_pushdown(
    endpoint_url: str,
    bucket: str,
    key: str,
    secret: str,
    days: Optional[int] = None,
    target_bytes: Optional[int] = None,
    freq: str = "1s",
    partition_freq: str = "1D",
    columns: tuple[str, ...] = ("name", "y"),
    keep_fraction: float = 0.25,
    x_above: float = 0.5,
    seed: int = 29,
) -> dict[str, float]:
    """``parquet_filter_pushdown`` on ``s3://``: columns and filters pushed into ``read_parquet`` over S3, checked
    against the same selection after a full read; the time filter must skip whole objects by their statistics."""
    return parquet_filter_pushdown(
        days=days,
        target_bytes=target_bytes,
        freq=freq,
        partition_freq=partition_freq,
        columns=columns,
        keep_fraction=keep_fraction,
        x_above=x_above,
        path=f"s3://{bucket}",
        storage_options=storage_options(endpoint_url, key, secret),
        seed=seed,
    )
