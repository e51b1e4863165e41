"""The workload catalogue: plain functions, declared in the YAML files beside them.

Each function takes its parameters as keyword arguments, computes on the default Dask client (the cluster
of the hardware profile), checks its own answer with ``framework.in_runtime.checks``, and may return a mapping of
extra measurements (numbers) that are stored with the result.
"""
