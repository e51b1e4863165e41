"""Guards: workloads that fail exactly when a known upstream bug is present (see matrices/findings.yaml)."""
