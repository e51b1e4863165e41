"""Secrets never reach ``results/``: the one place that decides what is a secret and masks it.

Two rules, applied to every byte the project writes (case rows, cluster dumps, failure records, logs, records, the
report, Markdown summaries):

- **By key**: a value under a key that looks secret becomes ``***`` and the key stays. A key is a path of segments
  (``coiled.token``, ``DASK_COILED__TOKEN``, nested mappings), each split into words (``AWS_SECRET_ACCESS_KEY`` →
  aws, secret, access, key; ``apiKey`` → api, key). See :func:`is_secret_path` for the words.
- **By value**: the values known to be secret (those of secret-looking environment variables of this process, of a
  runtime's ``env`` and ``dask_config``, and any :func:`remember`-ed) are masked wherever they occur in free text —
  a token echoed in a traceback or a log line — as are the credentials of ``scheme://user:password@host`` URLs.

A runtime's ``env`` values are recorded only for the tuning knobs of :data:`ENV_VALUE_ALLOW_LIST`.

Standard library only, Python ≥ 3.9: the runner imports it inside runtime environments.
"""

from __future__ import annotations

import functools
import gzip
import importlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional

MASK = "***"
# Shorter values are not searched for in text: masking every "true" or "1" would destroy the text, not protect it.
MIN_SECRET_LENGTH = 6

# Values are recorded only for these environment variable names (exact) — tuning knobs, never credentials.
ENV_VALUE_ALLOW_LIST = frozenset(
    {
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_ARENA_MAX",
        "MALLOC_MMAP_THRESHOLD_",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        "PYTHONHASHSEED",
        "PYTHONDONTWRITEBYTECODE",
        "ARROW_DEFAULT_MEMORY_POOL",
    }
)

# A word anywhere in a segment makes it secret. Plural "tokens" is not here: a count (max_tokens), not a token.
_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "creds",
        "auth",
        "authorization",
        "authentication",
        "cookie",
        # written as one word
        "apikey",
        "privatekey",
        "secretkey",
        "accesstoken",
        "authtoken",
        "keyfile",
        "sessionid",
    }
)
# "private" and "session" are secret alone or before one of these (private_key, session_token); not in
# use_private_ip or session_timeout.
_QUALIFIED = frozenset({"private", "session"})
_QUALIFIERS = frozenset({"key", "token", "id", "cookie", "secret", "pem"})
# "<word>_key" is secret (api_key, ssh_key, MY_KEY) unless the word makes it a data key: a column or an object name.
_DATA_KEY_WORDS = frozenset(
    {
        "sort",
        "partition",
        "group",
        "index",
        "primary",
        "foreign",
        "hash",
        "join",
        "merge",
        "shuffle",
        "task",
        "cache",
        "dict",
        "lookup",
        "row",
        "column",
        "by",
        "split",
        "unique",
        "object",
        "s3",
        "blob",
        "bucket",
        "dedup",
        "map",
        "order",
        "range",
    }
)
# A bare "key" is secret under one of these (distributed.comm.tls.client.key); elsewhere it is a task's key.
_KEY_CONTEXT = frozenset({"tls", "ssl", "ssh", "security", "crypto", "encryption", "signing", "jwt", "oauth"})

_SEGMENT_SPLIT = re.compile(r"\.|__")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@")

_remembered: set[str] = set()


def segments(name: str) -> list[str]:
    """A key's path segments: ``coiled.token`` → coiled, token; ``DASK_COILED__TOKEN`` → DASK_COILED, TOKEN."""
    return [part for part in _SEGMENT_SPLIT.split(name) if part]


def words(segment: str) -> list[str]:
    """``AWS_SECRET_ACCESS_KEY`` → aws, secret, access, key; ``apiKey`` → api, key; ``ca-file`` → ca, file."""
    return [word.lower() for word in _WORD.findall(segment)]


