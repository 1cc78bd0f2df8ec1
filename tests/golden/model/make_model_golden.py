#!/usr/bin/env python3
"""Golden files from real Keras 3 (TensorFlow backend) and PyTorch.

What this writes (under the directory of this script; ~1 MB in all):

  layer/<case>/<f64|f32>/   one Keras layer, or the LSTM->GRU->Dense stack,
      x.npy (B,T,D), y.npy (target shaped like the output),
      layer{i}_{kernel,recurrent_kernel,bias}.npy   weights, get_weights order
      out.npy                 forward output
      state_h.npy, state_c.npy  final states (RNN layers, return_state=True)
      loss.npy                MSE (sum_over_batch_size) of out vs y, shape ()
      grad_layer{i}_<w>.npy   d loss / d weight, via tf.GradientTape
      grad_x.npy              d loss / d x
      torch_out.npy, torch_state_h.npy[, torch_state_c.npy]
                              nn.LSTM / nn.GRU outputs with mapped weights
                              (lstm_seq and gru_reset_after, f64 only)
  train/<case>/<f64|f32>/   LSTM(4,seq)->GRU(4,seq)->Dense(2) trained on
      N=10 samples, batch 4 (batches 4,4,2: the last one is partial),
      2 epochs, no shuffle = 6 steps:
      x.npy (10,5,3), y.npy (10,5,2), layer{i}_*.npy (initial weights),
      losses.npy (6,)         batch loss of each step, before its update
      final_layer{i}_*.npy    weights after the 6 steps
      final_out.npy           model(x) with the final weights
  manifest.json             every case's configuration (the Keras layer
      arguments, optimizer, loss, shapes), the library versions, and for each
      tensor the max relative error of Keras float32 against Keras float64
      ("f32_vs_f64", floor 1e-3 * max|ref|), which is what the C++ tests'
      float32 tolerances are judged against.

How to run (needs tensorflow-cpu + keras 3 + torch; CI does not, it reads the
committed files):

  python3 tests/golden/model/make_model_golden.py

The script pins everything that could change the numbers: CPU only, oneDNN
off (TF_ENABLE_ONEDNN_OPTS=0), op determinism, one intra-op thread, legacy
numpy RandomState seeds. Inputs and weights are drawn so that they are
exactly representable in float32, and the same values are used for the f64
and f32 variants; the two differ only in arithmetic. Learning rates and clip
thresholds are powers of two so that no float32/float64 rounding of a
hyper-parameter can hide in the comparison.

Training is an explicit eager loop (forward under GradientTape, loss,
optimizer.apply_gradients) — the same math as model.fit; the script checks
this once by running model.fit(batch_size=4, epochs=2, shuffle=False) on the
f64 Adam case and asserting the same final weights (1e-12 rel).

Generated with: tensorflow 2.21.0, keras 3.15.1, torch 2.15.0, numpy 2.4.6
(the versions actually used are written to manifest.json).
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
import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.abspath(__file__))
B, T, D, U = 4, 5, 3, 4
DTYPES = {"f64": "float64", "f32": "float32"}

# ---------------------------------------------------------------- helpers


def f32_exact(a):
  """Rounds to float32 and returns float64: the same value in both dtypes."""
  return np.asarray(a, dtype=np.float32).astype(np.float64)


def save(dirname, name, array, dtype):
  os.makedirs(dirname, exist_ok=True)
  np.save(os.path.join(dirname, name + ".npy"),
          np.ascontiguousarray(np.asarray(array, dtype=dtype)))


def max_rel(a, ref):
  """max |a-ref| / max(|ref|, 1e-3*max|ref|): the C++ tests' error measure."""
  a = np.asarray(a, np.float64)
  ref = np.asarray(ref, np.float64)
  floor = max(1e-3 * float(np.max(np.abs(ref))), 1e-300)
  return float(np.max(np.abs(a - ref) / np.maximum(np.abs(ref), floor)))


