"""Profiling a Dask DataFrame on a real LocalCluster gives the pandas result within sketch error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelcycle.data import compare, profile

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


def test_dask_partitions_are_profiled_on_the_cluster_and_merged() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(5, 2, 40_000), "c": rng.choice(["a", "b", "c"], 40_000)})
    df.loc[::50, "x"] = np.nan
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        ddf = dd.from_pandas(df, npartitions=8)
        p = profile(ddf)
        assert len(client.scheduler_info()["workers"]) == 2
    whole = profile(df)
    assert p.rows == whole.rows == 40_000
    x, wx = p.columns["x"], whole.columns["x"]
    assert (x.count, x.missing) == (wx.count, wx.missing)
    assert x.mean == pytest.approx(wx.mean) and x.std == pytest.approx(wx.std)
    assert x.quantiles([0.5])[0] == pytest.approx(wx.quantiles([0.5])[0], abs=0.05)
    assert p.columns["c"].exact == whole.columns["c"].exact
    assert compare(whole, p).drifted_columns == []
