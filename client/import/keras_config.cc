#include "client/import/keras_config.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace driftscope {

namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

absl::Status ModelError(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("model config: ", what));
}

const Value* Field(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  if (it == s.fields().end() || it->second.has_null_value()) return nullptr;
  return &it->second;
}

absl::StatusOr<Struct> ParseObject(const std::string& json,
                                   const std::string& what) {
  Struct s;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &s);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is not valid JSON (", std::string(status.message()), ")"));
  }
  return s;
}

// Every ["layer", node, tensor] reference below `v`: Keras 3 writes
// {"keras_history": [name, node, tensor]} inside a node's args and kwargs,
// Keras 2 writes [name, node, tensor, kwargs] lists directly.
void CollectKeras3History(const Value& v, std::vector<std::string>* out) {
  if (v.has_struct_value()) {
    for (const auto& [key, field] : v.struct_value().fields()) {
      if (key == "keras_history" && field.has_list_value() &&
          field.list_value().values_size() > 0 &&
          field.list_value().values(0).has_string_value()) {
        out->push_back(field.list_value().values(0).string_value());
      } else {
        CollectKeras3History(field, out);
      }
    }
  } else if (v.has_list_value()) {
    for (const Value& e : v.list_value().values()) CollectKeras3History(e, out);
  }
}

// The names of the layers feeding `layer`, or an error for a layer called
// more than once (a shared layer).
absl::StatusOr<std::vector<std::string>> InboundLayers(
    const Struct& layer, const std::string& name) {
  std::vector<std::string> inbound;
  const Value* nodes = Field(layer, "inbound_nodes");
  if (nodes == nullptr || !nodes->has_list_value()) return inbound;
  const ListValue& list = nodes->list_value();
  if (list.values_size() > 1) {
    return ModelError(absl::StrCat("layer '", name, "' is called ",
                                   list.values_size(),
                                   " times (shared layers are not supported)"));
  }
  for (const Value& node : list.values()) {
    if (node.has_list_value()) {  // Keras 2: [[name, 0, 0, {...}], ...]
      for (const Value& ref : node.list_value().values()) {
        if (ref.has_list_value() && ref.list_value().values_size() > 0 &&
            ref.list_value().values(0).has_string_value()) {
          inbound.push_back(ref.list_value().values(0).string_value());
        }
      }
    } else {
      CollectKeras3History(node, &inbound);
    }
  }
  return inbound;
}

// [null, T, F] from an input layer's batch_shape / batch_input_shape;
// [null, T] (token ids, for a model that starts with an Embedding) is
// F = 1.
absl::Status ReadInputShape(const Struct& config, const std::string& where,
                            KerasModel* model, bool* found) {
  const Value* shape = Field(config, "batch_shape");
  if (shape == nullptr) shape = Field(config, "batch_input_shape");
  if (shape == nullptr) shape = Field(config, "build_input_shape");
  *found = shape != nullptr;
  if (shape == nullptr) return absl::OkStatus();
  if (shape->has_list_value() && shape->list_value().values_size() == 2) {
    const Value& t = shape->list_value().values(1);
    if (!t.has_number_value() || t.number_value() < 1) {
      return ModelError(absl::StrCat(
          where,
          ": the input's timesteps is not fixed; build the model with "
          "keras.Input((timesteps,)) (driftscope needs a fixed sequence "
          "length)"));
    }
    model->timesteps = static_cast<int>(t.number_value());
    model->features = 1;
    return absl::OkStatus();
  }
  if (!shape->has_list_value() || shape->list_value().values_size() != 3) {
    return ModelError(
        absl::StrCat(where,
                     ": input shape must be (batch, timesteps, "
                     "features): driftscope imports sequence models"));
  }
  const auto& v = shape->list_value().values();
  for (int i = 1; i < 3; ++i) {
    if (!v[i].has_number_value() || v[i].number_value() < 1) {
      return ModelError(absl::StrCat(
          where, ": the input's ", i == 1 ? "timesteps" : "features",
          " is not fixed; build the model with keras.Input((timesteps, "
          "features)) (driftscope needs a fixed sequence length)"));
    }
  }
  model->timesteps = static_cast<int>(v[1].number_value());
  model->features = static_cast<int>(v[2].number_value());
  return absl::OkStatus();
}

bool IsInputLayer(const std::string& class_name) {
  return class_name == "InputLayer";
}