def weight_names(cfg):
  if cfg["kind"] == "dense":
    return ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"]
  names = ["kernel", "recurrent_kernel"]
  if cfg.get("use_bias", True):
    names.append("bias")
  return names


def weight_shapes(cfg, in_dim):
  u = cfg["units"]
  gates = {"lstm": 4, "gru": 3, "simple_rnn": 1, "dense": 1}[cfg["kind"]]
  shapes = {"kernel": (in_dim, gates * u), "recurrent_kernel": (u, gates * u)}
  if cfg["kind"] == "gru" and cfg.get("reset_after", True):
    shapes["bias"] = (2, gates * u)
  else:
    shapes["bias"] = (gates * u,)
  return [shapes[n] for n in weight_names(cfg)]


def make_keras_layer(cfg, dtype):
  kind = cfg["kind"]
  common = dict(dtype=dtype)
  if kind == "dense":
    return keras.layers.Dense(cfg["units"], activation=cfg.get(
        "activation", "linear"), use_bias=cfg.get("use_bias", True), **common)
  rnn_args = dict(
      units=cfg["units"],
      return_sequences=cfg.get("return_sequences", False),
      return_state=cfg.get("return_state", False),
      go_backwards=cfg.get("go_backwards", False),
      use_bias=cfg.get("use_bias", True),
      **common)
  if kind == "lstm":
    return keras.layers.LSTM(
        recurrent_activation=cfg.get("recurrent_activation", "sigmoid"),
        implementation=cfg.get("implementation", 2), **rnn_args)
  if kind == "gru":
    return keras.layers.GRU(
        recurrent_activation=cfg.get("recurrent_activation", "sigmoid"),
        reset_after=cfg.get("reset_after", True),
        implementation=cfg.get("implementation", 2), **rnn_args)
  if kind == "simple_rnn":
    return keras.layers.SimpleRNN(**rnn_args)
  raise ValueError(kind)


def out_dim(cfg, in_dim):
  del in_dim
  return cfg["units"]


def draw_weights(rs, layers, in_dim, scale):
  """Keras get_weights-ordered float32-exact weights for a stack."""
  weights = []
  d = in_dim
  for cfg in layers:
    s = cfg.get("weight_scale", scale)
    weights.append([f32_exact(rs.uniform(-s, s, size=shape))
                    for shape in weight_shapes(cfg, d)])
    d = out_dim(cfg, d)
  return weights


def output_shape(layers, n):
  last = layers[-1]
  seq = True
  for cfg in layers:
    if cfg["kind"] != "dense":
      seq = cfg.get("return_sequences", False)
  return (n, T, last["units"]) if seq else (n, last["units"])


def build_stack(layers, dtype, weights):
  keras_layers = []
  shape = (None, T, D)
  for cfg, w in zip(layers, weights):
    layer = make_keras_layer(cfg, dtype)
    layer.build(shape)
    layer.set_weights([np.asarray(a, dtype=dtype) for a in w])
    got = layer.get_weights()
    assert len(got) == len(w), (cfg, len(got))
    for g, e in zip(got, w):
      assert g.shape == np.shape(e), (cfg, g.shape, np.shape(e))
    keras_layers.append(layer)
    seq = cfg["kind"] == "dense" or cfg.get("return_sequences", False)
    if cfg["kind"] == "dense":
      shape = shape[:-1] + (cfg["units"],)
    else:
      shape = (None, T, cfg["units"]) if seq else (None, cfg["units"])
  return keras_layers


def run_stack(keras_layers, layers, x):
  """Returns (output, final states of the last RNN layer with return_state)."""
  h = x
  states = []
  for cfg, layer in zip(layers, keras_layers):
    r = layer(h)
    if cfg["kind"] != "dense" and cfg.get("return_state", False):
      h, states = r[0], list(r[1:])
    else:
      h = r
  return h, states


# ---------------------------------------------------------- layer cases

