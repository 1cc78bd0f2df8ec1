// JSON text pieces shared by every writer in driftscope (run.json, reports,
// environment): a quoted, escaped string and a number in the shortest form
// that reads back to the same double (NaN and ±Inf become null). Pure.
#ifndef DRIFTSCOPE_ENGINE_CORE_JSON_TEXT_H_
#define DRIFTSCOPE_ENGINE_CORE_JSON_TEXT_H_

#include <string>

namespace driftscope {

std::string JsonQuote(const std::string& s);
std::string JsonNumber(double v);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CORE_JSON_TEXT_H_
