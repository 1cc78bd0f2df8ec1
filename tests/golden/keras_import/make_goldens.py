#!/usr/bin/env python3
"""Golden files for `driftscope import`, written by real Keras 3.

Regenerate (tensorflow-cpu 2.21 / keras 3.15.1 / h5py; versions recorded in
manifest.json) with

    python3 tests/golden/keras_import/make_goldens.py

Models, each saved before training and then trained by Keras in float64
(keras.config.set_floatx("float64")) with model.fit(x, y, batch_size=32,
epochs=3, shuffle=False) on 40 samples: 2 steps per epoch (the second a
partial batch of 8), 6 steps, as `driftscope train --model FILE --x --y`
trains with its import defaults:

  seq_lstm_gru/model.keras    Keras 3 format (zip). Sequential:
                              LSTM(4, return_sequences) -> GRU(3,
                              return_sequences, reset_after=False) ->
                              Dense(2, tanh); Adam(0.01, clipnorm=1), mse
  func_rnn_lstm/model.h5      the legacy HDF5 format that tf.keras / Keras 2
                              wrote (Keras 3's model.save("m.h5") writes that
                              layout: model_config and training_config
                              attributes, model_weights/<layer>/...).
                              Functional chain: SimpleRNN(3, relu,
                              return_sequences, go_backwards) -> LSTM(3,
                              hard_sigmoid, unit_forget_bias=False,
                              use_bias=False) -> Dense(1);
                              SGD(0.05, momentum=0.9, nesterov), mae
  seq_bidir/model.keras       Keras 3 format. Sequential:
                              Bidirectional(LSTM(3, return_sequences))
                              (concat) -> Bidirectional(GRU(2,
                              return_sequences), merge_mode="ave") ->
                              Dense(1); Adam(0.01), mse
  func_bidir/model.h5         legacy HDF5. Functional chain:
                              Bidirectional(SimpleRNN(3, return_sequences),
                              merge_mode="sum") -> Bidirectional(LSTM(2),
                              merge_mode="mul") -> Dense(1); SGD(0.05,
                              momentum=0.9), mse
  seq_bidir_dropout/model.keras  Keras 3 format. Sequential:
                              Bidirectional(LSTM(3, return_sequences,
                              dropout=0.2, recurrent_dropout=0.1)) (concat)
                              -> Dense(1); Adam(0.01), mse; built after
                              keras.utils.set_random_seed(13), trained with
                              float32 dropout uniforms (as driftscope draws
                              them in every precision; see
                              ../bidirectional/make_bidirectional_golden.py):
                              imported with seed_mode KERAS and seed 13 it
                              trains with Keras' masks
  func_bidir_none/model.keras  Keras 3 format. Functional:
                              Bidirectional(LSTM(3, return_sequences))
                              (concat) -> Bidirectional(GRU(2,
                              return_sequences), merge_mode=None), whose two
                              outputs [forward, backward] are the model's;
                              Adam(0.01), mse; fit(x, [y_f, y_b]) (the loss
                              is the sum of the two). y.npy and
                              final_out.npy hold the two side by side on the
                              last axis, as driftscope lays them out
  <case>/x.npy, y.npy         float64 data (float32-exact values)
  <case>/final_w{j}.npy       get_weights() after fit
  <case>/final_out.npy        model.predict(x) after fit
  <case>/init_w{j}.npy        get_weights() as saved (before fit)

  uncompiled.keras            SimpleRNN(2) -> Dense(1), float32, saved
                              without compile(): import takes its defaults
  dropout.keras               LSTM(3, return_sequences, dropout=0.2,
                              implementation=1) -> GRU(2,
                              recurrent_dropout=0.25) -> Dense(1), compiled,
                              not trained: import carries the rates
                              (Keras 3 does not write `implementation`
                              into the config: the file reloads as
                              implementation 2, in Keras as in import)

Files that must be refused (each with a message naming the file):

  bad_no_weights.keras        a zip with config.json but no model.weights.h5
  bad_weights_not_hdf5.keras  model.weights.h5 holds text, not HDF5
  bad_shapes.h5               func_rnn_lstm/model.h5 with the LSTM's units
                              changed from 3 to 5 in model_config (weights no
                              longer fit)
  bad_conv1d.keras            a Conv1D layer (not supported)
  bad_bidirectional.keras     a Bidirectional(LSTM(2, dropout=0.1)): refused
                              while dropout inside Bidirectional was not
                              supported; now imported with its rate
  bad_two_inputs.keras        a Functional model adding two branches
  bad_bidir_none_one_output.keras   a Bidirectional(merge_mode=None) whose
                              forward output alone is the model's output
  bad_bidir_none_swapped.keras      its two outputs as [backward, forward]
  bad_bidir_none_then_dense.keras   a Dense on its forward output

Truncated and byte-flipped copies are made by the C++ tests themselves.

`make_goldens.py NAME...` regenerates only the named trained cases (a
.keras zip records the time it was saved, so a full run rewrites every
file).
"""
import json
import os
import shutil
import sys
import zipfile

