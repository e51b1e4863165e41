"""framework/machines.py and the fingerprint of framework/in_runtime/provenance.py: machine identity and classes."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading

import pytest

from framework.config import load_file
from framework.in_runtime import provenance
from framework.in_runtime.errors import ConfigError
from framework.machines import UNKNOWN, Machine, classify, load_policy
from framework.models.machines import MachinesFile

FP_A = {
    "cpu_model": "AMD EPYC 7763",
    "cores": 4,
    "memory_gib": 16,
    "kernel": "6.5.0-1",
    "virtualisation": "x",
    "arch": "x86_64",
}
FP_B = {**FP_A, "cores": 8, "memory_gib": 32}
AT = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_the_fingerprint_is_stable_names_no_host_and_hashes_to_a_short_id():
    first, second = provenance.machine_fingerprint(), provenance.machine_fingerprint()
    assert first == second
    assert tuple(first) == provenance.FINGERPRINT_FIELDS
    assert first["cores"] and first["cpu_model"]
    assert isinstance(first["memory_gib"], int)
    import socket

    assert socket.gethostname() not in json.dumps(first)
    identity = provenance.identity(first, "runner")
    assert re.fullmatch(r"[0-9a-f]{12}", identity["machine_id"])
    # Where it was read, and notes, are not facts of the machine: the same machine has the same id.
    assert provenance.identity(first, "workers", "a note")["machine_id"] == identity["machine_id"]
    assert provenance.machine_id({**first, "kernel": "other"}) != identity["machine_id"]


def test_memory_is_whole_gib_so_copies_of_one_vm_type_agree():
    assert provenance.memory_gib(int(15.62 * 2**30)) == provenance.memory_gib(int(15.81 * 2**30)) == 16
    assert provenance.memory_gib(None) is None


class _Client:
    def __init__(self, answers):
        self.answers = answers

    def run(self, function):
        if isinstance(self.answers, Exception):
            raise self.answers
        assert function is provenance.machine_fingerprint
        return self.answers


def test_a_remote_clusters_workers_are_fingerprinted_one_kind_several_kinds_or_not_at_all():
    one = provenance.workers_identity(_Client({"tcp://a:1": FP_A, "tcp://b:1": FP_A}))
    assert one["machine_id"] == provenance.machine_id(FP_A)
    assert one["machine_fingerprint"]["measured_on"] == "workers"

    mixed = provenance.workers_identity(_Client({"tcp://a:1": FP_A, "tcp://b:1": FP_B, "tcp://c:1": FP_A}))
    fingerprint = mixed["machine_fingerprint"]
    assert len(fingerprint["machines"]) == 2
    assert fingerprint["note"] == "3 workers on 2 kinds of machine"
    assert mixed["machine_id"] not in (provenance.machine_id(FP_A), provenance.machine_id(FP_B))

    unreachable = provenance.workers_identity(_Client(OSError("connection closed")))
    assert unreachable["machine_fingerprint"]["measured_on"] == "runner"
    assert (
        "could not be read (OSError: connection closed); this is the client's"
        in (unreachable["machine_fingerprint"]["note"])
    )


def test_workers_that_never_answer_do_not_hold_the_run():
    release = threading.Event()

    class Hung:
        def run(self, function):
            release.wait(5)
            return {}

    try:
        identity = provenance.workers_identity(Hung(), timeout_s=0.05)
    finally:
        release.set()
    assert identity["machine_fingerprint"]["note"] == (
        "the workers' machines could not be read (no answer within 0.05 s); this is the client's"
    )


def _machine(key, fingerprint=None):
    return Machine(key, key if fingerprint else None, fingerprint, "run-" + key, AT)


def _legacy(cpu_model, cpu_count, ram_bytes):
    return Machine(f"legacy|{cpu_model}|{cpu_count}|{ram_bytes}", None, None, "old", AT)


def test_classes_follow_the_policy_fields_and_pools():
    a, a_new_kernel, b = _machine("a", FP_A), _machine("k", {**FP_A, "kernel": "6.8"}), _machine("b", FP_B)
    classes = classify([a, a_new_kernel, b], MachinesFile())
    assert classes["a"] == classes["k"]  # the kernel is not a class field by default
    assert re.fullmatch(r"4c-16g-[0-9a-f]{6}", classes["a"])
    assert re.fullmatch(r"8c-32g-[0-9a-f]{6}", classes["b"])

    split = classify([a, a_new_kernel], MachinesFile(class_fields=["cpu_model", "kernel"]))
    assert split["a"] != split["k"]

    pooled = MachinesFile.model_validate({"pools": {"ci": {"match": {"cpu_model": "AMD EPYC*"}}}})
    assert set(classify([a, b], pooled).values()) == {"ci"}
    b_by_id = _machine("0123456789ab", FP_B)
    by_id = MachinesFile.model_validate({"pools": {"mine": {"machine_ids": ["0123456789ab"]}}})
    assert classify([a, b_by_id], by_id)["0123456789ab"] == "mine" != classify([a, b_by_id], by_id)["a"]


def test_rows_without_a_fingerprint_join_the_one_class_that_agrees_with_their_facts():
    a, b = _machine("a", FP_A), _machine("b", FP_B)
    old_a = _legacy("AMD EPYC 7763", 4, int(15.7 * 2**30))
    other = _legacy("Intel Xeon", 2, 8 * 2**30)
    nothing = Machine("legacy|||", None, None, "old", AT)
    classes = classify([old_a, other, nothing, a, b], MachinesFile())
    assert classes[old_a.key] == classes["a"]
    assert classes[other.key] not in (classes["a"], classes["b"])
    assert re.fullmatch(r"2c-8g-[0-9a-f]{6}", classes[other.key])
    assert classes[nothing.key] == UNKNOWN


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "class_fields: [cpu_model, kernal]\n",
            r"machines\.yaml: class_fields\.1: .*'cpu_model', 'cores', 'memory_gib', 'kernel'",
        ),
        (
            "pools:\n  ci: {description: runners}\n",
            r"machines\.yaml: pools\.ci: names no machine — add machine_ids or match",
        ),
        (
            "pools:\n  ci: {machine_ids: [abc]}\n",
            r"machines\.yaml: pools\.ci\.machine_ids: 'abc' is not a machine id — use the 12 hex digits",
        ),
        ("pools:\n  ci: {match: {core: 4}}\n", r"machines\.yaml: pools\.ci\.match"),
        ("class_fields: [cores, cores]\n", r"machines\.yaml: class_fields: lists a fact twice"),
    ],
)
def test_a_bad_policy_is_one_line_naming_the_file_the_field_and_the_fix(tmp_path, text, message):
    path = tmp_path / "machines.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_file(path, MachinesFile)
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError):
        load_policy(path)


def test_the_shipped_policy_is_the_default_and_a_missing_file_means_the_default(tmp_path):
    assert load_policy() == MachinesFile()
    assert load_policy(tmp_path / "none.yaml") == MachinesFile()
