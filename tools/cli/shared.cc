// The verbs against the shared tier (--redis URL): fleet statistics and
// per-model rows, and purges (a model or everything: a new generation; one
// key: DEL), with no local database and no lock.

#include <boost/json.hpp>
#include <cstdlib>
#include <iomanip>
#include <memory>
#include <sstream>

#include "cli/json_print.h"
#include "cli/verbs.h"
#include "llmcache/key.h"
#include "llmcache/net/redis_tier.h"
#include "llmcache/purge.h"

namespace llmcache::cli {
namespace {

namespace json = boost::json;

double Usd(int64_t nanousd) { return static_cast<double>(nanousd) / 1e9; }

// The tier for a CLI run: the password from the URL, else
// $LLMCACHE_REDIS_PASSWORD; failures logged to io.err (never a password).
std::shared_ptr<net::RedisTier> OpenTier(const SharedArgs& args,
                                         std::string_view verb, const Io& io) {
  Result<net::RedisUrl> url = net::RedisUrl::Parse(args.url);
  if (!url.ok()) {
    io.err << "llmcache " << verb << ": --redis: " << url.status().message()
           << "\n";
    return nullptr;
  }
  if (url->password.empty()) {
    if (const char* pw = std::getenv("LLMCACHE_REDIS_PASSWORD")) {
      url->password = pw;
    }
  }
  if (!url->user.empty() && url->password.empty()) {
    io.err << "llmcache " << verb << ": --redis names the user '" << url->user
           << "' but no password: put it in $LLMCACHE_REDIS_PASSWORD (or the "
              "URL)\n";
    return nullptr;
  }
  net::RedisTierOptions o;
  o.redis.url = std::move(*url);
  o.redis.command_timeout_ms = args.timeout_ms;
  o.redis.tls_ca_file = args.ca_file;
  o.admin_timeout_ms = args.timeout_ms;
  o.prefix = args.prefix;
  o.redis.log = [](std::string_view) {};  // errors are reported below
  o.log = o.redis.log;
  Result<std::shared_ptr<net::RedisTier>> tier =
      net::RedisTier::Create(std::move(o));
  if (!tier.ok()) {
    io.err << "llmcache " << verb << ": " << tier.status().message() << "\n";
    return nullptr;
  }
  return *tier;
}

std::string Describe(const net::SharedTierHealth& h) {
  return h.url + (h.cluster
                      ? " (cluster, " + std::to_string(h.nodes) + " masters)"
                      : std::string());
}

}  // namespace

int SharedStats(const SharedArgs& args, bool per_model_only, bool json_out,
                const Io& io) {
  const char* verb = per_model_only ? "models" : "stats";
  std::shared_ptr<net::RedisTier> tier = OpenTier(args, verb, io);
  if (!tier) return kExitUsage;
  Result<net::FleetStats> fleet = tier->ReadFleetStats();
  const net::SharedTierHealth h = tier->Health();
  tier->Shutdown();
  if (!fleet.ok()) {
    io.err << "llmcache " << verb << ": shared tier " << h.url << ": "
           << fleet.status().message() << "\n";
    return kExitFailure;
  }
  net::FleetModelStats total;
  for (const net::FleetModelStats& m : fleet->models) {
    total.hits += m.hits;
    total.misses += m.misses;
    total.bypasses += m.bypasses;
    total.tokens_saved += m.tokens_saved;
    total.cost_saved_nanousd += m.cost_saved_nanousd;
  }
  const auto model_json = [](const net::FleetModelStats& m) {
    const uint64_t lookups = m.hits + m.misses;
    return json::object{
        {"model", m.model},
        {"hits", m.hits},
        {"misses", m.misses},
        {"bypasses", m.bypasses},
        {"hit_rate", lookups == 0 ? 0.0
                                  : static_cast<double>(m.hits) /
                                        static_cast<double>(lookups)},
        {"tokens_saved", m.tokens_saved},
        {"cost_saved_usd", Usd(m.cost_saved_nanousd)},
        {"generation", m.generation}};
  };
  if (json_out) {
    json::array models;
    for (const net::FleetModelStats& m : fleet->models) {
      models.push_back(model_json(m));
    }
    json::object o{
        {"shared", json::object{{"url", h.url},
                                {"cluster", h.cluster},
                                {"masters", h.nodes},
                                {"keys", fleet->keys},
                                {"cache_generation", fleet->cache_generation}}},
        {"models", std::move(models)}};
    if (!per_model_only) {
      json::object t = model_json(total);
      t.erase("model");
      t.erase("generation");
      o["totals"] = std::move(t);
    }
    PrintJsonLine(o, io.out);
    return kExitOk;
  }
  io.out << "shared tier  " << Describe(h) << "\n"
         << "keys         " << fleet->keys
         << " (all of the database, entries and bookkeeping)\n"
         << "generation   " << fleet->cache_generation
         << " (whole cache flushes)\n";
  if (!per_model_only) {
    const uint64_t lookups = total.hits + total.misses;
    io.out << "hits         " << total.hits << "\n"
           << "misses       " << total.misses << "\n"
           << "bypasses     " << total.bypasses << "\n"
           << "hit rate     "
           << (lookups == 0 ? 0.0
                            : 100.0 * static_cast<double>(total.hits) /
                                  static_cast<double>(lookups))
           << " %\n"
           << "tokens saved " << total.tokens_saved << "\n"
           << "cost saved   " << FormatUsd(total.cost_saved_nanousd) << "\n";
  }
  if (fleet->models.empty()) {
    io.out << "no models yet\n";
    return kExitOk;
  }
  // Padded by display width (a model name may be any UTF-8), as wide as
  // the longest name.
  size_t width = 40;
  for (const net::FleetModelStats& m : fleet->models) {
    width = std::max(width, DisplayWidth(Printable(m.model)) + 2);
  }
  const auto padded = [width](std::string s) {
    s.append(width - std::min(width, DisplayWidth(s)), ' ');
    return s;
  };
  io.out << "\n"
         << padded("model") << std::right << std::setw(10) << "hits"
         << std::setw(10) << "misses" << std::setw(10) << "bypasses"
         << std::setw(14) << "tokens saved" << std::setw(14) << "cost saved"
         << std::setw(6) << "gen"
         << "\n";
  for (const net::FleetModelStats& m : fleet->models) {
    io.out << padded(Printable(m.model)) << std::right << std::setw(10)
           << m.hits << std::setw(10) << m.misses << std::setw(10) << m.bypasses
           << std::setw(14) << m.tokens_saved << std::setw(14)
           << FormatUsd(m.cost_saved_nanousd) << std::setw(6) << m.generation
           << "\n";
  }
  return kExitOk;
}

namespace {

EntryWalker TierWalker(net::RedisTier& tier) {
  return
      [&tier](const std::optional<std::string>& m,
              const std::function<bool(const EntryView&)>& fn,
              const std::function<void(std::string_view, const Status&)>&
                  on_corrupt) { return tier.ForEachEntry(m, fn, on_corrupt); };
}

}  // namespace

int SharedExport(const SharedArgs& args,
                 const std::optional<std::string>& model,
                 const std::string& output, const Io& io) {
  std::shared_ptr<net::RedisTier> tier = OpenTier(args, "export", io);
  if (!tier) return kExitUsage;
  const int rc = ExportWith(TierWalker(*tier), 0, model, output, io);
  tier->Shutdown();
  return rc;
}

int SharedVerify(const SharedArgs& args,
                 const std::optional<std::string>& model, bool json_out,
                 const Io& io) {
  std::shared_ptr<net::RedisTier> tier = OpenTier(args, "verify", io);
  if (!tier) return kExitUsage;
  const int rc = VerifyWith(TierWalker(*tier), 0, model, json_out, io);
  tier->Shutdown();
  return rc;
}

int SharedPurge(const SharedArgs& args, const PurgeArgs& purge, const Io& io) {
  int given = (purge.model ? 1 : 0) + (purge.all ? 1 : 0) + (purge.key ? 1 : 0);
  if (purge.ns || purge.expired || purge.older_than || given != 1) {
    io.err << "llmcache purge --redis: give exactly one of --model, --all, "
              "--key (shared entries of a namespace or an age are not "
              "listed anywhere: they age out by their TTL)\n";
    return kExitUsage;
  }
  std::optional<Digest> digest;
  if (purge.key) {
    Result<Digest> d = DigestFromHex(*purge.key);
    if (!d.ok()) {
      io.err << "llmcache purge: --key: " << d.status().message() << "\n";
      return kExitUsage;
    }
    digest = *d;
  }
  std::shared_ptr<net::RedisTier> tier = OpenTier(args, "purge", io);
  if (!tier) return kExitUsage;
  const net::SharedTierHealth h = tier->Health();
  const std::string what = purge.model
                               ? "every entry of model " +
                                     std::string(BaseModel(*purge.model)) +
                                     " and of its :variants"
                           : purge.all ? std::string("every entry")
                                       : "entry " + *purge.key;
  if (!Confirm(io, purge.yes,
               "Remove " + what + " from the shared tier " + h.url +
                   (digest ? " (instances that copied it keep their copy "
                             "until its TTL)?"
                           : " (for every instance)?"))) {
    io.err << "llmcache purge: not confirmed; nothing removed\n";
    return kExitFailure;
  }
  json::object out;
  Status s;
  if (digest) {
    Result<bool> gone = tier->PurgeKey(*digest);
    s = gone.status();
    if (gone.ok()) {
      out = {{"key", *purge.key}, {"removed", *gone ? 1 : 0}};
    }
  } else {
    Result<uint64_t> gen = purge.all
                               ? tier->FlushAll()
                               : tier->FlushModel(BaseModel(*purge.model));
    s = gen.status();
    if (gen.ok()) {
      out = {{purge.all ? "all" : "model",
              purge.all ? json::value(true)
                        : json::value(std::string(BaseModel(*purge.model)))},
             {"generation", *gen}};
    }
  }
  tier->Shutdown();
  if (!s.ok()) {
    io.err << "llmcache purge: shared tier " << h.url << ": " << s.message()
           << "\n";
    return kExitFailure;
  }
  if (purge.json) {
    PrintJsonLine(out, io.out);
  } else if (digest) {
    io.out << (out["removed"].as_int64() ? "removed " : "not found: ")
           << *purge.key << "\n";
  } else {
    io.out << "flushed " << what << " on the shared tier (generation "
           << out["generation"].as_uint64()
           << "); every instance misses them from now on, and Redis drops "
              "them as their TTL ends\n";
  }
  // A key that is not stored is "not found" (exit 1), as in a database.
  if (digest && out["removed"].as_int64() == 0) {
    if (purge.json)
      io.err << "llmcache purge: not found: " << *purge.key << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace llmcache::cli
