// The request features and token logprobs of the fake. See fake_features.h.

#include "fake_features.h"

#include <algorithm>
#include <cstddef>

#include "fake_util.h"

namespace llmcache::fake::internal {

namespace json = boost::json;

namespace {

json::object TokenEntry(std::string_view token, double logprob) {
  json::object e;
  e["token"] = token;
  e["logprob"] = logprob;
  json::array bytes;
  for (char ch : token) {
    bytes.emplace_back(static_cast<int64_t>(static_cast<unsigned char>(ch)));
  }
  e["bytes"] = std::move(bytes);
  return e;
}

}  // namespace

Features ReadFeatures(const json::object& body) {
  Features f;
  if (const json::value* n = body.if_contains("n");
      n != nullptr && n->is_int64()) {
    f.n = static_cast<int>(std::clamp<int64_t>(n->get_int64(), 1, kMaxChoices));
  }
  if (const json::value* lp = body.if_contains("logprobs");
      lp != nullptr && lp->is_bool()) {
    f.logprobs = lp->get_bool();
  }
  if (const json::value* t = body.if_contains("top_logprobs");
      t != nullptr && t->is_int64()) {
    f.top_logprobs = static_cast<int>(
        std::clamp<int64_t>(t->get_int64(), 0, kMaxTopLogprobs));
  }
  // docs/openrouter.md (fields in the key): `reasoning` wins over the
  // legacy `include_reasoning` and `reasoning_effort`.
  if (const json::value* r = body.if_contains("reasoning");
      r != nullptr && r->is_object()) {
    const json::object& o = r->get_object();
    f.reasoning = true;
    const json::value* exclude = o.if_contains("exclude");
    const json::value* enabled = o.if_contains("enabled");
    const json::string* effort = FindString(o, "effort");
    if ((exclude != nullptr && exclude->is_bool() && exclude->get_bool()) ||
        (enabled != nullptr && enabled->is_bool() && !enabled->get_bool()) ||
        (effort != nullptr && *effort == "none")) {
      f.reasoning = false;
    }
  } else if (const json::value* inc = body.if_contains("include_reasoning");
             inc != nullptr && inc->is_bool()) {
    f.reasoning = inc->get_bool();
  } else if (const json::string* e = FindString(body, "reasoning_effort")) {
    f.reasoning = *e != "none";
  }
  return f;
}

json::array TokenLogprobs(std::string_view text, uint64_t seed, int top) {
  json::array out;
  size_t pos = 0;
  for (uint64_t i = 0; pos < text.size(); ++i) {
    size_t end = Utf8Floor(text, std::min(text.size(), pos + 4));
    if (end <= pos) end = std::min(text.size(), pos + 4);
    const std::string_view token = text.substr(pos, end - pos);
    const double logprob =
        -static_cast<double>(SplitMix(seed ^ (i * 0x9E3779B97F4A7C15ULL)) %
                             4096) /
        1024.0;
    json::object e = TokenEntry(token, logprob);
    json::array alternatives;
    for (int j = 0; j < top; ++j) {
      alternatives.emplace_back(
          j == 0 ? TokenEntry(token, logprob)
                 : TokenEntry(" alt" + std::to_string(j), logprob - j));
    }
    e["top_logprobs"] = std::move(alternatives);
    out.emplace_back(std::move(e));
    pos = end;
  }
  return out;
}

std::vector<json::array> TokenRuns(const json::array& tokens, int n) {
  std::vector<json::array> runs;
  if (tokens.empty()) return runs;
  const size_t pieces =
      std::clamp<size_t>(static_cast<size_t>(std::max(n, 1)), 1, tokens.size());
  size_t begin = 0;
  for (size_t i = 1; i <= pieces; ++i) {
    const size_t end = tokens.size() * i / pieces;
    if (end > begin) {
      runs.emplace_back(tokens.begin() + static_cast<std::ptrdiff_t>(begin),
                        tokens.begin() + static_cast<std::ptrdiff_t>(end));
      begin = end;
    }
  }
  return runs;
}

std::string RunText(const json::array& run) {
  std::string text;
  for (const json::value& t : run) {
    const json::string& s = t.at("token").as_string();
    text.append(s.data(), s.size());
  }
  return text;
}

}  // namespace llmcache::fake::internal
