"""Usage forecasts and warning levels (stages.wrstat.forecast)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stages.wrstat.forecast import Thresholds, fit_slopes, forecast, last_points, warning_names


def one(days: list[float], used: list[float], current: float, quota: float):  # type: ignore[no-untyped-def]
    """The forecast of a single group."""
    f = forecast(
        np.zeros(len(days), dtype=np.intp),
        np.array(days, dtype=np.float64),
        np.array(used, dtype=np.float64),
        np.array([current]),
        np.array([quota]),
    )
    return f, {d: float(a[0]) for d, a in f.ahead.items()}


def test_a_steady_rise_is_forecast_from_the_current_usage() -> None:
    f, ahead = one([-2, -1, 0], [60, 65, 70], 70, 100)
    assert f.slope[0] == pytest.approx(5.0)
    assert ahead == {3: pytest.approx(85.0), 7: pytest.approx(105.0)}
    assert f.days_to_full[0] == pytest.approx(6.0)
    assert warning_names(f.level) == ["Not OK"]  # 85 > 80% at 3 days


@pytest.mark.parametrize(
    ("slope", "expected"),
    [
        (0.0, "OK"),  # 70 at 3 and 7 days
        (2.0, "OK"),  # 76, 84: under 80% and 85%
        (2.5, "Kinda OK"),  # 77.5 at 3 days, 87.5 at 7: over 85% at 7 days only
        (3.6, "Not OK"),  # 80.8 at 3 days: over 80%
        (-5.0, "OK"),
    ],
)
def test_lurge_thresholds(slope: float, expected: str) -> None:
    f, _ = one([-1, 0], [70 - slope, 70], 70, 100)
    assert warning_names(f.level) == [expected]


def test_seven_days_over_95_percent_is_not_ok_even_when_3_days_is_under_80() -> None:
    f, ahead = one([-1, 0], [66, 70], 70, 100)  # 4 a day: 82 at 3 days (> 80%)
    assert warning_names(f.level) == ["Not OK"]
    f, ahead = one([-1, 0], [66.5, 70], 79, 100)  # now 79, 3.5 a day: 89.5, 103.5
    assert ahead[7] > 95 and warning_names(f.level) == ["Not OK"]


def test_one_point_or_one_date_gives_a_flat_forecast_not_a_division_by_zero() -> None:
    f, ahead = one([0], [70], 70, 100)
    assert f.slope[0] == 0 and ahead[7] == 70 and math.isnan(f.days_to_full[0])
    f, ahead = one([0, 0, 0], [50, 60, 70], 70, 100)
    assert f.slope[0] == 0 and ahead[3] == 70
    f, ahead = one([], [], 70, 100)  # no history at all
    assert f.slope[0] == 0 and warning_names(f.level) == ["OK"]


def test_no_quota_is_ok_and_never_full_and_over_quota_is_full_now() -> None:
    f, _ = one([-1, 0], [0, 10**15], 10**15, 0)
    assert warning_names(f.level) == ["OK"] and math.isnan(f.days_to_full[0])
    f, _ = one([-1, 0], [120, 110], 110, 100)  # shrinking, but over the quota already
    assert f.days_to_full[0] == 0 and warning_names(f.level) == ["Not OK"]


def test_only_the_newest_points_count() -> None:
    # a huge old value would flatten the slope if it were used
    f, _ = one([-30, -4, -3, -2, -1, 0], [10**12, 60, 62, 64, 66, 68], 68, 1000)
    assert f.slope[0] == pytest.approx(2.0)
    keep = last_points(np.array([1, 0, 1, 0, 1]), np.array([0, -3, -1, 0, -2]), 2)
    assert keep.tolist() == [True, True, True, True, False]


def test_many_groups_at_once_match_a_fit_of_each() -> None:
    rng = np.random.default_rng(7)
    groups = 500
    sizes = rng.integers(0, 9, groups)
    group = np.repeat(np.arange(groups), sizes)
    day = -np.abs(rng.integers(0, 40, len(group))).astype(np.float64)
    used = rng.uniform(0, 10**14, len(group))
    slopes = fit_slopes(group, day, used, groups)
    for g in range(groups):
        x, y = day[group == g], used[group == g]
        want = np.polyfit(x, y, 1)[0] if len(set(x.tolist())) > 1 else 0.0
        assert slopes[g] == pytest.approx(want, rel=1e-6, abs=1e-3)


def test_a_configured_table_replaces_lurges() -> None:
    t = Thresholds.from_config({"watch": {14: 0.5}, "act": {1: 0.9}})
    assert t.horizons == [1, 14] and t.name(1) == "OK" and t.name(3) == "act"
    f = forecast(np.array([0, 0]), np.array([-1.0, 0.0]), np.array([40.0, 45.0]),
                 np.array([45.0]), np.array([100.0]), t)  # fmt: skip
    assert warning_names(f.level, t) == ["watch"]  # 45 + 14 * 5 = 115 > 50
    with pytest.raises(ValueError, match="give \\{days ahead: share of quota\\}"):
        Thresholds.from_config({"bad": 0.5})
    with pytest.raises(ValueError, match="needs days >= 0, share > 0"):
        Thresholds.from_config({"bad": {3: -1}})
