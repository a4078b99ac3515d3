// The shared tier's value header, reply parsing, fleet statistics and the
// walk over its entries (tier_format.h).

#include "tier_format.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
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

void FillFromRedis(const RedisHealth& r, SharedTierHealth* h) {
  h->backend = "redis";
  h->url = r.url;
  h->available = r.connected && !r.breaker_open && !r.last_failed;
  h->cluster = r.cluster;
  h->nodes = r.masters;
  h->timeouts = r.timeouts;
  h->rejected = r.rejected;
  h->reconnects = r.reconnects;
  h->moved = r.moved;
  h->ask = r.ask;
  h->last_error = r.last_error;
}

const std::string& FleetModels::Admit(std::string_view model) {
  auto it = names_.find(model);
  if (it != names_.end()) return *it;
  if (model.size() > kMaxBytes || names_.size() >= kMax) return other_;
  return *names_.emplace(model).first;
}

bool JoinUnlessSelf(std::thread& t) {
  if (!t.joinable()) return false;
  if (t.get_id() == std::this_thread::get_id()) {
    t.detach();
    return false;
  }
  t.join();
  return true;
}

std::string HexToken(uint64_t a, uint64_t b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string t(32, '0');
  for (size_t j = 0; j < 16; ++j) {
    t[j] = kHex[(a >> (4 * j)) & 15];
    t[16 + j] = kHex[(b >> (4 * j)) & 15];
  }
  return t;
}

bool ReadGenerationsFile(const std::string& path,
                         std::unordered_map<std::string, uint64_t>* gens,
                         uint64_t* epoch) {
  *epoch = 0;
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    const size_t tab = line.rfind('\t');
    uint64_t gen = 0;
    if (tab == std::string::npos || !ParseU64(line.substr(tab + 1), &gen)) {
      continue;
    }
    if (line.compare(0, tab, kEpochField) == 0) {
      *epoch = gen;
    } else {
      (*gens)[line.substr(0, tab)] = gen;
    }
  }
  return true;
}

void WriteGenerationsFile(const std::string& path,
                          const std::unordered_map<std::string, uint64_t>& gens,
                          uint64_t epoch) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (epoch != 0) out << kEpochField << '\t' << epoch << '\n';
    for (const auto& [model, gen] : gens) out << model << '\t' << gen << '\n';
    if (!out) return;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
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
    if (gens->elements[i].str != kEpochField &&
        ParseU64(gens->elements[i + 1].str, &g)) {
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

Status ForEachStoredEntry(
    RedisClient& redis, const std::string& prefix,
    const std::optional<std::string>& model,
    const std::function<Result<Entry>(std::string_view value)>& decode,
    const std::function<bool(const EntryView&)>& fn,
    const std::function<void(std::string_view, const Status&)>& on_corrupt) {
  std::mutex keys_mu;
  std::vector<std::string> keys;
  auto scanned = std::make_shared<std::promise<Status>>();
  std::future<Status> scan_done = scanned->get_future();
  redis.ScanAll(
      prefix + "e:{*", 500,
      [&keys_mu, &keys](std::vector<std::string> batch) {
        std::lock_guard<std::mutex> lock(keys_mu);
        for (std::string& k : batch) keys.push_back(std::move(k));
      },
      [scanned](Status s) { scanned->set_value(std::move(s)); });
  if (Status s = scan_done.get(); !s.ok()) {
    return s.WithContext("shared tier scan");
  }
  const std::string head = prefix + "e:{";
  const std::optional<std::string> base =
      model ? std::optional<std::string>(std::string(BaseModel(*model)))
            : std::nullopt;
  constexpr size_t kBatch = 256;
  for (size_t start = 0; start < keys.size(); start += kBatch) {
    const size_t n = std::min(kBatch, keys.size() - start);
    std::vector<Result<Reply>> replies(n, UnavailableError("no reply"));
    std::mutex mu;
    std::condition_variable cv;
    size_t left = n;
    for (size_t i = 0; i < n; ++i) {
      redis.Command({"GET", keys[start + i]}, 1, [&, i](Result<Reply> r) {
        std::lock_guard<std::mutex> lock(mu);
        replies[i] = std::move(r);
        if (--left == 0) cv.notify_all();
      });
    }
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return left == 0; });
    }
    for (size_t i = 0; i < n; ++i) {
      const std::string& key = keys[start + i];
      if (!key.starts_with(head) || key.size() != head.size() + 65) continue;
      const std::string hex = key.substr(head.size(), 64);
      Result<Digest> digest = DigestFromHex(hex);
      if (!digest.ok()) continue;  // not ours
      const Result<Reply>& r = replies[i];
      if (!r.ok()) return r.status().WithContext("shared tier read");
      if (r->type != Reply::Type::kString) continue;  // gone meanwhile
      Result<Entry> entry = decode(r->str);
      if (!entry.ok()) {
        if (entry.status().code() == StatusCode::kNotFound) continue;
        if (entry.status().code() == StatusCode::kUnavailable) {
          return entry.status();  // cannot tell live from flushed
        }
        if (!on_corrupt) return entry.status().WithContext(hex);
        on_corrupt(hex, entry.status());
        continue;
      }
      const std::string_view entry_base = BaseModel(entry->meta.model);
      if (base && entry_base != *base) continue;
      if (!fn(EntryView{*digest, entry_base, *entry, r->str.size()})) {
        return Status::Ok();
      }
    }
  }
  return Status::Ok();
}

}  // namespace llmcache::net::tier_internal
