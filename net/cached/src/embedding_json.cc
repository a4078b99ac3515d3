#include "embedding_json.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <exception>
#include <optional>

#include "json_spans.h"
#include "llmcache/net/json_util.h"

namespace llmcache::net::embedding_json {
namespace {

namespace json = boost::json;

Result<json::object> ParseObject(std::string_view body, const char* what) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return InvalidArgumentError(std::string(what) + " is not a JSON object");
  }
  return std::move(v.as_object());
}

bool IsTokenArray(const json::value& v) {
  if (!v.is_array() || v.as_array().empty()) return false;
  for (const json::value& t : v.as_array()) {
    if (!t.is_int64() && !t.is_uint64()) return false;
  }
  return true;
}

// Shares `total` out in proportion to `weights` (largest remainder), so
// that the shares add up to `total` exactly.
template <typename T>
std::vector<T> Share(T total, const std::vector<uint64_t>& weights) {
  std::vector<T> out(weights.size(), 0);
  long double sum = 0;
  for (uint64_t w : weights) sum += static_cast<long double>(w);
  if (weights.empty() || sum <= 0) return out;
  T given = 0;
  std::vector<std::pair<long double, size_t>> rest;
  for (size_t i = 0; i < weights.size(); ++i) {
    const long double exact = static_cast<long double>(total) *
                              static_cast<long double>(weights[i]) / sum;
    out[i] = static_cast<T>(std::floor(exact));
    given += out[i];
    rest.emplace_back(exact - std::floor(exact), i);
  }
  std::sort(rest.begin(), rest.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < total && k < rest.size(); ++k, ++given) {
    ++out[rest[k].second];
  }
  return out;
}

uint64_t U64(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64()) return v->as_int64() > 0 ? v->as_int64() : 0;
  if (v->is_double() && v->as_double() > 0) {
    return static_cast<uint64_t>(v->as_double());
  }
  return 0;
}

// Text assembly of answers from the spans of valid JSON (json_spans.h): the
// vectors are copied as written instead of parsed and printed again.
class ObjectWriter {
 public:
  void Add(std::string_view key, std::string_view value) {
    out_ += first_ ? '{' : ',';
    first_ = false;
    out_ += '"';
    out_ += key;
    out_ += "\":";
    out_ += value;
  }
  std::string Finish() {
    if (first_) out_ += '{';
    out_ += '}';
    return std::move(out_);
  }

 private:
  std::string out_;
  bool first_ = true;
};

// `item` (an embedding object) with its "index" set to `index`.
std::optional<std::string> WithIndex(std::string_view item, size_t index) {
  std::optional<std::vector<json_spans::Member>> members =
      json_spans::Members(item);
  if (!members) return std::nullopt;
  ObjectWriter w;
  for (const json_spans::Member& m : *members) {
    if (m.key != "index") w.Add(m.key, m.value);
  }
  w.Add("index", std::to_string(index));
  return w.Finish();
}

// The members of `answer` but data and usage, then `data` and `usage`.
std::optional<std::string> WithDataAndUsage(
    const std::vector<json_spans::Member>& answer, std::string_view data,
    std::string_view usage) {
  ObjectWriter w;
  bool has_object = false;
  for (const json_spans::Member& m : answer) {
    if (m.key == "data" || m.key == "usage") continue;
    has_object |= m.key == "object";
    w.Add(m.key, m.value);
  }
  if (!has_object) w.Add("object", "\"list\"");
  w.Add("data", data);
  w.Add("usage", usage);
  return w.Finish();
}

// The raw embedding objects of `answer`'s data by their index (n of them,
// each index 0..n-1 once), or nullopt.
std::optional<std::vector<std::string_view>> RawItemsByIndex(
    const std::vector<json_spans::Member>& answer, size_t n) {
  std::optional<std::vector<std::string_view>> items =
      json_spans::Elements(json_spans::Find(answer, "data"));
  if (!items || items->size() != n) return std::nullopt;
  std::vector<std::string_view> by_index(n);
  for (std::string_view item : *items) {
    std::optional<std::vector<json_spans::Member>> members =
        json_spans::Members(item);
    if (!members) return std::nullopt;
    const std::string_view index = json_spans::Find(*members, "index");
    size_t i = 0;
    const auto [end, ec] =
        std::from_chars(index.data(), index.data() + index.size(), i);
    if (ec != std::errc() || end != index.data() + index.size() || i >= n ||
        !by_index[i].empty()) {
      return std::nullopt;
    }
    by_index[i] = item;
  }
  return by_index;
}

}  // namespace

