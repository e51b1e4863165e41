"""framework/failure_signatures.py: one bug, one signature — across runs, releases, Pythons and machines; different
bugs, different signatures. Read from real recorded failures and the fuzzer's thread-leak failure."""

from __future__ import annotations

import pytest
from failure_records import LEAK_SIGNATURE, leak_failure, recorded

from framework.failure_signatures import gist, grouped, module_path, of_record, of_row, signature

REAL = recorded()


def test_the_same_upstream_bug_on_two_dask_releases_has_one_signature() -> None:
    # 2024.11.1 says "cancelled for reason: unknown" at dask/base.py:660, 2025.3.1 "lost dependencies" at :656
    older, newer = of_row(REAL["groupby_dropna_keys@2024.11.1"]), of_row(REAL["groupby_dropna_keys@2025.3.1"])

    assert older == newer
    assert older.text == (
        "failed: WorkloadCheckFailed ← FutureCancelledError; raised at _gather (distributed/client.py)"
        " ← compute (dask/base.py)"
    )


def test_the_rejoin_guard_on_latest_and_stable_has_one_signature_from_its_message() -> None:
    # threadpoolexecutor.py:141 on 2026.8.0, :142 on 2026.3.0; thread names differ; the traceback is the harness's
    latest, stable = of_row(REAL["rejoin_thread_leak@2026.8.0"]), of_row(REAL["rejoin_thread_leak@2026.3.0"])

    assert latest == stable
    assert latest.text == "failed: WorkloadCheckFailed; threads wait in rejoin (distributed/threadpoolexecutor.py)"


def test_different_bugs_have_different_signatures() -> None:
    texts = {key: (of_record(r) if "kind" in r else of_row(r)).text for key, r in REAL.items()}
    # two pairs are one bug each on two releases (above); every other recorded failure is a bug of its own
    assert len(set(texts.values())) == len(REAL) - 2
    assert texts["mixed_compute_order@2025.4.0"] == (
        'failed: WorkloadCheckFailed; "dask.compute returned mixed collections out of order"'
    )
    assert texts["persisted_array_parts@2024.12.1"] == (
        'failed: WorkloadCheckFailed; "part N of N of a persisted array reached its delayed task as tuple"'
    )


def test_real_stability_teardown_failures_keep_the_cause_and_where_it_was_raised_without_the_flaky_note() -> None:
    join = of_record(REAL["20261206T103434Z-cbfa57-latest-inprocess"])
    closing = of_record(REAL["20261206T103434Z-cbfa57-latest-process"])

    assert join.text == (
        "teardown: TeardownError ← TimeoutError; raised at join (distributed/utils.py)"
        " ← _real_stop (distributed/utils.py)"
    )
    assert closing.text == (
        "teardown: TeardownError ← AssertionError; raised at _close (distributed/deploy/spec.py) ← run (tornado/gen.py)"
    )


def test_the_fuzzers_thread_leak_has_one_signature_across_releases_pythons_paths_and_call_paths() -> None:
    # latest: Python 3.11, plain secede/rejoin; stable: Python 3.10, leaving worker_client(), another checkout and pid
    latest = leak_failure(env="latest-84948cc5", python="3.11", line=141, pid=17535, via_worker_client=False)
    stable = leak_failure(
        env="stable-0c67bfd4", python="3.10", line=142, pid=90210, via_worker_client=True, root="/home/ci/blessing"
    )
    rows = [
        {"workload": "stability.fuzz", "outcome": "failed", "error": e, "traceback": t} for e, t in (latest, stable)
    ]

    assert {of_row(row).text for row in rows} == {LEAK_SIGNATURE}
    # the error line alone (a traceback cut to its last 4000 characters, or lost) gives the same
    assert of_row({**rows[0], "traceback": None}).text == LEAK_SIGNATURE


