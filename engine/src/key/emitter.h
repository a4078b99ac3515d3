// The canonical emitter: an iterative walk over a parsed Workspace that
// writes the canonical form of the request (key.h) into a sink, leaving out
// the excluded members (KeyOptions) and keying a single text content part as
// the plain string it says.
//
// Emitter<Sink> walks chat-completions and embeddings requests;
// Emitter<Sink, Ctx::kTopAnthropic> and Emitter<Sink, Ctx::kTopResponses>
// also know the Anthropic Messages and Responses API layouts (more places
// where block markers are excluded). They are separate instantiations so
// that the chat walk, the hot path the benchmark measures, compiles to what
// it was before the other endpoints existed.
//
// Private to the request-key code: part of engine/src/key.cc, included by it
// alone. Internal linkage (an unnamed namespace) on purpose: the pipeline is
// one translation unit, so the compiler inlines its single-call stages.

#ifndef LLMCACHE_ENGINE_KEY_EMITTER_H_
#define LLMCACHE_ENGINE_KEY_EMITTER_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "key/compiler.h"
#include "key/json_text.h"
#include "key/workspace.h"
#include "llmcache/key.h"

namespace llmcache::key_internal {
namespace {

// A quick pre-filter for name lists: a 64-bit set of (length, first byte,
// last byte) hashes, so that most names are rejected without comparing
// strings.
class NameSet {
 public:
  explicit NameSet(const std::vector<std::string>& names) : names_(names) {
    for (const std::string& n : names) bits_ |= Bit(n);
  }

  LLMCACHE_INLINE bool Contains(std::string_view name) const {
    if (LLMCACHE_LIKELY((bits_ & Bit(name)) == 0)) return false;
    return ContainsSlow(name);
  }

 private:
  // Length, first and last byte: request member names that share length and
  // first byte with a default exclusion ("messages"/"metadata",
  // "tools"/"trace") differ in the last one.
  static LLMCACHE_INLINE uint64_t Bit(std::string_view s) {
    if (s.empty()) return 1;
    const size_t first = static_cast<unsigned char>(s.front());
    const size_t last = static_cast<unsigned char>(s.back());
    return uint64_t{1} << ((s.size() * 7 + first * 3 + last) & 63);
  }

  __attribute__((noinline)) bool ContainsSlow(std::string_view name) const {
    for (const std::string& n : names_) {
      if (n == name) return true;
    }
    return false;
  }

  const std::vector<std::string>& names_;
  uint64_t bits_ = 0;
};

// Context sets as bit masks, for the checks of the emitters that know the
// Anthropic Messages and Responses layouts.
constexpr uint32_t CtxBit(Ctx ctx) {
  return uint32_t{1} << static_cast<unsigned>(ctx);
}
static_assert(static_cast<unsigned>(Ctx::kCount) <= 32);
// Request objects: the request-level exclusions (KeyOptions::excluded_fields)
// apply in them.
constexpr uint32_t kTopCtxs =
    CtxBit(Ctx::kTop) | CtxBit(Ctx::kTopAnthropic) | CtxBit(Ctx::kTopResponses);
// Contexts that expect an object (block markers are excluded in them)...
constexpr uint32_t kObjectCtxs =
    kTopCtxs | CtxBit(Ctx::kMessage) | CtxBit(Ctx::kBlock) |
    CtxBit(Ctx::kApiMessage) | CtxBit(Ctx::kApiBlock) | CtxBit(Ctx::kInputItem);
// ... and those that expect an array (whose elements get a context).
constexpr uint32_t kArrayCtxs =
    CtxBit(Ctx::kMessages) | CtxBit(Ctx::kContent) | CtxBit(Ctx::kTools) |
    CtxBit(Ctx::kApiMessages) | CtxBit(Ctx::kApiContent) |
    CtxBit(Ctx::kNestedBlocks) | CtxBit(Ctx::kInput);

// kRoot is the context of the request object: Ctx::kTop (chat completions,
// embeddings), kTopAnthropic or kTopResponses. A template parameter rather
// than a member: the chat walk measurably slows down with one more member.
template <typename Sink, Ctx kRoot = Ctx::kTop>
class Emitter {
 public:
  static_assert(kRoot == Ctx::kTop || kRoot == Ctx::kTopAnthropic ||
                kRoot == Ctx::kTopResponses);
  Emitter(Workspace& ws, const KeyOptions& options, Sink* sink)
      : ws_(ws),
        fields_(options.excluded_fields),
        block_fields_(options.excluded_block_fields),
        sink_(*sink) {}

