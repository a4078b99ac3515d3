// The shared tier's value header, reply parsing and fleet statistics
// (tier_format.h).

#include "tier_format.h"

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <vector>

namespace llmcache::net::tier_internal {

using Reply = RedisReply;

void PutLe64(uint64_t v, char* p) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t GetLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

bool ParseI64(std::string_view s, int64_t* out) {
  const bool neg = !s.empty() && s[0] == '-';
  uint64_t v = 0;
  if (!ParseU64(neg ? s.substr(1) : s, &v)) return false;
  *out = neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  return true;
}

Result<FleetStats> ReadFleetStats(RedisClient& redis, const std::string& prefix,
                                  int64_t timeout_ms) {
  const int64_t t = timeout_ms;
  const std::string gen_key = prefix + "gen";
  const std::string models_key = prefix + "models";
  FleetStats out;
  Result<Reply> gens = redis.CommandSync({"HGETALL", gen_key}, 1, t);
  if (!gens.ok()) return gens.status().WithContext("fleet statistics");
  std::map<std::string, uint64_t> gen_of;
  for (size_t i = 0; i + 1 < gens->elements.size(); i += 2) {
    uint64_t g = 0;
    if (ParseU64(gens->elements[i + 1].str, &g)) {
      gen_of[gens->elements[i].str] = g;
    }
  }
  out.cache_generation = gen_of[std::string(kAllModels)];
  Result<Reply> models = redis.CommandSync({"SMEMBERS", models_key}, 1, t);
  if (!models.ok()) return models.status().WithContext("fleet statistics");
  std::map<std::string, FleetModelStats> by_model;
  for (const Reply& m : models->elements) by_model[m.str].model = m.str;
  for (const auto& [model, g] : gen_of) {
    if (model != kAllModels) by_model[model].model = model;
  }
  for (auto& [model, s] : by_model) {
    s.generation = gen_of.count(model) ? gen_of[model] : 0;
    Result<Reply> h =
        redis.CommandSync({"HGETALL", prefix + "stats:" + model}, 1, t);
    if (!h.ok()) return h.status().WithContext("fleet statistics");
    for (size_t i = 0; i + 1 < h->elements.size(); i += 2) {
      const std::string& f = h->elements[i].str;
      const std::string& v = h->elements[i + 1].str;
      uint64_t u = 0;
      if (f == "cost_saved_nanousd") {
        ParseI64(v, &s.cost_saved_nanousd);
      } else if (ParseU64(v, &u)) {
        if (f == "hits") s.hits = u;
        if (f == "misses") s.misses = u;
        if (f == "bypasses") s.bypasses = u;
        if (f == "tokens_saved") s.tokens_saved = u;
      }
    }
    out.models.push_back(s);
  }
  auto promise = std::make_shared<std::promise<uint64_t>>();
  std::future<uint64_t> keys = promise->get_future();
  redis.CommandAllMasters({"DBSIZE"},
                          [promise](std::vector<Result<Reply>> replies) {
                            uint64_t n = 0;
                            for (const auto& r : replies) {
                              if (r.ok() && r->type == Reply::Type::kInteger) {
                                n += static_cast<uint64_t>(r->integer);
                              }
                            }
                            promise->set_value(n);
                          });
  if (keys.wait_for(std::chrono::milliseconds(t)) ==
      std::future_status::ready) {
    out.keys = keys.get();
  }
  return out;
}

}  // namespace llmcache::net::tier_internal
