#!/usr/bin/env python3
"""Golden files for the rng/init/io tests, made by real TensorFlow and numpy.

Run from anywhere:  python3 tests/golden/init/make_init_golden.py
Writes small .npy files next to this script (the C++ tests read them; CI has
no TensorFlow). Versions used are written to versions.txt.

What it checks/produces:
  * tf.random.stateless_uniform (float32, float64) and stateless_normal
    (float32) for a few shapes and seed pairs, including one whose first word
    needs more than 32 bits.
  * The glorot_uniform kernel of an LSTM(64) on D=1 and the orthogonal
    (64, 256) recurrent kernel, with seed=[42, streams::Init(0, w)], computed
    with TF ops exactly as Keras 3 does (Orthogonal in float32 TF QR), plus a
    float64 numpy QR of the same float32 normals, rounded once to float32
    (a tighter reference: the engine factors in double too).
  * Whether keras.initializers.X(seed=s) equals the stateless draw with seed
    [s, 0]; if so, Keras' own outputs are saved as keras_*.npy.
  * Tiny .npy files for the NPY reader tests (npy_*.npy).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import math  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def init_stream(layer, weight):  # engine/rng/philox.h streams::Init
    return 1000 + 16 * layer + weight


def save(name, a):
    np.save(os.path.join(HERE, name), np.asarray(a, order="C"))


def seed_tensor(s0, s1):
    return tf.constant([s0, s1], dtype=tf.int64)


SEEDS = [(42, 0), (7, 1003), (123456789, 2), (2**40 + 5, 3)]
UNIFORM_SIZES = [7, 260]
NORMAL_SIZES = [7, 261]


def random_goldens():
    for s0, s1 in SEEDS:
        seed = seed_tensor(s0, s1)
        for n in UNIFORM_SIZES:
            u32 = tf.random.stateless_uniform([n], seed=seed, dtype=tf.float32)
            save(f"uniform_f32_{s0}_{s1}_{n}.npy", u32.numpy())
            u64 = tf.random.stateless_uniform([n], seed=seed, dtype=tf.float64)
            save(f"uniform_f64_{s0}_{s1}_{n}.npy", u64.numpy())
        for n in NORMAL_SIZES:
            z = tf.random.stateless_normal([n], seed=seed, dtype=tf.float32)
            save(f"normal_f32_{s0}_{s1}_{n}.npy", z.numpy())
    # A 2-D shape: TF fills it flat, row-major, like a 1-D one.
    u = tf.random.stateless_uniform([3, 5], seed=seed_tensor(42, 0))
    save("uniform_f32_42_0_3x5.npy", u.numpy())


def glorot_tf(shape, seed):
    fan_in, fan_out = shape[0], shape[1]
    scale = 1.0 / max(1.0, (fan_in + fan_out) / 2.0)
    limit = math.sqrt(3.0 * scale)
    return tf.random.stateless_uniform(
        shape, seed=seed, minval=tf.cast(-limit, tf.float32),
        maxval=tf.cast(limit, tf.float32), dtype=tf.float32).numpy()


def orthogonal_tf(shape, seed):
    rows, cols = shape
    flat = (max(rows, cols), min(rows, cols))
    a = tf.random.stateless_normal(flat, seed=seed, dtype=tf.float32)
    q, r = tf.linalg.qr(a, full_matrices=False)
    q = q * tf.math.sign(tf.linalg.diag_part(r))
    # float64 reference on the same float32 draws.
    q64, r64 = np.linalg.qr(a.numpy().astype(np.float64), mode="reduced")
    q64 = q64 * np.sign(np.diag(r64))
    if rows < cols:
        q = tf.transpose(q)
        q64 = q64.T
    return q.numpy(), q64


def init_goldens():
    seed = 42
    kernel = glorot_tf((1, 256), seed_tensor(seed, init_stream(0, 0)))
    save("lstm64_d1_kernel_glorot.npy", kernel)
    q32, q64 = orthogonal_tf((64, 256), seed_tensor(seed, init_stream(0, 1)))
    save("lstm64_recurrent_orthogonal_tf.npy", q32)
    # Rounded to float32 once, as the engine does (and half the file size).
    save("lstm64_recurrent_orthogonal_f64.npy", q64.astype(np.float32))
    # Square case (SimpleRNN(32) recurrent kernel, layer 1): no transpose.
    q32, q64 = orthogonal_tf((32, 32), seed_tensor(seed, init_stream(1, 1)))
    save("rnn32_recurrent_orthogonal_f64.npy", q64.astype(np.float32))


def keras_goldens(out):
    """Does Keras 3 map an int seed s to the stateless seed [s, 0]?"""
    s = 1234
    shape = (8, 32)
    k = keras.initializers.GlorotUniform(seed=s)(shape).numpy()
    ours = glorot_tf(shape, seed_tensor(s, 0))
    same_glorot = np.array_equal(k, ours)
    ko = keras.initializers.Orthogonal(seed=s)((16, 48)).numpy()
    o32, _ = orthogonal_tf((16, 48), seed_tensor(s, 0))
    same_orth = np.array_equal(ko, o32)
    ku = keras.initializers.RandomUniform(-0.3, 0.7, seed=s)((5, 9)).numpy()
    kn = keras.initializers.RandomNormal(0.25, 2.0, seed=s)((5, 9)).numpy()
    ru = tf.random.stateless_uniform((5, 9), seed=seed_tensor(s, 0),
                                     minval=-0.3, maxval=0.7).numpy()
    rn = tf.random.stateless_normal((5, 9), seed=seed_tensor(s, 0),
                                    mean=0.25, stddev=2.0).numpy()
    out.append(f"keras GlorotUniform(seed={s}) == stateless [s,0]: {same_glorot}")
    out.append(f"keras Orthogonal(seed={s}) == TF algorithm [s,0]: {same_orth}")
    out.append(f"keras RandomUniform == stateless [s,0]: {np.array_equal(ku, ru)}")
    out.append(f"keras RandomNormal == stateless [s,0]: {np.array_equal(kn, rn)}")
    if same_glorot:
        save(f"keras_glorot_uniform_seed{s}_8x32.npy", k)
        save(f"keras_random_uniform_seed{s}_5x9.npy", ku)
        save(f"keras_random_normal_seed{s}_5x9.npy", kn)
        save(f"keras_orthogonal_seed{s}_16x48.npy", ko)


def npy_goldens():
    save("npy_f4_2x3.npy", np.arange(6, dtype="<f4").reshape(2, 3) / 7)
    save("npy_f8_3.npy", np.array([1.5, -2.25, 1e300], dtype="<f8"))
    save("npy_f4_scalar.npy", np.array(3.5, dtype="<f4"))
    save("npy_f8_2x0.npy", np.zeros((2, 0), dtype="<f8"))
    with open(os.path.join(HERE, "npy_f4_fortran.npy"), "wb") as f:
        np.save(f, np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    save("npy_i8.npy", np.arange(4, dtype="<i8"))
    save("npy_f4_bigendian.npy", np.arange(3, dtype=">f4"))
    a = np.arange(4, dtype="<f4")
    for v in [(2, 0), (3, 0)]:
        with open(os.path.join(HERE, f"npy_f4_v{v[0]}.npy"), "wb") as f:
            np.lib.format.write_array(f, a, version=v)


def main():
    report = [f"numpy {np.__version__}", f"tensorflow {tf.__version__}",
              f"keras {keras.__version__}"]
    random_goldens()
    init_goldens()
    keras_goldens(report)
    npy_goldens()
    with open(os.path.join(HERE, "versions.txt"), "w") as f:
        f.write("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
