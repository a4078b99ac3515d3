// Purge selectors (llmcache/purge.h): parsing `name=value` selectors and
// durations, and applying a selector to a Cache.

#include "llmcache/purge.h"

#include <limits>

namespace llmcache {

Result<int64_t> ParseDuration(std::string_view text) {
  const std::string original(text);
  auto bad = [&](const std::string& why) {
    return InvalidArgumentError("bad duration '" + original + "': " + why);
  };
  if (text.empty()) return bad("empty (want e.g. 90s, 15m, 2h, 7d)");
  int64_t total = 0;
  while (!text.empty()) {
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
      ++digits;
    }
    if (digits == 0) {
      return bad("want a number and a unit, like 90s, 15m, 2h, 7d");
    }
    if (digits > 12) return bad("too large");
    int64_t n = 0;
    for (size_t i = 0; i < digits; ++i) n = n * 10 + (text[i] - '0');
    const std::string number(text.substr(0, digits));
    text.remove_prefix(digits);
    size_t unit_len = 0;
    while (unit_len < text.size() &&
           !(text[unit_len] >= '0' && text[unit_len] <= '9')) {
      ++unit_len;
    }
    const std::string_view unit = text.substr(0, unit_len);
    text.remove_prefix(unit_len);
    int64_t scale = 0;
    if (unit.empty()) {
      // Never guessed: "30" is as likely meant as days as seconds, and a
      // purge by age cannot be undone.
      return bad(number + " has no unit: write it with one, e.g. " + number +
                 "s, " + number + "m, " + number + "h or " + number + "d");
    } else if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60'000;
    } else if (unit == "h") {
      scale = 3'600'000;
    } else if (unit == "d") {
      scale = 86'400'000;
    } else if (unit == "w") {
      scale = 7 * 86'400'000LL;
    } else {
      return bad("unknown unit '" + std::string(unit) +
                 "' (use ms, s, m, h, d, w)");
    }
    if (n > std::numeric_limits<int64_t>::max() / scale ||
        total > std::numeric_limits<int64_t>::max() - n * scale) {
      return bad("too large");
    }
    total += n * scale;
  }
  return total;
}

std::string PurgeSelector::Describe() const {
  switch (kind) {
    case PurgeKind::kModel: {
      // One family holds a model and its variants, removed together: say
      // so, above all when the operator named a variant.
      const std::string base(BaseModel(value));
      return "every entry of model " + base + " and of its :variants" +
             (base == value ? "" : " (" + value + " is one)");
    }
    case PurgeKind::kAll:
      return "EVERY entry";
    case PurgeKind::kKey:
      return "the entry " + DigestToHex(digest);
    case PurgeKind::kNamespace:
      return "every entry of namespace '" + value + "'";
    case PurgeKind::kExpired:
      return "every expired entry";
    case PurgeKind::kOlderThan:
      return "every entry older than " + value;
  }
  return "?";
}

Result<PurgeSelector> ParsePurgeSelector(std::string_view name,
                                         std::string_view value) {
  PurgeSelector s;
  s.value = std::string(value);
  auto flag = [&](PurgeKind kind) -> Result<PurgeSelector> {
    if (!value.empty() && value != "1" && value != "true") {
      return InvalidArgumentError(std::string(name) +
                                  " takes no value other than 1 or true");
    }
    s.kind = kind;
    return s;
  };
  auto needs_value = [&]() -> Status {
    if (value.empty()) {
      return InvalidArgumentError(std::string(name) + " needs a value");
    }
    return Status();
  };
  s.name = std::string(name);
  if (name == "all") return flag(PurgeKind::kAll);
  if (name == "expired") return flag(PurgeKind::kExpired);
  if (name == "model") {
    LLMCACHE_RETURN_IF_ERROR(needs_value());
    // Not a pattern: "*" names no model (and is the shared tier's word for
    // all of them).
    if (value == "*") {
      return InvalidArgumentError(
          "model '*' is not a model id (no patterns); to remove every "
          "model's entries, purge all (all=1, --all)");
    }
    s.kind = PurgeKind::kModel;
    return s;
  }
  if (name == "namespace") {
    LLMCACHE_RETURN_IF_ERROR(needs_value());
    s.kind = PurgeKind::kNamespace;
    return s;
  }
  if (name == "key") {
    Result<Digest> d = DigestFromHex(value);
    if (!d.ok()) {
      return InvalidArgumentError("key must be 64 hex digits, got '" +
                                  std::string(value) + "'");
    }
    s.kind = PurgeKind::kKey;
    s.digest = *d;
    return s;
  }
  if (name == "older_than" || name == "older-than") {
    LLMCACHE_ASSIGN_OR_RETURN(s.age_ms, ParseDuration(value));
    s.kind = PurgeKind::kOlderThan;
    s.name = "older_than";
    return s;
  }
  return InvalidArgumentError(
      "unknown purge selector '" + std::string(name) +
      "' (model, all, key, namespace, expired, older_than)");
}

Result<uint64_t> Purge(Cache& cache, const PurgeSelector& s) {
  switch (s.kind) {
    case PurgeKind::kModel:
      return cache.FlushModel(s.value);
    case PurgeKind::kAll: {
      LLMCACHE_ASSIGN_OR_RETURN(CacheStats stats, cache.GetStats());
      LLMCACHE_RETURN_IF_ERROR(cache.FlushAll());
      return stats.entries;
    }
    case PurgeKind::kKey:
      return cache.PurgeKey(s.digest);
    case PurgeKind::kNamespace:
      return cache.PurgeNamespace(s.value);
    case PurgeKind::kExpired:
      return cache.PurgeExpired();
    case PurgeKind::kOlderThan:
      return cache.PurgeOlderThan(s.age_ms);
  }
  return InvalidArgumentError("unknown purge selector kind");
}

}  // namespace llmcache
