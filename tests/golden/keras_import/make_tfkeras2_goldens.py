#!/usr/bin/env python3
"""Golden `.h5` files written by a real Keras 2 (tf.keras, the `tf_keras`
package), for `driftscope import`.

make_goldens.py writes its `.h5` files with Keras 3's legacy saver; these
are written by Keras 2 itself. Regenerate (tensorflow-cpu 2.21.0, tf-keras
2.21.0, h5py; versions recorded in tfkeras2_manifest.json) with

    python3 -m venv venv && venv/bin/pip install tensorflow-cpu==2.21.0 \
        tf-keras==2.21.0 h5py
    venv/bin/python tests/golden/keras_import/make_tfkeras2_goldens.py

Every case is built with tf_keras.backend.set_floatx("float64") after
tf_keras.utils.set_random_seed(seed), saved before any training, and then
*loaded back from the saved file* and trained by Keras 2 in float64: the
reference is Keras' own training of the file, as the import test's is
driftscope's. Data: 40 samples of 6 timesteps and 2 features; training:
batch 32, 3 epochs, no shuffle (2 steps per epoch, the second a partial
batch of 8: 6 steps), which is what `driftscope train --model FILE --x
--y` does with its import defaults.

Cases (directory tfk2_<name>/, the model file model.h5, or model.keras):

  seq_lstm_dense    Sequential LSTM(4, return_sequences) -> Dense(2, tanh);
                    Adam(0.01, clipnorm=1.0), mse; model.save("model.h5")
  func_gru_rnn      Functional chain GRU(3, return_sequences, reset_after=
                    True) -> GRU(3, return_sequences, reset_after=False) ->
                    SimpleRNN(2, relu) -> Dense(1); SGD(0.05, momentum=0.9),
                    mae; tf_keras.models.save_model(m, path,
                    save_format="h5")
  seq_bidir         Sequential Bidirectional(LSTM(3, return_sequences))
                    (concat) -> Bidirectional(GRU(2), merge_mode="sum") ->
                    Dense(1); Adam(0.01), mse
  seq_impl1         Sequential LSTM(3, return_sequences, implementation=1,
                    recurrent_activation="hard_sigmoid") -> GRU(2,
                    implementation=1) -> Dense(1); SGD(0.1, momentum=0.5,
                    nesterov=True), mse (Keras 2's hard_sigmoid:
                    clip(0.2x + 0.5, 0, 1), and `implementation` in the
                    config, which Keras 3 does not write)
  uncompiled        Sequential SimpleRNN(2) -> Dense(1), saved without
                    compile(); trained with what import assumes then:
                    Adam() (learning rate 1e-3), mse
  legacy_adam       Sequential GRU(3) -> Dense(1) compiled with
                    tf_keras.optimizers.legacy.Adam(0.01), mse: the
                    optimizer every tf.keras before 2.11 had (OptimizerV2),
                    written as class "Adam" with a "decay" key
  legacy_sgd        Sequential LSTM(3, return_sequences) -> Dense(1) with
                    tf_keras.optimizers.legacy.SGD(0.05, momentum=0.9,
                    nesterov=True), mae
  rmsprop           Sequential SimpleRNN(3, return_sequences) -> Dense(1);
                    RMSprop(0.01, momentum=0.5), mse
  adamw             Sequential GRU(3) -> Dense(1); AdamW(0.01,
                    weight_decay=0.05, clipvalue=0.05), mae
  keras_format      tf.keras 2's own zip format (model.save("model.keras"),
                    metadata.json says keras_version 2.21.0): Functional
                    LSTM(3, return_sequences, name="encoder") -> LSTM(3,
                    return_sequences, name="a_second") ->
                    Bidirectional(GRU(2), name="both_ways") -> Dense(1,
                    name="head"); Adam(0.01), mse. Its model.weights.h5
                    names each layer's group after the layer's class
                    (layers/lstm, layers/lstm_1, layers/bidirectional,
                    layers/dense), not after the layer, and records no
                    layer name

Each case directory holds:

  model.h5          the file, as tf.keras 2 saved it (before training)
  x.npy, y.npy      float64 data (float32-exact values)
  init_w{j}.npy     get_weights() of the model as saved
  out0.npy          model(x) before training (the forward pass)
  grads0_w{j}.npy   the gradients of the first step's loss (the first 32
                    samples, training=True) w.r.t. get_weights(), by
                    tf.GradientTape over model.compute_loss
  losses.npy        the batch loss of each of the 6 steps (train_on_batch)
  final_w{j}.npy    get_weights() after the 6 steps
  final_out.npy     model.predict(x) after the 6 steps

Files import must refuse (each written from a real Keras 2 file):

  tfk2_bad_shapes.h5       tfk2_seq_lstm_dense/model.h5 with the LSTM
                           kernel dataset replaced by a (2, 12) one (the
                           config needs (2, 16))
  tfk2_weights_only.h5     model.save_weights("w.h5") of that model: no
                           model config
  tfk2_bad_missing_weight.h5  tfk2_seq_lstm_dense/model.h5 with the Dense
                           bias dataset deleted (weight_names still lists it)
  tfk2_bad_legacy_rmsprop.h5  an LSTM(2) -> Dense(1) compiled with
                           tf_keras.optimizers.legacy.RMSprop() (it adds
                           epsilon outside the square root, Keras 3 inside)

  tfk2_bad_time_major.h5   an LSTM(2, time_major=True) (not supported)

and one import must accept, carrying what Keras 2 wrote:

  tfk2_dropout.h5          LSTM(3, return_sequences, dropout=0.2,
                           implementation=1) -> GRU(2,
                           recurrent_dropout=0.25) -> Dense(1), compiled,
                           not trained

Truncated copies are made by the C++ tests themselves.
"""
import json
import os
import shutil