os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.experimental.enable_op_determinism()

HERE = os.path.dirname(os.path.abspath(__file__))
T, F, N = 6, 2, 40


def data(seed, units, sequence):
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, (N, T, F)).astype(np.float32).astype(np.float64)
    shape = (N, T, units) if sequence else (N, units)
    y = rng.uniform(-0.5, 0.5, shape).astype(np.float32).astype(np.float64)
    return x, y


def seq_lstm_gru():
    return keras.Sequential([
        keras.Input((T, F)),
        keras.layers.LSTM(4, return_sequences=True),
        keras.layers.GRU(3, return_sequences=True, reset_after=False),
        keras.layers.Dense(2, activation="tanh"),
    ]), keras.optimizers.Adam(learning_rate=0.01, clipnorm=1.0), "mse", 2, True


def func_rnn_lstm():
    inp = keras.Input((T, F))
    h = keras.layers.SimpleRNN(3, activation="relu", return_sequences=True,
                               go_backwards=True)(inp)
    h = keras.layers.LSTM(3, recurrent_activation="hard_sigmoid",
                          unit_forget_bias=False, use_bias=False)(h)
    out = keras.layers.Dense(1)(h)
    return (keras.Model(inp, out),
            keras.optimizers.SGD(learning_rate=0.05, momentum=0.9,
                                 nesterov=True), "mae", 1, False)


def seq_bidir():
    return keras.Sequential([
        keras.Input((T, F)),
        keras.layers.Bidirectional(
            keras.layers.LSTM(3, return_sequences=True)),
        keras.layers.Bidirectional(
            keras.layers.GRU(2, return_sequences=True), merge_mode="ave"),
        keras.layers.Dense(1),
    ]), keras.optimizers.Adam(learning_rate=0.01), "mse", 1, True


def func_bidir():
    inp = keras.Input((T, F))
    h = keras.layers.Bidirectional(
        keras.layers.SimpleRNN(3, return_sequences=True),
        merge_mode="sum")(inp)
    h = keras.layers.Bidirectional(keras.layers.LSTM(2), merge_mode="mul")(h)
    out = keras.layers.Dense(1)(h)
    return (keras.Model(inp, out),
            keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), "mse", 1,
            False)


def seq_bidir_dropout():
    return keras.Sequential([
        keras.Input((T, F)),
        keras.layers.Bidirectional(
            keras.layers.LSTM(3, return_sequences=True, dropout=0.2,
                              recurrent_dropout=0.1)),
        keras.layers.Dense(1),
    ]), keras.optimizers.Adam(learning_rate=0.01), "mse", 1, True


def func_bidir_none():
    inp = keras.Input((T, F))
    h = keras.layers.Bidirectional(
        keras.layers.LSTM(3, return_sequences=True))(inp)
    f, b = keras.layers.Bidirectional(
        keras.layers.GRU(2, return_sequences=True), merge_mode=None)(h)
    return (keras.Model(inp, [f, b]),
            keras.optimizers.Adam(learning_rate=0.01), "mse", 4, True)


