#!/usr/bin/env python3
"""Golden files for keras.layers.Embedding, from real Keras 3.

What this writes (under the directory of this script):

  <case>/<f64|f32>/    a model Input((T,), int32) -> Embedding -> ... built
                       right after keras.utils.set_random_seed(seed) (so
                       w{j} are the initial weights seed_mode KERAS must
                       reproduce), trained with an explicit loop (forward
                       under GradientTape, MSE, optimizer.apply_gradients:
                       what fit() does), 2 epochs of 10 samples in batches
                       of 4 (the last one partial), no shuffle = 6 steps:
      ids.npy   int32 (N, T)  the token ids Keras was given
      x.npy     (N, T, 1)     the same ids as values of the run dtype: the
                              engine's input (features 1)
      y.npy                   targets
      w{j}.npy                initial get_weights() (the float32 model's,
                              the same values in both dtypes)
      out0.npy                model(ids) with the initial weights
      grads0_w{j}.npy         the first step's gradients (the embedding's
                              IndexedSlices made dense, duplicates summed)
      losses.npy (6,)         batch loss of each step, before its update
      final_w{j}.npy          weights after the 6 steps
      final_out.npy           model(ids) at the end
  manifest.json        every case's configuration, the library versions and
                       what Keras' optimizer did with the sparse gradient
  import/              for `driftscope import`: Input((6,), int32) ->
                       Embedding(20, 4) -> GRU(3, return_sequences) ->
                       Dense(2), compiled with Adam(0.01) and mse, saved
                       before training (model.keras and the legacy
                       model.h5), then fit(ids, y, batch_size=32, epochs=3,
                       shuffle=False) in float64 on 40 samples:
      ids.npy (int32), x.npy ((N, T, 1) float64), y.npy, init_w{j}.npy,
      final_w{j}.npy, final_out.npy
  import_mask_zero/     the same files for Embedding(20, 4, mask_zero=True)
                       -> LSTM(3, return_sequences) -> Dense(2) (model.keras
                       only), on ids padded with 0 (right- and left-padded,
                       some samples fully padded)
  bad_regularizer.keras   a file import must refuse

The mask_zero case (MASK_ZERO_CASES) gets ids in [1, input_dim) padded with
0 per PADDING (right-, left-padded, one 0 inside, one fully padded sample),
and, while generating, the script asserts that the first batch's loss is
the mean of the per-step MSE over the steps whose id is not 0, that fit()
ends at the explicit loop's weights (float64, 1e-12), that the embedding
outputs row 0 of the table at id 0 (not zeros), and that row 0 gets a zero
gradient and never moves (manifest.json records it).

How to run (needs tensorflow-cpu and keras; CI reads the committed files):

  python3 tests/golden/embedding/make_embedding_golden.py
  python3 tests/golden/embedding/make_embedding_golden.py --mask-zero-only
      (re)writes only the mask_zero case and import_mask_zero/, leaving the
      other files as they are
"""

import json
import os
import shutil
import sys

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
N, T, BATCH, EPOCHS = 10, 5, 4, 2

# name -> (seed, vocabulary, [(Keras class, kwargs)], optimizer kwargs). The
# first layer is Embedding(input_dim=vocabulary, **kwargs).
CASES = {
    "embedding_lstm_dense_adam_s42": (42, 30, [
        ("Embedding", dict(output_dim=3)),
        ("LSTM", dict(units=4, return_sequences=True)),
        ("Dense", dict(units=2)),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
    "embedding_normal_gru_last_sgd_s7": (7, 9, [
        ("Embedding", dict(output_dim=2, embeddings_initializer=dict(
            class_name="RandomNormal", config=dict(mean=0.0, stddev=0.5)))),
        ("GRU", dict(units=3)),
        ("Dense", dict(units=2)),
    ], dict(kind="SGD", learning_rate=2.0**-3)),
    "embedding_simple_rnn_rmsprop_clipnorm_s3": (3, 6, [
        ("Embedding", dict(output_dim=3)),
        ("SimpleRNN", dict(units=3, return_sequences=True)),
        ("Dense", dict(units=1)),
    ], dict(kind="RMSprop", learning_rate=2.0**-4, clipnorm=0.05)),
}


# Embedding(mask_zero=True) cases, (name -> as CASES); their ids are
# padded with 0 per PADDING. Indexed after CASES (RandomState(5000 + index)).
MASK_ZERO_CASES = {
    "embedding_mask_zero_lstm_dense_adam_s21": (21, 12, [
        ("Embedding", dict(output_dim=3, mask_zero=True)),
        ("LSTM", dict(units=4, return_sequences=True)),
        ("Dense", dict(units=2)),
    ], dict(kind="Adam", learning_rate=2.0**-5)),
}

# Per sample of a mask_zero case: ("right", n) keeps the first n steps,
# ("left", n) the last n, ("gap", t) pads step t only. Sample 2 is fully
# padded.
PADDING = [("right", 5), ("right", 3), ("right", 0), ("left", 2),
           ("right", 4), ("left", 4), ("gap", 1), ("right", 1),
           ("left", 3), ("right", 2)]


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


def save(path, a, dtype=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(np.asarray(a, dtype=dtype)))


def make_layer(entry, vocabulary, dtype):
    cls, kw = entry
    kw = dict(kw)
    if cls == "Embedding":
        kw["input_dim"] = vocabulary
        init = kw.pop("embeddings_initializer", None)
        if init is not None:
            kw["embeddings_initializer"] = keras.initializers.get(init)
    return getattr(keras.layers, cls)(dtype=dtype, **kw)


def build(seed, vocabulary, layers, dtype):
    keras.backend.set_floatx(dtype)
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((T,), dtype="int32")] +
                            [make_layer(e, vocabulary, dtype) for e in layers])


