#!/usr/bin/env python3
"""Golden files for RNN recurrent dropout (and input dropout with
implementation 1), from real Keras 3.

Keras 3 switches an RNN cell with recurrent_dropout > 0 to implementation 1,
where LSTM (4 gates) and GRU (3) draw one input mask per gate (if dropout >
0) and then one recurrent mask per gate, SimpleRNN one of each; every mask
is the same for all timesteps of one call (keras/src/layers/rnn/
dropout_rnn_cell.py and the cells' `call`). Implementation 1 with dropout
alone draws the per-gate input masks only.

What this writes (under the directory of this script):

  <case>/<f64|f32>/    a model built right after
                       keras.utils.set_random_seed(seed), trained with an
                       explicit loop (forward with training=True under
                       GradientTape, loss, optimizer.apply_gradients: what
                       fit() does), 2 epochs of 10 samples in batches of 4
                       (the last one partial), no shuffle = 6 steps:
      x.npy, y.npy           data (float32-exact values)
      w{j}.npy               initial get_weights()
      grads0_w{j}.npy        the gradients of the first step (its masks)
      losses.npy (6,)        batch loss of each step, before its update
      final_w{j}.npy         weights after the 6 steps
      final_out.npy          model(x) (inference: no dropout) at the end
  manifest.json        every case's configuration, the SeedGenerator words
                       and the library versions

The script checks that each layer's SeedGenerator advanced by (masks per
call) x (steps): [g, k*n + j] is the seed of mask j of step k.

Masks in float64: as in ../dropout (make_dropout_golden.py), the f64 runs
draw float32 uniforms, as driftscope does in every precision.

How to run (needs tensorflow-cpu and keras; CI reads the committed files):

  python3 tests/golden/recurrent_dropout/make_recurrent_dropout_golden.py
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
from keras.src import backend as keras_backend  # noqa: E402
from keras.src.backend.tensorflow import random as tf_random  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
N, T, D, BATCH, EPOCHS = 10, 5, 3, 4, 2
MASKS = [(686579304, 0, 0.3), (26855093, 5, 0.5), (7, 3, 0.25)]
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}

# name -> (seed, [(Keras class, kwargs)], optimizer kwargs)
CASES = {
    "lstm_gru_recurrent_dropout_adam_s42": (42, [
        ("LSTM", dict(units=4, dropout=0.25, recurrent_dropout=0.3,
                      return_sequences=True)),
        ("GRU", dict(units=3, recurrent_dropout=0.4, return_sequences=True)),
        ("Dense", dict(units=2)),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
    "gru_before_simple_rnn_recurrent_dropout_adamw_s7": (7, [
        ("GRU", dict(units=3, reset_after=False, dropout=0.2,
                     recurrent_dropout=0.5, return_sequences=True)),
        ("SimpleRNN", dict(units=4, dropout=0.1, recurrent_dropout=0.3,
                           return_sequences=True, go_backwards=True)),
        ("Dense", dict(units=2)),
    ], dict(kind="AdamW", learning_rate=2.0**-5, weight_decay=2.0**-3)),
    # Keras 3.15.1's LSTM with implementation=1 and dropout (no recurrent
    # dropout) fails in its cuDNN-or-fallback path (it broadcasts the list
    # of 4 masks); use_cudnn=False takes the plain loop, which is what
    # driftscope computes. use_cudnn draws nothing.
    "lstm_implementation1_dropout_sgd_s3": (3, [
        ("LSTM", dict(units=3, dropout=0.3, implementation=1,
                      use_cudnn=False)),
        ("Dense", dict(units=2)),
    ], dict(kind="SGD", learning_rate=2.0**-3)),
}


def masks_per_call(cls, kw):
    if cls not in GATES:
        return 0
    rec = kw.get("recurrent_dropout", 0.0)
    impl = 1 if rec > 0 else kw.get("implementation", 2)
    count = GATES[cls] if (impl == 1 and cls != "SimpleRNN") else 1
    return (count if kw.get("dropout", 0.0) > 0 else 0) + (
        count if rec > 0 else 0)


def save(path, a, dtype=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(np.asarray(a, dtype=dtype)))


def dropout_f32_uniform(inputs, rate, noise_shape=None, seed=None):
    """Keras' TF dropout with the uniforms always drawn in float32."""
    assert noise_shape is None
    if rate == 0.0:
        return inputs
    seed = tf_random._cast_seed(tf_random.draw_seed(seed))
    u = tf.random.stateless_uniform(tf.shape(inputs), seed=seed,
                                    dtype=tf.float32)
    keep = u >= tf.constant(rate, tf.float32)
    scale = tf.constant(1.0 / (1.0 - rate), inputs.dtype)
    return tf.where(keep, inputs * scale, tf.zeros_like(inputs))


