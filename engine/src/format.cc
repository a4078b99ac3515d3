// Encoding and decoding of the on-disk format (see format.h).

#include "format.h"

#include <cstring>
#include <limits>

namespace llmcache {
namespace {

void PutU16(uint16_t v, std::string* out) {
  char b[2] = {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
  out->append(b, 2);
}

uint16_t GetU16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) |
                               (static_cast<uint8_t>(p[1]) << 8));
}

bool AppendShortString(std::string_view s, std::string* out) {
  if (s.size() > std::numeric_limits<uint16_t>::max()) return false;
  PutU16(static_cast<uint16_t>(s.size()), out);
  out->append(s);
  return true;
}

bool ReadShortString(std::string_view* in, std::string* s) {
  if (in->size() < 2) return false;
  uint16_t n = GetU16(in->data());
  if (in->size() < 2u + n) return false;
  s->assign(in->data() + 2, n);
  in->remove_prefix(2u + n);
  return true;
}

bool IsPlainCfChar(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lowercase is not produced, so not accepted
}

}  // namespace

void AppendBigEndian64(uint64_t v, std::string* out) {
  char b[8];
  for (int i = 7; i >= 0; --i) {
    b[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out->append(b, 8);
}

uint64_t ReadBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void AppendLittleEndian64(uint64_t v, std::string* out) {
  char b[8];
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out->append(b, 8);
}

uint64_t ReadLittleEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

size_t StoredSize(const Entry& e) {
  return kEntryFixedHeaderSize + 6 + e.meta.model.size() +
         e.meta.resolved_model.size() + e.meta.ns.size() + e.body.size();
}

Result<std::string> EncodeEntryValue(const Entry& entry) {
  std::string out;
  if (Status s = EncodeEntry(entry.meta, entry.body, &out); !s.ok()) return s;
  return out;
}

Result<Entry> DecodeEntryValue(std::string_view value) {
  Entry entry;
  if (Status s = DecodeEntry(value, &entry); !s.ok()) return s;
  return entry;
}

Status EncodeEntry(const EntryMeta& meta, std::string_view body,
                   std::string* out) {
  const size_t start = out->size();
  if (!EntryMetadataFits(meta.model.size(), meta.resolved_model.size(),
                         meta.ns.size())) {
    return InvalidArgumentError(
        "entry metadata too long: model, resolved model and namespace must "
        "fit in " +
        std::to_string(kMaxEntryMetadataBytes) + " bytes together");
  }
  const size_t header = kEntryFixedHeaderSize + 6 + meta.model.size() +
                        meta.resolved_model.size() + meta.ns.size();
  out->reserve(start + header + body.size());
  out->push_back(static_cast<char>(kEntryFormatV1));
  out->push_back(static_cast<char>(meta.flags));
  PutU16(static_cast<uint16_t>(header), out);
  AppendLittleEndian64(static_cast<uint64_t>(meta.created_ms), out);
  AppendLittleEndian64(static_cast<uint64_t>(meta.expires_ms), out);
  AppendLittleEndian64(meta.usage.prompt_tokens, out);
  AppendLittleEndian64(meta.usage.completion_tokens, out);
  AppendLittleEndian64(meta.usage.cached_tokens, out);
  AppendLittleEndian64(meta.usage.cache_write_tokens, out);
  AppendLittleEndian64(static_cast<uint64_t>(meta.usage.cost_nanousd), out);
  AppendShortString(meta.model, out);
  AppendShortString(meta.resolved_model, out);
  AppendShortString(meta.ns, out);
  out->append(body);
  return Status();
}

bool SameStoredEntry(std::string_view stored, std::string_view fresh) {
  if (stored == fresh) return true;
  if (stored.size() != fresh.size() || stored.size() < 2) return false;
  const auto flags = [](std::string_view v) {
    return static_cast<uint8_t>(v[1]);
  };
  return (flags(fresh) & kEntryFlagImported) != 0 &&
         (flags(stored) | kEntryFlagImported) == flags(fresh) &&
         stored[0] == fresh[0] && stored.substr(2) == fresh.substr(2);
}

Status DecodeEntry(std::string_view value, Entry* out) {
  if (value.size() < kEntryFixedHeaderSize + 6) {
    return DataLossError("entry too short: " + std::to_string(value.size()) +
                         " bytes");
  }
  const uint8_t version = static_cast<uint8_t>(value[0]);
  if (version == 0) return DataLossError("entry has format version 0");
  if (version != kEntryFormatV1) {
    return FailedPreconditionError(
        "entry written by a newer llmcache (entry format " +
        std::to_string(version) + ", this build reads " +
        std::to_string(kEntryFormatV1) + ")");
  }
  const char* p = value.data();
  const size_t header = GetU16(p + 2);
  if (header < kEntryFixedHeaderSize + 6 || header > value.size()) {
    return DataLossError("entry header size " + std::to_string(header) +
                         " is inconsistent with value size " +
                         std::to_string(value.size()));
  }
  EntryMeta& m = out->meta;
  m.flags = static_cast<uint8_t>(p[1]);
  m.created_ms = static_cast<int64_t>(ReadLittleEndian64(p + 4));
  m.expires_ms = static_cast<int64_t>(ReadLittleEndian64(p + 12));
  m.usage.prompt_tokens = ReadLittleEndian64(p + 20);
  m.usage.completion_tokens = ReadLittleEndian64(p + 28);
  m.usage.cached_tokens = ReadLittleEndian64(p + 36);
  m.usage.cache_write_tokens = ReadLittleEndian64(p + 44);
  m.usage.cost_nanousd = static_cast<int64_t>(ReadLittleEndian64(p + 52));
  if (m.created_ms < 0 || m.expires_ms < 0) {
    return DataLossError("entry has a negative timestamp");
  }
  std::string_view rest(p + kEntryFixedHeaderSize,
                        header - kEntryFixedHeaderSize);
  if (!ReadShortString(&rest, &m.model) ||
      !ReadShortString(&rest, &m.resolved_model) ||
      !ReadShortString(&rest, &m.ns)) {
    return DataLossError("entry strings overrun the header");
  }
  out->body.assign(value.data() + header, value.size() - header);
  return Status();
}

bool PeekEntryTimes(std::string_view value, int64_t* created_ms,
                    int64_t* expires_ms) {
  if (value.size() < kEntryFixedHeaderSize ||
      static_cast<uint8_t>(value[0]) != kEntryFormatV1) {
    return false;
  }
  *created_ms = static_cast<int64_t>(ReadLittleEndian64(value.data() + 4));
  *expires_ms = static_cast<int64_t>(ReadLittleEndian64(value.data() + 12));
  return true;
}

std::string ModelToColumnFamilyName(std::string_view base_model) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string name(kModelColumnFamilyPrefix);
  name.reserve(name.size() + base_model.size() * 3);
  for (unsigned char c : base_model) {
    if (IsPlainCfChar(c)) {
      name.push_back(static_cast<char>(c));
    } else {
      name.push_back('%');
      name.push_back(kHex[c >> 4]);
      name.push_back(kHex[c & 15]);
    }
  }
  return name;
}

Result<std::string> ColumnFamilyNameToModel(std::string_view name) {
  if (!name.starts_with(kModelColumnFamilyPrefix)) {
    return InvalidArgumentError("not a model column family: " +
                                std::string(name));
  }
  name.remove_prefix(kModelColumnFamilyPrefix.size());
  std::string model;
  model.reserve(name.size());
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '%') {
      if (i + 2 >= name.size()) {
        return InvalidArgumentError("truncated escape in column family name");
      }
      const int hi = HexValue(name[i + 1]);
      const int lo = HexValue(name[i + 2]);
      if (hi < 0 || lo < 0) {
        return InvalidArgumentError("bad escape in column family name");
      }
      model.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (IsPlainCfChar(static_cast<unsigned char>(c))) {
      model.push_back(c);
    } else {
      return InvalidArgumentError("unexpected byte in column family name");
    }
  }
  return model;
}