def make_optimizer(opt):
    kw = dict(opt)
    return getattr(keras.optimizers, kw.pop("kind"))(**kw)


def train(seed, vocabulary, layers, opt, dtype, init, ids, y, rows0=None):
    """rows0: a list that gets row 0 of the table after every step."""
    model = build(seed, vocabulary, layers, dtype)
    model.set_weights([w.astype(dtype) for w in init])
    out0 = model(tf.constant(ids)).numpy()
    optimizer = make_optimizer(opt)
    loss_fn = keras.losses.MeanSquaredError()
    losses, grads0, sparse = [], None, []
    for _ in range(EPOCHS):
        for start in range(0, N, BATCH):
            xb = tf.constant(ids[start:start + BATCH])
            yb = tf.constant(y[start:start + BATCH], dtype=dtype)
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_weights)
            sparse.append(isinstance(grads[0], tf.IndexedSlices))
            if grads0 is None:
                grads0 = [tf.convert_to_tensor(g).numpy() for g in grads]
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            losses.append(loss.numpy())
            if rows0 is not None:
                rows0.append(model.trainable_weights[0].numpy()[0].copy())
    final_out = model(tf.constant(ids), training=False).numpy()
    keras.backend.set_floatx("float32")
    return (out0, np.array(losses), grads0,
            [w.numpy() for w in model.trainable_weights], final_out, sparse)


def fit_weights(seed, vocabulary, layers, opt, init, ids, y):
    model = build(seed, vocabulary, layers, "float64")
    model.set_weights([w.astype("float64") for w in init])
    model.compile(optimizer=make_optimizer(opt), loss="mse")
    model.fit(ids, y.astype("float64"), batch_size=BATCH, epochs=EPOCHS,
              shuffle=False, verbose=0)
    keras.backend.set_floatx("float32")
    return [w.numpy() for w in model.trainable_weights]


def check_mask_zero(name, seed, vocabulary, layers, opt, init, ids, y, keep,
                    out0, losses, grads0, final, rows0):
    """Keras' mask_zero semantics the engine must follow (float64)."""
    model = build(seed, vocabulary, layers, "float64")
    model.set_weights([w.astype("float64") for w in init])
    emb = model.layers[0](tf.constant(ids)).numpy()
    keras.backend.set_floatx("float32")
    table = init[0].astype("float64")
    assert np.array_equal(emb[~keep], np.broadcast_to(
        table[0], emb[~keep].shape)), name + ": id 0 outputs row 0"
    assert np.array_equal(keep, ids != 0), name
    b = slice(0, BATCH)
    per_step = ((out0[b] - y[b].astype("float64")) ** 2).mean(axis=-1)
    want = per_step[keep[b]].mean()
    assert abs(want - losses[0]) < 1e-12 * max(1.0, abs(want)), (name, want)
    assert np.all(grads0[0][0] == 0.0), name + ": row 0's gradient"
    assert all(np.array_equal(r, table[0]) for r in rows0), name + ": row 0"
    for a, w in zip(fit_weights(seed, vocabulary, layers, opt, init, ids, y),
                    final):
        assert np.max(np.abs(a - w)) < 1e-12, name + ": fit()"
    return {"keep": keep.astype(int).tolist(),
            "row0_gradient_is_zero": True, "row0_never_moves": True,
            "id0_outputs_row0": True, "fit_matches_loop_f64": True}


