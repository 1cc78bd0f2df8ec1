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
                       (for a case with dropout: each Bidirectional copy's
                       SeedGenerator word, forward then backward)

Dropout inside Bidirectional: each copy (forward_layer, backward_layer) is
an RNN with its own cell SeedGenerator, so each draws its own masks; the
script checks that every copy's generator advanced by (masks per call) x
(steps). As in ../recurrent_dropout, the f64 runs draw float32 uniforms (as
driftscope does in every precision); the f32 runs use Keras' own dropout.

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
from keras.src import backend as keras_backend  # noqa: E402
from keras.src.backend.tensorflow import random as tf_random  # noqa: E402

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
    # Dropout inside Bidirectional: per-gate masks (recurrent dropout) in
    # the LSTM, one shared input mask (implementation 2) in the GRU.
    "lstm_dropouts_concat_gru_dropout_sum_adam_s42": (42, [
        ("Bidirectional", "concat",
         ("LSTM", dict(units=4, return_sequences=True, dropout=0.25,
                       recurrent_dropout=0.1))),
        ("Bidirectional", "sum",
         ("GRU", dict(units=3, return_sequences=True, dropout=0.2))),
        ("Dense", dict(units=2)),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
    # Shared input masks in SimpleRNN and LSTM (last state only), recurrent
    # dropout in a reset_before GRU.
    "simple_rnn_dropout_ave_gru_recurrent_mul_lstm_dropout_sgd_s7": (7, [
        ("Bidirectional", "ave",
         ("SimpleRNN", dict(units=3, return_sequences=True, dropout=0.3))),
        ("Bidirectional", "mul",
         ("GRU", dict(units=3, return_sequences=True, reset_after=False,
                      recurrent_dropout=0.3))),
        ("Bidirectional", "concat",
         ("LSTM", dict(units=2, dropout=0.2))),
        ("Dense", dict(units=2)),
    ], dict(kind="SGD", learning_rate=2.0**-3)),
    # merge_mode=None on the last layer: two outputs, forward and backward.
    # The files hold them side by side on the last axis ([forward |
    # backward], driftscope's layout: y, out0, final_out); the loss is the
    # sum of the two outputs' MSE, as fit() computes it for y=[y_f, y_b].
    "lstm_concat_gru_none_adam_s11": (11, [
        ("Bidirectional", "concat",
         ("LSTM", dict(units=3, return_sequences=True))),
        ("Bidirectional", None,
         ("GRU", dict(units=2, return_sequences=True))),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
    "lstm_dropout_none_last_sgd_s5": (5, [
        ("Bidirectional", None,
         ("LSTM", dict(units=2, dropout=0.25))),
    ], dict(kind="SGD", learning_rate=2.0**-3)),
}
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


def joined(out):
    """A model output; merge_mode None's two outputs side by side."""
    if isinstance(out, (list, tuple)):
        return np.concatenate([np.asarray(o) for o in out], axis=-1)
    return np.asarray(out)


def batch_loss(loss_fn, y, pred):
    """MSE; for two outputs, the sum of each output's loss (fit()'s total)."""
    if not isinstance(pred, (list, tuple)):
        return loss_fn(y, pred)
    half = y.shape[-1] // 2
    return loss_fn(y[..., :half], pred[0]) + loss_fn(y[..., half:], pred[1])


def masks_per_call(cls, kw):
    rec = kw.get("recurrent_dropout", 0.0)
    impl = 1 if rec > 0 else kw.get("implementation", 2)
    count = GATES[cls] if (impl == 1 and cls != "SimpleRNN") else 1
    return (count if kw.get("dropout", 0.0) > 0 else 0) + (
        count if rec > 0 else 0)


def has_dropout(layers):
    return any(e[0] == "Bidirectional" and (
        e[2][1].get("dropout", 0) or e[2][1].get("recurrent_dropout", 0))
        for e in layers)


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
    for g, k, rate in [(686579304, 0, 0.3), (26855093, 5, 0.5)]:
        native = keras.random.SeedGenerator(g)
        mine = keras.random.SeedGenerator(g)
        for _ in range(k + 1):  # the (k+1)-th draw uses [g, k]
            a = NATIVE_DROPOUT(ones, rate, seed=native).numpy()
            b = dropout_f32_uniform(ones, rate, seed=mine).numpy()
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), (g, k)


def copies(model):
    """(cell SeedGenerator, masks per call) of every Bidirectional copy."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            cls = type(layer.forward_layer).__name__
            n = masks_per_call(cls, layer.forward_layer.get_config())
            for c in (layer.forward_layer, layer.backward_layer):
                out.append((c.cell.seed_generator, n))
    return out


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
    # With dropout, out0 comes from a model of its own: Keras advances a
    # dropout layer's SeedGenerator in inference calls too, which would
    # shift the masks of the training steps.
    first = build(seed, layers, dtype)
    first.set_weights([w.astype(dtype) for w in init])
    out0 = joined(first(tf.constant(x, dtype=dtype)))
    model = build(seed, layers, dtype) if has_dropout(layers) else first
    starts = [int(g.state.numpy()[0]) for g, _ in copies(model)]
    model.set_weights([w.astype(dtype) for w in init])
    kw = dict(opt)
    optimizer = getattr(keras.optimizers, kw.pop("kind"))(**kw)
    loss_fn = keras.losses.MeanSquaredError()
    losses, grads0 = [], None
    for _ in range(EPOCHS):
        for start in range(0, N, BATCH):
            xb = tf.constant(x[start:start + BATCH], dtype=dtype)
            yb = tf.constant(y[start:start + BATCH], dtype=dtype)
            with tf.GradientTape() as tape:
                loss = batch_loss(loss_fn, yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_weights)
            if grads0 is None:
                grads0 = [g.numpy() for g in grads]
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            losses.append(loss.numpy())
    for (g, n), s in zip(copies(model), starts):
        assert g.state.numpy().tolist() == [s, len(losses) * n], (
            g.state.numpy(), s, n)
    final_out = joined(model(tf.constant(x, dtype=dtype), training=False))
    keras.backend.set_floatx("float32")
    return (out0, np.array(losses), grads0,
            [w.numpy() for w in model.trainable_weights], final_out, starts)


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
    shape = probe.output_shape
    if isinstance(shape, list):  # merge_mode None: two outputs
        shape = tuple(shape[0][:-1]) + (2 * shape[0][-1],)
    y = rs.uniform(-1, 1, (N,) + tuple(shape[1:])).astype(np.float32)
    # get_weights() is the trainable weights' order (forward copy, then
    # backward copy, per Bidirectional layer).
    assert len(init) == len(probe.trainable_weights)
    for tag, dtype in (("f32", "float32"), ("f64", "float64")):
        if dtype == "float64":
            keras_backend.random.dropout = dropout_f32_uniform
        try:
            out0, losses, grads0, final, out, starts = train(
                seed, layers, opt, dtype, init, x, y)
        finally:
            keras_backend.random.dropout = NATIVE_DROPOUT
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
    entry = {"seed": seed, "layers": [describe(e) for e in layers],
             "optimizer": opt, "samples": N, "timesteps": T, "features": D,
             "batch_size": BATCH, "epochs": EPOCHS, "loss": "mse",
             "weights": [w.path for w in probe.trainable_weights]}
    if has_dropout(layers):
        entry["dropout_seed_words"] = starts
        entry["masks_per_step"] = [n for _, n in copies(probe)]
    return entry


def main():
    for entry in os.listdir(ROOT):
        path = os.path.join(ROOT, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
    manifest = {"versions": {"tensorflow": tf.__version__,
                             "keras": keras.__version__,
                             "numpy": np.__version__},
                "cases": {}}
    check_replacement_is_native_in_float32()
    for index, (name, (seed, layers, opt)) in enumerate(CASES.items()):
        manifest["cases"][name] = make_case(index, name, seed, layers, opt)
    with open(os.path.join(ROOT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":
    main()
