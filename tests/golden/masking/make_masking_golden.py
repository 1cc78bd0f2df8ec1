#!/usr/bin/env python3
"""Golden files for keras.layers.Masking (padded sequences), from real Keras 3.

Every model starts with Masking(mask_value); the data are padded sequences
of different lengths: right-padded, left-padded, one with a padded step in
the middle, one fully padded sample (and, in one case, a whole batch of
fully padded samples, whose masked loss is 0). Padded steps hold
mask_value in every feature.

What this writes (under the directory of this script):

  <case>/<f64|f32>/    a model built right after
                       keras.utils.set_random_seed(seed), trained with an
                       explicit loop (forward under GradientTape, MSE,
                       optimizer.apply_gradients: what fit() does, checked
                       below), 2 epochs of 10 samples in batches of 4 (the
                       last one partial), no shuffle = 6 steps:
      x.npy, y.npy           data (float32-exact values)
      w{j}.npy               initial get_weights()
      out0.npy               model(x) with the initial weights
      grads0_w{j}.npy        the gradients of the first step
      losses.npy (6,)        batch loss of each step, before its update
      final_w{j}.npy         weights after the 6 steps
      final_out.npy          model(x) at the end
  manifest.json        every case's configuration, the padding of each
                       sample and the library versions

  import_masked/model.keras  for `driftscope import`: a Keras 3 file of
                       Masking(0.0) -> LSTM(3, return_sequences) ->
                       Bidirectional(GRU(2, return_sequences)) -> Dense(1),
                       compiled with Adam(0.01) and mse, saved in float64
                       before training, then trained by Keras in float64
                       with fit(batch_size=32, epochs=3, shuffle=False) on
                       40 padded samples (what `driftscope train --model`
                       does with its import defaults): x.npy, y.npy,
                       init_w{j}.npy, final_w{j}.npy, final_out.npy
  import_masked/bad_masking_second.keras  Masking after the LSTM (refused)

While generating, the script asserts that
  - model.fit(batch_size=4, epochs=2, shuffle=False) ends at the same
    weights as the explicit loop (1e-12, float64), so fit() masks the loss
    the same way;
  - the first batch's loss is the mean over the kept timesteps of the
    per-step MSE (Keras' apply_mask: weights total/valid), or, for a vector
    output, the plain mean;
  - an RNN with return_sequences outputs, at a padded step, its previous
    output (zeros inside a Bidirectional with return_sequences).

How to run (needs tensorflow-cpu and keras; CI reads the committed files):

  python3 tests/golden/masking/make_masking_golden.py
"""

import json
import os
import shutil

os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.experimental.enable_op_determinism()

import keras  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
N, T, D, BATCH, EPOCHS = 10, 6, 3, 4, 2

# Per sample: ("right", n) keeps the first n steps, ("left", n) the last n,
# ("gap", t) pads step t only. Sample 2 is fully padded.
PADDING = [("right", 6), ("right", 4), ("right", 0), ("left", 3),
           ("right", 5), ("left", 2), ("gap", 2), ("right", 1),
           ("left", 4), ("right", 3)]
# The same, with the last batch (samples 8, 9) fully padded.
PADDING_EMPTY_BATCH = PADDING[:8] + [("right", 0), ("left", 0)]