def test_a_liveness_failure_keeps_its_stuck_states_but_not_its_keys_addresses_or_counts() -> None:
    def hang(keys: str, states: str) -> dict[str, str]:
        error = (
            f"liveness: LivenessError: {keys} neither finished, erred nor were cancelled 40 s after faults stopped:"
            f" …; scheduler states: {states}; deadlock: no transition in 2 s"
        )
        return {"workload": "stability.fuzz", "outcome": "timeout", "error": error, "traceback": ""}

    one = of_row(hang("3 future(s)", "dag0-1=processing on tcp://127.0.0.1:40123, dag0-2=queued, dag0-3=queued"))
    two = of_row(hang("7 future(s)", "('tree1-4', 2)=queued, dag4-9=processing on inproc://192.0.2.2/266/9"))
    other = of_row(hang("1 future(s)", "dag0-1=waiting"))

    assert one == two
    assert one.text == (
        'liveness: LivenessError; stuck processing, queued; "N future(s) neither finished, erred nor were cancelled'
        ' N s after faults stopped"'
    )
    assert other != one


def test_a_hangs_states_are_every_stuck_keys_not_only_those_of_the_keys_that_sort_first() -> None:
    """The fuzzer lists 20 stuck keys and counts the states of all: the same hang is one class whichever keys sort
    first (a #8702 hang had read "stuck queued" or "stuck processing, queued" — #7223's class — by its key names)."""
    from framework.chaos.executor import stuck_states

    states = {f"fanout2-{index}": "queued" for index in range(30)}
    states |= {"nested1-5": "processing on tcp://127.0.0.1:44499", "nested1src-0": "queued"}
    listed = stuck_states(states)
    assert listed.startswith("fanout2-0=queued, fanout2-1=queued, fanout2-10=queued")
    assert listed.endswith("… (all 32: processing 1, queued 31)") and listed.count("=") == 20
    error = (
        "LivenessError: 32 future(s) neither finished, erred nor were cancelled 40 s after faults stopped: …;"
        f" scheduler states: {listed}; workers: worker 0 running; deadlock: no transition in 2 s"
    )
    assert signature("liveness", error, "").states == ("processing", "queued")
    assert stuck_states({"a": "waiting"}) == "a=waiting"  # few keys: listed, not counted
    assert signature("liveness", error.replace(listed, "a=waiting"), "").states == ("waiting",)


def test_hangs_in_the_same_states_are_told_apart_by_what_their_tasks_wait_on() -> None:
    """#7223 (queued behind seceded tasks) and #8702 (queued on lost data) can leave keys in the same states; the
    scheduler's view of what they wait on tells them apart — read on the scheduler by ``stuck_causes``."""
    from types import SimpleNamespace

    from framework.chaos.invariants import NO_CAUSE, stuck_causes
    from framework.failure_signatures import NO_CAUSE as SHOWN

    assert SHOWN == NO_CAUSE

    def hang(causes: str) -> str:
        return (
            "LivenessError: 3 future(s) neither finished, erred nor were cancelled 40 s after faults stopped: …;"
            f" scheduler states: a=processing on tcp://x:1, b=queued, c=waiting{causes}; workers: worker 0 running;"
            " deadlock: no transition in 2 s (hypothesis: flaky — it did not fail again when re-run)"
        )

    seceded = signature("liveness", hang("; stuck on: seceded"), "")
    lost = signature("liveness", hang("; stuck on: no running worker, queued on missing data"), "")
    assert seceded.text.startswith("liveness: LivenessError; stuck on seceded; ")
    assert lost.causes == ("no running worker", "queued on missing data") and lost != seceded
    assert signature("liveness", hang(""), "").causes == ()  # older records: as before

    class Task(SimpleNamespace):  # hashable by identity, as distributed's TaskState and WorkerState
        __hash__ = object.__hash__

    worker = Task(status="Status.running", long_running=set())
    source = Task(state="released", who_has=set(), dependencies=())
    queued = Task(state="queued", dependencies=(source,), processing_on=None)
    busy = Task(state="processing", dependencies=(), processing_on=worker)
    scheduler = SimpleNamespace(tasks={"src": source, "q": queued, "p": busy}, workers={"w": worker})
    assert stuck_causes(scheduler) == ["queued on missing data"]
    worker.long_running.add(busy)
    source.state, source.who_has = "memory", {worker}
    assert stuck_causes(scheduler) == ["seceded"]
    worker.long_running.clear()
    assert stuck_causes(scheduler) == [NO_CAUSE]
    unexplained = signature("liveness", hang(f"; stuck on: {NO_CAUSE}"), "")
    assert "; stuck processing, queued, waiting (nothing seceded or missing); " in unexplained.text
    assert unexplained.text != signature("liveness", hang(""), "").text  # not an old record's class
    worker.status = "Status.closing"
    assert stuck_causes(scheduler) == ["no running worker"]  # then nothing can run: that alone is the answer
    failed = "the scheduler failed AssertionError `assert ts.priority, ts` in _task_to_msg (distributed/scheduler.py); "
    dropped = signature("liveness", hang("; stuck on: no running worker").replace(": ", f": {failed}", 1), "")
    assert dropped.text == (
        'liveness: LivenessError; stuck on no running worker; "the scheduler failed AssertionError `assert'
        ' ts.priority, ts` in _task_to_msg"'
    ), dropped.text