def _secret_segment(found: list[str], context: set[str]) -> bool:
    if any(word in _SECRET_WORDS for word in found):
        return True
    for index, word in enumerate(found):
        after = found[index + 1] if index + 1 < len(found) else None
        if word in _QUALIFIED and (len(found) == 1 or after in _QUALIFIERS):
            return True
        if word != "key":
            continue
        if after in ("file", "path"):  # where a key is kept (key_file, ssl_key_path): treated as the key
            return True
        if after is None and index > 0 and found[index - 1] not in _DATA_KEY_WORDS:
            return True  # api_key, private_key, AWS_SECRET_ACCESS_KEY; not sort_key, key_id, keys
        if len(found) == 1 and context & _KEY_CONTEXT:
            return True  # distributed.comm.tls.client.key
    return False


def is_secret_path(path: Iterable[str]) -> bool:
    """Whether a value under this path of key segments is a secret (see the module's rules)."""
    return _is_secret_path(tuple(path))


@functools.lru_cache(maxsize=8192)  # rows and dumps ask about the same few hundred paths again and again
def _is_secret_path(path: tuple[str, ...]) -> bool:
    context: set[str] = set()
    for segment in path:
        found = words(segment)
        if _secret_segment(found, context):
            return True
        context.update(found)
    return False


def is_secret_key(name: str, parents: Iterable[str] = ()) -> bool:
    """Whether ``name`` (an env var, a dotted Dask config key, a mapping key under ``parents``) holds a secret."""
    return is_secret_path([*parents, *segments(name)])


def redact(value: Any, parents: Iterable[str] = ()) -> Any:
    """``value`` with every value under a secret-looking key (at any depth, dotted or nested) replaced by ``***``.

    Unset values (None, "") stay as they are: ``***`` would say a secret was set. Lists and tuples are walked."""
    path = list(parents)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            here = [*path, *segments(str(key))]
            out[key] = MASK if item not in (None, "") and is_secret_path(here) else redact(item, here)
        return out
    if isinstance(value, list):
        return [redact(item, path) for item in value]
    if isinstance(value, tuple):
        return tuple(redact(item, path) for item in value)
    return value


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def secret_values(*sources: Optional[Mapping[str, Any]]) -> set[str]:
    """The values under secret-looking keys of these mappings (env vars, Dask config), long enough to search for."""
    found: set[str] = set()

    def walk(value: Any, path: list[str]) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                here = [*path, *segments(str(key))]
                if is_secret_path(here):
                    found.update(text for text in _strings(item) if len(text) >= MIN_SECRET_LENGTH)
                else:
                    walk(item, here)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, path)

    for source in sources:
        if source:
            walk(source, [])
    return found


def remember(*sources: Optional[Mapping[str, Any]]) -> None:
    """Keep the secret values of these mappings (e.g. every runtime's env and dask_config) for :func:`known_secrets`."""
    _remembered.update(secret_values(*sources))


def known_secrets(environ: Optional[Mapping[str, str]] = None) -> set[str]:
    """Every secret value known to this process: its secret-looking environment variables and those remembered."""
    return secret_values(os.environ if environ is None else environ) | _remembered


def redact_text(text: str, secrets: Optional[Iterable[str]] = None) -> str:
    """``text`` with every known secret value (longest first) and every URL's password replaced by ``***``."""
    for secret in sorted(known_secrets() if secrets is None else secrets, key=len, reverse=True):
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    if "@" not in text or "://" not in text:
        return text
    return _URL_CREDENTIALS.sub(r"\1" + MASK + "@", text)


def redact_strings(value: Any, secrets: Iterable[str]) -> Any:
    """Every string in ``value`` (at any depth; mapping keys too) through :func:`redact_text`."""
    wanted = sorted(set(secrets), key=len, reverse=True)
    return _redact_strings(value, wanted)


