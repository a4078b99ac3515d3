// Uses the installed headers and libraries: key, memory cache, hit (the
// engine), and a request through the cached client's first stage (the
// network layers, llmcache::net).
#include <boost/asio/io_context.hpp>
#include <iostream>

#include "llmcache/cache.h"
#include "llmcache/key.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/proxy.h"

int main() {
  llmcache::KeyBuilder keys;
  auto key = keys.Compute(
      R"({"model":"a/b","temperature":0,"messages":[{"role":"user","content":"hi"}]})",
      {});
  if (!key.ok()) return 1;
  auto cache = llmcache::Cache::Open(llmcache::CacheOptions{});
  if (!cache.ok()) return 2;
  if (!(*cache)->Insert(*key, "response", {}).ok()) return 3;
  auto hit = (*cache)->Lookup(*key);
  if (!hit.ok() || !hit->hit() || hit->entry->body != "response") return 4;

  boost::asio::io_context ioc;
  llmcache::net::ClientOptions co;
  co.base_url = "http://127.0.0.1:9/api/v1";  // never called
  auto client = llmcache::net::Client::Create(ioc.get_executor(), co);
  if (!client.ok()) return 5;
  std::shared_ptr<llmcache::Cache> shared = std::move(*cache);
  auto cached = llmcache::net::CachedClient::Create(shared, *client, {});
  llmcache::net::CachedRequest req;
  req.body =
      R"({"model":"a/b","temperature":0,"messages":[{"role":"user","content":"hi"}]})";
  auto prepared = cached->Prepare(std::move(req));
  if (!prepared.ok() || prepared->key_hex() != key->Hex()) return 6;
  if (!cached->Probe(*prepared)) return 7;  // the entry inserted above
  if (llmcache::net::LogLevelName(llmcache::net::LogLevel::kInfo) != "info") {
    return 8;
  }
  std::cout << "consumer ok " << key->Hex() << "\n";
  return 0;
}