# name -> (seed, mask_value, padding, [(Keras class, kwargs) or
# ("Bidirectional", merge_mode, (class, kwargs))], optimizer kwargs)
CASES = {
    "lstm_seq_dense_adam_s42": (42, 0.0, PADDING, [
        ("LSTM", dict(units=4, return_sequences=True)),
        ("Dense", dict(units=2)),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
    "gru_last_dense_sgd_s7": (7, 0.0, PADDING, [
        ("GRU", dict(units=3)),
        ("Dense", dict(units=2)),
    ], dict(kind="SGD", learning_rate=2.0**-3)),
    "simple_rnn_backwards_seq_adam_s3": (3, -1.0, PADDING, [
        ("SimpleRNN", dict(units=3, return_sequences=True,
                           go_backwards=True)),
        ("Dense", dict(units=2)),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
    "bidirectional_lstm_gru_before_adam_s11": (11, 0.0, PADDING, [
        ("Bidirectional", "concat",
         ("LSTM", dict(units=3, return_sequences=True))),
        ("Bidirectional", "sum",
         ("GRU", dict(units=2, reset_after=False))),
        ("Dense", dict(units=2)),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
    "stacked_lstm_gru_dense_empty_batch_adam_s5": (5, 0.0,
                                                   PADDING_EMPTY_BATCH, [
        ("LSTM", dict(units=4, return_sequences=True)),
        ("GRU", dict(units=3, return_sequences=True)),
        ("Dense", dict(units=2, activation="tanh")),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
}


def save(path, a, dtype=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(np.asarray(a, dtype=dtype)))


def make_layer(entry, dtype):
    if entry[0] == "Bidirectional":
        _, mode, (cls, kw) = entry
        inner = getattr(keras.layers, cls)(dtype=dtype, **kw)
        return keras.layers.Bidirectional(inner, merge_mode=mode, dtype=dtype)
    cls, kw = entry
    return getattr(keras.layers, cls)(dtype=dtype, **kw)


def build(seed, mask_value, layers, dtype):
    keras.backend.set_floatx(dtype)
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((T, D), dtype=dtype),
         keras.layers.Masking(mask_value=mask_value, dtype=dtype)] +
        [make_layer(e, dtype) for e in layers])


def keep_of(padding):
    keep = np.ones((N, T), dtype=bool)
    for i, (side, n) in enumerate(padding):
        if side == "right":
            keep[i, n:] = False
        elif side == "left":
            keep[i, :T - n] = False
        else:
            keep[i, n] = False
    return keep


def make_optimizer(opt):
    kw = dict(opt)
    return getattr(keras.optimizers, kw.pop("kind"))(**kw)


def train(seed, mask_value, layers, opt, dtype, init, x, y):
    model = build(seed, mask_value, layers, dtype)
    model.set_weights([w.astype(dtype) for w in init])
    out0 = model(tf.constant(x, dtype=dtype)).numpy()
    optimizer = make_optimizer(opt)
    loss_fn = keras.losses.MeanSquaredError()
    losses, grads0 = [], None
    for _ in range(EPOCHS):
        for start in range(0, N, BATCH):
            xb = tf.constant(x[start:start + BATCH], dtype=dtype)
            yb = tf.constant(y[start:start + BATCH], dtype=dtype)
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_weights)
            if grads0 is None:
                grads0 = [g.numpy() for g in grads]
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            losses.append(loss.numpy())
    final_out = model(tf.constant(x, dtype=dtype), training=False).numpy()
    keras.backend.set_floatx("float32")
    return (out0, np.array(losses), grads0,
            [w.numpy() for w in model.trainable_weights], final_out)


def fit_weights(seed, mask_value, layers, opt, init, x, y):
    model = build(seed, mask_value, layers, "float64")
    model.set_weights([w.astype("float64") for w in init])
    model.compile(optimizer=make_optimizer(opt), loss="mse")
    model.fit(x.astype("float64"), y.astype("float64"), batch_size=BATCH,
              epochs=EPOCHS, shuffle=False, verbose=0)
    keras.backend.set_floatx("float32")
    return [w.numpy() for w in model.trainable_weights]


def describe(entry):
    if entry[0] == "Bidirectional":
        return {"class": "Bidirectional", "merge_mode": entry[1],
                "layer": {"class": entry[2][0], "args": entry[2][1]}}
    return {"class": entry[0], "args": entry[1]}


def check_semantics(name, layers, keep, x, y, out0, loss0):
    sequence_out = out0.ndim == 3
    b = slice(0, BATCH)
    err = (out0[b] - y[b]) ** 2
    if sequence_out:
        per_step = err.mean(axis=-1)
        k = keep[b]
        want = per_step[k].mean() if k.any() else 0.0
    else:
        want = err.mean()
    assert abs(want - loss0) < 1e-12 * max(1.0, abs(want)), (name, want,
                                                              loss0)


def check_rnn_outputs(seed, mask_value, layers, x, keep):
    """Previous output at padded steps; zeros inside Bidirectional."""
    first = layers[0]
    model = build(seed, mask_value, layers, "float64")
    sub = keras.Sequential(model.layers[:2])
    out = sub(tf.constant(x, dtype="float64")).numpy()
    keras.backend.set_floatx("float32")
    if first[0] == "Bidirectional":
        if first[2][1].get("return_sequences"):
            assert np.all(out[~keep] == 0.0)
        return
    kw = first[1]
    if not kw.get("return_sequences"):
        return
    back = kw.get("go_backwards", False)
    for i in range(N):
        order = list(range(T - 1, -1, -1)) if back else list(range(T))
        prev = np.zeros(out.shape[-1])
        for k, t in enumerate(order):
            if not keep[i, t]:
                assert np.array_equal(out[i, k], prev), (i, k)
            prev = out[i, k]


def make_case(index, name, seed, mask_value, padding, layers, opt):
    rs = np.random.RandomState(5000 + index)
    x = rs.uniform(-1, 1, (N, T, D)).astype(np.float32)
    keep = keep_of(padding)
    x[~keep] = mask_value
    probe = build(seed, mask_value, layers, "float32")
    init = probe.get_weights()
    y = rs.uniform(-1, 1, (N,) + tuple(probe.output_shape[1:])).astype(
        np.float32)
    assert len(init) == len(probe.trainable_weights)
    check_rnn_outputs(seed, mask_value, layers, x, keep)
    for tag, dtype in (("f32", "float32"), ("f64", "float64")):
        out0, losses, grads0, final, out = train(seed, mask_value, layers,
                                                 opt, dtype, init, x, y)
        if dtype == "float64":
            check_semantics(name, layers, keep, x, y, out0, losses[0])
            fit = fit_weights(seed, mask_value, layers, opt, init, x, y)
            for a, b in zip(fit, final):
                assert np.max(np.abs(a - b)) < 1e-12, name
        d = os.path.join(ROOT, name, tag)
        save(os.path.join(d, "x.npy"), x, dtype)
        save(os.path.join(d, "y.npy"), y, dtype)
        save(os.path.join(d, "out0.npy"), out0, dtype)
        save(os.path.join(d, "losses.npy"), losses, dtype)
        save(os.path.join(d, "final_out.npy"), out, dtype)
        for j, (w0, g0, w1) in enumerate(zip(init, grads0, final)):
            save(os.path.join(d, f"w{j}.npy"), w0, dtype)
            save(os.path.join(d, f"grads0_w{j}.npy"), g0, dtype)
            save(os.path.join(d, f"final_w{j}.npy"), w1, dtype)
    return {"seed": seed, "mask_value": mask_value,
            "padding": [list(p) for p in padding],
            "layers": [describe(e) for e in layers],
            "optimizer": opt, "samples": N, "timesteps": T, "features": D,
            "batch_size": BATCH, "epochs": EPOCHS, "loss": "mse",
            "weights": [w.path for w in probe.trainable_weights]}


def import_case():
    d = os.path.join(ROOT, "import_masked")
    os.makedirs(d)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    keras.utils.set_random_seed(17)
    n = 40
    model = keras.Sequential([
        keras.Input((T, D)),
        keras.layers.Masking(mask_value=0.0),
        keras.layers.LSTM(3, return_sequences=True),
        keras.layers.Bidirectional(keras.layers.GRU(2, return_sequences=True)),
        keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="mse", jit_compile=False)
    model.save(os.path.join(d, "model.keras"))
    for j, w in enumerate(model.get_weights()):
        np.save(os.path.join(d, f"init_w{j}.npy"), w)
    rs = np.random.RandomState(6000)
    x = rs.uniform(-1, 1, (n, T, D)).astype(np.float32).astype(np.float64)
    lengths = rs.randint(0, T + 1, n)
    for i, length in enumerate(lengths):
        if i % 2 == 0:
            x[i, length:] = 0.0  # right-padded
        else:
            x[i, :T - length] = 0.0  # left-padded
    y = rs.uniform(-1, 1, (n, T, 1)).astype(np.float32).astype(np.float64)
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "y.npy"), y)
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    for j, w in enumerate(model.get_weights()):
        np.save(os.path.join(d, f"final_w{j}.npy"), w)
    np.save(os.path.join(d, "final_out.npy"),
            model.predict(x, batch_size=n, verbose=0))
    bad = keras.Sequential([
        keras.Input((T, D)),
        keras.layers.LSTM(3, return_sequences=True),
        keras.layers.Masking(mask_value=0.0),
        keras.layers.Dense(1)])
    bad.save(os.path.join(d, "bad_masking_second.keras"))
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    return {"lengths": lengths.tolist()}


def main():
    for entry in os.listdir(ROOT):
        path = os.path.join(ROOT, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
    manifest = {"versions": {"tensorflow": tf.__version__,
                             "keras": keras.__version__,
                             "numpy": np.__version__},
                "cases": {}}
    for index, (name, (seed, mask_value, padding, layers, opt)) in enumerate(
            CASES.items()):
        manifest["cases"][name] = make_case(index, name, seed, mask_value,
                                            padding, layers, opt)
    manifest["import_masked"] = import_case()
    with open(os.path.join(ROOT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":
    main()