def _redact_strings(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {_redact_strings(key, secrets): _redact_strings(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_strings(item, secrets) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_strings(item, secrets) for item in value)
    return value


def redact_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """A runtime's ``env`` as recorded: values of allow-listed names only, ``***`` for every other set value."""
    return {name: value if name in ENV_VALUE_ALLOW_LIST or value in (None, "") else MASK for name, value in env.items()}


def redact_runtime_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A runtime spec as recorded: ``env`` by the allow-list, the rest by key — but not ``packages`` (names of
    distributions, e.g. google-auth, not keys), so reproduce still rebuilds the same environment."""
    out: dict[str, Any] = {}
    for field, value in spec.items():
        if field == "env" and isinstance(value, Mapping):
            out[field] = redact_env(value)
        elif field in ("packages", "lockstep"):
            out[field] = value
        else:
            out[field] = redact(value, [field] if field != "dask_config" else [])
    return out


# Case row columns whose mappings are redacted by key. Not packages (distribution names), extra_metrics (numbers),
# missing (metric names) or tasks_by_worker (addresses): their keys are not settings.
KEYED_COLUMNS = frozenset({"dask_config", "env_vars", "params", "hardware_spec"})


def _as_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def row_secrets(row: Mapping[str, Any]) -> set[str]:
    """The secret values a row's own runtime spec and Dask config hold, and those :func:`known_secrets` knows."""
    spec = _as_json(row.get("runtime_spec"))
    spec = spec if isinstance(spec, Mapping) else {}
    config = _as_json(row.get("dask_config"))
    return known_secrets() | secret_values(
        spec.get("env"),
        spec.get("dask_config"),
        config if isinstance(config, Mapping) else None,
    )


def redact_row(row: Mapping[str, Any], secrets: Optional[Iterable[str]] = None) -> dict[str, Any]:
    """A case row as it may be written: runtime spec and settings by key, every string by value.

    JSON columns given as text are parsed (and come back as mappings: the results module encodes them again)."""
    found = row_secrets(row) | set(secrets or ())
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name == "runtime_spec":
            parsed = _as_json(value)
            value = redact_runtime_spec(parsed) if isinstance(parsed, Mapping) else value
        elif name in KEYED_COLUMNS:
            value = redact(_as_json(value))
        out[name] = redact_strings(value, found)
    return out


def redact_dump_state(state: Any, secrets: Iterable[str]) -> Any:
    """A cluster dump's state: each ``config`` section (the whole Dask config of a worker) by key, every string by
    value. Elsewhere mapping keys are task keys and addresses, not settings: they are not judged by name."""
    wanted = sorted(set(secrets), key=len, reverse=True)

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                _redact_strings(key, wanted): walk(redact(item) if key == "config" else item)
                for key, item in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [walk(item) for item in value]
        return _redact_strings(value, wanted)

    return walk(state)


def redact_dump_file(source: Path, target: Path, secrets: Iterable[str]) -> None:
    """Copy a ``.msgpack.gz`` cluster dump (``Client.dump_cluster_state``) to ``target``, redacted; the target
    appears whole or not at all. Raises (and writes nothing) when the dump cannot be read."""
    msgpack = importlib.import_module("msgpack")  # distributed's dependency: present wherever a dump can be made

    with gzip.open(source, "rb") as handle:
        state = msgpack.unpack(handle, raw=False, strict_map_key=False, use_list=False)
    state = redact_dump_state(state, secrets)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with gzip.open(partial, "wb") as handle:
            msgpack.pack(state, handle)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def redact_text_file(source: Path, target: Path, secrets: Optional[Iterable[str]] = None) -> None:
    """Append ``source`` (a log) to ``target`` line by line, redacted; ``source`` is left as it is."""
    wanted = sorted(known_secrets() if secrets is None else set(secrets), key=len, reverse=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8", errors="replace") as reading, target.open("a", encoding="utf-8") as writing:
        for line in reading:
            writing.write(redact_text(line, wanted))


def without_masked(spec: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A recorded runtime spec ready to rebuild: ``env`` and ``dask_config`` entries recorded as ``***`` dropped
    (their values were never stored, so they cannot be restored), and the names of those dropped."""
    out = dict(spec)
    dropped: list[str] = []
    for field in ("env", "dask_config"):
        values = spec.get(field)
        if isinstance(values, Mapping):
            dropped += [str(name) for name, value in values.items() if value == MASK]
            out[field] = {name: value for name, value in values.items() if value != MASK}
    return out, dropped


def masked_note(whose: str, dropped: list[str]) -> str:
    """The one line saying what a rebuilt runtime runs without."""
    return (
        f"note: {whose} was recorded with {len(dropped)} value(s) redacted ({', '.join(dropped)}) — they are not"
        " restored: it runs without them (declare them in matrices/runtimes.yaml and use that runtime to set them)"
    )
