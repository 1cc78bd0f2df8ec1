#!/usr/bin/env python3
"""Golden files for keras.layers.Bidirectional, from real Keras 3.

What this writes (under the directory of this script):

  <case>/<f64|f32>/    a model built right after
                       keras.utils.set_random_seed(seed) (so w{j} are the
                       initial weights seed_mode KERAS must reproduce),
                       trained with an explicit loop (forward under
                       GradientTape, MSE, optimizer.apply_gradients: what
                       fit() does), 2 epochs of 10 samples in batches of 4
                       (the last one partial), no shuffle = 6 steps:
      x.npy, y.npy           data (float32-exact values)
      w{j}.npy               initial get_weights() (the float32 model's, the
                             same values in both dtypes)
      out0.npy               model(x) with the initial weights
      grads0_w{j}.npy        the gradients of the first step
      losses.npy (6,)        batch loss of each step, before its update
      final_w{j}.npy         weights after the 6 steps
      final_out.npy          model(x) at the end
  manifest.json        every case's configuration and the library versions

How to run (needs tensorflow-cpu and keras; CI reads the committed files):

  python3 tests/golden/bidirectional/make_bidirectional_golden.py
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
N, T, D, BATCH, EPOCHS = 10, 5, 3, 4, 2

# name -> (seed, [(Keras class, kwargs) or ("Bidirectional", merge_mode,
# (class, kwargs))], optimizer kwargs)
CASES = {
    "lstm_concat_gru_sum_adam_s42": (42, [
        ("Bidirectional", "concat",
         ("LSTM", dict(units=4, return_sequences=True))),
        ("Bidirectional", "sum",
         ("GRU", dict(units=3, return_sequences=True))),
        ("Dense", dict(units=2)),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
    "simple_rnn_mul_gru_before_ave_sgd_s7": (7, [
        ("Bidirectional", "mul",
         ("SimpleRNN", dict(units=3, return_sequences=True))),
        ("Bidirectional", "ave",
         ("GRU", dict(units=3, reset_after=False))),
        ("Dense", dict(units=2)),
    ], dict(kind="SGD", learning_rate=2.0**-3)),
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


def build(seed, layers, dtype):
    keras.backend.set_floatx(dtype)
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((T, D), dtype=dtype)] +
                            [make_layer(e, dtype) for e in layers])


def train(seed, layers, opt, dtype, init, x, y):
    model = build(seed, layers, dtype)
    model.set_weights([w.astype(dtype) for w in init])
    out0 = model(tf.constant(x, dtype=dtype)).numpy()
    kw = dict(opt)
    optimizer = getattr(keras.optimizers, kw.pop("kind"))(**kw)
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


def describe(entry):
    if entry[0] == "Bidirectional":
        return {"class": "Bidirectional", "merge_mode": entry[1],
                "layer": {"class": entry[2][0], "args": entry[2][1]}}
    return {"class": entry[0], "args": entry[1]}


def make_case(index, name, seed, layers, opt):
    rs = np.random.RandomState(4000 + index)
    x = rs.uniform(-1, 1, (N, T, D)).astype(np.float32)
    probe = build(seed, layers, "float32")
    init = probe.get_weights()
    y = rs.uniform(-1, 1, (N,) + tuple(probe.output_shape[1:])).astype(
        np.float32)
    # get_weights() is the trainable weights' order (forward copy, then
    # backward copy, per Bidirectional layer).
    assert len(init) == len(probe.trainable_weights)
    for tag, dtype in (("f32", "float32"), ("f64", "float64")):
        out0, losses, grads0, final, out = train(seed, layers, opt, dtype,
                                                 init, x, y)
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
    return {"seed": seed, "layers": [describe(e) for e in layers],
            "optimizer": opt, "samples": N, "timesteps": T, "features": D,
            "batch_size": BATCH, "epochs": EPOCHS, "loss": "mse",
            "weights": [w.path for w in probe.trainable_weights]}


def main():
    for entry in os.listdir(ROOT):
        path = os.path.join(ROOT, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
    manifest = {"versions": {"tensorflow": tf.__version__,
                             "keras": keras.__version__,
                             "numpy": np.__version__},
                "cases": {}}
    for index, (name, (seed, layers, opt)) in enumerate(CASES.items()):
        manifest["cases"][name] = make_case(index, name, seed, layers, opt)
    with open(os.path.join(ROOT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":
    main()
