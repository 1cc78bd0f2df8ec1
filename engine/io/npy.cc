#include "engine/io/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace driftscope {
namespace {

constexpr absl::string_view kMagic("\x93NUMPY", 6);
constexpr int64_t kMaxHeaderBytes = 1 << 20;  // numpy's own reader caps at 10k

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(what);
}

// A reader for the Python-literal dict numpy writes as the header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// Only the forms numpy (and compatible writers) produce are accepted.
class HeaderParser {
 public:
  explicit HeaderParser(absl::string_view text) : s_(text) {}

  absl::Status Parse(std::string* descr, bool* fortran_order,
                     std::vector<int64_t>* shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    SkipSpace();
    if (!Eat('{')) return Error("expected '{'");
    while (true) {
      SkipSpace();
      if (Eat('}')) break;
      std::string key;
      if (absl::Status s = ParseString(&key); !s.ok()) return s;
      SkipSpace();
      if (!Eat(':')) return Error("expected ':' after a key");
      SkipSpace();
      if (key == "descr") {
        if (Peek() == '[') {
          return Invalid(
              "structured (record) dtypes are not supported; save a plain "
              "float32 or float64 array");
        }
        if (absl::Status s = ParseString(descr); !s.ok()) return s;
        have_descr = true;
      } else if (key == "fortran_order") {
        if (absl::Status s = ParseBool(fortran_order); !s.ok()) return s;
        have_fortran = true;
      } else if (key == "shape") {
        if (absl::Status s = ParseShape(shape); !s.ok()) return s;
        have_shape = true;
      } else {
        return Invalid(absl::StrCat("unexpected header key '", key,
                                    "'; expected descr, fortran_order, shape"));
      }
      SkipSpace();
      if (Eat(',')) continue;
      SkipSpace();
      if (Eat('}')) break;
      return Error("expected ',' or '}'");
    }
    if (!have_descr || !have_fortran || !have_shape) {
      return Invalid(
          "header lacks one of the keys 'descr', 'fortran_order', 'shape'");
    }
    SkipSpace();
    if (pos_ != s_.size()) return Error("trailing characters after '}'");
    return absl::OkStatus();
  }

