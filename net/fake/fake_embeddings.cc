// Embeddings: the accepted `input` forms, the deterministic vectors and their
// base64 encoding. The vectors depend on the item alone (never on its
// position in a batch), so a cache that splits batches into items can be
// checked against the fake.

#include <openssl/evp.h>

#include <boost/json/value.hpp>
#include <cmath>
#include <cstring>

#include "fake_endpoints.h"
#include "fake_util.h"

namespace llmcache::fake::internal {
namespace {

namespace json = boost::json;

// OpenAI's limit on the items of one request.
constexpr size_t kMaxItems = 2048;

bool IsInteger(const json::value& v) { return v.is_int64() || v.is_uint64(); }

// "tokens:<i>,<j>,..." for an array of integers; std::nullopt otherwise (an
// empty array included).
std::optional<EmbeddingItem> TokenItem(const json::array& a) {
  if (a.empty()) return std::nullopt;
  EmbeddingItem item;
  item.canonical = "tokens:";
  for (size_t i = 0; i < a.size(); ++i) {
    if (!IsInteger(a[i])) return std::nullopt;
    if (i > 0) item.canonical += ',';
    item.canonical += a[i].is_int64() ? std::to_string(a[i].get_int64())
                                      : std::to_string(a[i].get_uint64());
  }
  item.tokens = static_cast<int64_t>(a.size());
  return item;
}

EmbeddingItem TextItem(const json::string& s) {
  EmbeddingItem item;
  item.canonical = "text:" + std::string(s.data(), s.size());
  item.tokens = std::max<int64_t>(1, CeilDiv4(s.size()));
  return item;
}

}  // namespace

std::optional<std::vector<EmbeddingItem>> ParseEmbeddingInput(
    const json::value& input, std::string* error) {
  std::vector<EmbeddingItem> items;
  if (const json::string* s = input.if_string()) {
    items.push_back(TextItem(*s));
    return items;
  }
  const json::array* a = input.if_array();
  if (a == nullptr || a->empty()) {
    *error =
        "input must be a string, an array of strings, an array of integers "
        "or an array of integer arrays";
    return std::nullopt;
  }
  if (a->size() > kMaxItems) {
    *error = "input must have at most " + std::to_string(kMaxItems) + " items";
    return std::nullopt;
  }
  if (IsInteger(a->front())) {
    std::optional<EmbeddingItem> item = TokenItem(*a);
    if (!item) {
      *error = "input: a token array must contain only integers";
      return std::nullopt;
    }
    items.push_back(std::move(*item));
    return items;
  }
  const bool strings = a->front().is_string();
  for (const json::value& v : *a) {
    if (strings && v.is_string()) {
      items.push_back(TextItem(v.get_string()));
      continue;
    }
    std::optional<EmbeddingItem> item;
    if (!strings && v.is_array()) item = TokenItem(v.get_array());
    if (!item) {
      *error =
          "input: an array must hold only strings or only non-empty integer "
          "arrays";
      return std::nullopt;
    }
    items.push_back(std::move(*item));
  }
  return items;
}

std::vector<float> EmbeddingVector(std::string_view base_model, int dimensions,
                                   std::string_view canonical) {
  // seed = SHA-256(model \0 dimensions \0 canonical); block k =
  // SHA-256(seed || k), eight 32-bit words per block mapped to [-1, 1).
  std::string seed_input(base_model);
  seed_input += '\0';
  seed_input += std::to_string(dimensions);
  seed_input += '\0';
  seed_input.append(canonical);
  unsigned char seed[EVP_MAX_MD_SIZE + 4];
  unsigned int seed_len = 0;
  EVP_Digest(seed_input.data(), seed_input.size(), seed, &seed_len,
             EVP_sha256(), nullptr);
  std::vector<float> v;
  v.reserve(static_cast<size_t>(dimensions));
  for (uint32_t block = 0; v.size() < static_cast<size_t>(dimensions);
       ++block) {
    for (int i = 0; i < 4; ++i) {
      seed[seed_len + static_cast<unsigned>(i)] =
          static_cast<unsigned char>(block >> (8 * i));
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_Digest(seed, seed_len + 4, md, &md_len, EVP_sha256(), nullptr);
    for (unsigned int off = 0;
         off + 4 <= md_len && v.size() < static_cast<size_t>(dimensions);
         off += 4) {
      const uint32_t word = static_cast<uint32_t>(md[off]) |
                            static_cast<uint32_t>(md[off + 1]) << 8 |
                            static_cast<uint32_t>(md[off + 2]) << 16 |
                            static_cast<uint32_t>(md[off + 3]) << 24;
      v.push_back(
          static_cast<float>(static_cast<double>(word) / 2147483648.0 - 1.0));
    }
  }
  // Unit length, as OpenAI's vectors are (cosine similarity = dot product).
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  norm = std::sqrt(norm);
  if (norm > 0) {
    for (float& x : v) x = static_cast<float>(x / norm);
  }
  return v;
}

std::string Base64Floats(const std::vector<float>& v) {
  std::string bytes;
  bytes.reserve(v.size() * 4);
  for (float x : v) {
    uint32_t word = 0;
    std::memcpy(&word, &x, sizeof(word));
    for (int i = 0; i < 4; ++i) {
      bytes.push_back(static_cast<char>((word >> (8 * i)) & 0xff));
    }
  }
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

}  // namespace llmcache::fake::internal
