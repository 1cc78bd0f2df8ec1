// ReadKerasFile with libzip and HDF5's C library. Built only when both are
// found (client/CMakeLists.txt); keras_file_unavailable.cc stands in
// otherwise.
#include "client/import/keras_file.h"

#include <hdf5.h>
#include <zip.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace driftscope {

namespace {

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// An HDF5 identifier closed by the function that matches its kind.
class Hid {
 public:
  Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  ~Hid() {
    if (id_ >= 0) close_(id_);
  }
  bool ok() const { return id_ >= 0; }
  hid_t get() const { return id_; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// HDF5 prints its error stack on stderr by default; every failure here
// becomes one message instead.
void SilenceHdf5Errors() {
  static const bool silenced = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)silenced;
}

bool HasLink(hid_t loc, const std::string& name) {
  return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

bool IsGroup(hid_t loc, const std::string& name) {
  if (!HasLink(loc, name)) return false;
  Hid obj(H5Oopen(loc, name.c_str(), H5P_DEFAULT), H5Oclose);
  return obj.ok() && H5Iget_type(obj.get()) == H5I_GROUP;
}

// The names of a group's links, in HDF5's name order.
absl::StatusOr<std::vector<std::string>> LinkNames(hid_t group,
                                                   const std::string& where) {
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot list HDF5 group ", where));
  }
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC,
                                         i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot list HDF5 group ", where));
    }
    std::string name(static_cast<size_t>(n) + 1, '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                       name.size(), H5P_DEFAULT);
    name.resize(static_cast<size_t>(n));
    names.push_back(std::move(name));
  }
  return names;
}

// A string attribute (scalar or 1-D, fixed or variable length) as strings;
// nullopt-like empty result with `present` false when absent.
absl::StatusOr<std::vector<std::string>> StringAttribute(
    hid_t obj, const std::string& name, const std::string& where,
    bool* present) {
  *present = H5Aexists(obj, name.c_str()) > 0;
  if (!*present) return std::vector<std::string>{};
  const std::string what = absl::StrCat("attribute ", name, " of ", where);
  Hid attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) return absl::InvalidArgumentError("cannot read " + what);
  Hid space(H5Aget_space(attr.get()), H5Sclose);
  Hid type(H5Aget_type(attr.get()), H5Tclose);
  if (!space.ok() || !type.ok()) {
    return absl::InvalidArgumentError("cannot read " + what);
  }
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) return absl::InvalidArgumentError("cannot read " + what);
  std::vector<std::string> out;
  if (n == 0) return out;  // h5py writes an empty list as a float array
  if (H5Tget_class(type.get()) != H5T_STRING) {
    return absl::InvalidArgumentError(what + " is not text");
  }
  if (H5Tis_variable_str(type.get()) > 0) {
    Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    std::vector<char*> values(static_cast<size_t>(n), nullptr);
    if (H5Aread(attr.get(), mem.get(), values.data()) < 0) {
      return absl::InvalidArgumentError("cannot read " + what);
    }
    for (char* v : values) {
      out.emplace_back(v == nullptr ? "" : v);
      if (v != nullptr) H5free_memory(v);
    }
    return out;
  }
  const size_t size = H5Tget_size(type.get());
  Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), size);
  std::vector<char> bytes(size * static_cast<size_t>(n), '\0');
  if (H5Aread(attr.get(), mem.get(), bytes.data()) < 0) {
    return absl::InvalidArgumentError("cannot read " + what);
  }
  for (hssize_t i = 0; i < n; ++i) {
    const char* s = bytes.data() + static_cast<size_t>(i) * size;
    out.emplace_back(s, strnlen(s, size));
  }
  return out;
}

// One text attribute: the single string it holds.
absl::StatusOr<std::string> TextAttribute(hid_t obj, const std::string& name,
                                          const std::string& where,
                                          bool* present) {
  absl::StatusOr<std::vector<std::string>> v =
      StringAttribute(obj, name, where, present);
  if (!v.ok()) return v.status();
  if (!*present) return std::string();
  if (v->size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attribute ", name, " of ", where, " holds ", v->size(), " strings"));
  }
  return (*v)[0];
}

