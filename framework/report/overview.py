"""The overview's answer: one go/no-go line per runtime — BLESSED, NOT BLESSED, UNUSABLE or NOT JUDGED.

Derived from what the store records: the newest blessing verdict of each runtime (``verdicts``), the newest health
check of its environment (``health``), its runs (a run in which every case errored before a measured repeat) and
the locks of its environments (``environments``). :func:`runtime_states` is pure; :func:`go_no_go` writes the HTML.

A verdict judges one environment (its packages). It is **stale** — and the runtime NOT JUDGED again — when the
runtime's newest run or health check came after the verdict in an environment with other packages (another lock;
the env hash when a lock is not recorded) or from a changed runtime declaration (``runtime_hash``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any, Literal

from framework.config import DEFAULT_RESULTS, ROOT, load_catalog
from framework.criteria import Criteria, load
from framework.environments import parse_lock
from framework.export import install_command
from framework.in_runtime.errors import FrameworkError
from framework.limits import OVERLOADED
from framework.metric_catalogue import METRICS
from framework.query import Results
from framework.report.data import dict_rows
from framework.report.environment import EnvironmentRecords, cause_html, versions
from framework.report.layout import link, when

State = Literal["BLESSED", "NOT BLESSED", "UNUSABLE", "NOT JUDGED"]
DEFAULT_CRITERIA = "default"  # the criteria nox -s bless judges by when --criteria is not given
STALE_RULE = (
    "A verdict holds for the environment it judged: when the runtime ran (or was checked) after it in an environment"
    " with other packages, or from a changed declaration, the verdict is stale and the runtime is NOT JUDGED until"
    " <code>nox -s bless</code> judges it again."
)


@dataclasses.dataclass(frozen=True)
class Yardstick:
    """What a runtime is judged by: criteria name, baseline, hardware, each metric's allowance, alpha."""

    criteria: str
    baseline: str
    hardware: str
    allowances: Mapping[str, float]
    alpha: float = 0.01

    def allowance(self, metric: str) -> tuple[float, str]:
        """The largest change that is not a regression, and where it comes from."""
        if metric in self.allowances:
            return self.allowances[metric], f"criteria {self.criteria}"
        return METRICS[metric].min_effect, f"the metric's minimum effect (criteria {self.criteria} do not judge it)"


@dataclasses.dataclass(frozen=True)
class Judging:
    """The criteria the CLI judges by when none are named (``default``), or why they could not be read."""

    criteria: Criteria | None
    problem: str | None = None
    name: str = DEFAULT_CRITERIA
    declared: tuple[str, ...] | None = None  # matrices/runtimes.yaml's runtimes, in order; None: unknown (show all)

    def shows(self, runtime: str, has_verdict: bool) -> bool:
        """A line for each declared runtime, and for any runtime with a verdict (a bisection's steps have none)."""
        return self.declared is None or runtime in self.declared or has_verdict

    def yardstick(self, verdict: Mapping[str, Any] | None) -> Yardstick | None:
        """The verdict's criteria as they were declared when it was decided; else today's default set."""
        criteria, name = self.criteria, self.name
        if verdict is not None:
            name = str(verdict["criteria"])
            try:
                criteria = Criteria.model_validate(json.loads(verdict.get("criteria_spec") or "null"))
            except ValueError:  # not stored (an older record) or no longer valid: today's declaration of the set
                criteria = self.criteria if name == self.name else None
        if criteria is None:
            return None
        metrics = criteria.metrics
        return Yardstick(
            name,
            str(verdict["baseline"]) if verdict is not None else criteria.baseline,
            str(verdict["hardware"]) if verdict is not None else criteria.hardware,
            metrics.allowances if metrics is not None else {},
            metrics.alpha if metrics is not None else 0.01,
        )


def judging(root: Path = ROOT) -> Judging:
    """Today's default criteria (``matrices/blessing.yaml``); a broken file is said on the page, not raised."""
    try:
        catalog, criteria = load(root, DEFAULT_CRITERIA)
    except FrameworkError as error:
        try:
            declared: tuple[str, ...] | None = tuple(load_catalog(root).runtimes)
        except FrameworkError:
            declared = None
        return Judging(None, str(error), declared=declared)
    return Judging(criteria, declared=tuple(catalog.runtimes))


@dataclasses.dataclass(frozen=True)
class RuntimeState:
    runtime: str
    state: State
    line: str  # HTML: the sentence after the state word
    yardstick: Yardstick | None
    env_hash: str | None = None  # the environment the runtime resolves to now (newest run or health check)
    stale: bool = False
    overloaded: str = ""  # HTML: why the evidence may be the machine's, or ""