  // Writes the canonical form of ws.root (the request object, with
  // request-level exclusions).
  void Run() {
    PodVector<Frame>& frames = ws_.frames;
    frames.clear();
    EmitValue(ws_.root, kRoot);
    const Entry* const entries = ws_.entries.data();
    while (!frames.empty()) {
      // Emit the innermost open container's children until one of them opens
      // a container of its own (then continue with that one) or they run
      // out (then close this one).
      const size_t depth = frames.size();
      const Frame& frame = frames.back();
      const Entry* e = entries + frame.next;
      const Entry* const stop = entries + frame.stop;
      const Ctx ctx = frame.ctx;
      const bool is_object = frame.is_object;
      bool comma = !frame.first;
      bool descended = false;
      if (is_object) {
        for (; e < stop; ++e) {
          Ctx child = Ctx::kPlain;
          if (ctx != Ctx::kPlain) {
            const std::string_view key = KeyText(*e);
            if (Excluded(ctx, key)) continue;
            child = MemberCtx(ctx, key);
          }
          // A context applies only to the container type it expects
          // (EmitValue), so a scalar value is plain in any context.
          if ((e->flags & kMemberRaw) &&
              (child == Ctx::kPlain || e->type < Type::kArray)) {
            // `"name":value` is canonical in the body: one slice.
            const char* const from = e->key - 1;
            WriteSlice(comma, from,
                       static_cast<size_t>(e->raw + e->raw_len - from));
            comma = true;
            continue;
          }
          WriteName(comma, *e);
          comma = true;
          if (EmitValue(*e, child)) {
            descended = true;
            ++e;
            break;
          }
        }
      } else {
        const Ctx child = ElementCtx(ctx);
        for (; e < stop; ++e) {
          if (comma) sink_.Put(',');
          comma = true;
          if (EmitValue(*e, child)) {
            descended = true;
            ++e;
            break;
          }
        }
      }
      if (descended) {
        // The push may have moved the frames: index, not `frame`.
        Frame& parent = frames[depth - 1];
        parent.next = static_cast<uint32_t>(e - entries);
        parent.first = false;
      } else {
        sink_.Put(is_object ? '}' : ']');
        frames.pop();
      }
    }
  }

 private:
  // Whether the contexts of the Anthropic Messages and Responses layouts
  // can occur.
  static constexpr bool kAllEndpoints = kRoot != Ctx::kTop;

  LLMCACHE_INLINE bool Excluded(Ctx ctx, std::string_view key) const {
    if constexpr (kAllEndpoints) {
      if ((kTopCtxs & CtxBit(ctx)) != 0 && fields_.Contains(key)) return true;
    } else {
      if (ctx == Ctx::kTop && fields_.Contains(key)) return true;
    }
    return block_fields_.Contains(key);
  }

  static LLMCACHE_INLINE Ctx MemberCtx(Ctx parent, std::string_view key) {
    if constexpr (kAllEndpoints) return ApiMemberCtx(parent, key);
    if (parent == Ctx::kTop) {
      if (IsName(key, "messages")) return Ctx::kMessages;
      if (IsName(key, "tools")) return Ctx::kTools;
    } else if (parent == Ctx::kMessage && IsName(key, "content")) {
      return Ctx::kContent;
    }
    return Ctx::kPlain;
  }

  // MemberCtx for every endpoint. Anthropic: `system` is keyed like a
  // message's `content` (its blocks are blocks, a single text block is its
  // text); a block's own `content` (tool_result) holds blocks. Responses:
  // `input` items and their content parts are blocks.
  static Ctx ApiMemberCtx(Ctx parent, std::string_view key) {
    switch (parent) {
      case Ctx::kTop:
        if (IsName(key, "messages")) return Ctx::kMessages;
        if (IsName(key, "tools")) return Ctx::kTools;
        break;
      case Ctx::kMessage:
        if (IsName(key, "content")) return Ctx::kContent;
        break;
      case Ctx::kTopAnthropic:
        if (IsName(key, "messages")) return Ctx::kApiMessages;
        if (IsName(key, "system")) return Ctx::kContent;
        if (IsName(key, "tools")) return Ctx::kTools;
        break;
      case Ctx::kApiMessage:
        if (IsName(key, "content")) return Ctx::kApiContent;
        break;
      case Ctx::kApiBlock:
      case Ctx::kInputItem:
        if (IsName(key, "content")) return Ctx::kNestedBlocks;
        break;
      case Ctx::kTopResponses:
        if (IsName(key, "input")) return Ctx::kInput;
        if (IsName(key, "tools")) return Ctx::kTools;
        break;
      default:
        break;
    }
    return Ctx::kPlain;
  }