Result<std::vector<Input>> SplitRequest(std::string_view body) {
  try {
    Result<json::object> req = ParseObject(body, "the embeddings request");
    if (!req.ok()) return req.status();
    json::value* input = req->if_contains("input");
    if (input == nullptr || !input->is_array() || input->as_array().empty()) {
      return InvalidArgumentError(
          "embeddings request member \"input\" is not a non-empty array");
    }
    json::array items = std::move(input->as_array());
    if (items.size() > kMaxInputs) {
      return InvalidArgumentError(
          "embeddings request has " + std::to_string(items.size()) +
          " inputs, over the limit of " + std::to_string(kMaxInputs));
    }
    std::vector<Input> out;
    out.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      json::value& item = items[i];
      Input in;
      if (item.is_string()) {
        in.weight = std::max<uint64_t>(1, item.as_string().size());
      } else if (IsTokenArray(item)) {
        in.weight = item.as_array().size();
      } else {
        return InvalidArgumentError(
            "embeddings request member \"input\" item " + std::to_string(i) +
            " is neither a string nor an array of token ids");
      }
      (*req)["input"] = std::move(item);
      in.body = json_util::Serialize(*req);
      out.push_back(std::move(in));
    }
    return out;
  } catch (const std::exception& e) {
    return ResourceExhaustedError(std::string("cannot split the batch: ") +
                                  e.what());
  }
}

Result<std::string> SubsetRequest(std::string_view body,
                                  const std::vector<size_t>& indices) {
  try {
    Result<json::object> req = ParseObject(body, "the embeddings request");
    if (!req.ok()) return req.status();
    json::value* input = req->if_contains("input");
    if (input == nullptr || !input->is_array()) {
      return InvalidArgumentError(
          "embeddings request member \"input\" is not an array");
    }
    const json::array& all = input->as_array();
    json::array subset;
    subset.reserve(indices.size());
    for (size_t i : indices) {
      if (i >= all.size()) return InvalidArgumentError("input index too large");
      subset.push_back(all[i]);
    }
    (*req)["input"] = std::move(subset);
    return json_util::Serialize(*req);
  } catch (const std::exception& e) {
    return ResourceExhaustedError(std::string("cannot subset the batch: ") +
                                  e.what());
  }
}