def none_case(name, build, file_name, seed):
    """trained_case for a model whose two outputs are a Bidirectional's
    (merge_mode=None): fit() takes [y_f, y_b]; the files hold them side by
    side on the last axis."""
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    set_precision("float64")
    keras.utils.set_random_seed(seed)
    model, optimizer, loss, units, sequence = build()
    model.compile(optimizer=optimizer, loss=loss, jit_compile=False)
    path = os.path.join(d, file_name)
    model.save(path)
    for j, w in enumerate(model.get_weights()):
        np.save(os.path.join(d, f"init_w{j}.npy"), w)
    x, y = data(seed, units, sequence)
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "y.npy"), y)
    half = units // 2
    history = model.fit(x, [y[..., :half], y[..., half:]], batch_size=32,
                        epochs=3, shuffle=False, verbose=0)
    # fit's loss: the two outputs' MSE added (checked on the final weights).
    pred = model.predict(x, batch_size=N, verbose=0)
    total = sum(float(np.mean((y[..., k * half:(k + 1) * half] - p) ** 2))
                for k, p in enumerate(pred))
    assert abs(model.evaluate(x, [y[..., :half], y[..., half:]],
                              batch_size=N, verbose=0)[0] - total) < 1e-12
    assert len(history.history["loss"]) == 3
    for j, w in enumerate(model.get_weights()):
        np.save(os.path.join(d, f"final_w{j}.npy"), w)
    np.save(os.path.join(d, "final_out.npy"), np.concatenate(pred, axis=-1))
    set_precision("float32")
    return path


def bad_bidir_none():
    inp = keras.Input((T, F))
    f, b = keras.layers.Bidirectional(
        keras.layers.GRU(2, return_sequences=True), merge_mode=None,
        name="bi")(inp)
    save(keras.Model(inp, f), "bad_bidir_none_one_output.keras")
    save(keras.Model(inp, [b, f]), "bad_bidir_none_swapped.keras")
    save(keras.Model(inp, keras.layers.Dense(1, name="dense")(f)),
         "bad_bidir_none_then_dense.keras")


def dropout_f32_uniform(inputs, rate, noise_shape=None, seed=None):
    """Keras' TF dropout with the uniforms always drawn in float32."""
    from keras.src.backend.tensorflow import random as tf_random
    assert noise_shape is None
    if rate == 0.0:
        return inputs
    seed = tf_random._cast_seed(tf_random.draw_seed(seed))
    u = tf.random.stateless_uniform(tf.shape(inputs), seed=seed,
                                    dtype=tf.float32)
    keep = u >= tf.constant(rate, tf.float32)
    scale = tf.constant(1.0 / (1.0 - rate), inputs.dtype)
    return tf.where(keep, inputs * scale, tf.zeros_like(inputs))


def dropout_case(name, build, file_name, seed):
    """trained_case with float32 dropout uniforms; checks that fit() moved
    each copy's SeedGenerator by one mask per gate and kind per step (LSTM
    with recurrent dropout: 4 input + 4 recurrent masks)."""
    from keras.src import backend as keras_backend
    native = keras_backend.random.dropout
    keras_backend.random.dropout = dropout_f32_uniform
    try:
        words = []

        def after_fit(model):
            for layer in model.layers:
                if isinstance(layer, keras.layers.Bidirectional):
                    for c in (layer.forward_layer, layer.backward_layer):
                        g, k = c.cell.seed_generator.state.numpy().tolist()
                        assert k == 6 * 8, k  # 6 steps, 8 masks each
                        words.append(g)

        path = trained_case(name, build, file_name, seed, after_fit)
    finally:
        keras_backend.random.dropout = native
    with open(os.path.join(HERE, name, "dropout_seed_words.json"), "w") as f:
        json.dump(words, f)
        f.write("\n")
    return path


def set_precision(dtype):
    # The layers' dtype policy is fixed the first time it is read, so it is
    # set along with floatx.
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)


def trained_case(name, build, file_name, seed, after_fit=None):
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    set_precision("float64")
    keras.utils.set_random_seed(seed)
    model, optimizer, loss, units, sequence = build()
    model.compile(optimizer=optimizer, loss=loss, jit_compile=False)
    path = os.path.join(d, file_name)
    model.save(path)
    for j, w in enumerate(model.get_weights()):
        np.save(os.path.join(d, f"init_w{j}.npy"), w)
    x, y = data(seed, units, sequence)
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "y.npy"), y)
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    if after_fit is not None:
        after_fit(model)
    for j, w in enumerate(model.get_weights()):
        assert w.dtype == np.float64
        np.save(os.path.join(d, f"final_w{j}.npy"), w)
    np.save(os.path.join(d, "final_out.npy"),
            model.predict(x, batch_size=N, verbose=0))
    # The saved file must hold the weights as they were before fit().
    again = keras.models.load_model(path, compile=False)
    for a, b in zip(again.get_weights(),
                    [np.load(os.path.join(d, f"init_w{j}.npy"))
                     for j in range(len(again.get_weights()))]):
        assert np.array_equal(a, b)
    set_precision("float32")
    return path