  static LLMCACHE_INLINE Ctx ElementCtx(Ctx parent) {
    switch (parent) {
      case Ctx::kMessages:
        return Ctx::kMessage;
      case Ctx::kContent:
      case Ctx::kTools:
        return Ctx::kBlock;
      default:
        if constexpr (kAllEndpoints) {
          switch (parent) {
            case Ctx::kApiMessages:
              return Ctx::kApiMessage;
            case Ctx::kApiContent:
              return Ctx::kApiBlock;
            case Ctx::kNestedBlocks:
              return Ctx::kBlock;
            case Ctx::kInput:
              return Ctx::kInputItem;
            default:
              break;
          }
        }
        return Ctx::kPlain;
    }
  }

  // Writes an optional comma and then `n` bytes at `p`.
  LLMCACHE_INLINE void WriteSlice(bool comma, const char* p, size_t n) {
    if (LLMCACHE_LIKELY(n < kShort)) {
      char* d = sink_.Room(n + 1 + 16);
      *d = ',';
      d += comma;
      CopyShort(d, p, n);
      sink_.Commit(d + n);
      return;
    }
    if (comma) sink_.Put(',');
    sink_.Write(p, n);
  }

  // Slices shorter than this are copied by CopyShort.
  static constexpr size_t kShort = 240;
  // WriteName() asks for kShort + 20 bytes of room at most.
  static_assert(kShort + 20 <= Sink::kMaxRoom);

  // Copies n < kShort bytes; `d` must have room for n + 16. Inside the body
  // it moves 16-byte blocks, which may read up to 15 bytes past the slice
  // (still inside the body) and write past n (inside the room): fewer,
  // better predicted branches than an exact copy of a variable length.
  LLMCACHE_INLINE void CopyShort(char* d, const char* p, size_t n) {
    const auto at = reinterpret_cast<uintptr_t>(p);
    if (LLMCACHE_LIKELY(at >= reinterpret_cast<uintptr_t>(ws_.body_begin) &&
                        at + n + 16 <=
                            reinterpret_cast<uintptr_t>(ws_.body_end))) {
      for (size_t i = 0; i < n; i += 16) std::memcpy(d + i, p + i, 16);
    } else {
      CopyBytes(d, p, n);
    }
  }

  // Writes an optional comma, the member name and ':'.
  LLMCACHE_INLINE void WriteName(bool comma, const Entry& e) {
    if (LLMCACHE_LIKELY((e.flags & kKeyNeedsEscape) == 0 &&
                        e.key_len < kShort)) {
      char* d = sink_.Room(e.key_len + 4 + 16);
      *d = ',';
      d += comma;
      *d++ = '"';
      CopyShort(d, e.key, e.key_len);
      d += e.key_len;
      *d++ = '"';
      *d++ = ':';
      sink_.Commit(d);
      return;
    }
    if (comma) sink_.Put(',');
    EmitString(e.key, e.key_len, (e.flags & kKeyNeedsEscape) != 0);
    sink_.Put(':');
  }

  // Emits the value of `e` in context `ctx`: as one slice when it is
  // canonical and no exclusion can apply inside it; otherwise scalars are
  // written and containers open a frame. Returns whether a frame was pushed.
  LLMCACHE_INLINE bool EmitValue(const Entry& e, Ctx ctx) {
    if constexpr (kAllEndpoints) {
      const uint32_t expected = e.type == Type::kObject  ? kObjectCtxs
                                : e.type == Type::kArray ? kArrayCtxs
                                                         : 0;
      if ((expected & CtxBit(ctx)) == 0) ctx = Ctx::kPlain;
    } else if (e.type == Type::kObject) {
      // Exclusions apply only where the context expects an object.
      if (ctx != Ctx::kTop && ctx != Ctx::kMessage && ctx != Ctx::kBlock) {
        ctx = Ctx::kPlain;
      }
    } else if (e.type == Type::kArray) {
      if (ctx != Ctx::kMessages && ctx != Ctx::kContent && ctx != Ctx::kTools) {
        ctx = Ctx::kPlain;
      }
    } else {
      ctx = Ctx::kPlain;
    }
    if ((e.flags & kCanonical) && ctx == Ctx::kPlain) {
      WriteSlice(false, e.raw, e.raw_len);
      return false;
    }
    if (ctx == Ctx::kContent || (kAllEndpoints && ctx == Ctx::kApiContent)) {
      // `"content":[{"type":"text","text":T}]` (markers such as cache_control
      // aside) says exactly what `"content":T` says: key both as T, so that
      // marking a block for prompt caching never changes the key.
      if (const Entry* text = SingleTextPart(e)) {
        if (text->flags & kCanonical) {
          WriteSlice(false, text->raw, text->raw_len);
        } else {
          EmitDecodedString(*text);
        }
        return false;
      }
    }
    switch (e.type) {
      case Type::kString:
        EmitDecodedString(e);
        return false;
      case Type::kObject:
      case Type::kArray: {
        const bool is_object = e.type == Type::kObject;
        const Container& c = ws_.containers[e.aux];
        sink_.Put(is_object ? '{' : '[');
        Frame& frame = ws_.frames.push_uninit();
        frame.next = c.first;
        frame.stop = c.first + c.count;
        frame.ctx = ctx;
        frame.is_object = is_object;
        frame.first = true;
        return true;
      }
      default:  // numbers (canonical text, maybe in the arena), literals
        sink_.Write(e.raw, e.raw_len);
        return false;
    }
  }