 private:
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  void SkipSpace() {
    while (pos_ < s_.size() && absl::ascii_isspace(s_[pos_])) ++pos_;
  }
  absl::Status Error(absl::string_view what) const {
    return Invalid(absl::StrCat("malformed header: ", what, " at offset ", pos_,
                                " in \"", absl::CEscape(s_.substr(0, 200)),
                                s_.size() > 200 ? "..." : "", "\""));
  }
  absl::Status ParseString(std::string* out) {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') return Error("expected a quoted string");
    ++pos_;
    const size_t end = s_.find(quote, pos_);
    if (end == absl::string_view::npos) return Error("unterminated string");
    *out = std::string(s_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return absl::OkStatus();
  }
  absl::Status ParseBool(bool* out) {
    if (absl::StartsWith(s_.substr(pos_), "True")) {
      *out = true;
      pos_ += 4;
    } else if (absl::StartsWith(s_.substr(pos_), "False")) {
      *out = false;
      pos_ += 5;
    } else {
      return Error("expected True or False");
    }
    return absl::OkStatus();
  }
  absl::Status ParseShape(std::vector<int64_t>* shape) {
    shape->clear();
    if (!Eat('(')) return Error("expected '(' to start the shape");
    while (true) {
      SkipSpace();
      if (Eat(')')) return absl::OkStatus();
      if (!absl::ascii_isdigit(Peek())) {
        return Error("expected a non-negative integer in the shape");
      }
      int64_t v = 0;
      while (absl::ascii_isdigit(Peek())) {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) {
          return Error("shape dimension too large");
        }
        v = v * 10 + (s_[pos_++] - '0');
      }
      Eat('L');  // Python 2 long literal
      shape->push_back(v);
      SkipSpace();
      if (Eat(',')) continue;
      SkipSpace();
      if (Eat(')')) return absl::OkStatus();
      return Error("expected ',' or ')' in the shape");
    }
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

absl::StatusOr<DType> DTypeFromDescr(const std::string& descr) {
  if (descr == "<f4") return DType::kFloat32;
  if (descr == "<f8") return DType::kFloat64;
  const std::string hint =
      "; save float32 or float64 in little-endian byte order "
      "(np.asarray(a, dtype='<f4') or '<f8')";
  const std::string found = absl::StrCat("dtype '", descr, "'");
  const char order = descr.empty() ? '\0' : descr[0];
  const std::string kind =
      (order == '<' || order == '>' || order == '=' || order == '|')
          ? descr.substr(1)
          : descr;
  const bool is_f48 = kind == "f4" || kind == "f8";
  if (is_f48 && order == '>') {
    return Invalid(
        absl::StrCat(found, " is big-endian, which is not supported", hint));
  }
  if (is_f48) {
    // '=' (native) or no order in a file does not say which machine wrote it;
    // numpy itself never writes these for multi-byte types.
    return Invalid(absl::StrCat(found, " does not state its byte order", hint));
  }
  return Invalid(absl::StrCat(found, " is not supported", hint));
}

// What the preamble and header of a .npy say: the array's dtype and shape,
// where its data starts and how many bytes it has.
struct NpyLayout {
  DType dtype;
  // 4 or 8 for a little-endian int32/int64 file read by ReadNpyIntegers
  // (dtype is then the float64 it is converted to); 0 for float files.
  int int_bytes = 0;
  std::vector<int64_t> shape;
  uint64_t data_offset = 0;
  uint64_t data_bytes = 0;
};

// Reads the preamble and header from `bytes`, which may stop anywhere after
// the header (ReadNpy passes only the file's first bytes).
absl::StatusOr<NpyLayout> ParseNpyLayout(absl::string_view bytes,
                                         bool integers = false) {
  if (bytes.size() < kMagic.size() + 2 ||
      bytes.substr(0, kMagic.size()) != kMagic) {
    return Invalid(
        "not a .npy file: it does not start with the magic \"\\x93NUMPY\"");
  }
  const int major = static_cast<uint8_t>(bytes[6]);
  const int minor = static_cast<uint8_t>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0) {
    return Invalid(absl::StrCat("unsupported .npy format version ", major, ".",
                                minor, "; expected 1.0, 2.0 or 3.0"));
  }
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t prefix = 8 + len_bytes;
  if (bytes.size() < prefix) {
    return Invalid(absl::StrCat("truncated: ", bytes.size(),
                                " bytes, shorter than the .npy preamble"));
  }
  uint64_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i) {
    header_len |= uint64_t{static_cast<uint8_t>(bytes[8 + i])} << (8 * i);
  }
  if (header_len > static_cast<uint64_t>(kMaxHeaderBytes)) {
    return Invalid(absl::StrCat("header length ", header_len,
                                " is implausibly large (limit ",
                                kMaxHeaderBytes, ")"));
  }
  if (bytes.size() < prefix + header_len) {
    return Invalid(absl::StrCat("truncated: the header needs ", header_len,
                                " bytes but the file has ",
                                bytes.size() - prefix, " after the preamble"));
  }
  // Version 3.0 headers are UTF-8; every key and value we accept is ASCII, so
  // a byte-wise parse is exact for them and rejects anything else.
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  HeaderParser parser(bytes.substr(prefix, header_len));
  if (absl::Status s = parser.Parse(&descr, &fortran_order, &shape); !s.ok()) {
    return s;
  }
  const int int_bytes = !integers        ? 0
                        : descr == "<i4" ? 4
                        : descr == "<i8" ? 8
                                         : 0;
  absl::StatusOr<DType> dtype =
      int_bytes > 0 ? DType::kFloat64 : DTypeFromDescr(descr);
  if (!dtype.ok()) {
    if (!integers) return dtype.status();
    return Invalid(absl::StrCat(
        "dtype '", descr,
        "' is not supported; save int32 or int64 (or float32/float64 "
        "holding integers) in little-endian byte order"));
  }
  int64_t count = 1;
  int non_unit_dims = 0;
  for (int64_t d : shape) {
    if (d > 1) ++non_unit_dims;
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / 8 / d) {
      return Invalid(
          absl::StrCat("shape ", NumpyShapeText(shape), " is too large"));
    }
    count *= d;
  }
  // With at most one dimension longer than 1, Fortran and C order lay the
  // bytes out identically, so such a file is unambiguous.
  if (fortran_order && non_unit_dims > 1) {
    return Invalid(absl::StrCat("fortran_order=True (shape ",
                                NumpyShapeText(shape),
                                ") is not supported; save a C-order array "
                                "(np.save(path, np.ascontiguousarray(a)))"));
  }
  NpyLayout layout;
  layout.dtype = *dtype;
  layout.int_bytes = int_bytes;
  layout.shape = std::move(shape);
  layout.data_offset = prefix + header_len;
  layout.data_bytes = static_cast<uint64_t>(
      count * (int_bytes > 0 ? int_bytes : DTypeSize(*dtype)));
  return layout;
}

absl::Status CheckDataSize(const NpyLayout& l, uint64_t actual) {
  if (actual == l.data_bytes) return absl::OkStatus();
  return Invalid(absl::StrCat(
      actual < l.data_bytes ? "truncated: " : "size mismatch: ", "shape ",
      NumpyShapeText(l.shape), " of ",
      l.int_bytes == 4   ? "int32"
      : l.int_bytes == 8 ? "int64"
                         : DTypeName(l.dtype),
      " needs ", l.data_bytes, " data bytes but the file has ", actual));
}

}  // namespace

