"""``sql``, ``schema``, ``workloads``: the verbs that read — the results, the YAML files' schemas, the catalogue."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from framework.cli.json_output import emit
from framework.cli.parser import Parser, add_json, add_results
from framework.cli.selectors import add_workload_options, checked, selectors
from framework.config import ROOT


def cmd_sql(argv: Sequence[str]) -> int:
    from framework.config import load_catalog, load_findings
    from framework.findings import findings_table
    from framework.machines import load_policy, register
    from framework.query import Results
    from framework.summary import format_table

    parser = Parser(prog="nox -s sql --", description="Read-only SQL over all results.", results_read_only=True)
    parser.add_argument("query", nargs="?", help="one SELECT statement; omit to list the views and their columns")
    add_results(parser)
    add_json(parser)
    args = parser.parse_args(argv)
    with Results(args.results) as results:
        results.add_table("findings", findings_table(load_findings(load_catalog())))
        register(results, load_policy())  # machines: each machine the rows name, its class and first run
        if not args.query:
            for view, described in results.views().items():
                print(f"{view}: " + ", ".join(f"{name} {kind}" for name, kind in described))
            return 0
        columns, rows = results.sql(args.query)
    if args.json:
        for row in rows:
            print(json.dumps(dict(zip(columns, row)), default=str))
    else:
        print(format_table(columns, rows))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0


def cmd_schema(argv: Sequence[str]) -> int:
    from framework.schema import export_schemas

    parser = Parser(prog="nox -s schema --", description="Write JSON Schemas for the YAML files.")
    parser.add_argument("--check", action="store_true", help="fail if the committed schemas are out of date")
    args = parser.parse_args(argv)
    stale = export_schemas(ROOT / "matrices" / "schemas", check=args.check)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)} — run `nox -s schema`", file=sys.stderr)
        return 1
    return 0


def cmd_workloads(argv: Sequence[str]) -> int:
    """The catalogue: each workload with its tags, sizes, cases and description."""
    from framework.config import load_catalog
    from framework.matrix import expand_workload, selector_matches
    from framework.summary import format_table

    parser = Parser(prog="nox -s workloads --", description="List the workload catalogue.")
    add_workload_options(parser)
    add_json(parser, help="print the catalogue as one JSON document (a list of workloads)")
    args = parser.parse_args(argv)
    catalog = load_catalog()
    wanted = checked(selectors(args), catalog)
    chosen = [w for w in catalog.workloads.values() if not wanted or any(selector_matches(s, w) for s in wanted)]
    listed = [(workload, len(expand_workload(workload, None)[0])) for workload in chosen]
    if args.json:
        emit(
            [
                {"workload": w.name, "tags": w.tags, "sizes": list(w.sizes), "cases": n, "description": w.description}
                for w, n in listed
            ]
        )
        return 0
    rows = [[w.name, ", ".join(w.tags), ", ".join(w.sizes) or "–", str(n), w.description] for w, n in listed]
    print(format_table(["workload", "tags", "sizes", "cases", "description"], rows, max_width=120))
    print(f"({len(rows)} workloads; run one with: nox -s matrix -- --workload=NAME --size=SIZE)")
    return 0