def verdicts(results: Results) -> list[dict[str, Any]]:
    """The newest verdict of each runtime."""
    rows = dict_rows(
        results,
        "SELECT * FROM verdicts QUALIFY row_number() OVER (PARTITION BY runtime ORDER BY decided_at DESC) = 1"
        " ORDER BY runtime",
    )
    for row in rows:
        row["reasons"] = json.loads(row["reasons"] or "[]")
        row["checks"] = json.loads(row["checks"] or "[]")
    return rows


@dataclasses.dataclass(frozen=True)
class Seen:
    """The newest thing a runtime ran in: a run or a health check."""

    at: dt.datetime
    env_hash: str | None
    runtime_hash: str | None
    what: str  # "run X" / "health check of run X"


def newest_seen(runtime: str, runs: Sequence[Mapping[str, Any]], records: EnvironmentRecords) -> Seen | None:
    seen = [
        Seen(run["run_started_at"], run.get("env_hash"), run.get("runtime_hash"), f"run {run['run_id']}")
        for run in runs
        if run["runtime"] == runtime and run.get("run_started_at") is not None
    ]
    seen += [
        Seen(check["checked_at"], check["env_hash"], None, f"health check of run {check['run_id']}")
        for check in records.checks
        if check["runtime"] == runtime and check["checked_at"] is not None
    ]
    return max(seen, key=lambda item: item.at, default=None)


def same_packages(a: str | None, b: str | None, locks: Mapping[str, str | None]) -> bool:
    """Two environments hold the same packages: equal hashes, or equal recorded locks (an identical rebuild)."""
    if a == b:
        return True
    lock_a, lock_b = locks.get(a or ""), locks.get(b or "")
    return lock_a is not None and lock_b is not None and parse_lock(lock_a) == parse_lock(lock_b)


def stale_because(verdict: Mapping[str, Any], seen: Seen | None, locks: Mapping[str, str | None]) -> str | None:
    """Why the verdict no longer judges what the runtime runs in (:data:`STALE_RULE`), or None."""
    if seen is None or verdict["decided_at"] is None or seen.at <= verdict["decided_at"]:
        return None
    if seen.runtime_hash and verdict.get("runtime_hash") and seen.runtime_hash != verdict["runtime_hash"]:
        return f"the runtime's declaration changed since ({seen.what}, {when(seen.at)} UTC)"
    if seen.env_hash and verdict.get("env_hash") and not same_packages(seen.env_hash, verdict["env_hash"], locks):
        return (
            f"it resolves other packages since ({seen.what}, {when(seen.at)} UTC: environment"
            f" {seen.env_hash}, judged {verdict['env_hash']})"
        )
    return None


def _setup_failure(
    runtime: str,
    runs: Sequence[Mapping[str, Any]],
    latest: Sequence[Mapping[str, Any]],
    verdict: Mapping[str, Any] | None,
    records: EnvironmentRecords,
) -> str | None:
    """Every case of the runtime's newest run errored before a measured repeat (and no verdict or passed health
    check came after it): its first error, else None."""
    newest = next((run for run in runs if run["runtime"] == runtime), None)  # runs come newest first
    if newest is None or not newest["cases"] or newest["error"] != newest["cases"] or newest["repeats"]:
        return None
    if verdict is not None and verdict["decided_at"] >= newest["run_started_at"]:
        return None  # judged since: the verdict says whether it could run
    if any(
        c["runtime"] == runtime and c["usable"] and c["checked_at"] > newest["run_started_at"] for c in records.checks
    ):
        return None  # checked since, and usable
    errors = [row["error"] for row in latest if row["run_id"] == newest["run_id"] and row.get("error")]
    first = (errors[0] if errors else "no error recorded").splitlines()[0][:300]
    return f"every case of run {newest['run_id']} ({when(newest['run_started_at'])} UTC) errored at setup: {first}"