Result<std::vector<InputAnswer>> SplitAnswer(
    std::string_view body, const std::vector<uint64_t>& weights) {
  try {
    Result<json::object> answer = ParseObject(body, "the embeddings answer");
    if (!answer.ok()) return answer.status();
    json::value* data = answer->if_contains("data");
    if (data == nullptr || !data->is_array()) {
      return InvalidArgumentError(
          "the embeddings answer has no \"data\" array");
    }
    const size_t n = weights.size();
    json::array items = std::move(data->as_array());
    if (items.size() != n) {
      return InvalidArgumentError(
          "the embeddings answer holds " + std::to_string(items.size()) +
          " embeddings for " + std::to_string(n) + " inputs");
    }
    std::vector<json::value*> by_index(n, nullptr);
    for (json::value& item : items) {
      json::object* o = item.if_object();
      const json::value* index = o ? o->if_contains("index") : nullptr;
      const json::value* embedding = o ? o->if_contains("embedding") : nullptr;
      if (index == nullptr || embedding == nullptr ||
          !(embedding->is_array() || embedding->is_string())) {
        return InvalidArgumentError(
            "an embedding of the answer has no index or no vector");
      }
      const int64_t i = index->is_int64() ? index->as_int64()
                        : index->is_uint64()
                            ? static_cast<int64_t>(index->as_uint64())
                            : -1;
      if (i < 0 || static_cast<size_t>(i) >= n || by_index[i] != nullptr) {
        return InvalidArgumentError(
            "the embeddings answer's indices are not 0.." +
            std::to_string(n - 1) + " once each");
      }
      by_index[i] = &item;
    }
    // The usage shared out by weight.
    uint64_t prompt = 0, total = 0;
    int64_t cost_nanousd = 0;
    if (const json::value* u = answer->if_contains("usage");
        u != nullptr && u->is_object()) {
      prompt = U64(u->as_object(), "prompt_tokens");
      total = U64(u->as_object(), "total_tokens");
      if (const json::value* c = u->as_object().if_contains("cost");
          c != nullptr && c->is_number()) {
        cost_nanousd =
            static_cast<int64_t>(std::llround(c->to_number<double>() * 1e9));
      }
    }
    // Shared separately, prompt and completion tokens stay consistent (a
    // share of a total could round below the share of its prompt).
    const std::vector<uint64_t> prompts = Share(prompt, weights);
    const std::vector<uint64_t> completions =
        Share(std::max(total, prompt) - prompt, weights);
    const std::vector<int64_t> costs =
        Share<int64_t>(std::max<int64_t>(0, cost_nanousd), weights);
    std::vector<InputAnswer> out(n);
    for (size_t i = 0; i < n; ++i) {
      out[i].usage.prompt_tokens = prompts[i];
      out[i].usage.completion_tokens = completions[i];
      out[i].usage.cost_nanousd = costs[i];
    }
    auto usage_of = [&](size_t i) {
      json::object usage;
      usage["prompt_tokens"] = prompts[i];
      usage["total_tokens"] = prompts[i] + completions[i];
      if (cost_nanousd > 0) {
        usage["cost"] = static_cast<double>(costs[i]) / 1e9;
      }
      return usage;
    };
    // The text of each vector as the upstream wrote it.
    if (std::optional<std::vector<json_spans::Member>> top =
            json_spans::Members(body)) {
      if (std::optional<std::vector<std::string_view>> raw =
              RawItemsByIndex(*top, n)) {
        bool whole = true;
        for (size_t i = 0; i < n && whole; ++i) {
          std::optional<std::string> item = WithIndex((*raw)[i], 0);
          std::optional<std::string> one =
              item ? WithDataAndUsage(*top, "[" + *item + "]",
                                      json_util::Serialize(usage_of(i)))
                   : std::nullopt;
          if (one) {
            out[i].body = std::move(*one);
          } else {
            whole = false;
          }
        }
        if (whole) return out;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      json::object one = *answer;  // every member but data and usage
      json::object item = by_index[i]->as_object();
      item["index"] = 0;
      json::array data_one;
      data_one.push_back(std::move(item));
      one["data"] = std::move(data_one);
      one["usage"] = usage_of(i);
      out[i].body = json_util::Serialize(one);
    }
    return out;
  } catch (const std::exception& e) {
    return ResourceExhaustedError(std::string("cannot split the answer: ") +
                                  e.what());
  }
}

namespace {

// Assemble without parsing the vectors; nullopt when some text is not in
// the expected shape (the caller then parses it all). The answer is written
// into one buffer reserved up front: a batch's answer runs to megabytes, and
// growing it (or copying it between buffers) costs more than the scan.
std::optional<std::string> AssembleSpans(
    const std::vector<std::string_view>& inputs, std::string_view upstream,
    const Spent& spent) {
  std::optional<std::vector<json_spans::Member>> top =
      json_spans::Members(upstream.empty() ? inputs[0] : upstream);
  if (!top) return std::nullopt;
  json::object usage;
  if (!upstream.empty()) {
    const std::string_view u = json_spans::Find(*top, "usage");
    boost::system::error_code ec;
    json::value v = u.empty() ? json::value() : json::parse(u, ec);
    if (!ec && v.is_object()) usage = std::move(v.as_object());
  }
  usage["prompt_tokens"] = spent.prompt_tokens;
  usage["total_tokens"] = spent.total_tokens;
  if (spent.has_cost) usage["cost"] = spent.cost;

  size_t size = 64;
  for (std::string_view in : inputs) size += in.size() + 16;
  for (const json_spans::Member& m : *top)
    size += m.key.size() + m.value.size() + 4;
  std::string out;
  out.reserve(size);
  out += '{';
  bool has_object = false;
  for (const json_spans::Member& m : *top) {
    if (m.key == "data" || m.key == "usage") continue;
    has_object |= m.key == "object";
    out += '"';
    out += m.key;
    out += "\":";
    out += m.value;
    out += ',';
  }
  if (!has_object) out += "\"object\":\"list\",";
  out += "\"data\":[";
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::optional<std::vector<json_spans::Member>> one =
        json_spans::Members(inputs[i]);
    if (!one) return std::nullopt;
    std::optional<std::vector<std::string_view>> items =
        json_spans::Elements(json_spans::Find(*one, "data"));
    if (!items || items->size() != 1) return std::nullopt;
    std::optional<std::vector<json_spans::Member>> item =
        json_spans::Members((*items)[0]);
    if (!item) return std::nullopt;
    if (i > 0) out += ',';
    out += '{';
    for (const json_spans::Member& m : *item) {
      if (m.key == "index") continue;
      out += '"';
      out += m.key;
      out += "\":";
      out += m.value;
      out += ',';
    }
    out += "\"index\":";
    out += std::to_string(i);
    out += '}';
  }
  out += "],\"usage\":";
  out += json_util::Serialize(usage);
  out += '}';
  return out;
}

}  // namespace