absl::StatusOr<NdArray> ParseNpy(absl::string_view bytes) {
  absl::StatusOr<NpyLayout> l = ParseNpyLayout(bytes);
  if (!l.ok()) return l.status();
  if (absl::Status s = CheckDataSize(*l, bytes.size() - l->data_offset);
      !s.ok()) {
    return s;
  }
  NdArray array(l->dtype, l->shape);
  if (l->data_bytes > 0) {
    std::memcpy(array.raw(), bytes.data() + l->data_offset, l->data_bytes);
  }
  return array;
}

std::string SerializeNpy(const NdArray& array) {
  // Byte-identical to numpy's np.save (format 1.0): sorted keys, spare
  // spaces so the first axis can grow in place, padded to 64 bytes.
  std::string header = absl::StrCat(
      "{'descr': '", array.dtype() == DType::kFloat32 ? "<f4" : "<f8",
      "', 'fortran_order': False, 'shape': ", NumpyShapeText(array.shape()),
      ", }");
  if (!array.shape().empty()) {
    constexpr int kGrowthAxisMaxDigits = 21;
    const int digits =
        static_cast<int>(std::to_string(array.shape()[0]).size());
    header.append(static_cast<size_t>(kGrowthAxisMaxDigits - digits), ' ');
  }
  const size_t hlen = header.size() + 1;
  const size_t pad = 64 - ((kMagic.size() + 2 + 2 + hlen) % 64);
  header.append(pad, ' ');
  header.push_back('\n');
  std::string out(kMagic);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xFF));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(reinterpret_cast<const char*>(array.raw()),
             static_cast<size_t>(array.nbytes()));
  return out;
}

namespace {

absl::StatusOr<NdArray> ReadNpyFile(const std::string& path, bool integers) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
  // below like any file that is not a regular one.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = absl::StrCat(path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg)
                         : absl::InvalidArgumentError(msg);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file (",
                     S_ISDIR(st.st_mode)    ? "a directory"
                     : S_ISFIFO(st.st_mode) ? "a FIFO"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                                            : "not a plain file",
                     "); give a .npy file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // Reads exactly n bytes at the current offset into out.
  auto read_all = [fd](char* out, uint64_t n) {
    while (n > 0) {
      const ssize_t got = ::read(fd, out, n);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      out += got;
      n -= static_cast<uint64_t>(got);
    }
    return true;
  };
  auto named = [&path](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  };
  // The preamble and header first: the size the data must have is known
  // before any memory is taken for it.
  std::string head(static_cast<size_t>(std::min<uint64_t>(
                       size, static_cast<uint64_t>(12 + kMaxHeaderBytes))),
                   '\0');
  if (!read_all(head.data(), head.size())) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": read error"));
  }
  absl::StatusOr<NpyLayout> layout = ParseNpyLayout(head, integers);
  if (!layout.ok()) return named(layout.status());
  if (absl::Status s = CheckDataSize(*layout, size - layout->data_offset);
      !s.ok()) {
    return named(s);
  }
  NdArray array(layout->dtype, layout->shape);
  std::string ints;
  if (layout->int_bytes > 0) ints.resize(layout->data_bytes);
  char* data = layout->int_bytes > 0 ? ints.data()
                                     : reinterpret_cast<char*>(array.raw());
  const uint64_t in_head = head.size() - layout->data_offset;
  if (in_head > 0)
    std::memcpy(data, head.data() + layout->data_offset, in_head);
  if (!read_all(data + in_head, layout->data_bytes - in_head)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": read error (the file changed while read?)"));
  }
  if (layout->int_bytes > 0) {
    // Exact for |v| < 2^53; larger values are no valid id anyway.
    double* out = array.data<double>();
    for (int64_t i = 0; i < array.size(); ++i) {
      if (layout->int_bytes == 4) {
        int32_t v;
        std::memcpy(&v, data + 4 * i, 4);
        out[i] = static_cast<double>(v);
      } else {
        int64_t v;
        std::memcpy(&v, data + 8 * i, 8);
        out[i] = static_cast<double>(v);
      }
    }
  }
  return array;
}

}  // namespace

absl::StatusOr<NdArray> ReadNpy(const std::string& path) {
  return ReadNpyFile(path, /*integers=*/false);
}

absl::StatusOr<NdArray> ReadNpyIntegers(const std::string& path) {
  return ReadNpyFile(path, /*integers=*/true);
}

absl::Status WriteNpy(const std::string& path, const NdArray& array) {
  const std::string tmp = path + ".tmp";
  const std::string bytes = SerializeNpy(array);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::InternalError(
        absl::StrCat(tmp, ": cannot create: ", std::strerror(errno)));
  }
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = std::fflush(f) == 0 && ok;
  // fsync so that a crash after rename() cannot leave an empty file behind.
  ok = ::fsync(::fileno(f)) == 0 && ok;
  const int err = errno;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    return absl::InternalError(
        absl::StrCat(tmp, ": write failed: ", std::strerror(err)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rename_err = errno;
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("rename ", tmp, " -> ", path, ": ",
                                            std::strerror(rename_err)));
  }
  return absl::OkStatus();
}

}  // namespace driftscope
