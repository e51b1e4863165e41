"""Chaos fuzzing of a Dask cluster: hypothesis explores programs of graphs and faults; invariants judge them.

    graphs.py      task graphs as plain data, the task function the workers run, and the pure-Python oracle
    invariants.py  the violations, bounded cluster calls, scheduler/worker probes, and the leak watch
    ledger.py      what was submitted and how each held future may legitimately end; judges them after settling
    executor.py    one cluster per program: applies each step, checks invariants, settles, tears down
    network.py     network faults: TCP proxies in front of the workers (latency, dropped connections), SIGSTOP
    machine.py     the hypothesis state machines (in-process and process tiers) and the settings profiles
    run.py         the entry point inside a runtime's environment: regression cases first, then the fuzzer

A *program* is JSON: a cluster config and a list of steps. Everything the fuzzer does is a step, so a failing
program replays without hypothesis (``nox -s stability -- --replay=ID``) and is kept as a regression case.

Runs inside runtime environments (Python ≥ 3.9, old distributed releases): standard library, dask,
distributed, psutil (a distributed dependency) and hypothesis only.
"""