def test_scheduler_validation_failures_are_told_apart_by_the_assertions_label_only() -> None:
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/env/lib/python3.10/site-packages/distributed/scheduler.py", line 5063, in validate_state\n'
        '  File "/env/lib/python3.10/site-packages/distributed/scheduler.py", line 8186, in validate_task_state\n'
        "AssertionError: ('dep missing', …)\n\nThe above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n"
        '  File "/work/main/framework/chaos/executor.py", line 396, in _check_state\n'
        "framework.chaos.invariants.StateValidationError: Scheduler.validate_state failed\n"
    )

    def invalid(assertion: str) -> dict[str, str]:
        error = f"validate: StateValidationError: Scheduler.validate_state failed: AssertionError: {assertion}"
        return {"workload": "stability.fuzz", "outcome": "failed", "error": error, "traceback": traceback}

    # distributed#8702 on 2022.10.1 and on 2024.6.0: other keys, the same bug
    one = of_row(invalid("('dep missing', \"<TaskState 'nested0-2' queued>\", \"<TaskState 'nested0src-0' queued>\")"))
    two = of_row(invalid("('dep missing', \"<TaskState 'nested0-0' queued>\", \"<TaskState 'nested0src-0' queued>\")"))
    other = of_row(invalid("('waiting on in-memory dep', \"<TaskState 'x' waiting>\", \"<TaskState 'y' memory>\")"))

    assert one == two
    assert one.text == (
        "validate: StateValidationError ← AssertionError; assert 'dep missing'; raised at validate_task_state"
        " (distributed/scheduler.py) ← validate_state (distributed/scheduler.py)"
    )
    assert other != one


