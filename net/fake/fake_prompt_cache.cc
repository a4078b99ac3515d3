// The prompt-cache simulation: splitting a request into cacheable blocks and
// accounting cache reads and writes (rules in fake_prompt_cache.h).

#include "fake_prompt_cache.h"

#include <algorithm>
#include <boost/json.hpp>
#include <iterator>
#include <string>

#include "fake_util.h"

namespace llmcache::fake::internal {
namespace {

namespace json = boost::json;

// Past this many entries, expired ones are dropped.
constexpr size_t kPurgeThreshold = 100000;

// Returns whether `o` carries a cache marker, and whether its TTL is 1 h.
bool HasMarker(const json::object& o, bool* ttl_1h) {
  if (const json::object* cc = FindObject(o, "cache_control")) {
    const json::string* ttl = FindString(*cc, "ttl");
    *ttl_1h = ttl != nullptr && *ttl == "1h";
    return true;
  }
  if (o.contains("prompt_cache_breakpoint")) {
    *ttl_1h = false;
    return true;
  }
  return false;
}

std::string SerializeWithoutMarkers(const json::value& v) {
  if (const json::object* o = v.if_object()) {
    if (o->contains("cache_control") ||
        o->contains("prompt_cache_breakpoint")) {
      json::object copy = *o;
      copy.erase("cache_control");
      copy.erase("prompt_cache_breakpoint");
      return json::serialize(copy);
    }
  }
  return json::serialize(v);
}

}  // namespace

PromptBlocks BuildPromptBlocks(const json::object& body,
                               std::string_view base_model) {
  PromptBlocks out;
  uint64_t hash = Fnv1a(base_model);
  auto add = [&](std::string_view key, size_t bytes, bool marker, bool ttl_1h) {
    hash = Fnv1a(key, Fnv1a("\x1f", hash));
    out.total_bytes += bytes;
    out.blocks.push_back({hash, out.total_bytes, marker, ttl_1h});
  };
  if (const json::value* tools = body.if_contains("tools")) {
    if (const json::array* arr = tools->if_array()) {
      for (const json::value& tool : *arr) {
        bool ttl_1h = false;
        const bool marker =
            tool.is_object() && HasMarker(tool.get_object(), &ttl_1h);
        const std::string text = SerializeWithoutMarkers(tool);
        add("tool:" + text, text.size(), marker, ttl_1h);
      }
    }
  }
  const json::value* messages = body.if_contains("messages");
  if (messages != nullptr && messages->is_array()) {
    for (const json::value& mv : messages->get_array()) {
      if (!mv.is_object()) continue;
      const json::object& m = mv.get_object();
      // A header block: the role and everything but the content (tool calls,
      // tool_call_id, name), 4 bytes of overhead plus any tool calls.
      json::object header = m;
      header.erase("content");
      header.erase("cache_control");
      header.erase("prompt_cache_breakpoint");
      size_t header_bytes = 4;
      if (const json::value* tc = m.if_contains("tool_calls")) {
        header_bytes += json::serialize(*tc).size();
      }
      add("msg:" + json::serialize(header), header_bytes, false, false);
      const json::value* content = m.if_contains("content");
      if (content != nullptr) {
        if (const json::string* s = content->if_string()) {
          // The same block as a one-part text array: providers see no
          // difference (Anthropic turns a string into one text block), so
          // a prefix written with the block marked reads back unmarked.
          add(json::serialize(json::object{{"type", "text"}, {"text", *s}}),
              s->size(), false, false);
        } else if (const json::array* parts = content->if_array()) {
          for (const json::value& part : *parts) {
            bool ttl_1h = false;
            bool marker = false;
            size_t bytes = 0;
            const std::string text = SerializeWithoutMarkers(part);
            if (const json::object* po = part.if_object()) {
              marker = HasMarker(*po, &ttl_1h);
              const json::string* t = FindString(*po, "text");
              bytes = t != nullptr ? t->size() : text.size();
            } else {
              bytes = text.size();
            }
            add(text, bytes, marker, ttl_1h);
          }
        }
      }
      // A marker on the message marks its last block.
      bool ttl_1h = false;
      if (HasMarker(m, &ttl_1h)) {
        out.blocks.back().breakpoint = true;
        out.blocks.back().ttl_1h = ttl_1h;
      }
    }
  }
  bool ttl_1h = false;
  if (!out.blocks.empty() && HasMarker(body, &ttl_1h)) {  // automatic caching
    out.blocks.back().breakpoint = true;
    out.blocks.back().ttl_1h = ttl_1h;
  }
  return out;
}

PromptUsage PromptCacheSim::Account(const PromptBlocks& prompt) {
  PromptUsage u;
  u.prompt_tokens = std::max<int64_t>(1, CeilDiv4(prompt.total_bytes));
  int last = -1;
  for (size_t i = 0; i < prompt.blocks.size(); ++i) {
    if (prompt.blocks[i].breakpoint) last = static_cast<int>(i);
  }
  if (last < 0) return u;
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  int hit = -1;
  for (int i = last; i >= 0; --i) {
    auto it = entries_.find(prompt.blocks[static_cast<size_t>(i)].prefix_hash);
    if (it != entries_.end() && it->second.expiry > now) {
      hit = i;
      it->second.expiry = now + it->second.ttl;  // reads refresh the TTL
      break;
    }
  }
  auto tokens_at = [&](int i) {
    return static_cast<int64_t>(
        prompt.blocks[static_cast<size_t>(i)].prefix_bytes / 4);
  };
  u.cached_tokens = hit >= 0 ? tokens_at(hit) : 0;
  u.cache_write_tokens =
      std::max<int64_t>(0, tokens_at(last) - u.cached_tokens);
  u.write_1h = prompt.blocks[static_cast<size_t>(last)].ttl_1h;
  for (int i = hit + 1; i <= last; ++i) {
    const auto& b = prompt.blocks[static_cast<size_t>(i)];
    if (!b.breakpoint) continue;
    const Clock::duration ttl = b.ttl_1h
                                    ? Clock::duration(std::chrono::hours(1))
                                    : std::chrono::minutes(5);
    entries_[b.prefix_hash] = Entry{now + ttl, ttl};
  }
  if (entries_.size() > kPurgeThreshold) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      it = it->second.expiry <= now ? entries_.erase(it) : std::next(it);
    }
  }
  return u;
}

}  // namespace llmcache::fake::internal
