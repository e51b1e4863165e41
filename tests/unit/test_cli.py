"""framework/cli/: the `sql`, `schema` and `matrix --dry-run` command lines; user mistakes are one line, exit 2.

Every `matrix` call here passes --dry-run, so a parser regression can never start a real run.
"""

from __future__ import annotations

import json
import shutil

import pytest

from framework import cli
from framework.cli import query as cli_query
from framework.cli.parser import split
from framework.config import ROOT, load_catalog
from framework.schema import export_schemas, schema_texts

COMMITTED_SCHEMAS = ROOT / "matrices" / "schemas"


def _one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line, got {lines!r}"
    return lines[0]


# --- sql --------------------------------------------------------------------------------------------------------


def test_sql_prints_a_table_and_the_row_count(results_dir, case_row, write_run, capsys):
    write_run([case_row(case_id="a", wall_s=1.5), case_row(case_id="b", wall_s=2.0)])

    code = cli.main(["sql", f"--results={results_dir}", "SELECT case_id, wall_s FROM cases ORDER BY case_id"])

    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert out.splitlines() == ["case_id  wall_s", "-------  ------", "a           1.5", "b             2", "(2 rows)"]


def test_sql_counts_one_row_in_the_singular(results_dir, capsys):
    assert cli.main(["sql", "--results", str(results_dir), "SELECT 42 AS answer"]) == 0

    assert capsys.readouterr().out.splitlines()[-2:] == ["    42", "(1 row)"]


def test_sql_json_prints_one_object_per_row(results_dir, case_row, write_run, capsys):
    write_run([case_row(case_id="a", wall_s=1.5)])

    assert cli.main(["sql", f"--results={results_dir}", "--json", "SELECT case_id, wall_s, started_at FROM cases"]) == 0

    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {"case_id": "a", "wall_s": 1.5, "started_at": "2026-01-01 00:00:00+00:00"}


def test_sql_without_a_query_lists_the_views_and_their_columns(results_dir, capsys):
    assert cli.main(["sql", f"--results={results_dir}"]) == 0

    out = capsys.readouterr().out
    views = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in out.splitlines()}
    assert set(views) == {
        "rows",
        "cases",
        "runs",
        "run_groups",
        "case_summary",
        "latest",
        "environments",
        "comparisons",
        "regressions",
        "verdicts",
        "health",
        "lock_changes",
        "findings",  # the ledger, matrices/findings.yaml
        "machines",  # each machine the rows name and its class (matrices/machines.yaml)
    }
    assert views["machines"].startswith(" key VARCHAR, machine_id VARCHAR, machine_class VARCHAR")
    assert views["findings"].startswith(" guard VARCHAR, summary VARCHAR, package VARCHAR, first_bad VARCHAR")
    assert views["rows"].startswith(" schema_version INTEGER, run_id VARCHAR")
    assert "wall_s DOUBLE" in views["cases"]
    assert "n_passed BIGINT" in views["runs"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELEC 1", 'SQL: Parser Error: syntax error at or near "SELEC"'),
        ("SELECT nope FROM cases", 'SQL: Binder Error: Referenced column "nope" not found'),
        ("DELETE FROM rows", "SQL: DELETE statements are not allowed — the results are read-only; use SELECT"),
        ("SELECT 1; SELECT 2", "SQL: expected one statement, got 2"),
    ],
)
def test_sql_bad_query_exits_2_with_one_line(results_dir, capsys, query, expected):
    code = cli.main(["sql", f"--results={results_dir}", query])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert _one_line(err).startswith(expected)


def test_unknown_command_prints_usage_and_exits_2(capsys):
    assert cli.main(["sqll"]) == 2

    commands = (
        "matrix,sql,schema,workloads,stability,compare,regressions,bisect,attribute,bless,report,compact,merge,guard,"
        "export,reproduce"
    )
    usage = f"usage: python -m framework.cli {{{commands}}} ..."
    assert _one_line(capsys.readouterr().err) == usage


# --- matrix: the parser's one-line errors -----------------------------------------------------------------------


def test_matrix_unknown_option_suggests_the_near_miss(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["matrix", "--runtimes=latest", "--dry-run"])

    assert caught.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "unrecognized arguments: --runtimes=latest" in line
    assert line.endswith("did you mean --runtime?")


def test_matrix_unknown_option_without_a_near_miss_lists_the_options(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["matrix", "--dry-run", "--zzzzzz"])

    assert caught.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "known options: " in line
    assert "--runtime" in line
    assert "--dry-run" in line


def test_matrix_unknown_runtime_suggests_the_near_miss_and_lists_the_known(capsys):
    code = cli.main(["matrix", "--runtime=lates", "--dry-run"])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    line = _one_line(err)
    assert "'lates'" in line
    assert "did you mean 'latest'?" in line
    assert line.endswith(f"known: {', '.join(sorted(load_catalog().runtimes))}")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--repeat", "0", "argument --repeat: 0 is not ≥ 1 — use e.g. --repeat=5"),
        ("--repeat", "-3", "argument --repeat: -3 is not ≥ 1 — use e.g. --repeat=5"),
        ("--repeat", "many", "argument --repeat: 'many' is not a whole number — use e.g. --repeat=5"),
        ("--warmup", "-1", "argument --warmup: -1 is not from 0 to 100 — use e.g. --warmup=3"),
        ("--warmup", "101", "argument --warmup: 101 is not from 0 to 100 — use e.g. --warmup=3"),
        ("--warmup", "two", "argument --warmup: 'two' is not a whole number — use e.g. --warmup=3"),
    ],
)
def test_matrix_counts_out_of_range_are_one_line_and_exit_2(capsys, option, value, expected):
    """``--repeat`` is a whole number ≥ 1; ``--warmup`` one from 0 to 100."""
    with pytest.raises(SystemExit) as caught:
        cli.main(["matrix", "--dry-run", f"{option}={value}"])

    assert caught.value.code == 2
    assert _one_line(capsys.readouterr().err).endswith(expected)