def test_a_bare_assertion_is_told_apart_by_its_statement() -> None:
    """``assert a.keys() == b.keys()`` raises an AssertionError with no message: the statement under the innermost
    frame (Python 3.11 prints carets under it) is what tells it from the function's other asserts."""

    def bare(statement: str, message: str = "") -> str:
        return (
            "Traceback (most recent call last):\n"
            '  File "/env/lib/python3.11/site-packages/distributed/client.py", line 2817, in _run_on_scheduler\n'
            "    raise exc.with_traceback(tb)\n"
            '  File "/work/main/framework/chaos/invariants.py", line 95, in validate_scheduler\n'
            "    validate()\n"
            "      ^^^^^^^^^\n"
            '  File "/env/lib/python3.11/site-packages/distributed/scheduler.py", line 5666, in validate_state\n'
            f"    {statement}  # the counts\n"
            "    ^^^^^^^^^^^^^^^^^\n"
            f"AssertionError{message}\n\nThe above exception was the direct cause of the following exception:\n\n"
            "Traceback (most recent call last):\n"
            '  File "/work/main/framework/chaos/executor.py", line 508, in _check_state\n'
            "framework.chaos.invariants.StateValidationError: Scheduler.validate_state failed: AssertionError: \n"
        )

    error = "Scheduler.validate_state failed: AssertionError: "
    statement = "assert task_prefix_counts.keys() == self._task_prefix_count_global.keys()"
    counts = signature("validate", error, bare(statement))
    running = signature("validate", error, bare("assert ws.status == Status.running"))
    assert counts.text == (
        "validate: StateValidationError ← AssertionError; assert task_prefix_counts.keys() =="
        " self._task_prefix_count_global.keys(); raised at validate_state (distributed/scheduler.py) ←"
        " _run_on_scheduler (distributed/client.py)"
    )
    assert running.asserted == "ws.status == Status.running" and running != counts
    # An assertion with a message is told by its message (or label), not by its statement.
    assert signature("validate", error + "x", bare("assert ws.status == 1", ": x")).asserted == ""
    assert signature("validate", error, bare("assert (")).asserted == ""  # a statement over several lines


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (
            "/work/main/.blessing/envs/latest-84948cc5/lib/python3.11/site-packages/distributed/utils.py",
            "distributed/utils.py",
        ),
        ("C:\\envs\\stable\\Lib\\site-packages\\dask\\base.py", "dask/base.py"),
        ("/usr/lib/python3/dist-packages/tornado/gen.py", "tornado/gen.py"),
        ("/root/.local/share/uv/python/cpython-3.11.7/lib/python3.11/threading.py", None),
        ("/work/main/framework/chaos/executor.py", None),
        ("/home/ci/blessing/workloads/guards/rejoin_thread_leak.py", None),
        ("chaos/graphs.py", None),  # as an error line shortens a project file
        ("/tmp/standalone.py", "standalone.py"),
    ],
)
def test_frames_are_named_from_site_packages_and_the_harness_and_standard_library_are_left_out(
    path: str, shown: str | None
) -> None:
    assert module_path(path) == shown


def test_the_gist_drops_the_type_keys_numbers_and_quoted_text() -> None:
    assert gist("ResultError: dag0-7 was cancelled, but the program never cancelled it nor restarted") == (
        "N was cancelled, but the program never cancelled it nor restarted"
    )
    assert gist("closing the cluster did not return within 60 s") == "closing the cluster did not return within N s"


def test_failures_are_counted_by_signature_with_first_seen_runtimes_and_the_newest_as_example() -> None:
    leak = [
        leak_failure(env="latest-a", python="3.11", line=141, pid=pid, via_worker_client=bool(pid % 2))
        for pid in (1, 2)
    ]
    failures = [
        {"workload": "stability.fuzz", "outcome": "failed", "error": e, "traceback": t, "runtime": runtime,
         "started_at": at, "failure_id": f"F{fid}"}
        for (e, t), runtime, at, fid in zip(leak, ("latest", "stable"), ("2026-12-06T10", "2026-12-05T09"), "21")
    ]  # fmt: skip
    failures.append({**REAL["20261206T103434Z-cbfa57-latest-inprocess"], "failure_id": "F3"})

    first, second = grouped(failures)

    assert (first.signature.text, first.count, first.runtimes) == (LEAK_SIGNATURE, 2, ("latest", "stable"))
    assert (first.first_seen, first.example) == ("2026-12-05T09", "F2")
    assert (second.count, second.example) == (1, "F3")