// A float32 or float64 dataset as an array of that dtype.
absl::StatusOr<NdArray> ReadDataset(hid_t loc, const std::string& name) {
  Hid ds(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open weight ", name));
  }
  Hid type(H5Dget_type(ds.get()), H5Tclose);
  Hid space(H5Dget_space(ds.get()), H5Sclose);
  if (!type.ok() || !space.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read weight ", name));
  }
  const size_t size = H5Tget_size(type.get());
  if (H5Tget_class(type.get()) != H5T_FLOAT || (size != 4 && size != 8)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight ", name, " is not a float32 or float64 array"));
  }
  const int ndims = H5Sget_simple_extent_ndims(space.get());
  if (ndims < 0 || ndims > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight ", name, " has an unreadable shape"));
  }
  std::vector<hsize_t> dims(static_cast<size_t>(ndims));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  std::vector<int64_t> shape(dims.begin(), dims.end());
  const DType dtype = size == 4 ? DType::kFloat32 : DType::kFloat64;
  NdArray a(dtype, shape);
  const hid_t mem = size == 4 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
  void* data = size == 4 ? static_cast<void*>(a.data<float>())
                         : static_cast<void*>(a.data<double>());
  if (H5Dread(ds.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read weight ", name, " (truncated or corrupt data)"));
  }
  return a;
}

// Keras 3 (saving_lib): a layer's group holds vars/0, vars/1, ... and the
// groups of the objects it tracks (an RNN's "cell"; a Bidirectional's
// "forward_layer" and "backward_layer"). Their concatenation in that order
// is get_weights().
absl::Status CollectKeras3Vars(hid_t group, const std::string& where,
                               std::vector<NdArray>* out) {
  if (IsGroup(group, "vars")) {
    Hid vars(H5Gopen2(group, "vars", H5P_DEFAULT), H5Gclose);
    absl::StatusOr<std::vector<std::string>> names =
        LinkNames(vars.get(), where + "/vars");
    if (!names.ok()) return names.status();
    std::vector<std::pair<int, std::string>> numbered;
    for (const std::string& n : *names) {
      int i = 0;
      if (!absl::SimpleAtoi(n, &i)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unexpected entry ", where, "/vars/", n, " in model.weights.h5"));
      }
      numbered.emplace_back(i, n);
    }
    std::sort(numbered.begin(), numbered.end());
    for (const auto& [i, n] : numbered) {
      absl::StatusOr<NdArray> a = ReadDataset(vars.get(), n);
      if (!a.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "/vars: ", a.status().message()));
      }
      out->push_back(*std::move(a));
    }
  }
  absl::StatusOr<std::vector<std::string>> children = LinkNames(group, where);
  if (!children.ok()) return children.status();
  std::vector<std::string> order;
  for (const std::string& c : *children) {
    if (c != "vars" && IsGroup(group, c)) order.push_back(c);
  }
  // get_weights() lists the forward layer first; HDF5's name order would
  // put "backward_layer" first.
  std::stable_sort(order.begin(), order.end(),
                   [](const std::string& a, const std::string& b) {
                     return a == "forward_layer" && b != "forward_layer";
                   });
  for (const std::string& c : order) {
    Hid child(H5Gopen2(group, c.c_str(), H5P_DEFAULT), H5Gclose);
    if (absl::Status s = CollectKeras3Vars(child.get(), where + "/" + c, out);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ReadKeras3Weights(hid_t file, KerasFile* out) {
  if (!IsGroup(file, "layers")) return absl::OkStatus();  // no weights at all
  Hid layers(H5Gopen2(file, "layers", H5P_DEFAULT), H5Gclose);
  absl::StatusOr<std::vector<std::string>> keys =
      LinkNames(layers.get(), "layers");
  if (!keys.ok()) return keys.status();
  for (const std::string& key : *keys) {
    Hid layer(H5Gopen2(layers.get(), key.c_str(), H5P_DEFAULT), H5Gclose);
    if (!layer.ok()) continue;
    // The group is named after the layer's class (lstm, lstm_1, ...); Keras
    // 3 writes the layer's own name as an attribute of its vars group,
    // tf.keras 2 does not (its weights stay under "layers/<group>").
    std::string name = "layers/" + key;
    if (IsGroup(layer.get(), "vars")) {
      Hid vars(H5Gopen2(layer.get(), "vars", H5P_DEFAULT), H5Gclose);
      bool present = false;
      absl::StatusOr<std::string> n = TextAttribute(
          vars.get(), "name", "layers/" + key + "/vars", &present);
      if (!n.ok()) return n.status();
      if (present && !n->empty()) name = *n;
    }
    std::vector<NdArray> weights;
    if (absl::Status s =
            CollectKeras3Vars(layer.get(), "layers/" + key, &weights);
        !s.ok()) {
      return s;
    }
    if (!weights.empty()) out->weights[name] = std::move(weights);
  }
  return absl::OkStatus();
}

// Keras 2 / tf.keras (legacy h5): model_weights lists layer_names; each
// layer's group lists weight_names, each the path of a dataset below it.
absl::Status ReadLegacyWeights(hid_t file, KerasFile* out) {
  if (!IsGroup(file, "model_weights")) {
    return absl::InvalidArgumentError(
        "no model_weights group (a file from model.save() has one)");
  }
  Hid mw(H5Gopen2(file, "model_weights", H5P_DEFAULT), H5Gclose);
  bool present = false;
  absl::StatusOr<std::vector<std::string>> layer_names =
      StringAttribute(mw.get(), "layer_names", "model_weights", &present);
  if (!layer_names.ok()) return layer_names.status();
  if (!present) {
    return absl::InvalidArgumentError(
        "model_weights has no layer_names attribute");
  }
  for (const std::string& layer : *layer_names) {
    const std::string where = "model_weights/" + layer;
    if (!IsGroup(mw.get(), layer)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer_names lists ", layer, " but ", where, " is missing"));
    }
    Hid g(H5Gopen2(mw.get(), layer.c_str(), H5P_DEFAULT), H5Gclose);
    absl::StatusOr<std::vector<std::string>> weight_names =
        StringAttribute(g.get(), "weight_names", where, &present);
    if (!weight_names.ok()) return weight_names.status();
    std::vector<NdArray> weights;
    for (const std::string& wn : *weight_names) {
      if (!HasLink(g.get(), wn)) {
        return absl::InvalidArgumentError(
            absl::StrCat("weight ", where, "/", wn, " is missing"));
      }
      absl::StatusOr<NdArray> a = ReadDataset(g.get(), wn);
      if (!a.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": ", a.status().message()));
      }
      weights.push_back(*std::move(a));
    }
    if (!weights.empty()) out->weights[layer] = std::move(weights);
  }
  return absl::OkStatus();
}

