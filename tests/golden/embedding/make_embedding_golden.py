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
  bad_mask_zero.keras, bad_regularizer.keras   files import must refuse

How to run (needs tensorflow-cpu and keras; CI reads the committed files):

  python3 tests/golden/embedding/make_embedding_golden.py
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


def train(seed, vocabulary, layers, opt, dtype, init, ids, y):
    model = build(seed, vocabulary, layers, dtype)
    model.set_weights([w.astype(dtype) for w in init])
    out0 = model(tf.constant(ids)).numpy()
    kw = dict(opt)
    optimizer = getattr(keras.optimizers, kw.pop("kind"))(**kw)
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
    final_out = model(tf.constant(ids), training=False).numpy()
    keras.backend.set_floatx("float32")
    return (out0, np.array(losses), grads0,
            [w.numpy() for w in model.trainable_weights], final_out, sparse)


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


def make_case(index, name, seed, vocabulary, layers, opt):
    rs = np.random.RandomState(5000 + index)
    ids = rs.randint(0, vocabulary, (N, T)).astype(np.int32)
    probe = build(seed, vocabulary, layers, "float32")
    init = probe.get_weights()
    y = rs.uniform(-1, 1, (N,) + tuple(probe.output_shape[1:])).astype(
        np.float32)
    assert len(init) == len(probe.trainable_weights)
    info = {}
    for tag, dtype in (("f32", "float32"), ("f64", "float64")):
        out0, losses, grads0, final, out, sparse = train(
            seed, vocabulary, layers, opt, dtype, init, ids, y)
        info[tag] = {"embedding_gradient_is_indexed_slices": all(sparse)}
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
    return {"seed": seed, "input_dim": vocabulary,
            "layers": [describe(e) for e in layers],
            "optimizer": opt, "samples": N, "timesteps": T,
            "batch_size": BATCH, "epochs": EPOCHS, "loss": "mse",
            "weights": [w.path for w in probe.trainable_weights],
            "sparse_gradient": info}


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
    for name, kw in (("bad_mask_zero.keras", dict(mask_zero=True)),
                     ("bad_regularizer.keras",
                      dict(embeddings_regularizer="l2"))):
        import_model(**kw).save(os.path.join(ROOT, name))


def main():
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


if __name__ == "__main__":
    main()