LAYER_CASES = {
    "lstm_seq": [dict(kind="lstm", units=U, return_sequences=True,
                      return_state=True)],
    "lstm_impl1": [dict(kind="lstm", units=U, return_sequences=True,
                        return_state=True, implementation=1)],
    "lstm_last": [dict(kind="lstm", units=U, return_sequences=False,
                       return_state=True)],
    # Kernel scale 1.5 pushes |z| past 3, into both flat parts of Keras 3's
    # hard_sigmoid, so the zero-slope regions of the backward pass are hit.
    "lstm_hard_sigmoid": [dict(kind="lstm", units=U, return_sequences=True,
                               return_state=True,
                               recurrent_activation="hard_sigmoid",
                               weight_scale=1.5)],
    "lstm_hard_sigmoid_impl1": [dict(kind="lstm", units=U,
                                     return_sequences=True,
                                     recurrent_activation="hard_sigmoid",
                                     implementation=1, weight_scale=1.5)],
    "lstm_backwards_seq": [dict(kind="lstm", units=U, return_sequences=True,
                                return_state=True, go_backwards=True)],
    "lstm_backwards_last": [dict(kind="lstm", units=U, go_backwards=True)],
    "lstm_no_bias": [dict(kind="lstm", units=U, return_sequences=True,
                          use_bias=False)],
    "gru_reset_after": [dict(kind="gru", units=U, return_sequences=True,
                             return_state=True, reset_after=True)],
    "gru_reset_after_impl1": [dict(kind="gru", units=U, return_sequences=True,
                                   reset_after=True, implementation=1)],
    "gru_reset_before": [dict(kind="gru", units=U, return_sequences=True,
                              return_state=True, reset_after=False)],
    "gru_reset_before_impl1": [dict(kind="gru", units=U,
                                    return_sequences=True, reset_after=False,
                                    implementation=1)],
    "gru_backwards_last": [dict(kind="gru", units=U, go_backwards=True,
                                return_state=True)],
    "gru_hard_sigmoid": [dict(kind="gru", units=U, return_sequences=True,
                              recurrent_activation="hard_sigmoid",
                              weight_scale=1.5)],
    "gru_no_bias": [dict(kind="gru", units=U, return_sequences=True,
                         use_bias=False)],
    "simple_rnn_seq": [dict(kind="simple_rnn", units=U, return_sequences=True,
                            return_state=True)],
    "simple_rnn_last": [dict(kind="simple_rnn", units=U)],
    "simple_rnn_backwards_seq": [dict(kind="simple_rnn", units=U,
                                      return_sequences=True,
                                      go_backwards=True)],
    "dense_linear": [dict(kind="dense", units=U, activation="linear")],
    "dense_tanh": [dict(kind="dense", units=U, activation="tanh")],
    "dense_sigmoid": [dict(kind="dense", units=U, activation="sigmoid")],
    "dense_relu": [dict(kind="dense", units=U, activation="relu")],
    "stack_lstm_gru_dense": [
        dict(kind="lstm", units=U, return_sequences=True),
        dict(kind="gru", units=U, return_sequences=True),
        dict(kind="dense", units=2, activation="linear"),
    ],
}

TORCH_CASES = ("lstm_seq", "gru_reset_after")


def layer_case_data(index, layers):
  rs = np.random.RandomState(1000 + index)
  x = f32_exact(rs.uniform(-1.0, 1.0, size=(B, T, D)))
  weights = draw_weights(rs, layers, D, 0.6)
  y = f32_exact(rs.uniform(-1.0, 1.0, size=output_shape(layers, B)))
  return x, y, weights


def run_layer_case(layers, x, y, weights, dtype):
  keras.backend.set_floatx(dtype)
  keras_layers = build_stack(layers, dtype, weights)
  xt = tf.constant(x, dtype=dtype)
  yt = tf.constant(y, dtype=dtype)
  variables = [v for l in keras_layers for v in l.trainable_weights]
  with tf.GradientTape() as tape:
    tape.watch(xt)
    out, states = run_stack(keras_layers, layers, xt)
    loss = keras.losses.MeanSquaredError()(yt, out)
  grads = tape.gradient(loss, variables + [xt])
  res = {"out": out.numpy(), "loss": loss.numpy()}
  if states:
    res["state_h"] = states[0].numpy()
    if len(states) > 1:
      res["state_c"] = states[1].numpy()
  k = 0
  for i, (cfg, l) in enumerate(zip(layers, keras_layers)):
    for name in weight_names(cfg):
      res["grad_layer%d_%s" % (i, name)] = grads[k].numpy()
      k += 1
  res["grad_x"] = grads[k].numpy()
  assert k + 1 == len(grads)
  return res