def store_runtimes(
    runs: Sequence[Mapping[str, Any]], records: EnvironmentRecords, verdicts: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Every runtime the store knows: of a run, a health check or a verdict, by name."""
    return sorted({*(run["runtime"] for run in runs), *(c["runtime"] for c in records.checks),
                   *(str(verdict["runtime"]) for verdict in verdicts)})  # fmt: skip


def runtime_states(
    *,
    runs: Sequence[Mapping[str, Any]],
    verdicts: Sequence[Mapping[str, Any]],
    records: EnvironmentRecords,
    latest: Sequence[Mapping[str, Any]],
    locks: Mapping[str, str | None],
    judge: Judging,
    results_dir: Path = DEFAULT_RESULTS,
    results_option: str | None = None,
) -> list[RuntimeState]:
    """Each runtime of the store, by name, in one of the four states (``runs`` newest first). ``results_option``:
    the ``--results`` the commands shown need (None for the default store)."""
    by_runtime = {str(verdict["runtime"]): verdict for verdict in verdicts}
    unusable = {check["runtime"]: check for check in records.unusable_now()}
    names = [name for name in store_runtimes(runs, records, verdicts) if judge.shows(name, name in by_runtime)]
    states = []
    for name in names:
        verdict = by_runtime.get(name)
        seen = newest_seen(name, runs, records)
        yardstick = judge.yardstick(verdict)
        loaded = _overloaded(name, runs, verdict)
        env_hash = seen.env_hash if seen is not None else None
        stale = stale_because(verdict, seen, locks) if verdict is not None else None
        line = _unusable(name, unusable.get(name), _setup_failure(name, runs, latest, verdict, records),
                         None if stale else verdict, records)  # fmt: skip
        if line:
            states.append(RuntimeState(name, "UNUSABLE", line, yardstick, env_hash, overloaded=loaded))
            continue
        command = _bless_command(name, yardstick, judge, names, results_option)
        if verdict is None or stale:
            state_line = _not_judged_line(name, command, verdict, stale, yardstick)
            states.append(RuntimeState(name, "NOT JUDGED", state_line, yardstick, env_hash, bool(stale), loaded))
        elif verdict["blessed"]:
            states.append(RuntimeState(name, "BLESSED", _blessed_line(verdict, yardstick, results_dir), yardstick,
                                       env_hash, overloaded=loaded))  # fmt: skip
        else:
            states.append(RuntimeState(name, "NOT BLESSED", _not_blessed_line(verdict), yardstick, env_hash,
                                       overloaded=loaded))  # fmt: skip
    return states


def _unusable(
    name: str,
    check: Mapping[str, Any] | None,
    setup: str | None,
    verdict: Mapping[str, Any] | None,
    records: EnvironmentRecords,
) -> str:
    """Why the runtime cannot run now, as its line: its newest health check failed; else every case of its newest
    run errored at setup; else its (not stale) verdict's 'usable' check failed. "" when none of them."""
    if check is not None:
        return _unusable_line(check, records)
    loud = f"{name} is UNUSABLE"
    if setup is not None:
        return f'<span class="unusable-cause"><b>{escape(loud)}</b>: {escape(setup)}</span>'
    failed = [c for c in (verdict or {}).get("checks", []) if c.get("criterion") == "usable" and not c.get("passed")]
    if verdict is None or not failed:
        return ""
    reason = str(failed[0].get("reason") or failed[0].get("subject") or "no cause recorded")
    rest = reason[len(loud) :] if reason.startswith(loud) else ": " + reason
    decided = f' <span class="facts">· bless verdict of {when(verdict["decided_at"])} UTC</span>'
    return f'<span class="unusable-cause"><b>{escape(loud)}</b>{escape(rest)}</span>{decided}'


def _unusable_line(check: Mapping[str, Any], records: EnvironmentRecords) -> str:
    facts = [
        f"health check of run {records.run_link(check['run_id'], 'runs/')}, {when(check['checked_at'])} UTC",
        versions(check),
        "no case of it can run until this is fixed",
    ]
    steered = f' <span class="note">{escape(check["note"])}</span>' if check["note"] else ""
    return f'{cause_html(dict(check))} <span class="facts">· {" · ".join(f for f in facts if f)}</span>{steered}'


def _bless_command(
    name: str,
    yardstick: Yardstick | None,
    judge: Judging,
    names: Iterable[str],
    results_option: str | None,
) -> str:
    """The command that judges the runtime, as the CLI accepts it (its baseline named when it is the default's)."""
    parts = ["nox -s bless --", f"--runtime={shlex.quote(name)}"]
    baseline = yardstick.baseline if yardstick is not None else None
    default_baseline = judge.criteria.baseline if judge.criteria is not None else None
    if yardstick is not None and yardstick.criteria != judge.name:
        parts.append(f"--criteria={shlex.quote(yardstick.criteria)}")
    if baseline == name or (baseline is not None and baseline != default_baseline):
        other = baseline if baseline != name else _another(name, judge, names)
        parts.append(f"--baseline={shlex.quote(other)}")
    if results_option is not None:
        parts.append(f"--results={shlex.quote(results_option)}")
    return " ".join(parts)


def _another(name: str, judge: Judging, names: Iterable[str]) -> str:
    """A baseline for the baseline itself: the runtime declared after it (stable → previous), else before it, else
    another of the store."""
    declared = list(judge.declared or ())
    if name in declared:
        at = declared.index(name)
        around = [*declared[at + 1 :], *reversed(declared[:at])]
        if around:
            return around[0]
    return next((other for other in names if other != name), "OTHER")


def _baseline_note(name: str, yardstick: Yardstick | None) -> str:
    if yardstick is None or yardstick.baseline != name:
        return ""
    return f" ({escape(name)} is the baseline of criteria {escape(yardstick.criteria)}: it is judged against another)"


def _not_judged_line(
    name: str, command: str, verdict: Mapping[str, Any] | None, stale: str | None, yardstick: Yardstick | None
) -> str:
    if verdict is None:
        return f"no blessing verdict yet — <code>{escape(command)}</code> judges it{_baseline_note(name, yardstick)}"
    word = "BLESSED" if verdict["blessed"] else "NOT BLESSED"
    return (
        f'<span class="stale">stale verdict: {word} on {when(verdict["decided_at"])} UTC, but {escape(stale or "")}'
        f"</span> — <code>{escape(command)}</code> judges it again"
    )


_CRITERION_WORDS = {
    "must_pass": "must pass",
    "stability": "stability",
    "metric": "metric",
    "known_issue": "known issue",
    "known_failure": "known failure",
}


def _in_words(check: Mapping[str, Any]) -> str:
    """A check as a few words: 'must pass groupby_agg[by=id]', 'wall time of array_mean_var', 'usable'."""
    criterion, subject = str(check.get("criterion") or ""), str(check.get("subject") or "")
    if criterion in ("metric", "health"):
        case, _, metric = subject.rpartition(" ")
        if metric in METRICS and case:
            return f"{METRICS[metric].label} of {case}" + (" (limit)" if criterion == "health" else "")
    if criterion == "soak":
        case, _, series = subject.rpartition(" ")
        return f"memory growth of {case or series}" + (f" ({series})" if case else "")
    if criterion == "stability":
        return f"stability {subject}".strip()
    return f"{_CRITERION_WORDS.get(criterion, criterion)} {subject}".strip()


def _stability_words(check: Mapping[str, Any]) -> str:
    """A passed stability check: it passed, or it failed the way the baseline does (framework.shared_failures)."""
    if "known, shared, not a regression" in str(check.get("reason") or ""):
        return _in_words(check) + " failed as the baseline does (shared, not a regression)"
    return _in_words(check) + " passed"


def _judged(verdict: Mapping[str, Any]) -> str:
    return (
        f"{when(verdict['decided_at'])} UTC, against {escape(str(verdict['baseline']))} on"
        f" {escape(str(verdict['hardware']))} by criteria {escape(str(verdict['criteria']))}"
    )


def _blessed_line(verdict: Mapping[str, Any], yardstick: Yardstick | None, results_dir: Path) -> str:
    checks = [check for check in verdict["checks"] if check.get("passed") is not None]
    counted: dict[str, int] = {}
    for check in checks:
        counted[str(check.get("criterion"))] = counted.get(str(check.get("criterion")), 0) + 1
    words = []
    if counted.get("must_pass"):
        words.append(f"{counted['must_pass']} must-pass case(s) passed every repeat")
    words += [_stability_words(check) for check in checks if check.get("criterion") == "stability"]
    if counted.get("metric"):
        allowed = ""
        if yardstick is not None and yardstick.allowances:
            allowances = yardstick.allowances
            shown = ", ".join(
                f"{spec.label} ≤ {100 * allowances[m]:g} %" for m, spec in METRICS.items() if m in allowances
            )
            allowed = f" ({shown})"
        words.append(f"{counted['metric']} metric comparison(s) within allowance{allowed}")
    if counted.get("soak"):
        words.append(f"{counted['soak']} soak slope(s) within their limits")
    if counted.get("health"):
        words.append(f"{counted['health']} health figure(s) within their limits")
    if counted.get("known_issue"):
        words.append(f"{counted['known_issue']} known issue(s) accepted")
    met = "; ".join(words) or "every check passed"
    return f"{_judged(verdict)}: {len(checks)} of {len(checks)} checks passed — {met}. {_install(verdict, results_dir)}"


def _install(verdict: Mapping[str, Any], results_dir: Path) -> str:
    exported = verdict.get("export_path")
    if not exported:
        return (
            '<span class="note">No lock was exported with this verdict (stored before exports, or the export'
            " failed) — <code>nox -s export -- --runtime=" + escape(str(verdict["runtime"])) + "</code> writes one."
            "</span>"
        )
    path = results_dir / str(exported)
    try:
        shown = path.resolve().relative_to(ROOT.resolve())
    except ValueError:
        shown = path
    missing = "" if path.exists() else ' <span class="note">(not on disk here)</span>'
    return f'Install: <code class="install">{escape(install_command(shown, cwd=ROOT))}</code>{missing}'


def _not_blessed_line(verdict: Mapping[str, Any]) -> str:
    failed = [check for check in verdict["checks"] if check.get("passed") is False]
    judged = [check for check in verdict["checks"] if check.get("passed") is not None]
    named = "; ".join(escape(_in_words(check)) for check in failed[:6])
    if len(failed) > 6:
        named += f"; and {len(failed) - 6} more"
    reasons = "".join(f"<li>{escape(str(reason))}</li>" for reason in verdict["reasons"])
    folded = f"<details><summary>why, with the evidence</summary><ul>{reasons}</ul></details>" if reasons else ""
    head = f"{len(failed)} of {len(judged)} checks failed" if judged else "failed"
    if not named and verdict["reasons"]:
        named = escape("; ".join(str(reason) for reason in verdict["reasons"][:3]))
    return f"{_judged(verdict)}: {head} — {named or 'no reason recorded'}{folded}"


def _overloaded(runtime: str, runs: Sequence[Mapping[str, Any]], verdict: Mapping[str, Any] | None) -> str:
    notes = []
    marked = [c for c in (verdict or {}).get("checks", []) if f"[{OVERLOADED}:" in str(c.get("reason") or "")]
    if marked:
        notes.append(f"its verdict rests on {len(marked)} check(s) measured while the machine was overloaded")
    newest = next((run for run in runs if run["runtime"] == runtime), None)
    if newest is not None and newest.get("overloaded"):
        n = newest["overloaded"]
        notes.append(f"its newest run {newest['run_id']} measured {n} repeat(s) while the machine was overloaded")
    if not notes:
        return ""
    title = "load average above the machine's cores: its times are not comparable with a quiet run's"
    said = escape("; ".join(notes))
    return f'<span class="overloaded" title="{escape(title, quote=True)}">! {said} (load &gt; cores)</span>'


def go_no_go(
    states: Sequence[RuntimeState], judge: Judging, records: EnvironmentRecords, undeclared: Sequence[str] = ()
) -> str:
    """The lines, first on the page; resolution notes quietly after them, and the runtimes of the store that
    matrices/runtimes.yaml does not declare (a bisection's steps, a runtime removed since) folded."""
    if not states:
        return ""
    items = []
    for state in states:
        css = state.state.lower().replace(" ", "-")
        if state.state == "UNUSABLE":
            body = state.line  # its cause already says 'NAME is UNUSABLE'
        else:
            body = f'<b class="state-word">{escape(state.runtime)} is {state.state}</b> — {state.line}'
        loaded = f" {state.overloaded}" if state.overloaded else ""
        items.append(
            f'<li class="state {css}" data-runtime="{escape(state.runtime, quote=True)}"'
            f' data-state="{state.state}">{body}{loaded}</li>'
        )
    notes = [
        f'<p class="note resolution">{escape(check["note"])} (noted when run '
        f"{records.run_link(check['run_id'], 'runs/')} resolved it, {when(check['checked_at'])} UTC)</p>"
        for check in records.notes_now()
    ]
    problem = f'<p class="error">criteria: {escape(judge.problem)}</p>' if judge.problem else ""
    rule = f'<p class="note">{STALE_RULE} ' + link("#verdicts", "Every verdict with its reasons") + ".</p>"
    if undeclared:
        names = ", ".join(escape(name) for name in undeclared)
        notes.append(
            f'<details class="note undeclared"><summary>{len(undeclared)} more runtime(s) in the store that'
            " matrices/runtimes.yaml does not declare (a bisection's steps, runtimes removed since): not judged"
            f"</summary><p>{names}</p></details>"
        )
    return '<ul class="states">' + "".join(items) + "</ul>" + problem + "".join(notes) + rule
