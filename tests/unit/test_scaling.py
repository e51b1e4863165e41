"""Scaled parameters: declared relative to the cluster, resolved once it is up."""

from __future__ import annotations

import pytest

from framework.in_runtime.scaling import ScalingError, resolve_params, scale_problem

SHAPE = {"cluster_workers": 2, "cluster_threads": 4, "cluster_memory_limit_bytes": 8 * 2**30}


def test_scaled_parameters_resolve_against_the_cluster():
    params = {
        "target_bytes": {"fraction_of_cluster_memory": 0.5},
        "npartitions": {"per_worker": 3},
        "nchunks": {"per_thread": 1.5},
        "plain": 7,
        "free_form": {"a": 1},
    }
    assert resolve_params(params, SHAPE) == {
        "target_bytes": 4 * 2**30,
        "npartitions": 6,
        "nchunks": 6,
        "plain": 7,
        "free_form": {"a": 1},
    }


def test_one_declaration_serves_a_larger_cluster():
    params = {"target_bytes": {"fraction_of_cluster_memory": 1.8}, "npartitions": {"per_worker": 4}}
    big = {"cluster_workers": 10, "cluster_threads": 20, "cluster_memory_limit_bytes": 80 * 2**30}
    assert resolve_params(params, big) == {"target_bytes": int(1.8 * 80 * 2**30), "npartitions": 40}


def test_memory_fraction_needs_workers_with_a_memory_limit():
    with pytest.raises(ScalingError, match="target_bytes: fraction_of_cluster_memory needs workers with a memory"):
        resolve_params({"target_bytes": {"fraction_of_cluster_memory": 0.5}}, {"cluster_workers": 2})


def test_per_worker_needs_workers():
    with pytest.raises(ScalingError, match="needs at least one worker"):
        resolve_params({"n": {"per_worker": 2}}, {"cluster_workers": 0})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"per_worker": 2, "x": 1}, "exactly one key"),
        ({"per_worker": 0}, "per_worker needs a positive number, got 0"),
        ({"fraction_of_cluster_memory": True}, "needs a positive number, got True"),
        ({"per_thread": "2"}, "needs a positive number, got '2'"),
    ],
)
def test_malformed_scaled_parameters_are_explained(value, problem):
    assert problem in scale_problem(value)


def test_other_values_are_not_scaled_parameters():
    assert scale_problem({"a": 1}) is None
    assert scale_problem(3) is None
