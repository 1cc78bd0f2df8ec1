#!/usr/bin/env python3
"""Writes the optimizer and loss goldens that tests/engine/{optim,loss} read.

Runs REAL Keras 3 optimizers (TensorFlow backend) and Keras losses with
tf.GradientTape, in float32 and float64, and saves small .npy files next to
this script. CI has no TensorFlow: the .npy files are committed, and this
script is only rerun by hand (python3 make_optim_golden.py) when the cases
change. Keras/TF versions used are recorded in versions.json.

Optimizer cases (weight decay included; AdamW with its default
weight_decay 0.004): 3 variables of shapes (2,8), (4,8), (8,) (56 values, flat
in that order), a fixed sequence of 5 gradient sets, every optimizer x every
clipping mode, 5 apply_gradients steps. For each case and dtype,
opt_<case>_<f32|f64>.npy holds the flat variables after each step, (5, 56),
from eager execution (the Keras source formulas op by op). Where tf.function
gives other bits (RMSprop: grappler turns x / sqrt(y) into x * rsqrt(y)),
opt_<case>_<dt>_graph.npy holds the tf.function result as well.
Inputs: opt_init_<dt>.npy (56,), opt_grads_<dt>.npy (5, 56) (the float32
inputs are the float64 ones rounded to nearest).

Loss cases: MSE and MAE, (B,T,U)=(3,4,5) and (B,U)=(6,3): loss_<kind>_<seq|
vec>_<dt>.npy holds stack([pred, target, dloss/dpred]) and
loss_<kind>_<seq|vec>_<dt>_value.npy the scalar loss, shape (1,).
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = [(2, 8), (4, 8), (8,)]
STEPS = 5

OPTIMIZERS = {
    "adam": lambda **kw: keras.optimizers.Adam(learning_rate=0.01, **kw),
    "adam_amsgrad": lambda **kw: keras.optimizers.Adam(
        learning_rate=0.01, amsgrad=True, **kw),
    "sgd": lambda **kw: keras.optimizers.SGD(learning_rate=0.1, **kw),
    "sgd_momentum": lambda **kw: keras.optimizers.SGD(
        learning_rate=0.1, momentum=0.9, **kw),
    "sgd_nesterov": lambda **kw: keras.optimizers.SGD(
        learning_rate=0.1, momentum=0.9, nesterov=True, **kw),
    "rmsprop": lambda **kw: keras.optimizers.RMSprop(learning_rate=0.01, **kw),
    "rmsprop_centered_momentum": lambda **kw: keras.optimizers.RMSprop(
        learning_rate=0.01, momentum=0.5, centered=True, **kw),
    # Decoupled weight decay (var -= var * wd * lr before the update).
    "adam_weight_decay": lambda **kw: keras.optimizers.Adam(
        learning_rate=0.01, weight_decay=0.05, **kw),
    "adamw": lambda **kw: keras.optimizers.AdamW(learning_rate=0.01, **kw),
    "sgd_momentum_weight_decay": lambda **kw: keras.optimizers.SGD(
        learning_rate=0.1, momentum=0.9, weight_decay=0.01, **kw),
    "rmsprop_weight_decay": lambda **kw: keras.optimizers.RMSprop(
        learning_rate=0.01, weight_decay=0.02, **kw),
}
CLIPS = {
    "noclip": {},
    "clipnorm": {"clipnorm": 0.5},
    "globalnorm": {"global_clipnorm": 0.5},
    "clipvalue": {"clipvalue": 0.01},
}


def make_inputs():
  rng = np.random.default_rng(20240601)
  init = rng.normal(0.0, 0.5, size=56)
  grads = np.empty((STEPS, 56))
  # Per-variable scales chosen so that clipnorm=0.5 clips some variables and
  # not others, and global_clipnorm=0.5 clips in some steps but not others.
  scales = [[0.05, 0.02, 0.1], [0.3, 0.01, 0.05], [0.02, 0.5, 0.0],
            [0.04, 0.03, 0.02], [0.2, 0.2, 0.2]]
  for s in range(STEPS):
    off = 0
    for v, shape in enumerate(SHAPES):
      n = int(np.prod(shape))
      grads[s, off:off + n] = rng.normal(0.0, 1.0, size=n) * scales[s][v]
      off += n
  # Step 3, variable 3 is exactly zero: the zero-norm guard of clip_by_norm.
  assert np.all(grads[2, 48:] == 0.0)
  return init, grads


def split(flat):
  out, off = [], 0
  for shape in SHAPES:
    n = int(np.prod(shape))
    out.append(flat[off:off + n].reshape(shape))
    off += n
  return out


def run_optimizer(make, dtype, init, grads, use_function):
  keras.backend.set_floatx(dtype)  # the learning-rate variable uses floatx
  variables = [keras.Variable(v.astype(dtype), dtype=dtype)
               for v in split(init)]
  opt = make()
  out = np.empty((STEPS, 56), dtype=dtype)

  def step(gs):
    opt.apply_gradients(zip(gs, variables))

  if use_function:
    step = tf.function(step)
  for s in range(STEPS):
    gs = [tf.constant(g.astype(dtype)) for g in split(grads[s])]
    step(gs)
    out[s] = np.concatenate([np.asarray(v.numpy()).ravel() for v in variables])
  keras.backend.set_floatx("float32")
  return out


def loss_case(kind, shape, dtype, rng):
  keras.backend.set_floatx(dtype)
  pred = rng.normal(0.0, 1.0, size=shape).astype(dtype)
  target = rng.normal(0.0, 1.0, size=shape).astype(dtype)
  target.ravel()[::7] = pred.ravel()[::7]  # exact ties: MAE's sign(0)
  loss_obj = (keras.losses.MeanSquaredError() if kind == "mse"
              else keras.losses.MeanAbsoluteError())
  p = tf.Variable(pred)
  with tf.GradientTape() as tape:
    value = loss_obj(tf.constant(target), p)
  grad = tape.gradient(value, p).numpy()
  keras.backend.set_floatx("float32")
  assert value.dtype == dtype and grad.dtype == dtype
  return np.stack([pred, target, grad]), np.array([value.numpy()], dtype)


def main():
  init, grads = make_inputs()
  for dt, name in (("float32", "f32"), ("float64", "f64")):
    np.save(os.path.join(HERE, f"opt_init_{name}.npy"), init.astype(dt))
    np.save(os.path.join(HERE, f"opt_grads_{name}.npy"), grads.astype(dt))
  mismatches = []
  for oname, make_opt in OPTIMIZERS.items():
    for cname, kw in CLIPS.items():
      for dt, name in (("float32", "f32"), ("float64", "f64")):
        make = lambda: make_opt(**kw)  # noqa: E731
        eager = run_optimizer(make, dt, init, grads, use_function=False)
        graph = run_optimizer(make, dt, init, grads, use_function=True)
        if not np.array_equal(eager, graph):
          # Grappler rewrites x / sqrt(y) into x * rsqrt(y) under
          # tf.function (what model.fit runs); keep that variant too.
          mismatches.append(f"{oname}_{cname}_{name}")
          np.save(os.path.join(HERE, f"opt_{oname}_{cname}_{name}_graph.npy"),
                  graph)
        np.save(os.path.join(HERE, f"opt_{oname}_{cname}_{name}.npy"), eager)
  rng = np.random.default_rng(7)
  for kind in ("mse", "mae"):
    for tag, shape in (("seq", (3, 4, 5)), ("vec", (6, 3))):
      for dt, name in (("float32", "f32"), ("float64", "f64")):
        arrays, value = loss_case(kind, shape, dt, rng)
        np.save(os.path.join(HERE, f"loss_{kind}_{tag}_{name}.npy"), arrays)
        np.save(os.path.join(HERE, f"loss_{kind}_{tag}_{name}_value.npy"),
                value)
  with open(os.path.join(HERE, "versions.json"), "w") as f:
    json.dump({"keras": keras.__version__, "tensorflow": tf.__version__,
               "numpy": np.__version__,
               "eager_vs_tf_function_mismatches": mismatches}, f, indent=1)
    f.write("\n")
  print("eager vs tf.function mismatches:", mismatches)


if __name__ == "__main__":
  main()