// The layers of a Functional model in data-flow order, when they form a
// chain from its one input to its one output.
absl::StatusOr<std::vector<const Struct*>> FunctionalChain(
    const std::vector<const Struct*>& layers, std::string* input_name) {
  std::map<std::string, const Struct*> by_name;
  std::map<std::string, std::string> consumer;  // producer -> its one consumer
  const Struct* input = nullptr;
  for (const Struct* l : layers) {
    const Value* n = Field(*l, "name");
    const Value* c = Field(*l, "class_name");
    const Value* cfg = Field(*l, "config");
    std::string name = n != nullptr ? n->string_value() : "";
    if (name.empty() && cfg != nullptr && cfg->has_struct_value()) {
      const Value* cn = Field(cfg->struct_value(), "name");
      if (cn != nullptr) name = cn->string_value();
    }
    by_name[name] = l;
    if (c != nullptr && IsInputLayer(c->string_value())) {
      if (input != nullptr) {
        return ModelError("the model has more than one input");
      }
      input = l;
      *input_name = name;
      continue;
    }
    absl::StatusOr<std::vector<std::string>> in = InboundLayers(*l, name);
    if (!in.ok()) return in.status();
    if (in->size() != 1) {
      return ModelError(absl::StrCat(
          "layer '", name, "' takes ", in->size(),
          " inputs; only a chain of layers (each on the one before) is "
          "supported"));
    }
    if (!consumer.emplace((*in)[0], name).second) {
      return ModelError(absl::StrCat(
          "the output of layer '", (*in)[0],
          "' feeds two layers; only a chain of layers is supported"));
    }
  }
  if (input == nullptr) return ModelError("the model has no InputLayer");
  std::vector<const Struct*> chain;
  std::string at = *input_name;
  std::set<std::string> seen = {at};
  while (consumer.count(at) > 0) {
    at = consumer[at];
    if (!seen.insert(at).second || by_name.count(at) == 0) {
      return ModelError("the layers do not form a chain");
    }
    chain.push_back(by_name[at]);
  }
  if (chain.size() + 1 != layers.size()) {
    return ModelError(
        "some layers are not on the path from the input to the output; only "
        "a chain of layers is supported");
  }
  return chain;
}

// "output_layers": one [name, node, tensor] or a list of them.
void ReadOutputLayers(const Struct& config,
                      std::vector<std::pair<std::string, int>>* out) {
  const Value* v = Field(config, "output_layers");
  if (v == nullptr || !v->has_list_value()) return;
  const auto one = [out](const ListValue& ref) {
    if (ref.values_size() == 3 && ref.values(0).has_string_value() &&
        ref.values(2).has_number_value()) {
      out->emplace_back(ref.values(0).string_value(),
                        static_cast<int>(ref.values(2).number_value()));
    }
  };
  const ListValue& list = v->list_value();
  if (list.values_size() > 0 && list.values(0).has_string_value()) {
    one(list);
    return;
  }
  for (const Value& ref : list.values()) {
    if (ref.has_list_value()) one(ref.list_value());
  }
}

}  // namespace

bool KerasConfig::Has(const std::string& key) const {
  return Get(key) != nullptr;
}

const Value* KerasConfig::Get(const std::string& key) const {
  return Field(object_, key);
}

absl::Status KerasConfig::Error(const std::string& key,
                                const std::string& what) const {
  return absl::InvalidArgumentError(absl::StrCat(where_, ": ", key, " ", what));
}

absl::StatusOr<double> KerasConfig::Number(const std::string& key,
                                           double absent) const {
  const Value* v = Get(key);
  if (v == nullptr) return absent;
  if (!v->has_number_value()) return Error(key, "must be a number");
  return v->number_value();
}

absl::StatusOr<int> KerasConfig::Int(const std::string& key, int absent) const {
  absl::StatusOr<double> d = Number(key, absent);
  if (!d.ok()) return d.status();
  if (*d != std::floor(*d) || std::fabs(*d) > 1e9) {
    return Error(key, absl::StrCat("must be an integer, got ", *d));
  }
  return static_cast<int>(*d);
}

absl::StatusOr<bool> KerasConfig::Bool(const std::string& key,
                                       bool absent) const {
  const Value* v = Get(key);
  if (v == nullptr) return absent;
  if (!v->has_bool_value()) return Error(key, "must be true or false");
  return v->bool_value();
}

absl::StatusOr<std::string> KerasConfig::String(
    const std::string& key, const std::string& absent) const {
  const Value* v = Get(key);
  if (v == nullptr) return absent;
  if (!v->has_string_value()) return Error(key, "must be a string");
  return v->string_value();
}

