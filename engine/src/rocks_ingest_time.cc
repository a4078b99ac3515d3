#include "rocks_ingest_time.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "format.h"
#include "rocks_schema.h"

namespace llmcache {

rocksdb::Status WriteTimeRecords(std::span<const std::string_view> models,
                                 std::vector<TimeRecord>* records,
                                 rocksdb::SstFileWriter* writer) {
  // A key is the model's prefix, then the time (big-endian), then the
  // digest. The prefixes are prefix-free (a varint length, then the name),
  // so keys order as (the model's prefix, the time, the digest) do: the
  // prefixes are compared once per model, not once per comparison.
  std::vector<std::string> prefixes(models.size());
  std::vector<uint32_t> by_prefix(models.size());
  for (size_t m = 0; m < models.size(); ++m) {
    AppendModelPrefix(models[m], &prefixes[m]);
    by_prefix[m] = static_cast<uint32_t>(m);
  }
  std::sort(by_prefix.begin(), by_prefix.end(),
            [&](uint32_t a, uint32_t b) { return prefixes[a] < prefixes[b]; });
  std::vector<uint32_t> rank(models.size());
  for (size_t i = 0; i < by_prefix.size(); ++i) {
    rank[by_prefix[i]] = static_cast<uint32_t>(i);
  }
  auto before = [&rank](const TimeRecord& a, const TimeRecord& b) {
    if (a.model != b.model) return rank[a.model] < rank[b.model];
    if (a.created != b.created) return a.created < b.created;
    return std::memcmp(a.digest->data(), b.digest->data(), kDigestSize) < 0;
  };
  // In order already when the batch holds one model whose entries share
  // their time (a family's records come in digest order): then no sort.
  if (!std::is_sorted(records->begin(), records->end(), before)) {
    std::sort(records->begin(), records->end(), before);
  }
  rocksdb::Status s;
  std::string key;
  for (size_t i = 0; s.ok() && i < records->size(); ++i) {
    const TimeRecord& r = (*records)[i];
    key.assign(prefixes[r.model]);
    AppendBigEndian64(r.created, &key);
    key.append(reinterpret_cast<const char*>(r.digest->data()), kDigestSize);
    s = r.erase ? writer->Delete(key) : writer->Put(key, Le64(r.expires_ms));
  }
  return s;
}

}  // namespace llmcache
