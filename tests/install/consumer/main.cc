// Uses the installed headers and library: key, memory cache, hit.
#include <iostream>

#include "llmcache/cache.h"
#include "llmcache/key.h"

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
  std::cout << "consumer ok " << key->Hex() << "\n";
  return 0;
}