absl::StatusOr<KerasObject> ReadKerasObject(const Value& v,
                                            const std::string& where) {
  KerasObject o;
  if (v.has_string_value()) {
    o.class_name = v.string_value();
    return o;
  }
  if (!v.has_struct_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " must be a name or {\"class_name\": ...}"));
  }
  const Value* c = Field(v.struct_value(), "class_name");
  if (c == nullptr || !c->has_string_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " has no class_name"));
  }
  o.class_name = c->string_value();
  const Value* cfg = Field(v.struct_value(), "config");
  o.config.emplace(cfg != nullptr && cfg->has_struct_value()
                       ? cfg->struct_value()
                       : Struct(),
                   absl::StrCat(where, " (", o.class_name, ")"));
  return o;
}

absl::StatusOr<KerasModel> ParseKerasModel(const std::string& config_json,
                                           const std::string& training_json,
                                           const std::string& keras_version) {
  absl::StatusOr<Struct> top = ParseObject(config_json, "the model config");
  if (!top.ok()) return top.status();
  KerasModel model;
  const Value* cls = Field(*top, "class_name");
  const Value* cfg = Field(*top, "config");
  if (cls == nullptr || cfg == nullptr || !cfg->has_struct_value()) {
    return ModelError("no class_name and config: not a saved Keras model");
  }
  model.class_name = cls->string_value();
  const bool functional =
      model.class_name == "Functional" || model.class_name == "Model";
  if (model.class_name != "Sequential" && !functional) {
    return ModelError(absl::StrCat(
        "a ", model.class_name,
        " model (a subclassed model has no layer list to import; supported: "
        "Sequential, and Functional chains)"));
  }
  const Struct& mc = cfg->struct_value();
  const Value* layers_v = Field(mc, "layers");
  if (layers_v == nullptr || !layers_v->has_list_value()) {
    return ModelError("no layers list");
  }
  std::vector<const Struct*> all;
  for (const Value& l : layers_v->list_value().values()) {
    if (!l.has_struct_value()) return ModelError("a layer is not an object");
    all.push_back(&l.struct_value());
  }
  std::vector<const Struct*> order = all;
  if (functional) {
    std::string input_name;
    absl::StatusOr<std::vector<const Struct*>> chain =
        FunctionalChain(all, &input_name);
    if (!chain.ok()) return chain.status();
    order.clear();
    for (const Struct* l : all) {  // the input layer first
      const Value* c = Field(*l, "class_name");
      if (c != nullptr && IsInputLayer(c->string_value())) order.push_back(l);
    }
    order.insert(order.end(), chain->begin(), chain->end());
    ReadOutputLayers(mc, &model.outputs);
  }
  const bool keras2 = absl::StartsWith(keras_version, "2.");
  bool have_shape = false;
  for (const Struct* l : order) {
    const Value* c = Field(*l, "class_name");
    const Value* lc = Field(*l, "config");
    if (c == nullptr || !c->has_string_value() || lc == nullptr ||
        !lc->has_struct_value()) {
      return ModelError("a layer has no class_name or config");
    }
    const Value* n = Field(lc->struct_value(), "name");
    const std::string name = n != nullptr ? n->string_value() : "";
    if (!have_shape) {
      if (absl::Status s = ReadInputShape(lc->struct_value(),
                                          absl::StrCat("layer '", name, "'"),
                                          &model, &have_shape);
          !s.ok()) {
        return s;
      }
    }
    if (IsInputLayer(c->string_value())) continue;
    model.layers.push_back(
        {c->string_value(), name,
         KerasConfig(lc->struct_value(), absl::StrCat("layer '", name, "' (",
                                                      c->string_value(), ")")),
         keras2});
  }
  if (!have_shape) {
    if (absl::Status s = ReadInputShape(mc, "the model", &model, &have_shape);
        !s.ok()) {
      return s;
    }
  }
  if (!have_shape) {
    return ModelError(
        "no input shape; build the model with keras.Input((timesteps, "
        "features)) before saving it");
  }
  if (model.layers.empty()) return ModelError("the model has no layers");
  // The compile settings: .keras keeps them in the config, .h5 apart.
  if (!training_json.empty()) {
    absl::StatusOr<Struct> t =
        ParseObject(training_json, "the training_config attribute");
    if (!t.ok()) return t.status();
    model.compile.emplace(*std::move(t), "training_config");
  } else if (const Value* cc = Field(*top, "compile_config");
             cc != nullptr && cc->has_struct_value() &&
             cc->struct_value().fields_size() > 0) {  // {}: not compiled
    model.compile.emplace(cc->struct_value(), "compile_config");
  }
  return model;
}

}  // namespace driftscope
