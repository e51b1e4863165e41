"""Flags with one meaning on every verb: ``--repeat`` (measured repeats per case per environment), ``--rounds``
(compare's interleaved rounds), ``--dry-run`` on every verb that runs workloads, ``--json`` on every verb that prints
a table. Nothing here builds an environment or runs a workload."""

from __future__ import annotations

import pytest

from framework import cli


def _run(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_s_old_repeat_is_one_line_naming_rounds_never_a_changed_meaning(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["compare", "--baseline=latest", "--candidate=latest", "--repeat=5"])
    out, err = capsys.readouterr()
    assert stopped.value.code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "--repeat is now --rounds" in err and "use --rounds=N" in err


def test_rounds_is_a_bounded_count(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["compare", "--baseline=latest", "--candidate=latest", "--rounds=0"])
    assert stopped.value.code == 2
    assert "argument --rounds: 0 is not ≥ 1" in capsys.readouterr().err