NATIVE_DROPOUT = keras_backend.random.dropout


def check_replacement_is_native_in_float32():
    ones = tf.ones((6, 9), tf.float32)
    for g, k, rate in MASKS:
        native = keras.random.SeedGenerator(g)
        mine = keras.random.SeedGenerator(g)
        for _ in range(k + 1):  # the (k+1)-th draw uses [g, k]
            a = NATIVE_DROPOUT(ones, rate, seed=native).numpy()
            b = dropout_f32_uniform(ones, rate, seed=mine).numpy()
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), (g, k)
        want = tf.nn.experimental.stateless_dropout(
            ones, rate=rate, seed=tf.constant([g, k], tf.int32)).numpy()
        assert np.array_equal(a.view(np.uint32), want.view(np.uint32)), (g, k)


def build(seed, layers, dtype):
    keras.backend.set_floatx(dtype)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((T, D), dtype=dtype)] +
        [getattr(keras.layers, cls)(dtype=dtype, **kw) for cls, kw in layers])
    return model


def generators(model):
    return [l.cell.seed_generator for l in model.layers
            if getattr(l, "cell", None) is not None]


def train(seed, layers, opt, dtype, init, x, y):
    model = build(seed, layers, dtype)
    per_call = [masks_per_call(c, kw) for c, kw in layers if c in GATES]
    starts = [int(g.state.numpy()[0]) for g in generators(model)]
    model.set_weights([w.astype(dtype) for w in init])
    kw = dict(opt)
    optimizer = getattr(keras.optimizers, kw.pop("kind"))(**kw)
    loss_fn = keras.losses.MeanSquaredError()
    losses = []
    grads0 = None
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
    steps = len(losses)
    # masks-per-call draws per layer and step.
    for g, s, n in zip(generators(model), starts, per_call):
        assert g.state.numpy().tolist() == [s, steps * n], (g.state.numpy(), s)
    final_out = model(tf.constant(x, dtype=dtype), training=False).numpy()
    keras.backend.set_floatx("float32")
    return (np.array(losses), [w.numpy() for w in model.trainable_weights],
            final_out, starts, grads0)


def make_case(index, name, seed, layers, opt):
    rs = np.random.RandomState(3000 + index)
    x = rs.uniform(-1, 1, (N, T, D)).astype(np.float32)
    probe = build(seed, layers, "float32")
    init = probe.get_weights()
    out_shape = (N,) + tuple(probe.output_shape[1:])
    y = rs.uniform(-1, 1, out_shape).astype(np.float32)
    entry = {"seed": seed, "layers": [{"class": c, "args": kw}
                                      for c, kw in layers],
             "optimizer": opt, "samples": N, "timesteps": T, "features": D,
             "batch_size": BATCH, "epochs": EPOCHS, "loss": "mse"}
    for tag, dtype in (("f32", "float32"), ("f64", "float64")):
        if dtype == "float64":
            keras_backend.random.dropout = dropout_f32_uniform
        try:
            losses, final, out, starts, grads0 = train(seed, layers, opt, dtype, init,
                                               x, y)
        finally:
            keras_backend.random.dropout = NATIVE_DROPOUT
        d = os.path.join(ROOT, name, tag)
        save(os.path.join(d, "x.npy"), x, dtype)
        save(os.path.join(d, "y.npy"), y, dtype)
        save(os.path.join(d, "losses.npy"), losses, dtype)
        save(os.path.join(d, "final_out.npy"), out, dtype)
        for j, (w0, w1) in enumerate(zip(init, final)):
            save(os.path.join(d, f"w{j}.npy"), w0, dtype)
            save(os.path.join(d, f"final_w{j}.npy"), w1, dtype)
            save(os.path.join(d, f"grads0_w{j}.npy"), grads0[j], dtype)
        entry["dropout_seed_words"] = starts
        entry["masks_per_step"] = [masks_per_call(c, kw) for c, kw in layers
                                   if c in GATES]
    return entry


def main():
    for entry in os.listdir(ROOT):
        path = os.path.join(ROOT, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
    check_replacement_is_native_in_float32()
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