os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["PYTHONHASHSEED"] = "0"

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.experimental.enable_op_determinism()

HERE = os.path.dirname(os.path.abspath(__file__))
T, F, N, BATCH, EPOCHS = 6, 2, 40, 32, 3


def data(seed, units, sequence):
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, (N, T, F)).astype(np.float32).astype(np.float64)
    shape = (N, T, units) if sequence else (N, units)
    y = rng.uniform(-0.5, 0.5, shape).astype(np.float32).astype(np.float64)
    return x, y


def seq_lstm_dense():
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.LSTM(4, return_sequences=True),
        keras.layers.Dense(2, activation="tanh"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01,
                                                  clipnorm=1.0), loss="mse")
    return model, 2, True, "model.save"


def func_gru_rnn():
    inp = keras.Input((T, F))
    h = keras.layers.GRU(3, return_sequences=True, reset_after=True)(inp)
    h = keras.layers.GRU(3, return_sequences=True, reset_after=False)(h)
    h = keras.layers.SimpleRNN(2, activation="relu")(h)
    out = keras.layers.Dense(1)(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05,
                                                 momentum=0.9), loss="mae")
    return model, 1, False, "save_format=h5"


def seq_bidir():
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.Bidirectional(
            keras.layers.LSTM(3, return_sequences=True)),
        keras.layers.Bidirectional(keras.layers.GRU(2), merge_mode="sum"),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="mse")
    return model, 1, False, "model.save"


def seq_impl1():
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.LSTM(3, return_sequences=True, implementation=1,
                          recurrent_activation="hard_sigmoid"),
        keras.layers.GRU(2, implementation=1),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1,
                                                 momentum=0.5,
                                                 nesterov=True), loss="mse")
    return model, 1, False, "model.save"


def uncompiled():
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.SimpleRNN(2),
        keras.layers.Dense(1),
    ])
    return model, 1, False, "model.save"


def legacy_adam():
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.GRU(3),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.legacy.Adam(learning_rate=0.01),
                  loss="mse")
    return model, 1, False, "model.save"


def legacy_sgd():
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.LSTM(3, return_sequences=True),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.legacy.SGD(
        learning_rate=0.05, momentum=0.9, nesterov=True), loss="mae")
    return model, 1, True, "model.save"


def keras_format():
    inp = keras.Input((T, F))
    h = keras.layers.LSTM(3, return_sequences=True, name="encoder")(inp)
    h = keras.layers.LSTM(3, return_sequences=True, name="a_second")(h)
    h = keras.layers.Bidirectional(keras.layers.GRU(2), name="both_ways")(h)
    out = keras.layers.Dense(1, name="head")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="mse")
    return model, 1, False, "model.save .keras"


def rmsprop():
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.SimpleRNN(3, return_sequences=True),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01,
                                                     momentum=0.5),
                  loss="mse")
    return model, 1, True, "model.save"


def adamw():
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.GRU(3),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=0.01,
                                                   weight_decay=0.05,
                                                   clipvalue=0.05),
                  loss="mae")
    return model, 1, False, "model.save"


CASES = [
    ("seq_lstm_dense", seq_lstm_dense, 3),
    ("func_gru_rnn", func_gru_rnn, 5),
    ("seq_bidir", seq_bidir, 7),
    ("seq_impl1", seq_impl1, 9),
    ("uncompiled", uncompiled, 11),
    ("legacy_adam", legacy_adam, 13),
    ("legacy_sgd", legacy_sgd, 15),
    ("keras_format", keras_format, 19),
    ("rmsprop", rmsprop, 21),
    ("adamw", adamw, 23),
]


def save_npy(d, name, a):
    a = np.asarray(a)
    assert a.dtype == np.float64, (name, a.dtype)
    np.save(os.path.join(d, name + ".npy"), a)


def load_trainable(path, compiled):
    model = keras.models.load_model(path, compile=compiled)
    if not compiled:  # what import assumes for an uncompiled file
        model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    return model