void AppendModelPrefix(std::string_view base_model, std::string* out) {
  uint32_t n = static_cast<uint32_t>(base_model.size());
  while (n >= 0x80) {
    out->push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out->push_back(static_cast<char>(n));
  out->append(base_model);
}

std::string TimeIndexKey(int64_t created_ms, std::string_view base_model,
                         const Digest& digest) {
  std::string k;
  AppendBigEndian64(static_cast<uint64_t>(created_ms), &k);
  AppendModelPrefix(base_model, &k);
  k.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  return k;
}

std::string ModelTimeIndexKey(std::string_view base_model, int64_t created_ms,
                              const Digest& digest) {
  std::string k;
  AppendModelPrefix(base_model, &k);
  AppendBigEndian64(static_cast<uint64_t>(created_ms), &k);
  k.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  return k;
}

bool TimeKeyToModelTimeKey(std::string_view time_key, std::string* out) {
  if (time_key.size() < 8 + 1 + kDigestSize) return false;
  std::string_view rest = time_key.substr(8);
  std::string_view model;
  if (!ConsumeModelPrefix(&rest, &model) || rest.size() != kDigestSize) {
    return false;
  }
  out->clear();
  AppendModelPrefix(model, out);
  out->append(time_key.substr(0, 8));
  out->append(rest);
  return true;
}

void ModelTimeIndexRange(std::string_view base_model, std::string* begin,
                         std::string* end) {
  begin->clear();
  AppendModelPrefix(base_model, begin);
  *end = *begin + std::string(8 + kDigestSize + 1, '\xff');
}

std::string ModelStatKey(std::string_view counter_name,
                         std::string_view base_model) {
  std::string k(kModelStatPrefix);
  k += counter_name;
  k += '/';
  k += base_model;
  return k;
}

bool ConsumeModelPrefix(std::string_view* in, std::string_view* model) {
  uint32_t n = 0;
  size_t i = 0;
  for (int shift = 0; shift <= 28; shift += 7) {
    if (i >= in->size()) return false;
    const uint8_t b = static_cast<uint8_t>((*in)[i++]);
    n |= static_cast<uint32_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      if (in->size() - i < n) return false;
      *model = in->substr(i, n);
      in->remove_prefix(i + n);
      return true;
    }
  }
  return false;
}

}  // namespace llmcache
