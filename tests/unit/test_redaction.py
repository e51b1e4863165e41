"""``framework.in_runtime.redaction``: which keys are secret, and how values are masked in mappings, rows, text and
dumps."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import msgpack
import pytest

from framework.in_runtime import provenance
from framework.in_runtime.redaction import (
    MASK,
    is_secret_key,
    masked_note,
    redact,
    redact_dump_file,
    redact_row,
    redact_runtime_spec,
    redact_text,
    redact_text_file,
    secret_values,
    without_masked,
)

SECRET_KEYS = [
    "coiled.token",
    "DASK_COILED__TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GITHUB_TOKEN",
    "PASSWORD",
    "db_passwd",
    "passphrase",
    "api_key",
    "apiKey",
    "APIKEY",
    "private_key",
    "privateKey",
    "private",
    "session",
    "session_token",
    "sessionid",
    "Authorization",
    "auth",
    "OAUTH_CLIENT_SECRET",
    "credentials",
    "google_application_credentials",
    "MY_SERVICE_KEY",
    "ssh_key",
    "key_file",
    "tls_key_path",
    "distributed.comm.tls.client.key",
    "distributed.comm.tls.scheduler.key",
    "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY",
    "cookie",
]
NOT_SECRET_KEYS = [
    "distributed.scheduler.worker-saturation",
    "distributed.comm.tls.client.cert",
    "distributed.comm.tls.ca-file",
    "tokenize.ensure-deterministic",
    "dataframe.shuffle.method",
    "MALLOC_TRIM_THRESHOLD_",
    "OMP_NUM_THREADS",
    "AWS_ACCESS_KEY_ID",  # an identifier; its secret is AWS_SECRET_ACCESS_KEY
    "AWS_REGION",
    "key",  # a task's key in a cluster dump
    "keys",
    "n_keys",
    "rename-keys",
    "key_id",
    "sort_key",
    "partition_key",
    "object_key",
    "monkey",
    "keyboard",
    "hotkey",
    "tokens",
    "max_tokens",
    "use_private_ip",
    "session_timeout",
    "check_unused_sessions_milliseconds",
    "PWD",
    "author",
]


@pytest.mark.parametrize("name", SECRET_KEYS)
def test_secret_looking_keys_are_secret(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize("name", NOT_SECRET_KEYS)
def test_keys_that_name_data_or_knobs_are_not(name: str) -> None:
    assert not is_secret_key(name)


def test_a_bare_key_is_secret_only_under_tls_or_ssl() -> None:
    assert is_secret_key("key", parents=["distributed", "comm", "tls", "client"])
    assert is_secret_key("key", parents=["ssl"])
    assert not is_secret_key("key", parents=["scheduler", "tasks", "x-123"])


def test_redact_masks_values_under_secret_keys_at_any_depth_and_keeps_the_keys() -> None:
    config = {
        "coiled.token": "tok-123456",
        "coiled": {"token": "tok-654321", "account": "me"},
        "distributed": {"comm": {"tls": {"client": {"key": "/etc/k.pem", "cert": "/etc/c.pem"}}}},
        "distributed.scheduler.worker-saturation": 1.5,
        "services": [{"name": "a", "password": "hunter2hunter2"}],
        "auth": {"type": "basic", "user": "me"},  # a whole mapping under a secret key goes
        "keys": ["x", "y"],
    }

    assert redact(config) == {
        "coiled.token": MASK,
        "coiled": {"token": MASK, "account": "me"},
        "distributed": {"comm": {"tls": {"client": {"key": MASK, "cert": "/etc/c.pem"}}}},
        "distributed.scheduler.worker-saturation": 1.5,
        "services": [{"name": "a", "password": MASK}],
        "auth": MASK,
        "keys": ["x", "y"],
    }


def test_unset_secrets_stay_unset() -> None:
    assert redact({"distributed.comm.tls.client.key": None, "token": ""}) == {
        "distributed.comm.tls.client.key": None,
        "token": "",
    }


def test_secret_values_are_those_under_secret_keys_long_enough_to_search_for() -> None:
    environ = {"DASK_COILED__TOKEN": "planted-3", "HOME": "/root", "API_KEY": "short", "AWS_REGION": "eu-west-1"}
    config = {"coiled": {"token": "planted-2"}, "creds": ["planted-4", {"x": "planted-5"}]}

    assert secret_values(environ, config) == {"planted-2", "planted-3", "planted-4", "planted-5"}


def test_redact_text_masks_known_values_and_url_passwords_only() -> None:
    text = (
        "ClientError: token planted-2 rejected (planted-2x); index https://me:pa55word@pypi.example/simple;"
        " scheduler tcp://127.0.0.1:8786; flag true"
    )

    assert redact_text(text, {"planted-2", "planted-2x", "true"}) == (
        "ClientError: token *** rejected (***); index https://me:***@pypi.example/simple;"
        " scheduler tcp://127.0.0.1:8786; flag true"
    )


def test_a_runtime_spec_keeps_packages_and_allow_listed_env_values_only() -> None:
    spec = {
        "python": "3.11",
        "as_of": "2026-04-15",
        "packages": {"dask": "==2026.3.0", "google-auth": "==2.0"},
        "env": {"MALLOC_TRIM_THRESHOLD_": "65536", "AWS_SECRET_ACCESS_KEY": "planted-1", "MY_FLAG": "on"},
        "dask_config": {"coiled.token": "planted-2", "distributed.scheduler.worker-saturation": 1.1},
        "description": "uses token planted-2",  # a description is text: masked by value in rows, not by key
    }

    redacted = redact_runtime_spec(spec)

    assert redacted["packages"] == spec["packages"]
    assert redacted["env"] == {"MALLOC_TRIM_THRESHOLD_": "65536", "AWS_SECRET_ACCESS_KEY": MASK, "MY_FLAG": MASK}
    assert redacted["dask_config"] == {"coiled.token": MASK, "distributed.scheduler.worker-saturation": 1.1}
    assert (redacted["python"], redacted["as_of"]) == ("3.11", "2026-04-15")


def test_a_row_is_redacted_by_key_and_by_the_values_its_own_settings_hold() -> None:
    spec = {"packages": {"dask": ""}, "env": {"AWS_SECRET_ACCESS_KEY": "planted-1"}, "dask_config": {}}
    row = {
        "runtime_spec": json.dumps(spec),  # JSON text, as in a stored file
        "dask_config": {"coiled.token": "planted-2"},
        "env_vars": {"AWS_SECRET_ACCESS_KEY": None, "MALLOC_ARENA_MAX": "2"},
        "error": "RuntimeError: bad credentials planted-1 / planted-2",
        "traceback": "File x, line 1\n  connect(token='planted-2')",
        "extra_metrics": {"token_seconds": 1.5},
        "params": {"n": 10, "storage_options": {"secret": "planted-6"}},
        "outcome": "error",
    }

    redacted = redact_row(row)

    assert redacted["runtime_spec"]["env"] == {"AWS_SECRET_ACCESS_KEY": MASK}
    assert redacted["dask_config"] == {"coiled.token": MASK}
    assert redacted["env_vars"] == row["env_vars"]
    assert redacted["error"] == "RuntimeError: bad credentials *** / ***"
    assert redacted["traceback"].endswith("connect(token='***')")
    assert redacted["extra_metrics"] == {"token_seconds": 1.5}  # numbers: kept, whatever their names
    assert redacted["params"] == {"n": 10, "storage_options": {"secret": MASK}}
    assert redacted["outcome"] == "error"
    assert redact_row(redacted) == redacted  # idempotent: the runner and the results module both apply it


def test_environment_variables_record_names_and_allow_listed_values_only() -> None:
    recorded = provenance.environment_variables(
        {"MALLOC_ARENA_MAX": "2"}, {"DASK_COILED__TOKEN": "planted-3", "MALLOC_ARENA_MAX": "2", "HOME": "/root"}
    )

    assert recorded == {"DASK_COILED__TOKEN": None, "MALLOC_ARENA_MAX": "2"}


def test_a_cluster_dump_is_redacted_in_its_config_sections_and_by_value_elsewhere(tmp_path: Path) -> None:
    state = {
        "scheduler": {
            "tasks": {"('get_token-abc', 0)": {"key": "('get_token-abc', 0)", "state": "processing"}},
            "log": [["INFO", "connecting with planted-3"]],
        },
        "workers": {
            "tcp://127.0.0.1:40000": {
                "config": {
                    "coiled": {"token": "planted-2"},
                    "distributed": {"comm": {"tls": {"client": {"key": "/k"}}}},
                },
                "data": {"x": b"\x00\x01"},
            }
        },
    }
    source = tmp_path / "raw.msgpack.gz"
    with gzip.open(source, "wb") as handle:
        msgpack.pack(state, handle)
    target = tmp_path / "dumps" / "case.msgpack.gz"

    redact_dump_file(source, target, {"planted-3"})

    with gzip.open(target, "rb") as handle:
        redacted = msgpack.unpack(handle)
    worker = redacted["workers"]["tcp://127.0.0.1:40000"]
    assert worker["config"] == {"coiled": {"token": MASK}, "distributed": {"comm": {"tls": {"client": {"key": MASK}}}}}
    assert worker["data"] == {"x": b"\x00\x01"}
    assert redacted["scheduler"]["tasks"] == state["scheduler"]["tasks"]  # task keys are not judged by name
    assert redacted["scheduler"]["log"] == [["INFO", "connecting with ***"]]
    assert [path.name for path in target.parent.iterdir()] == ["case.msgpack.gz"]  # no partial file left


def test_an_unreadable_dump_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "raw.msgpack.gz"
    source.write_bytes(b"not gzip")

    with pytest.raises(OSError):
        redact_dump_file(source, tmp_path / "dumps" / "case.msgpack.gz", set())

    assert not any((tmp_path / "dumps").glob("*"))


def test_a_log_is_appended_redacted(tmp_path: Path) -> None:
    raw, log = tmp_path / "raw.log", tmp_path / "logs" / "run.log"
    raw.write_text("worker started\nauth failed for planted-3\n")

    redact_text_file(raw, log, {"planted-3"})
    redact_text_file(raw, log, {"planted-3"})

    assert log.read_text() == "worker started\nauth failed for ***\n" * 2


def test_a_recorded_spec_is_rebuilt_without_its_masked_values() -> None:
    spec = {"env": {"A_TOKEN": MASK, "OMP_NUM_THREADS": "1"}, "dask_config": {"coiled.token": MASK, "x.y": 1}}

    rebuilt, dropped = without_masked(spec)

    assert rebuilt["env"] == {"OMP_NUM_THREADS": "1"}
    assert rebuilt["dask_config"] == {"x.y": 1}
    assert dropped == ["A_TOKEN", "coiled.token"]
    note = masked_note("run R's runtime 'stable'", dropped)
    assert note.startswith(
        "note: run R's runtime 'stable' was recorded with 2 value(s) redacted (A_TOKEN, coiled.token)"
    )
    assert "\n" not in note