Result<std::string> Assemble(const std::vector<std::string_view>& inputs,
                             std::string_view upstream, const Spent& spent) {
  try {
    if (inputs.empty()) return InvalidArgumentError("no inputs");
    if (std::optional<std::string> fast =
            AssembleSpans(inputs, upstream, spent)) {
      return std::move(*fast);
    }
    json::object out;
    if (!upstream.empty()) {
      Result<json::object> up = ParseObject(upstream, "the embeddings answer");
      if (!up.ok()) return up.status();
      out = std::move(*up);
      json::object usage;
      if (json::value* u = out.if_contains("usage"); u && u->is_object()) {
        usage = std::move(u->as_object());
      }
      usage["prompt_tokens"] = spent.prompt_tokens;
      usage["total_tokens"] = spent.total_tokens;
      if (spent.has_cost) usage["cost"] = spent.cost;
      out["usage"] = std::move(usage);
    } else {
      Result<json::object> first = ParseObject(inputs[0], "a stored embedding");
      if (!first.ok()) return first.status();
      out = std::move(*first);
      json::object usage;
      usage["prompt_tokens"] = 0;
      usage["total_tokens"] = 0;
      out["usage"] = std::move(usage);
    }
    json::array data;
    data.reserve(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      Result<json::object> one = ParseObject(inputs[i], "a stored embedding");
      if (!one.ok()) return one.status();
      json::value* d = one->if_contains("data");
      if (d == nullptr || !d->is_array() || d->as_array().size() != 1 ||
          !d->as_array()[0].is_object()) {
        return DataLossError("a stored embedding does not hold one vector");
      }
      json::object item = std::move(d->as_array()[0].as_object());
      item["index"] = i;
      data.push_back(std::move(item));
    }
    out["data"] = std::move(data);
    if (!out.contains("object")) out["object"] = "list";
    return json_util::Serialize(out);
  } catch (const std::exception& e) {
    return ResourceExhaustedError(std::string("cannot assemble the answer: ") +
                                  e.what());
  }
}

size_t CountEmbeddings(std::string_view body) {
  try {
    Result<json::object> answer = ParseObject(body, "the embeddings answer");
    if (!answer.ok()) return 0;
    const json::value* data = answer->if_contains("data");
    return data != nullptr && data->is_array() ? data->as_array().size() : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

std::shared_ptr<const Entry> HitAnswer(std::shared_ptr<const Entry> stored) {
  if (!stored) return stored;
  Result<std::string> body =
      Assemble({stored->body}, std::string_view(), Spent{});
  if (!body.ok()) return stored;
  auto answer = std::make_shared<Entry>();
  answer->meta = stored->meta;
  answer->body = std::move(*body);
  return answer;
}

}  // namespace llmcache::net::embedding_json
