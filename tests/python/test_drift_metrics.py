"""Recomputes every CompareArrays metric with numpy and checks the C++ JSON.

The C++ side is tests/engine/drift/export_test.cc (DriftExportTest), which
writes random array pairs as .npy plus cases.json into
DRIFTSCOPE_DRIFT_EXPORT_DIR. Definitions: engine/drift/array_drift.h.
"""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

BIN = os.environ.get("DRIFTSCOPE_BIN")
TESTS = pathlib.Path(BIN, "tests", "engine_tests") if BIN else None


def ulp_key(x):
    """spec §11.4: i >= 0 ? i : MIN - i, as exact Python ints."""
    if x.dtype == np.float64:
        i, lo = x.view(np.int64).astype(object), -(2**63)
    else:
        i, lo = x.view(np.int32).astype(np.int64).astype(object), -(2**31)
    return [v if v >= 0 else lo - v for v in i.ravel()]


def expected_stats(a, r, atol, rtol, max_ulp, floor, wide):
    a64, r64 = a.astype(np.float64), r.astype(np.float64)
    n = a.size
    fa, fr = np.isfinite(a64), np.isfinite(r64)
    ok = fa & fr
    na, nr = np.isnan(a64), np.isnan(r64)
    nan_mm = int(np.sum(na != nr))
    nonfinite = ~ok
    nf_same = nonfinite & (na == nr) & (na | (a64 == r64))
    nf_match = int(np.sum(nf_same))
    inf_mm = int(np.sum(nonfinite)) - nan_mm - nf_match
    av, rv = a64[ok], r64[ok]
    d = av - rv
    ad = np.abs(d)
    m = av.size
    cap = 53 if wide else 24
    if wide:
        ka, kr = ulp_key(a[ok]), ulp_key(r[ok])
    else:
        ka = ulp_key(a[ok].astype(np.float32))
        kr = ulp_key(r[ok].astype(np.float32))
    ulps = np.array([abs(int(x) - int(y)) for x, y in zip(ka, kr)],
                    dtype=object)
    rel = ad / np.maximum(np.abs(rv), floor)
    with np.errstate(divide="ignore"):
        sig = np.clip(-np.log2(np.maximum(rel, 2.0**-cap)), 0, cap)
    s = {
        "count": n,
        "numeric": m,
        "nan_mismatches": nan_mm,
        "inf_mismatches": inf_mm,
        "nonfinite_matches": nf_match,
        "differing": int(np.sum(ad != 0)) + nan_mm + inf_mm,
        "tolerance_violations": int(np.sum(ad > atol + rtol * np.abs(rv))),
    }
    s["differing_fraction"] = s["differing"] / n if n else 0.0
    if m:
        s.update(max_abs=ad.max(), mean_abs=ad.mean(),
                 rms=np.sqrt(np.mean(d * d)), max_rel=rel.max(),
                 max_ulp=int(max(ulps)),
                 median_ulp=float(np.median(np.array(ulps, dtype=np.float64))),
                 min_sig_bits=sig.min(), mean_sig_bits=sig.mean(),
                 median_sig_bits=np.median(sig))
    nd, nr_, na_ = np.linalg.norm(d), np.linalg.norm(rv), np.linalg.norm(av)
    s["norm_diff"], s["norm_ref"], s["norm_a"] = nd, nr_, na_
    s["rel_l2"] = nd / nr_ if nr_ > 0 else (None if nd > 0 else 0.0)
    if na_ > 0 and nr_ > 0:
        s["cosine"] = float(np.clip(np.dot(av, rv) / (na_ * nr_), -1, 1))
    else:
        s["cosine"] = 1.0 if (na_ == 0 and nr_ == 0) else 0.0
    hist = np.zeros(65, dtype=np.int64)
    for u in ulps:
        hist[int(u).bit_length()] += 1
    last = 65
    while last > 1 and hist[last - 1] == 0:
        last -= 1
    s["ulp_histogram"] = hist[:last].tolist()
    s["pass"] = (nan_mm == 0 and inf_mm == 0
                 and s["tolerance_violations"] == 0
                 and (max_ulp is None or m == 0 or s["max_ulp"] <= max_ulp))
    return s


EXACT = {"count", "numeric", "nan_mismatches", "inf_mismatches",
         "nonfinite_matches", "differing", "tolerance_violations", "max_abs",
         "max_ulp", "median_ulp", "ulp_histogram", "pass", "differing_fraction"}


def check_stats(got, want, where):
    for key, w in want.items():
        g = got[key]
        if key in EXACT:
            assert g == w, f"{where}: {key} = {g}, numpy says {w}"
        elif w is None:
            assert g is None, f"{where}: {key} = {g}, expected null"
        elif key.endswith("sig_bits"):
            assert abs(g - w) <= 1e-9, f"{where}: {key} = {g} vs {w}"
        else:
            assert g == pytest.approx(w, rel=1e-12, abs=1e-300), \
                f"{where}: {key} = {g} vs {w}"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    if TESTS is None or not TESTS.exists():
        pytest.fail("engine_tests not built (set DRIFTSCOPE_BIN to the build directory)")
    out = tmp_path_factory.mktemp("drift_export")
    env = dict(os.environ, DRIFTSCOPE_DRIFT_EXPORT_DIR=str(out))
    subprocess.run([str(TESTS), "--gtest_filter=DriftExportTest.*",
                    "--gtest_also_run_disabled_tests"],
                   env=env, check=True, capture_output=True, timeout=120)
    return out


def test_every_metric_matches_numpy(export_dir):
    cases = json.loads((export_dir / "cases.json").read_text())
    assert len(cases) == 5
    for case in cases:
        a = np.load(export_dir / f"{case['name']}_a.npy")
        r = np.load(export_dir / f"{case['name']}_ref.npy")
        drift = case["drift"]
        wide = a.dtype == np.float64 and r.dtype == np.float64
        assert drift["ulp_unit"] == ("float64" if wide else "float32")
        assert drift["shape"] == list(a.shape)
        finite_r = np.abs(r[np.isfinite(r)].astype(np.float64))
        floor = case["rel_floor"] if case["rel_floor"] > 0 else \
            1e-6 * (finite_r.max() if finite_r.size else 0.0)
        assert drift["rel_floor"] == pytest.approx(floor, rel=1e-15)
        args = (case["atol"], case["rtol"], case["max_ulp"], floor, wide)
        check_stats(drift["overall"], expected_stats(a, r, *args),
                    case["name"])
        assert drift["bitwise_identical"] == (
            a.dtype == r.dtype and a.tobytes() == r.tobytes())
        if a.ndim == 3:
            curves = drift["per_timestep"]
            for t in range(a.shape[1]):
                want = expected_stats(a[:, t, :], r[:, t, :], *args)
                want.pop("ulp_histogram")
                got = {k: v[t] for k, v in curves.items()}
                check_stats(got, want, f"{case['name']} t={t}")
        else:
            assert drift["per_timestep"] is None