def case(name, build, seed):
    d = os.path.join(HERE, "tfk2_" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    keras.utils.set_random_seed(seed)
    model, units, sequence, how = build()
    file_name = "model.keras" if how.endswith(".keras") else "model.h5"
    path = os.path.join(d, file_name)
    if how.startswith("model.save"):
        model.save(path)
    else:
        keras.models.save_model(model, path, save_format="h5")
    init = model.get_weights()
    for j, w in enumerate(init):
        save_npy(d, f"init_w{j}", w)
    x, y = data(seed, units, sequence)
    save_npy(d, "x", x)
    save_npy(d, "y", y)
    compiled = model.optimizer is not None

    # Keras 2 training the file: the loop of fit() (train_step per batch)
    # one batch at a time, to record each step's loss.
    m = load_trainable(path, compiled)
    for a, b in zip(m.get_weights(), init):
        assert np.array_equal(a, b), "the file does not hold the weights"
    save_npy(d, "out0", m(x, training=False).numpy())
    xb, yb = tf.constant(x[:BATCH]), tf.constant(y[:BATCH])
    with tf.GradientTape() as tape:
        pred = m(xb, training=True)
        loss = m.compute_loss(xb, yb, pred)
    grads = tape.gradient(loss, m.trainable_weights)
    # trainable_weights is get_weights() order for these models.
    assert [v.name for v in m.trainable_weights] == \
        [v.name for v in m.weights]
    for j, g in enumerate(grads):
        save_npy(d, f"grads0_w{j}", g.numpy())
    losses = []
    for _ in range(EPOCHS):
        for start in range(0, N, BATCH):
            losses.append(m.train_on_batch(x[start:start + BATCH],
                                           y[start:start + BATCH]))
    save_npy(d, "losses", np.array(losses, dtype=np.float64))
    final = m.get_weights()
    for j, w in enumerate(final):
        save_npy(d, f"final_w{j}", w)
    save_npy(d, "final_out", m.predict(x, batch_size=N, verbose=0))

    # fit() on another copy of the file must end where the loop ended.
    f = load_trainable(path, compiled)
    f.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    for a, b in zip(f.get_weights(), final):
        assert np.allclose(a, b, rtol=1e-13, atol=1e-15), name
    optimizer = None
    if compiled:
        cfg = m.optimizer.get_config()
        optimizer = {"class": type(m.optimizer).__module__ + "." +
                     type(m.optimizer).__name__,
                     "learning_rate": float(cfg["learning_rate"])}
    return {"file": f"tfk2_{name}/{file_name}", "saved_with": how,
            "seed": seed, "weights": len(init), "compiled": compiled,
            "optimizer": optimizer}


def bad_files():
    src = os.path.join(HERE, "tfk2_seq_lstm_dense", "model.h5")
    bad = os.path.join(HERE, "tfk2_bad_shapes.h5")
    shutil.copy(src, bad)
    with h5py.File(bad, "r+") as f:
        g = f["model_weights/lstm"]
        name = "lstm/lstm_cell/kernel:0"
        assert g[name].shape == (2, 16)
        del g[name]
        g.create_dataset(name, data=np.zeros((2, 12)))

    missing = os.path.join(HERE, "tfk2_bad_missing_weight.h5")
    shutil.copy(src, missing)
    with h5py.File(missing, "r+") as f:
        del f["model_weights/dense/dense/bias:0"]

    model = keras.models.load_model(src, compile=False)
    model.save_weights(os.path.join(HERE, "tfk2_weights_only.h5"))

    keras.utils.set_random_seed(17)
    model = keras.Sequential([keras.Input((T, F)), keras.layers.LSTM(2),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.legacy.RMSprop(), loss="mse")
    model.save(os.path.join(HERE, "tfk2_bad_legacy_rmsprop.h5"))

    # Not refused: the rates, and implementation 1 (which Keras 2 writes).
    model = keras.Sequential([
        keras.Input((T, F)),
        keras.layers.LSTM(3, return_sequences=True, dropout=0.2,
                          implementation=1),
        keras.layers.GRU(2, recurrent_dropout=0.25),
        keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.save(os.path.join(HERE, "tfk2_dropout.h5"))

    model = keras.Sequential([keras.Input((T, F)),
                              keras.layers.LSTM(2, time_major=True),
                              keras.layers.Dense(1)])
    model.save(os.path.join(HERE, "tfk2_bad_time_major.h5"))


def main():
    keras.backend.set_floatx("float64")
    cases = {name: case(name, build, seed) for name, build, seed in CASES}
    bad_files()
    with open(os.path.join(HERE, "tfkeras2_manifest.json"), "w") as f:
        json.dump({"tf_keras": keras.__version__,
                   "tensorflow": tf.__version__,
                   "numpy": np.__version__, "h5py": h5py.__version__,
                   "train": {"batch_size": BATCH, "epochs": EPOCHS,
                             "shuffle": False, "samples": N,
                             "floatx": "float64"},
                   "cases": cases},
                  f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
