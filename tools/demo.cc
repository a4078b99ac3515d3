// llmcache-demo: the engine end to end on a request body, without network.
//
//   llmcache-demo [--db DIR] [REQUEST.json]
//
// Computes the request's key and cache decision, looks it up, stores a
// canned response on a miss, and prints the statistics. Run it twice: the
// second run is a hit served from the database.

#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "llmcache/cache.h"
#include "llmcache/key.h"
#include "llmcache/policy.h"

namespace {

constexpr char kExampleRequest[] = R"({
  "model": "openai/gpt-4o-mini",
  "temperature": 0,
  "messages": [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "What is the capital of France?"}
  ]
})";

int Run(int argc, char** argv) {
  std::string db = llmcache::DefaultDatabasePath();
  std::string request = kExampleRequest;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
      db = argv[++i];
    } else if (std::strcmp(argv[i], "--help") == 0) {
      std::cout << "usage: llmcache-demo [--db DIR] [REQUEST.json]\n";
      return 0;
    } else {
      std::ifstream in(argv[i], std::ios::binary);
      if (!in) {
        std::cerr << "llmcache-demo: cannot read " << argv[i] << "\n";
        return 1;
      }
      std::ostringstream ss;
      ss << in.rdbuf();
      request = ss.str();
    }
  }

  llmcache::KeyBuilder keys;
  llmcache::RequestInfo info;
  auto key = keys.Compute(request, {}, &info);
  if (!key.ok()) {
    std::cerr << "llmcache-demo: bad request: " << key.status() << "\n";
    return 2;
  }
  const llmcache::Decision decision =
      llmcache::Decide(info, llmcache::CacheMode::kDeterministic);
  std::cout << "database: " << db << "\nkey:      " << key->Hex()
            << "\nmodel:    " << key->model << "\ndecision: "
            << (decision.cache ? "CACHE"
                               : "BYPASS (" +
                                     std::string(llmcache::BypassReasonName(
                                         decision.reason)) +
                                     ")")
            << "\n";

  llmcache::CacheOptions options;
  options.path = db;
  auto cache = llmcache::Cache::Open(options);
  if (!cache.ok()) {
    std::cerr << "llmcache-demo: " << cache.status() << "\n";
    return 1;
  }
  if (!decision.cache) {
    (*cache)->RecordBypass(decision.reason);
  } else {
    auto hit = (*cache)->Lookup(*key);
    if (!hit.ok()) {
      std::cerr << "llmcache-demo: " << hit.status() << "\n";
      return 1;
    }
    if (hit->hit()) {
      std::cout << "lookup:   HIT (stored " << hit->entry->meta.created_ms
                << " ms since epoch)\n"
                << "response: " << hit->entry->body << "\n";
    } else {
      std::cout << "lookup:   MISS - storing a canned response\n";
      llmcache::InsertOptions io;
      io.usage = {25, 8, 0, 0, 9'000};  // what a real call would have cost
      io.resolved_model = key->model;
      const std::string body =
          R"({"object":"chat.completion","choices":[{"index":0,"message":)"
          R"({"role":"assistant","content":"Paris."},"finish_reason":"stop"}]})";
      if (auto s = (*cache)->Insert(*key, body, io); !s.ok()) {
        std::cerr << "llmcache-demo: " << s << "\n";
        return 1;
      }
    }
  }
  auto stats = (*cache)->GetStats();
  if (stats.ok()) {
    std::cout << "stats:    hits=" << stats->hits << " misses=" << stats->misses
              << " inserts=" << stats->inserts << " entries=" << stats->entries
              << " tokens_saved=" << stats->tokens_saved << " cost_saved=$"
              << static_cast<double>(stats->cost_saved_nanousd) / 1e9 << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "llmcache-demo: " << e.what() << "\n";
    return 1;
  }
}