def torch_cross_check(case, cfg, x, weights, keras_res, outdir):
  """nn.LSTM / nn.GRU with Keras weights mapped per docs/numerics.md §8."""
  xt = torch.tensor(x, dtype=torch.float64)
  w = [torch.tensor(a, dtype=torch.float64) for a in weights[0]]
  if cfg["kind"] == "lstm":
    m = torch.nn.LSTM(D, U, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
      m.weight_ih_l0.copy_(w[0].T)
      m.weight_hh_l0.copy_(w[1].T)
      m.bias_ih_l0.copy_(w[2])
      m.bias_hh_l0.zero_()
    out, (h, c) = m(xt)
    states = {"state_h": h[0], "state_c": c[0]}
  else:
    def swap(a):  # Keras [z|r|h] -> PyTorch [r|z|n] along the last axis.
      return torch.cat([a[..., U:2 * U], a[..., :U], a[..., 2 * U:]], dim=-1)
    m = torch.nn.GRU(D, U, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
      m.weight_ih_l0.copy_(swap(w[0]).T)
      m.weight_hh_l0.copy_(swap(w[1]).T)
      m.bias_ih_l0.copy_(swap(w[2][0]))
      m.bias_hh_l0.copy_(swap(w[2][1]))
    out, h = m(xt)
    states = {"state_h": h[0]}
  out = out.detach().numpy()
  err = float(np.max(np.abs(out - keras_res["out"])))
  assert err <= 1e-12, (case, "torch vs keras out", err)
  save(outdir, "torch_out", out, np.float64)
  errs = {"out": err}
  for name, s in states.items():
    s = s.detach().numpy()
    e = float(np.max(np.abs(s - keras_res[name])))
    assert e <= 1e-12, (case, "torch vs keras", name, e)
    save(outdir, "torch_" + name, s, np.float64)
    errs[name] = e
  return errs


def make_layer_goldens(manifest):
  for index, (case, layers) in enumerate(LAYER_CASES.items()):
    x, y, weights = layer_case_data(index, layers)
    results = {}
    for tag, dtype in DTYPES.items():
      outdir = os.path.join(ROOT, "layer", case, tag)
      res = run_layer_case(layers, x, y, weights, dtype)
      results[tag] = res
      save(outdir, "x", x, dtype)
      save(outdir, "y", y, dtype)
      for i, (cfg, w) in enumerate(zip(layers, weights)):
        for name, a in zip(weight_names(cfg), w):
          save(outdir, "layer%d_%s" % (i, name), a, dtype)
      for name, a in res.items():
        save(outdir, name, a, dtype)
    entry = {
        "layers": layers,
        "batch": B, "timesteps": T, "features": D,
        "loss": "mse",
        "f32_vs_f64": {name: max_rel(results["f32"][name], a)
                       for name, a in results["f64"].items()},
    }
    if case in TORCH_CASES:
      entry["torch_vs_keras_f64_max_abs"] = torch_cross_check(
          case, layers[0], x, weights, results["f64"],
          os.path.join(ROOT, "layer", case, "f64"))
    manifest["layer"][case] = entry
    print("layer", case, "f32 vs f64 worst %.2e" %
          max(entry["f32_vs_f64"].values()))


# -------------------------------------------------------- training cases

TRAIN_N, TRAIN_BATCH, TRAIN_EPOCHS = 10, 4, 2
TRAIN_LAYERS = [
    dict(kind="lstm", units=U, return_sequences=True),
    dict(kind="gru", units=U, return_sequences=True),
    dict(kind="dense", units=2, activation="linear"),
]
# Every optimizer and every clipping mode at least once; thresholds are
# chosen so that clipping really changes some gradients (checked below).
TRAIN_CASES = {
    "adam_clipnorm": dict(
        optimizer=dict(kind="adam", learning_rate=2.0**-5, clipnorm=2.0**-4),
        loss="mse"),
    "adam_amsgrad_global_clipnorm": dict(
        optimizer=dict(kind="adam", learning_rate=2.0**-5, amsgrad=True,
                       global_clipnorm=2.0**-3),
        loss="mse"),
    "sgd_nesterov_clipvalue": dict(
        optimizer=dict(kind="sgd", learning_rate=2.0**-3, momentum=0.9,
                       nesterov=True, clipvalue=2.0**-6),
        loss="mse"),
    "rmsprop_centered_clipnorm_mae": dict(
        optimizer=dict(kind="rmsprop", learning_rate=2.0**-6, rho=0.9,
                       momentum=0.5, centered=True, clipnorm=2.0**-4),
        loss="mae"),
    "adam_mae_global_clipnorm": dict(
        optimizer=dict(kind="adam", learning_rate=2.0**-6,
                       global_clipnorm=2.0**-4),
        loss="mae"),
}


def make_optimizer(o):
  clip = {k: o[k] for k in ("clipnorm", "global_clipnorm", "clipvalue")
          if k in o}
  if o["kind"] == "adam":
    return keras.optimizers.Adam(learning_rate=o["learning_rate"],
                                 amsgrad=o.get("amsgrad", False), **clip)
  if o["kind"] == "sgd":
    return keras.optimizers.SGD(learning_rate=o["learning_rate"],
                                momentum=o["momentum"],
                                nesterov=o["nesterov"], **clip)
  if o["kind"] == "rmsprop":
    return keras.optimizers.RMSprop(learning_rate=o["learning_rate"],
                                    rho=o["rho"], momentum=o["momentum"],
                                    centered=o["centered"], **clip)
  raise ValueError(o)


def make_loss(name):
  return {"mse": keras.losses.MeanSquaredError,
          "mae": keras.losses.MeanAbsoluteError}[name]()


def train_data(index):
  rs = np.random.RandomState(2000 + index)
  x = f32_exact(rs.uniform(-1.0, 1.0, size=(TRAIN_N, T, D)))
  weights = draw_weights(rs, TRAIN_LAYERS, D, 0.6)
  y = f32_exact(rs.uniform(-1.0, 1.0, size=output_shape(TRAIN_LAYERS,
                                                        TRAIN_N)))
  return x, y, weights


def build_model(dtype, weights):
  keras.backend.set_floatx(dtype)
  inp = keras.Input((T, D), dtype=dtype)
  h = inp
  for cfg in TRAIN_LAYERS:
    h = make_keras_layer(cfg, dtype)(h)
  model = keras.Model(inp, h)
  model.set_weights([np.asarray(a, dtype=dtype) for w in weights for a in w])
  return model


def train_explicit(case, x, y, weights, dtype):
  model = build_model(dtype, weights)
  opt = make_optimizer(case["optimizer"])
  loss_fn = make_loss(case["loss"])
  losses = []
  clipped_any = False
  for _ in range(TRAIN_EPOCHS):
    for start in range(0, TRAIN_N, TRAIN_BATCH):
      xb = tf.constant(x[start:start + TRAIN_BATCH], dtype=dtype)
      yb = tf.constant(y[start:start + TRAIN_BATCH], dtype=dtype)
      with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
      grads = tape.gradient(loss, model.trainable_weights)
      clipped_any |= clipping_active(case["optimizer"], grads)
      opt.apply_gradients(zip(grads, model.trainable_weights))
      losses.append(loss.numpy())
  for v in opt.variables:  # hyper-parameters must be in the run dtype
    if "learning_rate" in v.name:
      assert v.dtype == dtype, (v.name, v.dtype)
  return (np.array(losses), [w.numpy() for w in model.trainable_weights],
          model(tf.constant(x, dtype=dtype)).numpy(), clipped_any)


def clipping_active(o, grads):
  g = [t.numpy() for t in grads]
  if "clipnorm" in o:
    return any(np.sqrt(np.sum(a * a)) > o["clipnorm"] for a in g)
  if "global_clipnorm" in o:
    return np.sqrt(sum(np.sum(a * a) for a in g)) > o["global_clipnorm"]
  if "clipvalue" in o:
    return any(np.max(np.abs(a)) > o["clipvalue"] for a in g)
  return False


def check_fit_equivalence(case, x, y, weights, final):
  """model.fit must give the same weights as the explicit loop."""
  model = build_model("float64", weights)
  model.compile(optimizer=make_optimizer(case["optimizer"]),
                loss=make_loss(case["loss"]), jit_compile=False)
  model.fit(x, y, batch_size=TRAIN_BATCH, epochs=TRAIN_EPOCHS, shuffle=False,
            verbose=0)
  for a, b in zip(model.get_weights(), final):
    e = max_rel(a, b)
    assert e <= 1e-12, ("fit vs explicit loop", e)


def make_train_goldens(manifest):
  for index, (name, case) in enumerate(TRAIN_CASES.items()):
    x, y, weights = train_data(index)
    results = {}
    for tag, dtype in DTYPES.items():
      outdir = os.path.join(ROOT, "train", name, tag)
      losses, final, final_out, clipped = train_explicit(case, x, y, weights,
                                                         dtype)
      assert clipped, (name, "clipping never active: pick a smaller bound")
      results[tag] = {"losses": losses, "final_out": final_out}
      save(outdir, "x", x, dtype)
      save(outdir, "y", y, dtype)
      save(outdir, "losses", losses, dtype)
      save(outdir, "final_out", final_out, dtype)
      k = 0
      for i, cfg in enumerate(TRAIN_LAYERS):
        for wname, a in zip(weight_names(cfg), weights[i]):
          save(outdir, "layer%d_%s" % (i, wname), a, dtype)
          save(outdir, "final_layer%d_%s" % (i, wname), final[k], dtype)
          results[tag]["final_layer%d_%s" % (i, wname)] = final[k]
          k += 1
      if tag == "f64" and index == 0:
        check_fit_equivalence(case, x, y, weights, final)
    manifest["train"][name] = {
        "layers": TRAIN_LAYERS,
        "samples": TRAIN_N, "timesteps": T, "features": D,
        "batch_size": TRAIN_BATCH, "epochs": TRAIN_EPOCHS, "shuffle": False,
        "steps": len(results["f64"]["losses"]),
        "optimizer": case["optimizer"], "loss": case["loss"],
        "f32_vs_f64": {k: max_rel(results["f32"][k], v)
                       for k, v in results["f64"].items()},
    }
    print("train", name, "f32 vs f64 worst %.2e" %
          max(manifest["train"][name]["f32_vs_f64"].values()))


def check_hard_sigmoid_is_keras3():
  z = np.linspace(-5, 5, 101)
  got = keras.activations.hard_sigmoid(tf.constant(z)).numpy()
  want = np.clip(z + 3.0, 0.0, 6.0) / 6.0
  assert np.max(np.abs(got - want)) <= 1e-15, "hard_sigmoid is not relu6(x+3)/6"


def main():
  check_hard_sigmoid_is_keras3()
  for sub in ("layer", "train"):
    shutil.rmtree(os.path.join(ROOT, sub), ignore_errors=True)
  manifest = {
      "generator": "tests/golden/model/make_model_golden.py",
      "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                   "torch": torch.__version__, "numpy": np.__version__,
                   "python": sys.version.split()[0]},
      "settings": "CPU, TF_ENABLE_ONEDNN_OPTS=0, op determinism, 1 thread",
      "layer": {}, "train": {},
  }
  make_layer_goldens(manifest)
  make_train_goldens(manifest)
  with open(os.path.join(ROOT, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.write("\n")


if __name__ == "__main__":
  main()