  // The `text` member of `content`'s only part when that part has nothing
  // but `type: "text"`, a string `text` and excluded block members; else
  // null.
  const Entry* SingleTextPart(const Entry& content) const {
    const Container& c = ws_.containers[content.aux];
    if (c.count != 1) return nullptr;
    const Entry& part = ws_.entries[c.first];
    if (part.type != Type::kObject) return nullptr;
    const Container& members = ws_.containers[part.aux];
    const Entry* text = nullptr;
    bool typed = false;
    for (uint32_t i = 0; i < members.count; ++i) {
      const Entry& m = ws_.entries[members.first + i];
      const std::string_view key = KeyText(m);
      if (Excluded(Ctx::kBlock, key)) continue;
      if (IsName(key, "text") && m.type == Type::kString) {
        text = &m;
      } else if (IsName(key, "type") && m.type == Type::kString &&
                 IsTextString(m)) {
        typed = true;
      } else {
        return nullptr;
      }
    }
    return typed ? text : nullptr;
  }

  // True for a string value that decodes to "text", escaped or not (equal
  // values must key equally: "te\u0078t" is "text").
  static bool IsTextString(const Entry& e) {
    const std::string_view raw(e.raw, e.raw_len);
    if (raw == "\"text\"") return true;
    // Four characters escaped take at most 4 * 6 bytes between the quotes.
    constexpr size_t kMaxEscaped = 4 * 6;
    if (raw.size() < 2 || raw.size() - 2 > kMaxEscaped) return false;
    char decoded[kMaxEscaped];
    bool needs_escape = false;
    const size_t n =
        DecodeValidated(raw.substr(1, raw.size() - 2), decoded, &needs_escape);
    return std::string_view(decoded, n) == "text";
  }

  void EmitDecodedString(const Entry& e) {
    std::string& buf = ws_.decoded;
    const std::string_view raw(e.raw + 1, e.raw_len - 2);
    if (buf.size() < raw.size()) buf.resize(raw.size());
    bool needs_escape = false;
    const size_t n = DecodeValidated(raw, buf.data(), &needs_escape);
    EmitString(buf.data(), n, needs_escape);
  }

  // Writes `s` (decoded text) as a canonical JSON string. Without
  // needs_escape the bytes are written as they are.
  void EmitString(const char* s, size_t n, bool needs_escape) {
    sink_.Put('"');
    if (!needs_escape) {
      sink_.Write(s, n);
    } else {
      EmitEscaped(s, n);
    }
    sink_.Put('"');
  }

  void EmitEscaped(const char* p, size_t n) {
    const char* const end = p + n;
    for (;;) {
      const char* const hit = ScanEscapable(p, end);
      sink_.Write(p, static_cast<size_t>(hit - p));
      if (hit == end) return;
      const unsigned char c = static_cast<unsigned char>(*hit);
      char esc[6] = {'\\', 0, 0, 0, 0, 0};
      size_t len = 2;
      if (c == '"' || c == '\\') {
        esc[1] = static_cast<char>(c);
      } else if (const char letter = ShortEscape(c); letter != 0) {
        esc[1] = letter;
      } else {
        esc[1] = 'u';
        esc[2] = '0';
        esc[3] = '0';
        esc[4] = kLowerHex[c >> 4];
        esc[5] = kLowerHex[c & 0xF];
        len = 6;
      }
      sink_.Write(esc, len);
      p = hit + 1;
    }
  }

  Workspace& ws_;
  const NameSet fields_;
  const NameSet block_fields_;
  Sink& sink_;
};

}  // namespace
}  // namespace llmcache::key_internal

#endif  // LLMCACHE_ENGINE_KEY_EMITTER_H_
