#!/usr/bin/env python3
"""Golden files for seed_mode KERAS, from real Keras 3 (TensorFlow backend).

What this writes (under the directory of this script; ~170 KB in all):

  python_randint.npy   (len(RANDINT_SEEDS), 12): random.seed(s), then
                       12 x random.randint(1, 10**9), one row per seed
  python_randint_seeds.npy   the seeds of those rows
  python_uint32_seed42.npy   (8,): random.seed(42), then 8 x
                       random.getrandbits(32) (the raw MT19937 words)
  <case>/w{j}.npy      float32: model.get_weights()[j] of the case's model,
                       built right after keras.utils.set_random_seed(seed)
  <case>/seeds.npy     (layers, 4): per layer, the int seed Keras gave
                       its kernel, recurrent kernel and bias initializer and
                       the first word of its dropout SeedGenerator state;
                       -1 where the layer has no such slot or the slot's
                       initializer is not random
  Integers are stored as float64 (all below 2^53, so exact), because the
  engine's .npy reader takes float32 and float64 only.
  manifest.json        every case's seed, input shape and Keras layer
                       arguments, and the library versions used

The cases are mirrored in tests/engine/init/keras_seeding_test.cc.

How to run (needs tensorflow-cpu and keras; CI does not, it reads the
committed files):

  python3 tests/golden/seeding/make_seeding_golden.py

Generated with: tensorflow-cpu 2.21.0, keras 3.15.1, numpy 2.4.6, CPython
3.11.7 (the versions actually used are written to manifest.json). What
changes the numbers: the Keras version (which objects draw a seed, and in
which order), the TF version (stateless random ops may change across TF
releases), and anything that draws from Python's `random` between
set_random_seed and the last layer constructor.
"""

import json
import os
import platform
import random
import shutil

os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
RANDINT_SEEDS = [0, 1, 42, 2**31 + 5, 2**32 - 1, 2**40 + 5]

# name -> (seed, timesteps, features, [(Keras class, kwargs), ...])
CASES = {
    # The built-in default job's model.
    "lstm_pair_s42": (42, 10, 1, [
        ("LSTM", dict(units=64, return_sequences=True)),
        ("LSTM", dict(units=32, return_sequences=True)),
    ]),
    "gru_dense_s7": (7, 12, 3, [
        ("GRU", dict(units=16)),
        ("Dense", dict(units=3)),
    ]),
    # SimpleRNN draws its SeedGenerator first; GRU reset_after=False.
    "mixed_s2147483653": (2**31 + 5, 6, 4, [
        ("GRU", dict(units=8, reset_after=False, return_sequences=True)),
        ("SimpleRNN", dict(units=6, return_sequences=True)),
        ("LSTM", dict(units=5, return_sequences=True)),
        ("Dense", dict(units=2, activation="tanh")),
    ]),
    # Named initializers: a random bias draws (even with use_bias=False),
    # zeros draws nothing, LSTM's unit_forget_bias calls a random bias
    # initializer twice with one seed.
    "initializers_s4294967295": (2**32 - 1, 5, 2, [
        ("LSTM", dict(units=4, return_sequences=True,
                      kernel_initializer="random_normal",
                      bias_initializer="random_uniform")),
        ("GRU", dict(units=3, return_sequences=True, use_bias=False,
                     bias_initializer="random_normal")),
        ("SimpleRNN", dict(units=3, recurrent_initializer="glorot_uniform",
                           bias_initializer="random_uniform")),
        ("Dense", dict(units=2, kernel_initializer="zeros",
                       bias_initializer="random_normal")),
    ]),
    "simple_rnn_s0": (0, 4, 3, [
        ("SimpleRNN", dict(units=5, return_sequences=True)),
        ("SimpleRNN", dict(units=4)),
    ]),
}


def save(path, a):
    np.save(path, np.asarray(a, order="C"))


def python_goldens():
    rows = []
    for s in RANDINT_SEEDS:
        random.seed(s)
        rows.append([random.randint(1, 10**9) for _ in range(12)])
    save(os.path.join(ROOT, "python_randint.npy"), np.array(rows, np.float64))
    save(os.path.join(ROOT, "python_randint_seeds.npy"),
         np.array(RANDINT_SEEDS, np.float64))
    random.seed(42)
    words = [random.getrandbits(32) for _ in range(8)]
    save(os.path.join(ROOT, "python_uint32_seed42.npy"),
         np.array(words, np.float64))


def slot_seed(initializer):
    seed = getattr(initializer, "seed", None)
    return -1 if seed is None else int(seed)


def layer_seeds(layer):
    cell = getattr(layer, "cell", None)
    if cell is None:  # Dense
        return [slot_seed(layer.kernel_initializer), -1,
                slot_seed(layer.bias_initializer), -1]
    state = keras.ops.convert_to_numpy(cell.seed_generator.state)
    assert int(state[1]) == 0, state
    return [slot_seed(cell.kernel_initializer),
            slot_seed(cell.recurrent_initializer),
            slot_seed(cell.bias_initializer), int(state[0])]


def make_case(name, seed, timesteps, features, layers):
    keras.utils.set_random_seed(seed)
    # Exactly what a user script does: Input, then the layers in order.
    model = keras.Sequential(
        [keras.Input((timesteps, features))] +
        [getattr(keras.layers, cls)(**kw) for cls, kw in layers])
    out = os.path.join(ROOT, name)
    os.makedirs(out)
    weights = model.get_weights()
    for j, w in enumerate(weights):
        assert w.dtype == np.float32, (name, j, w.dtype)
        save(os.path.join(out, f"w{j}.npy"), w)
    seeds = np.array([layer_seeds(l) for l in model.layers], np.float64)
    save(os.path.join(out, "seeds.npy"), seeds)
    # The first draw after set_random_seed must be the first layer's first
    # random slot: nothing else in the build drew from `random`.
    random.seed(seed)
    first = random.randint(1, 10**9)
    assert float(first) in seeds[0].tolist(), (name, first, seeds[0])
    return {
        "seed": seed,
        "timesteps": timesteps,
        "features": features,
        "layers": [{"class": cls, "args": kw} for cls, kw in layers],
        "weights": [list(w.shape) for w in weights],
    }


def main():
    for entry in os.listdir(ROOT):
        if os.path.isdir(os.path.join(ROOT, entry)):
            shutil.rmtree(os.path.join(ROOT, entry))
    python_goldens()
    manifest = {
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "cases": {},
    }
    for name, (seed, t, f, layers) in CASES.items():
        manifest["cases"][name] = make_case(name, seed, t, f, layers)
    with open(os.path.join(ROOT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":
    main()