def test_a_failure_met_while_hypothesis_stops_an_example_has_the_same_signature() -> None:
    """Hypothesis's StopTest (its own control flow) as the context of a chain is not part of the failure."""
    own = (
        "Traceback (most recent call last):\n"
        '  File "/work/main/framework/chaos/machine.py", line 394, in teardown\n'
        "framework.chaos.invariants.LivenessError: 2 future(s) neither finished, erred nor were cancelled 40 s after"
        " faults stopped: a; scheduler states: a=processing on tcp://x, b=queued\n"
    )
    during = (
        "Traceback (most recent call last):\n"
        '  File "/env/lib/python3.10/site-packages/hypothesis/stateful.py", line 166, in run_state_machine\n'
        '  File "/env/lib/python3.10/site-packages/hypothesis/internal/conjecture/data.py", line 1487,'
        " in conclude_test\n"
        "hypothesis.errors.StopTest: 126\n\nDuring handling of the above exception, another exception occurred:\n\n"
        + own
    )
    error = "LivenessError: 2 future(s) neither finished … : a=processing on tcp://x, b=queued"
    assert signature("liveness", error, during) == signature("liveness", error, own)
    assert "StopTest" not in signature("liveness", error, during).text


def test_a_restart_timeout_keeps_its_message_nannies_that_did_not_stop_and_workers_that_did_not_return_differ() -> None:
    """distributed's restart_workers raises a bare TimeoutError for both; only the first is distributed's bug."""
    from framework.known_failures import load_known_failures, match

    record = REAL["20261207T050114Z-24e74d-stable-process"]  # calibration run 7, stable's process tier, load 7
    killed = of_record(record)
    returned = signature(
        "error",
        "TimeoutError: Waited for 4 worker(s) to reconnect after restarting but, after 120s, only 3 have returned.",
        record["traceback"],
    )

    where = "raised at restart_workers (distributed/scheduler.py) ← wrapper (distributed/utils.py)"
    assert killed.text == f'error: TimeoutError; {where}; "N nanny worker(s) did not shut down within N"'
    assert returned.text.startswith(f'error: TimeoutError; {where}; "Waited for N worker(s) to reconnect')
    known = load_known_failures()
    found = match(known, killed.text)
    assert found is not None and found.name == "distributed_restart_nanny_kill_deadline"
    assert found.entry.reproducer == "workloads/reproducers/restart_nanny_kill_deadline.py"
    assert match(known, returned.text) is None  # the harness's own class stays unexplained if it comes back


def test_a_hang_named_by_what_the_scheduler_failed_on_keeps_one_class_whatever_it_left_queued() -> None:
    """2022.10.2's stale long-running message (calibration run 7): the scheduler dropped workers over
    ``assert ts not in self.long_running``; the hang it left has nothing seceded or missing, and its stuck states are
    whatever happened to be queued — the failure names the class, as for a hang with no running worker."""
    from framework.known_failures import load_known_failures, match

    failed = (
        "the scheduler failed AssertionError `assert ts not in self.long_running` in add_to_long_running"
        " (distributed/scheduler.py); "
    )

    def hang(states: str, first: str = failed) -> str:
        return (
            f"LivenessError: {first}19 future(s) neither finished, erred nor were cancelled 40 s after faults stopped:"
            f" a, b …; scheduler states: {states}; stuck on: nothing seceded or missing; workers: worker 3 running"
        )

    run_7 = signature("liveness", hang("a=processing on tcp://h:1, b=queued, c=waiting"), "")
    another = signature("liveness", hang("a=processing on tcp://h:1, b=queued"), "")
    assert (
        run_7.text
        == another.text
        == (
            'liveness: LivenessError; stuck (nothing seceded or missing); "the scheduler failed AssertionError'
            ' `assert ts not in self.long_running` in add_to_long_running"'
        )
    )
    found = match(load_known_failures(), run_7.text)
    assert found is not None and found.name == "distributed_8991_long_running_twice"
    assert found.entry.reproducer == "workloads/reproducers/long_running_twice.py"
    # nothing failed first: the states are all there is, and they stay in the class
    unnamed = signature("liveness", hang("a=processing on tcp://h:1, b=queued, c=waiting", first=""), "")
    assert "; stuck processing, queued, waiting (nothing seceded or missing); " in unnamed.text
