// llmcache-demo: one cached completion, end to end.
//
//   llmcache-demo [--db DIR] [--upstream URL] [--ca-file PEM] [REQUEST.json]
//
// Computes the request's key and cache decision and sends it through the
// cached client: a miss goes to the upstream (default: OpenRouter, with
// $OPENROUTER_API_KEY; or e.g. a local `llmcache fake-openrouter`) and is
// stored; run it again and it is a hit served from the database.

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "llmcache/cache.h"
#include "llmcache/key.h"
#include "llmcache/net/cached_client.h"
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
  std::string upstream = "https://openrouter.ai/api/v1";
  std::string ca_file;
  std::string request = kExampleRequest;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
      db = argv[++i];
    } else if (std::strcmp(argv[i], "--upstream") == 0 && i + 1 < argc) {
      upstream = argv[++i];
    } else if (std::strcmp(argv[i], "--ca-file") == 0 && i + 1 < argc) {
      ca_file = argv[++i];
    } else if (std::strcmp(argv[i], "--help") == 0) {
      std::cout << "usage: llmcache-demo [--db DIR] [--upstream URL] "
                   "[--ca-file PEM] [REQUEST.json]\n";
      return 0;
    } else {
      std::ifstream in(argv[i], std::ios::binary);
      if (!in) {
        std::cerr << "llmcache-demo: cannot read " << argv[i] << "\n";
        return 2;
      }
      std::ostringstream ss;
      ss << in.rdbuf();
      request = ss.str();
    }
  }

  llmcache::CacheOptions options;
  options.path = db;
  auto cache = llmcache::Cache::Open(options);
  if (!cache.ok()) {
    std::cerr << "llmcache-demo: " << cache.status() << "\n";
    return 1;
  }
  std::shared_ptr<llmcache::Cache> shared_cache = std::move(cache).value();

  boost::asio::io_context ioc;
  auto guard = boost::asio::make_work_guard(ioc);
  std::thread io([&] { ioc.run(); });
  int rc = 0;
  {
    llmcache::net::ClientOptions co;
    co.base_url = upstream;
    co.extra_ca_file = ca_file;
    co.x_title = "llmcache-demo";
    auto client = llmcache::net::Client::Create(ioc.get_executor(), co);
    if (!client.ok()) {
      std::cerr << "llmcache-demo: " << client.status() << "\n";
      rc = 2;
    } else {
      auto cached =
          llmcache::net::CachedClient::Create(shared_cache, *client, {});
      llmcache::net::CachedRequest req;
      req.body = request;
      // The pipeline's first stage: the key and the decision, computed once.
      auto prepared = cached->Prepare(std::move(req));
      if (!prepared.ok()) {
        std::cerr << "llmcache-demo: bad request: " << prepared.status()
                  << "\n";
        guard.reset();
        io.join();
        return 2;
      }
      const llmcache::Decision decision = prepared->decision();
      std::cout << "database: " << db << "\nupstream: " << upstream
                << "\nkey:      " << prepared->key_hex()
                << "\nmodel:    " << prepared->key().model << "\ndecision: "
                << (decision.cache ? std::string("CACHE")
                                   : "BYPASS (" +
                                         std::string(llmcache::BypassReasonName(
                                             decision.reason)) +
                                         ")")
                << "\n";
      auto r = cached
                   ->AsyncComplete(std::move(*prepared), nullptr,
                                   boost::asio::use_future)
                   .get();
      if (!r.ok()) {
        std::cerr << "llmcache-demo: " << r.status() << "\n";
        rc = 1;
      } else {
        std::cout << "result:   " << llmcache::net::CacheResultName(r->result);
        if (r->result == llmcache::net::CacheResult::kHit) {
          std::cout << " (age " << r->age_ms << " ms)";
        } else if (r->result == llmcache::net::CacheResult::kMiss) {
          std::cout << (r->stored
                            ? " (stored)"
                            : " (not stored: " + r->not_stored_reason + ")");
        }
        std::cout << "\nstatus:   " << r->status << "\nanswer:   "
                  << (r->parsed.content.empty() ? r->body : r->parsed.content)
                  << "\n";
      }
    }
  }
  guard.reset();
  io.join();

  auto stats = shared_cache->GetStats();
  if (stats.ok()) {
    std::cout << "stats:    hits=" << stats->hits << " misses=" << stats->misses
              << " inserts=" << stats->inserts << " entries=" << stats->entries
              << " tokens_saved=" << stats->tokens_saved << " cost_saved=$"
              << static_cast<double>(stats->cost_saved_nanousd) / 1e9 << "\n";
  }
  return rc;
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