absl::StatusOr<KerasFile> ReadLegacyH5(const std::string& path) {
  Hid file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) {
    return Invalid(path, "not a readable HDF5 file (truncated or corrupt)");
  }
  KerasFile out;
  out.format = KerasFile::Format::kLegacyH5;
  bool present = false;
  absl::StatusOr<std::string> config =
      TextAttribute(file.get(), "model_config", "the file", &present);
  if (!config.ok())
    return Invalid(path, std::string(config.status().message()));
  if (!present) {
    return Invalid(path,
                   "no model_config attribute: the file holds weights only "
                   "(save the model with model.save(), not save_weights())");
  }
  out.model_config = *config;
  absl::StatusOr<std::string> training =
      TextAttribute(file.get(), "training_config", "the file", &present);
  if (!training.ok()) {
    return Invalid(path, std::string(training.status().message()));
  }
  out.training_config = *training;
  absl::StatusOr<std::string> version =
      TextAttribute(file.get(), "keras_version", "the file", &present);
  if (version.ok()) out.keras_version = *version;
  if (absl::Status s = ReadLegacyWeights(file.get(), &out); !s.ok()) {
    return Invalid(path, std::string(s.message()));
  }
  return out;
}

// One zip entry's bytes; NotFound when the archive has no such entry.
absl::StatusOr<std::string> ReadZipEntry(zip_t* archive,
                                         const std::string& name) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat(archive, name.c_str(), 0, &st) != 0) {
    return absl::NotFoundError(name + " is missing");
  }
  zip_file_t* f = zip_fopen(archive, name.c_str(), 0);
  if (f == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open ", name, ": ",
                     zip_error_strerror(zip_get_error(archive))));
  }
  std::string bytes;
  if (st.valid & ZIP_STAT_SIZE) bytes.reserve(st.size);
  char buf[65536];
  zip_int64_t n;
  while ((n = zip_fread(f, buf, sizeof buf)) > 0) {
    bytes.append(buf, static_cast<size_t>(n));
  }
  std::string error;
  if (n < 0) error = zip_error_strerror(zip_file_get_error(f));
  zip_fclose(f);
  if (!error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", name, ": ", error));
  }
  return bytes;
}

