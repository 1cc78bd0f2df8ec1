"""`driftscope train` seen from numpy: files load with np.load, have the
Keras shapes and dtypes, and a run restarted from its own final weights with
zero epochs reproduces its outputs bit for bit.

ctest sets DRIFTSCOPE_BIN to the build directory.
"""
import hashlib
import json
import os
import subprocess

import numpy as np
import pytest

T, F, U, K = 6, 2, 4, 3  # timesteps, features, LSTM units, Dense units
N = 20


def _binary():
    build = os.environ.get("DRIFTSCOPE_BIN")
    if not build:
        pytest.fail("DRIFTSCOPE_BIN (the build directory) is not set")
    path = os.path.join(build, "client", "driftscope")
    assert os.path.exists(path), f"{path} was not built"
    return path


def _spec(epochs, supplied=None):
    spec = {
        "seed": 3,
        "model": {
            "input": {"timesteps": T, "features": F},
            "layers": [
                {"lstm": {"units": U, "return_sequences": True}},
                {"dense": {"units": K}},
            ],
        },
        "optimizer": {"adam": {"learning_rate": 0.01}},
        "training": {"epochs": epochs, "batch_size": 8},
    }
    if supplied:
        spec["data"] = {"supplied": supplied}
    return spec


def _train(tmp_path, spec, *flags):
    path = tmp_path / f"spec{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(spec))
    return subprocess.run([_binary(), "train", str(path), *map(str, flags)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    y = np.tanh(rng.standard_normal((N, T, K)))  # float64 targets are fine
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return x, y


def _lstm_dense_forward(x, w):
    """Keras LSTM (i, f, c, o; z = xW + hR + b) then Dense, in float64."""
    kernel, rec, bias = (w[f"layer0_{n}"].astype(np.float64)
                         for n in ("kernel", "recurrent_kernel", "bias"))
    h = np.zeros((x.shape[0], U))
    c = np.zeros((x.shape[0], U))
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    hs = []
    for t in range(x.shape[1]):
        z = x[:, t].astype(np.float64) @ kernel + h @ rec + bias
        i, f, g, o = np.split(z, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        hs.append(h)
    seq = np.stack(hs, axis=1)
    return seq @ w["layer1_kernel"].astype(np.float64) + w["layer1_bias"]


def _weights(out):
    return {p[:-4]: np.load(out / "weights" / p)
            for p in os.listdir(out / "weights")}


def test_train_on_numpy_data_writes_keras_shapes(tmp_path, data):
    out = tmp_path / "out"
    r = _train(tmp_path, _spec(epochs=2), "--x", tmp_path / "x.npy",
               "--y", tmp_path / "y.npy", "--out", out)
    assert r.returncode == 0, r.stderr
    steps = 2 * -(-N // 8)  # 2 epochs of ceil(20 / 8) batches

    outputs = np.load(out / "outputs.npy")
    assert outputs.shape == (N, T, K) and outputs.dtype == np.float32
    assert np.isfinite(outputs).all()
    losses = np.load(out / "losses.npy")
    assert losses.shape == (steps,) and losses.dtype == np.float32
    assert np.isfinite(losses).all() and (losses > 0).all()

    w = _weights(out)
    assert {k: v.shape for k, v in w.items()} == {
        "layer0_kernel": (F, 4 * U), "layer0_recurrent_kernel": (U, 4 * U),
        "layer0_bias": (4 * U,), "layer1_kernel": (U, K), "layer1_bias": (K,)}
    assert all(v.dtype == np.float32 and np.isfinite(v).all()
               for v in w.values())

    # The outputs are the Keras forward pass of the final weights on x.
    np.testing.assert_allclose(outputs, _lstm_dense_forward(data[0], w),
                               rtol=1e-5, atol=1e-6)

    fingerprints = json.loads((out / "fingerprints.json").read_text())
    assert [f["step"] for f in fingerprints] == list(range(steps + 1))
    assert all(len(f["sha256"]) == 64 for f in fingerprints)

    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == steps
    assert run["outputs_shape"] == [N, T, K]
    assert run["data"]["source"] == "supplied"
    x_digest = hashlib.sha256((tmp_path / "x.npy").read_bytes()).hexdigest()
    assert run["data"]["x"]["sha256"] == x_digest
    assert run["final_loss"] == pytest.approx(float(losses[-1]), rel=1e-6)


def test_eval_x_sets_the_reported_samples(tmp_path, data):
    np.save(tmp_path / "e.npy", data[0][:5].astype(np.float64))
    out = tmp_path / "out"
    r = _train(tmp_path, _spec(epochs=1), "--x", tmp_path / "x.npy", "--y",
               tmp_path / "y.npy", "--eval-x", tmp_path / "e.npy",
               "--out", out)
    assert r.returncode == 0, r.stderr
    outputs = np.load(out / "outputs.npy")
    assert outputs.shape == (5, T, K)
    np.testing.assert_allclose(outputs, _lstm_dense_forward(
        data[0][:5], _weights(out)), rtol=1e-5, atol=1e-6)


def test_init_weights_with_zero_epochs_reproduces_outputs(tmp_path, data):
    first = tmp_path / "first"
    r = _train(tmp_path, _spec(epochs=2), "--x", tmp_path / "x.npy",
               "--y", tmp_path / "y.npy", "--out", first)
    assert r.returncode == 0, r.stderr

    # Same data, given through the spec this time (paths relative to it).
    again = tmp_path / "again"
    r = _train(tmp_path, _spec(epochs=0, supplied={"x": "x.npy", "y": "y.npy"}),
               "--init-weights", first / "weights", "--out", again)
    assert r.returncode == 0, r.stderr

    a = np.load(first / "outputs.npy")
    b = np.load(again / "outputs.npy")
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes(), "outputs differ from the run's own"
    assert np.load(again / "losses.npy").shape == (0,)
    for name, w in _weights(first).items():
        assert w.tobytes() == np.load(
            again / "weights" / f"{name}.npy").tobytes(), name
    run = json.loads((again / "run.json").read_text())
    assert run["steps"] == 0 and run["final_loss"] is None


def test_wrong_target_shape_is_one_line_and_writes_nothing(tmp_path, data):
    np.save(tmp_path / "y_bad.npy", data[1][:, :, :2])
    out = tmp_path / "out"
    r = _train(tmp_path, _spec(epochs=1), "--x", tmp_path / "x.npy",
               "--y", tmp_path / "y_bad.npy", "--out", out)
    assert r.returncode == 2
    assert r.stderr.startswith("driftscope: error: --y ")
    assert r.stderr.count("\n") == 1
    assert f"({N}, {T}, 2)" in r.stderr
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith("out")]
