// Deterministic RequestKeys for store tests (no hashing of request bodies).

#ifndef LLMCACHE_TESTS_TESTING_TEST_KEYS_H_
#define LLMCACHE_TESTS_TESTING_TEST_KEYS_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "llmcache/key.h"

namespace llmcache::testing {

inline uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A key for request number `i` of `model`; distinct (model, i) give distinct
// digests.
inline RequestKey TestKey(const std::string& model, uint64_t i) {
  RequestKey key;
  key.model = model;
  key.base_model = std::string(BaseModel(model));
  uint64_t state = i * 1000003u + std::hash<std::string>()(model);
  for (size_t off = 0; off < key.digest.size(); off += 8) {
    const uint64_t v = SplitMix64(&state);
    std::memcpy(key.digest.data() + off, &v, 8);
  }
  return key;
}

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_TEST_KEYS_H_