def save(model, name, compile_args=None):
    if compile_args:
        model.compile(**compile_args)
    model.save(os.path.join(HERE, name))


def main():
    only = sys.argv[1:]
    if only:
        for name in only:
            if name == "seq_bidir_dropout":
                dropout_case(name, seq_bidir_dropout, "model.keras", 13)
            elif name == "func_bidir_none":
                none_case(name, func_bidir_none, "model.keras", 15)
            elif name == "bad_bidir_none":
                bad_bidir_none()
            else:
                raise SystemExit(f"no case {name} to regenerate alone")
        return
    trained_case("seq_lstm_gru", seq_lstm_gru, "model.keras", 3)
    h5 = trained_case("func_rnn_lstm", func_rnn_lstm, "model.h5", 5)
    trained_case("seq_bidir", seq_bidir, "model.keras", 7)
    trained_case("func_bidir", func_bidir, "model.h5", 9)
    dropout_case("seq_bidir_dropout", seq_bidir_dropout, "model.keras", 13)
    none_case("func_bidir_none", func_bidir_none, "model.keras", 15)

    keras.utils.set_random_seed(11)
    save(keras.Sequential([keras.Input((T, F)), keras.layers.SimpleRNN(2),
                           keras.layers.Dense(1)]), "uncompiled.keras")
    with zipfile.ZipFile(os.path.join(HERE, "uncompiled.keras")) as z:
        with z.open("model.weights.h5") as f, h5py.File(f) as w:
            np.save(os.path.join(HERE, "uncompiled_w0.npy"),
                    w["layers/simple_rnn/cell/vars/0"][()])

    save(keras.Sequential([
        keras.Input((T, F)),
        keras.layers.LSTM(3, return_sequences=True, dropout=0.2,
                          implementation=1),
        keras.layers.GRU(2, recurrent_dropout=0.25),
        keras.layers.Dense(1)]), "dropout.keras",
        {"optimizer": "adam", "loss": "mse"})

    src = os.path.join(HERE, "uncompiled.keras")
    with zipfile.ZipFile(src) as z:
        config = z.read("config.json")
        meta = z.read("metadata.json")
    for name, weights in (("bad_no_weights.keras", None),
                          ("bad_weights_not_hdf5.keras", b"not hdf5\n")):
        with zipfile.ZipFile(os.path.join(HERE, name), "w") as z:
            z.writestr("metadata.json", meta)
            z.writestr("config.json", config)
            if weights is not None:
                z.writestr("model.weights.h5", weights)

    shutil.copy(h5, os.path.join(HERE, "bad_shapes.h5"))
    with h5py.File(os.path.join(HERE, "bad_shapes.h5"), "r+") as f:
        c = json.loads(f.attrs["model_config"])
        for layer in c["config"]["layers"]:
            if layer["class_name"] == "LSTM":
                layer["config"]["units"] = 5
        f.attrs["model_config"] = json.dumps(c)

    save(keras.Sequential([keras.Input((T, F)),
                           keras.layers.Conv1D(2, 3),
                           keras.layers.LSTM(2)]), "bad_conv1d.keras")
    save(keras.Sequential([keras.Input((T, F)),
                           keras.layers.Bidirectional(
                               keras.layers.LSTM(2, dropout=0.1))]),
         "bad_bidirectional.keras")
    inp = keras.Input((T, F))
    a = keras.layers.LSTM(2, return_sequences=True)(inp)
    b = keras.layers.GRU(2, return_sequences=True)(inp)
    save(keras.Model(inp, keras.layers.Add()([a, b])), "bad_two_inputs.keras")
    bad_bidir_none()

    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump({"keras": keras.__version__, "tensorflow": tf.__version__,
                   "numpy": np.__version__, "h5py": h5py.__version__,
                   "fit": {"batch_size": 32, "epochs": 3, "shuffle": False,
                           "samples": N, "floatx": "float64"}},
                  f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
