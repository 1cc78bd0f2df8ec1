#include "engine/numerics/profile_diff.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace driftscope {

namespace {

void Copy(const Profile& from, const std::string& knob, Profile* to);

// The knob as a knob-string piece ("matmul=tf32"), from the canonical
// ToString of a default profile with only that knob copied, so names never
// drift apart from the parser's.
std::string Piece(const Profile& p, const std::string& knob) {
  Profile only;
  Copy(p, knob, &only);
  std::vector<std::string> parts = absl::StrSplit(only.ToString(), ',');
  if (knob == "precision") return parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const bool is_threads = parts[i].rfind("threads=", 0) == 0;
    if (is_threads == (knob == "threads")) return parts[i];
  }
  return absl::StrCat(knob, "=default");  // the knob is at its default
}

void Copy(const Profile& from, const std::string& knob, Profile* to) {
  if (knob == "precision") to->precision = from.precision;
  if (knob == "matmul") to->matmul = from.matmul;
  if (knob == "isa") to->isa = from.isa;
  if (knob == "gemm") {
    to->gemm = from.gemm;
    to->split_k = from.split_k;
  }
  if (knob == "act") to->act = from.act;
  if (knob == "impl") to->implementation = from.implementation;
  if (knob == "threads") to->threads = from.threads;
  if (knob == "reduce") to->thread_reduce = from.thread_reduce;
  if (knob == "nondet") to->nondet = from.nondet;
  if (knob == "perturb") to->perturb = from.perturb;
  if (knob == "sr") to->sr = from.sr;
  if (knob == "loss_scale") to->loss_scale = from.loss_scale;
}

}  // namespace

std::vector<KnobChange> ProfileDifferences(const Profile& a, const Profile& b) {
  static const char* kKnobs[] = {
      "precision", "matmul", "isa",    "gemm",    "act", "impl",
      "threads",   "reduce", "nondet", "perturb", "sr",  "loss_scale"};
  std::vector<KnobChange> out;
  for (const char* knob : kKnobs) {
    Profile probe = a;
    Copy(b, knob, &probe);
    if (probe != a) out.push_back({knob, Piece(b, knob)});
  }
  return out;
}

Profile ApplyKnobs(const Profile& a, const Profile& b,
                   const std::vector<KnobChange>& changes) {
  Profile p = a;
  p.preset.clear();
  for (const KnobChange& c : changes) Copy(b, c.knob, &p);
  return p;
}

}  // namespace driftscope