def dense_adam_moves_unseen_rows(seed, vocabulary, layers, dtype, init, ids,
                                 y):
    """Two Adam steps; rows seen in the first batch but not the second: does
    the second step move them (dense Adam) or not (a lazy, sparse Adam)?"""
    model = build(seed, vocabulary, layers, dtype)
    model.set_weights([w.astype(dtype) for w in init])
    optimizer = keras.optimizers.Adam(learning_rate=2.0**-5)
    loss_fn = keras.losses.MeanSquaredError()
    first, second = set(ids[0:BATCH].ravel()), set(ids[BATCH:2 * BATCH].ravel())
    only_first = sorted(first - second)
    if not only_first:
        return None  # every row seen in both batches: nothing to learn
    for start in (0, BATCH):
        with tf.GradientTape() as tape:
            loss = loss_fn(tf.constant(y[start:start + BATCH], dtype=dtype),
                           model(tf.constant(ids[start:start + BATCH]),
                                 training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        if start == BATCH:
            before = model.trainable_weights[0].numpy()[only_first]
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
    after = model.trainable_weights[0].numpy()[only_first]
    keras.backend.set_floatx("float32")
    return bool(np.any(after != before))


def describe(entry):
    return {"class": entry[0], "args": entry[1]}


def make_case(index, name, seed, vocabulary, layers, opt, padding=None):
    rs = np.random.RandomState(5000 + index)
    if padding is None:
        ids = rs.randint(0, vocabulary, (N, T)).astype(np.int32)
    else:  # ids in [1, vocabulary), 0 at the padded steps
        ids = rs.randint(1, vocabulary, (N, T)).astype(np.int32)
        keep = keep_of(padding)
        ids[~keep] = 0
    probe = build(seed, vocabulary, layers, "float32")
    init = probe.get_weights()
    y = rs.uniform(-1, 1, (N,) + tuple(probe.output_shape[1:])).astype(
        np.float32)
    assert len(init) == len(probe.trainable_weights)
    info, mask_zero = {}, None
    for tag, dtype in (("f32", "float32"), ("f64", "float64")):
        rows0 = []
        out0, losses, grads0, final, out, sparse = train(
            seed, vocabulary, layers, opt, dtype, init, ids, y, rows0)
        info[tag] = {"embedding_gradient_is_indexed_slices": all(sparse)}
        if padding is not None and dtype == "float64":
            mask_zero = check_mask_zero(name, seed, vocabulary, layers, opt,
                                        init, ids, y, keep, out0, losses,
                                        grads0, final, rows0)
        d = os.path.join(ROOT, name, tag)
        save(os.path.join(d, "ids.npy"), ids, np.int32)
        save(os.path.join(d, "x.npy"), ids[:, :, None], dtype)
        save(os.path.join(d, "y.npy"), y, dtype)
        save(os.path.join(d, "out0.npy"), out0, dtype)
        save(os.path.join(d, "losses.npy"), losses, dtype)
        save(os.path.join(d, "final_out.npy"), out, dtype)
        for j, (w0, g0, w1) in enumerate(zip(init, grads0, final)):
            save(os.path.join(d, f"w{j}.npy"), w0, dtype)
            save(os.path.join(d, f"grads0_w{j}.npy"), g0, dtype)
            save(os.path.join(d, f"final_w{j}.npy"), w1, dtype)
    info["adam_moves_rows_absent_from_the_batch"] = (
        dense_adam_moves_unseen_rows(seed, vocabulary, layers, "float64", init,
                                     ids, y))
    entry = {"seed": seed, "input_dim": vocabulary,
             "layers": [describe(e) for e in layers],
             "optimizer": opt, "samples": N, "timesteps": T,
             "batch_size": BATCH, "epochs": EPOCHS, "loss": "mse",
             "weights": [w.path for w in probe.trainable_weights],
             "sparse_gradient": info}
    if padding is not None:
        entry["padding"] = [list(p) for p in padding]
        entry["mask_zero"] = mask_zero
    return entry


def set_precision(dtype):
    # The layers' dtype policy is fixed the first time it is read, so it is
    # set along with floatx.
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)


def import_model(**embedding):
    return keras.Sequential([
        keras.Input((IMPORT_T,), dtype="int32"),
        keras.layers.Embedding(20, 4, **embedding),
        keras.layers.GRU(3, return_sequences=True),
        keras.layers.Dense(2),
    ])


IMPORT_T, IMPORT_N = 6, 40


def import_mask_zero_case():
    """import_mask_zero/: Embedding(mask_zero) -> LSTM -> Dense, fit()."""
    d = os.path.join(ROOT, "import_mask_zero")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    set_precision("float64")
    keras.utils.set_random_seed(19)
    model = keras.Sequential([
        keras.Input((IMPORT_T,), dtype="int32"),
        keras.layers.Embedding(20, 4, mask_zero=True),
        keras.layers.LSTM(3, return_sequences=True),
        keras.layers.Dense(2),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="mse", jit_compile=False)
    model.save(os.path.join(d, "model.keras"))
    for j, w in enumerate(model.get_weights()):
        np.save(os.path.join(d, f"init_w{j}.npy"), w)
    rs = np.random.RandomState(23)
    ids = rs.randint(1, 20, (IMPORT_N, IMPORT_T)).astype(np.int32)
    lengths = rs.randint(0, IMPORT_T + 1, IMPORT_N)
    for i, length in enumerate(lengths):
        if i % 2 == 0:
            ids[i, length:] = 0  # right-padded
        else:
            ids[i, :IMPORT_T - length] = 0  # left-padded
    y = rs.uniform(-0.5, 0.5, (IMPORT_N, IMPORT_T, 2)).astype(
        np.float32).astype(np.float64)
    np.save(os.path.join(d, "ids.npy"), ids)
    np.save(os.path.join(d, "x.npy"), ids[:, :, None].astype(np.float64))
    np.save(os.path.join(d, "y.npy"), y)
    model.fit(ids, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    for j, w in enumerate(model.get_weights()):
        assert w.dtype == np.float64
        np.save(os.path.join(d, f"final_w{j}.npy"), w)
    np.save(os.path.join(d, "final_out.npy"),
            model.predict(ids, batch_size=IMPORT_N, verbose=0))
    set_precision("float32")
    return {"fit": {"batch_size": 32, "epochs": 3, "shuffle": False,
                    "samples": IMPORT_N, "floatx": "float64"},
            "lengths": lengths.tolist()}


def import_case():
    d = os.path.join(ROOT, "import")
    os.makedirs(d)
    set_precision("float64")
    keras.utils.set_random_seed(13)
    model = import_model()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="mse", jit_compile=False)
    model.save(os.path.join(d, "model.keras"))
    model.save(os.path.join(d, "model.h5"))
    for j, w in enumerate(model.get_weights()):
        np.save(os.path.join(d, f"init_w{j}.npy"), w)
    rs = np.random.RandomState(17)
    ids = rs.randint(0, 20, (IMPORT_N, IMPORT_T)).astype(np.int32)
    y = rs.uniform(-0.5, 0.5, (IMPORT_N, IMPORT_T, 2)).astype(
        np.float32).astype(np.float64)
    np.save(os.path.join(d, "ids.npy"), ids)
    np.save(os.path.join(d, "x.npy"), ids[:, :, None].astype(np.float64))
    np.save(os.path.join(d, "y.npy"), y)
    model.fit(ids, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    for j, w in enumerate(model.get_weights()):
        assert w.dtype == np.float64
        np.save(os.path.join(d, f"final_w{j}.npy"), w)
    np.save(os.path.join(d, "final_out.npy"),
            model.predict(ids, batch_size=IMPORT_N, verbose=0))
    set_precision("float32")
    import_model(embeddings_regularizer="l2").save(
        os.path.join(ROOT, "bad_regularizer.keras"))


def make_mask_zero_cases():
    """The mask_zero cases and import_mask_zero/, merged into manifest.json
    (other entries untouched)."""
    path = os.path.join(ROOT, "manifest.json")
    with open(path) as fh:
        manifest = json.load(fh)
    for offset, (name, (seed, vocabulary, layers, opt)) in enumerate(
            MASK_ZERO_CASES.items()):
        if os.path.isdir(os.path.join(ROOT, name)):
            shutil.rmtree(os.path.join(ROOT, name))
        manifest["cases"][name] = make_case(len(CASES) + offset, name, seed,
                                            vocabulary, layers, opt, PADDING)
    manifest["import_mask_zero"] = import_mask_zero_case()
    with open(path, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


def main():
    if sys.argv[1:] == ["--mask-zero-only"]:
        make_mask_zero_cases()
        return
    for entry in os.listdir(ROOT):
        path = os.path.join(ROOT, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif entry.endswith(".keras"):
            os.remove(path)
    manifest = {"versions": {"tensorflow": tf.__version__,
                             "keras": keras.__version__,
                             "numpy": np.__version__},
                "cases": {}}
    for index, (name, (seed, vocabulary, layers, opt)) in enumerate(
            CASES.items()):
        manifest["cases"][name] = make_case(index, name, seed, vocabulary,
                                            layers, opt)
    import_case()
    manifest["import"] = {"fit": {"batch_size": 32, "epochs": 3,
                                  "shuffle": False, "samples": IMPORT_N,
                                  "floatx": "float64"}}
    with open(os.path.join(ROOT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
    make_mask_zero_cases()


if __name__ == "__main__":
    main()
