"""Machine-learning workloads: distributed XGBoost on generated data with a known relation."""

from __future__ import annotations

from typing import Any

from framework.in_runtime.checks import check
from workloads.synthetic import row_count


def _regression_data(rows: int, features: int, chunk_rows: int, noise: float, seed: int, weights: Any) -> Any:
    """``X`` uniform in [-1, 1) and ``y = X @ weights + N(0, noise²)`` drawn from ``seed``, as a DataFrame and a Series.

    DataFrames rather than arrays: on dask 2024.12.1, ``dask.delayed`` over the ``to_delayed()`` parts of a persisted
    array computes to the parts' keys instead of their chunks, and xgboost.dask persists its inputs — array input
    fails there ("'tuple' object has no attribute 'divisions'"); DataFrame input works on every runtime. Guarded by
    ``persisted_array_parts`` (matrices/findings.yaml: dask 2024.12.0–2025.3.x).
    """
    import dask.array as da
    import dask.dataframe as dd

    rng = da.random.RandomState(seed)
    x = rng.uniform(-1.0, 1.0, size=(rows, features), chunks=(chunk_rows, features))
    y = x @ weights + rng.normal(0.0, noise, size=rows, chunks=chunk_rows)
    return dd.from_dask_array(x, columns=[f"x{i}" for i in range(features)]), dd.from_dask_array(y)


def xgboost_regression(
    rows: int,
    features: int,
    chunk_rows: int,
    api: str = "train",
    num_boost_round: int = 50,
    max_depth: int = 6,
    learning_rate: float = 0.3,
    noise: float = 0.1,
    test_rows: int = 0,
    min_r2: float = 0.9,
    seed: int = 0,
) -> dict[str, float]:
    """Train ``xgboost.dask`` on ``y = X·w + noise`` and predict a held-out set drawn independently.

    ``api`` is ``train`` (``xgboost.dask.train`` on a ``DaskDMatrix``, then ``xgboost.dask.predict``) or ``sklearn``
    (``DaskXGBRegressor``). With ``w`` of unit norm spread over the features and X uniform in [-1, 1), the signal
    variance is 1/3, so the best possible R² is (1/3) / (1/3 + noise²) (0.971 at noise 0.1); the check asks the
    held-out R² to reach ``min_r2`` — 0.9 at noise 0.1 means an RMSE under 1.85 × the noise.
    """
    import dask
    import numpy as np
    import xgboost
    import xgboost.dask  # a submodule: `import xgboost` alone does not load it

    if api not in ("train", "sklearn"):
        raise ValueError(f"api {api!r}: use 'train' or 'sklearn'")
    weights = np.random.default_rng(seed).normal(size=features)
    weights /= np.linalg.norm(weights)
    x_train, y_train = _regression_data(rows, features, chunk_rows, noise, seed + 1, weights)
    x_test, y_test = _regression_data(test_rows or max(rows // 4, 1), features, chunk_rows, noise, seed + 2, weights)
    x_train, y_train = dask.persist(x_train, y_train)  # generated once, not once per boosting step

    parameters = {"max_depth": max_depth, "learning_rate": learning_rate, "tree_method": "hist"}
    if api == "train":
        train_matrix = xgboost.dask.DaskDMatrix(None, x_train, y_train)
        output = xgboost.dask.train(
            None,
            {**parameters, "objective": "reg:squarederror"},
            train_matrix,
            num_boost_round=num_boost_round,
        )
        predicted = xgboost.dask.predict(None, output["booster"], x_test)
    else:
        model = xgboost.dask.DaskXGBRegressor(n_estimators=num_boost_round, **parameters)
        model.fit(x_train, y_train)
        predicted = model.predict(x_test)

    residual = y_test - predicted
    residual_sum, total_sum, predicted_rows, held_out_rows = dask.compute(
        (residual**2).sum(), ((y_test - y_test.mean()) ** 2).sum(), residual.count(), row_count(y_test)
    )
    # Sums skip NaN: a prediction that is NaN, or missing for a row, must fail here rather than vanish from R².
    check(
        int(predicted_rows) == int(held_out_rows),
        f"{int(predicted_rows)} of {int(held_out_rows)} held-out rows have a prediction (NaN or missing for the rest)",
    )
    r2 = 1.0 - float(residual_sum) / float(total_sum)
    best_r2 = (1 / 3) / (1 / 3 + noise**2)
    check(
        r2 >= min_r2,
        f"held-out R² {r2:.4f} is below {min_r2} (the noise allows up to {best_r2:.4f}): the model did not learn"
        " the relation",
    )
    rmse = (float(residual_sum) / int(held_out_rows)) ** 0.5
    return {"rows": float(rows), "r2": r2, "rmse": rmse, "rmse_over_noise": rmse / noise}