// HDF5 opens an in-memory image through the core driver.
absl::Status ReadWeightsImage(std::string image, KerasFile* out) {
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.ok() || H5Pset_fapl_core(fapl.get(), 1 << 20, 0) < 0 ||
      H5Pset_file_image(fapl.get(), image.data(), image.size()) < 0) {
    return absl::InternalError("HDF5 cannot open an in-memory file");
  }
  // The core driver refuses an image whose name exists on disk; nothing
  // can exist below /dev/null.
  Hid file(H5Fopen("/dev/null/model.weights.h5", H5F_ACC_RDONLY, fapl.get()),
           H5Fclose);
  if (!file.ok()) {
    return absl::InvalidArgumentError(
        "model.weights.h5 is not a readable HDF5 file (truncated or "
        "corrupt)");
  }
  return ReadKeras3Weights(file.get(), out);
}

std::string KerasVersionFromMetadata(const std::string& json) {
  // metadata.json is {"keras_version": "3.15.1", "date_saved": ...}; only
  // the version is wanted, and only to tell Keras 2 from Keras 3.
  const std::string key = "\"keras_version\"";
  size_t p = json.find(key);
  if (p == std::string::npos) return "";
  p = json.find('"', json.find(':', p + key.size()));
  if (p == std::string::npos) return "";
  const size_t e = json.find('"', p + 1);
  if (e == std::string::npos) return "";
  return json.substr(p + 1, e - p - 1);
}

absl::StatusOr<KerasFile> ReadKeras3(const std::string& path) {
  int code = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (archive == nullptr) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    std::string what = zip_error_strerror(&error);
    zip_error_fini(&error);
    return Invalid(path, absl::StrCat("not a readable .keras zip (", what,
                                      "; truncated or corrupt)"));
  }
  std::unique_ptr<zip_t, void (*)(zip_t*)> closer(archive, zip_discard);
  KerasFile out;
  out.format = KerasFile::Format::kKeras3;
  absl::StatusOr<std::string> config = ReadZipEntry(archive, "config.json");
  if (!config.ok()) {
    return Invalid(path, absl::StrCat(config.status().message(),
                                      absl::IsNotFound(config.status())
                                          ? " (a .keras file keeps the model "
                                            "there)"
                                          : ""));
  }
  out.model_config = *std::move(config);
  absl::StatusOr<std::string> meta = ReadZipEntry(archive, "metadata.json");
  if (meta.ok()) out.keras_version = KerasVersionFromMetadata(*meta);
  absl::StatusOr<std::string> image = ReadZipEntry(archive, "model.weights.h5");
  if (!image.ok()) {
    return Invalid(path, absl::StrCat(image.status().message(),
                                      absl::IsNotFound(image.status())
                                          ? " (a .keras file keeps the weights "
                                            "there)"
                                          : ""));
  }
  if (absl::Status s = ReadWeightsImage(*std::move(image), &out); !s.ok()) {
    return Invalid(path, std::string(s.message()));
  }
  return out;
}

}  // namespace

absl::StatusOr<KerasFile> ReadKerasFile(const std::string& path) {
  SilenceHdf5Errors();
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path + ": no such file");
  char magic[8] = {};
  in.read(magic, sizeof magic);
  const std::streamsize got = in.gcount();
  if (got >= 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0) {
    return ReadKeras3(path);
  }
  if (got == 8 && std::memcmp(magic, "\x89HDF\r\n\x1a\n", 8) == 0) {
    return ReadLegacyH5(path);
  }
  return Invalid(path,
                 "neither a Keras 3 .keras file (zip) nor a Keras .h5 file "
                 "(HDF5)");
}

}  // namespace driftscope