def test_matrix_dry_run_prints_the_planned_cases(capsys):
    assert cli.main(["matrix", "--dry-run", "--runtime=latest"]) == 0

    lines = capsys.readouterr().out.splitlines()
    planned = [line for line in lines if not line.startswith(("skip ", "environment ", "dry run:"))]
    assert planned, "the default matrix plans at least one case for 'latest'"
    for line in planned:
        runtime, hardware = line.split()[:2]
        assert runtime == "latest"
        assert hardware in load_catalog().hardware
        assert "  size=" in line
        assert "repeats=" in line


def test_matrix_dry_run_repeat_overrides_the_workloads(capsys):
    assert cli.main(["matrix", "--dry-run", "--runtime=latest", "--repeat=7"]) == 0

    planned = [
        line
        for line in capsys.readouterr().out.splitlines()
        if not line.startswith(("skip ", "environment ", "dry run:"))
    ]
    assert planned
    assert all(line.endswith("repeats=7") for line in planned)


def test_split_accepts_commas_and_repeats():
    assert split(["latest, stable", "previous", ""]) == ["latest", "stable", "previous"]
    assert split(None) is None


# --- schema -----------------------------------------------------------------------------------------------------


def test_committed_schemas_are_up_to_date(capsys):
    before = {path.name: path.read_bytes() for path in COMMITTED_SCHEMAS.iterdir()}

    assert cli.main(["schema", "--check"]) == 0

    assert capsys.readouterr().err == ""
    assert export_schemas(COMMITTED_SCHEMAS, check=True) == []
    assert {path.name: path.read_bytes() for path in COMMITTED_SCHEMAS.iterdir()} == before


def test_schema_check_detects_a_stale_and_a_missing_schema_without_writing(tmp_path):
    schemas = tmp_path / "schemas"
    shutil.copytree(COMMITTED_SCHEMAS, schemas)
    stale = schemas / "runtimes.schema.json"
    stale.write_text(stale.read_text().replace('"runtimes"', '"runtimez"'))
    (schemas / "hardware.schema.json").unlink()

    assert export_schemas(schemas, check=True) == ["hardware.schema.json", "runtimes.schema.json"]

    assert '"runtimez"' in stale.read_text(), "--check must not rewrite"
    assert not (schemas / "hardware.schema.json").exists()


def test_schema_export_rewrites_what_is_stale(tmp_path):
    schemas = tmp_path / "schemas"
    shutil.copytree(COMMITTED_SCHEMAS, schemas)
    (schemas / "runtimes.schema.json").write_text("{}\n")

    assert export_schemas(schemas) == ["runtimes.schema.json"]

    assert export_schemas(schemas, check=True) == []
    assert (schemas / "runtimes.schema.json").read_text() == schema_texts()["runtimes.schema.json"]


def test_schema_check_command_fails_with_one_line_naming_the_stale_file(tmp_path, monkeypatch, capsys):
    schemas = tmp_path / "matrices" / "schemas"
    shutil.copytree(COMMITTED_SCHEMAS, schemas)
    (schemas / "workloads.schema.json").write_text("{}\n")
    monkeypatch.setattr(cli_query, "ROOT", tmp_path)

    assert cli.main(["schema", "--check"]) == 1

    assert _one_line(capsys.readouterr().err) == "out of date: workloads.schema.json — run `nox -s schema`"
    assert (schemas / "workloads.schema.json").read_text() == "{}\n"


def test_matrix_refuses_abbreviated_options(capsys):
    # An abbreviation must not silently start a run: --runtim is an error, not --runtime.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["matrix", "--runtim=latest", "--dry-run"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "did you mean --runtime?" in error


@pytest.mark.parametrize("argv", [["workloads"], ["matrix", "--list"]])
def test_the_catalogue_lists_every_workload_with_tags_and_sizes(argv, capsys):
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    catalog = load_catalog()
    for name, workload in catalog.workloads.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert all(tag in line for tag in workload.tags)
        assert all(size in line for size in workload.sizes)
    assert f"({len(catalog.workloads)} workloads;" in out


def test_the_catalogue_filters_by_tag(capsys):
    assert cli.main(["workloads", "--tag=array"]) == 0
    out = capsys.readouterr().out
    assert "array_mean_var" in out
    assert "groupby_agg " not in out


def test_warmup_overrides_the_workloads_in_a_matrix_and_a_comparison(capsys):
    """Two warm-ups where the workload declares one: measured repeats on a cluster past its second execution (on a
    fresh cluster the second groupby_agg was 0.16–0.22 s on latest against 0.07–0.10 s on stable, equal from the
    third on — what a comparison of one warm-up per round reported as +275 %)."""
    assert cli.main(["matrix", "--dry-run", "--runtime=latest", "--workload=groupby_agg", "--warmup=3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("(6 measured, 6 warm-up); nothing was built or run")
    assert cli.main(["matrix", "--dry-run", "--runtime=latest", "--workload=groupby_agg", "--warmup=0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("(6 measured, 0 warm-up); nothing was built or run")
    argv = ["compare", "--baseline=stable", "--candidate=latest", "--workload=groupby_agg", "--dry-run"]
    assert cli.main([*argv, "--warmup=3", "--rounds=2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("(8 measured, 24 warm-up); nothing was built or run")
