// The JSON parser: one pass over a request body that validates RFC 8259
// syntax and UTF-8 and fills a Workspace with one Entry per value.
//
// A state machine with an explicit stack of open containers (no recursion;
// depth checked against KeyOptions::max_depth before the stack grows).
// Strings are not copied: an entry points at the raw text, flagged when it
// has escapes and whether they are already canonical; member names with
// escapes are decoded into the workspace's arena, because objects are sorted
// by decoded name. When a container closes its children move to their final
// place, an object's sorted (which also finds duplicate names). The parser
// also marks values and `"name":value` members that are byte-for-byte
// canonical already, so the emitter (key/emitter.h) copies them as one slice.
//
// Private to the request-key code: part of engine/src/key.cc, included by it
// alone. Internal linkage (an unnamed namespace) on purpose: the pipeline is
// one translation unit, so the compiler inlines its single-call stages.

#ifndef LLMCACHE_ENGINE_KEY_PARSER_H_
#define LLMCACHE_ENGINE_KEY_PARSER_H_

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "key/compiler.h"
#include "key/json_text.h"
#include "key/workspace.h"
#include "llmcache/status.h"

namespace llmcache::key_internal {
namespace {

// Integral values with at most this many digits (value < 1e21) are written
// as exact integers.
constexpr int64_t kMaxExactIntegerDigits = 21;

// Parses a whole body into a Workspace: one Entry per value. Hot paths
// return bool (or a pointer) and keep the input position in a local; the
// first error is recorded and turned into a Status once.
class Parser {
 public:
  Parser(Workspace& ws, std::string_view body, size_t max_depth)
      : ws_(ws),
        begin_(body.data()),
        end_(body.data() + body.size()),
        max_depth_(max_depth) {}

  // Parses the whole body into ws.root.
  Status Parse() {
    if (Run()) {
      ws_.root = ws_.scratch[0];
      if (!ws_.numbers.empty()) ResolveNumbers();
      return Status();
    }
    std::string msg = "invalid JSON at byte ";
    msg += std::to_string(error_at_ - begin_);
    msg += ": ";
    msg += error_;
    return InvalidArgumentError(msg);
  }

 private:
  bool Fail(std::string_view what, const char* at) {
    error_.assign(what);
    error_at_ = at;
    return false;
  }

  const char* FailAt(std::string_view what, const char* at) {
    Fail(what, at);
    return nullptr;
  }

  // Skips whitespace, counting the runs skipped: a container is compact iff
  // the count did not change between its brackets.
  LLMCACHE_INLINE const char* Skip(const char* p) {
    if (LLMCACHE_LIKELY(p == end_ || static_cast<unsigned char>(*p) > ' ')) {
      return p;
    }
    if (!IsWhitespace(*p)) return p;  // a control character: a syntax error
    ++ws_runs_;
    do {
      ++p;
    } while (p < end_ && IsWhitespace(*p));
    return p;
  }

  // Appends an entry for a value to the innermost open container.
  LLMCACHE_INLINE void AddEntry(const char* key, const char* raw,
                                uint32_t key_len, uint32_t raw_len,
                                uint32_t aux, Type type, Flags flags) {
    Entry& e = ws_.scratch.push_uninit();
#if defined(__SSE2__)
    // Two 16-byte stores: entries are soon copied with 16-byte loads (when
    // their container closes), which forward only from stores of the same
    // size and address; field-by-field stores would stall each load.
    static_assert(sizeof(Entry) == 32 && offsetof(Entry, key) == 0 &&
                  offsetof(Entry, raw) == 8 && offsetof(Entry, key_len) == 16 &&
                  offsetof(Entry, raw_len) == 20 &&
                  offsetof(Entry, aux) == 24 && offsetof(Entry, type) == 28 &&
                  offsetof(Entry, flags) == 30);
    const __m128i pointers =
        _mm_set_epi64x(static_cast<int64_t>(reinterpret_cast<uintptr_t>(raw)),
                       static_cast<int64_t>(reinterpret_cast<uintptr_t>(key)));
    const uint32_t tail =
        static_cast<uint32_t>(type) | (static_cast<uint32_t>(flags) << 16);
    const __m128i sizes =
        _mm_set_epi32(static_cast<int>(tail), static_cast<int>(aux),
                      static_cast<int>(raw_len), static_cast<int>(key_len));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&e), pointers);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&e) + 1, sizes);
#else
    e.key = key;
    e.raw = raw;
    e.key_len = key_len;
    e.raw_len = raw_len;
    e.aux = aux;
    e.type = type;
    e.flags = flags;
#endif
  }

  // The state machine. `p` is the only cursor; states are labels. `key*`
  // hold the name of the member whose value comes next (unused in arrays);
  // `canonical` is the kCanonical-ness of the value that just ended.
  bool Run() {
    const char* const end = end_;
    const char* p = Skip(begin_);
    const char* key = nullptr;
    uint32_t key_len = 0;
    Flags key_flags = 0;
    bool canonical = false;
    if (p == end) return Fail("empty body, expected a JSON value", p);

  value:  // p is at the first byte of a value
    if (LLMCACHE_UNLIKELY(p == end)) {
      return Fail("unexpected end of input, expected a value", p);
    }
    switch (*p) {
      case '"': {
        Flags flags = 0;
        const char* const q = ScanString(p, &flags);
        if (q == nullptr) return false;
        AddEntry(key, p, key_len, static_cast<uint32_t>(q + 1 - p), 0,
                 Type::kString, static_cast<Flags>(key_flags | flags));
        canonical = (flags & kCanonical) != 0;
        p = q + 1;
        goto after_value;
      }
      case '{':
      case '[': {
        if (LLMCACHE_UNLIKELY(ws_.open.size() >= max_depth_)) {
          return Fail("nesting deeper than max_depth (" +
                          std::to_string(max_depth_) + ")",
                      p);
        }
        const bool is_object = *p == '{';
        OpenContainer& open = ws_.open.push_uninit();
        open.entry = static_cast<uint32_t>(ws_.scratch.size());
        open.ws_at_open = ws_runs_;
        open.ws_at_member = 0;
        open.is_object = is_object;
        open.canonical = true;
        open.key_plain = true;
        AddEntry(key, p, key_len, 0, 0,
                 is_object ? Type::kObject : Type::kArray, key_flags);
        p = Skip(p + 1);
        if (p < end && *p == (is_object ? '}' : ']')) {
          ++p;
          if (!Close(p, &canonical)) return false;
          goto after_value;
        }
        if (is_object) goto member;
        goto value;
      }
      case 't':
      case 'f':
      case 'n': {
        const std::string_view word =
            *p == 't' ? "true" : (*p == 'f' ? "false" : "null");
        if (static_cast<size_t>(end - p) < word.size() ||
            std::memcmp(p, word.data(), word.size()) != 0) {
          return Fail("invalid literal", p);
        }
        AddEntry(
            key, p, key_len, static_cast<uint32_t>(word.size()), 0,
            *p == 't' ? Type::kTrue : (*p == 'f' ? Type::kFalse : Type::kNull),
            static_cast<Flags>(key_flags | kCanonical));
        canonical = true;
        p += word.size();
        goto after_value;
      }
      default:
        if (*p == '-' || IsDigit(*p)) {
          p = ParseNumber(p, key, key_len, key_flags, &canonical);
          if (p == nullptr) return false;
          goto after_value;
        }
        return Fail("unexpected character, expected a value", p);
    }

  member:  // p is where a member name should start
    if (LLMCACHE_UNLIKELY(p == end || *p != '"')) {
      return Fail("expected a member name string", p);
    }

  member_at_quote :  // p is at the opening quote of a member name
  {
    OpenContainer& top = ws_.open.back();
    top.ws_at_member = ws_runs_;
    const char* const s = p + 1;
    bool quote = false;
    const char* q = ScanPlain(s, end, &quote);
    key = s;
    key_flags = 0;
    if (LLMCACHE_LIKELY(quote)) {
      key_len = static_cast<uint32_t>(q - s);
      top.key_plain = true;
    } else {
      Flags string_flags = kCanonical;
      q = ScanStringRest(p, q, &string_flags);
      if (q == nullptr) return false;
      top.key_plain = (string_flags & kHasEscapes) == 0;
      if ((string_flags & kCanonical) == 0) top.canonical = false;
      if (top.key_plain) {
        key_len = static_cast<uint32_t>(q - s);
      } else {
        // Names are compared by their decoded bytes.
        char* const dst = ws_.strings.get() + ws_.strings_used;
        bool needs_escape = false;
        const size_t n =
            DecodeValidated(std::string_view(s, static_cast<size_t>(q - s)),
                            dst, &needs_escape);
        ws_.strings_used += n;
        key = dst;
        key_len = static_cast<uint32_t>(n);
        key_flags = needs_escape ? kKeyNeedsEscape : 0;
      }
    }
    if (LLMCACHE_LIKELY(q + 1 < end && q[1] == ':')) {
      p = Skip(q + 2);
    } else {
      p = Skip(q + 1);
      if (LLMCACHE_UNLIKELY(p == end || *p != ':')) {
        return Fail("expected ':' after a member name", p);
      }
      p = Skip(p + 1);
    }
    if (LLMCACHE_LIKELY(p < end && *p == '"')) {
      // The most common member, `"name":"text"`, without the generic value
      // dispatch and after_value bookkeeping.
      Flags flags = 0;
      const char* const vq = ScanString(p, &flags);
      if (vq == nullptr) return false;
      canonical = (flags & kCanonical) != 0;
      if (canonical && top.key_plain && ws_runs_ == top.ws_at_member) {
        flags |= kMemberRaw;
      }
      top.canonical &= canonical;
      AddEntry(key, p, key_len, static_cast<uint32_t>(vq + 1 - p), 0,
               Type::kString, static_cast<Flags>(key_flags | flags));
      p = vq + 1;
      goto object_next;
    }
    goto value;
  }

  after_value :  // a value just ended inside the innermost open container
  {
    if (LLMCACHE_UNLIKELY(ws_.open.empty())) {
      p = Skip(p);
      if (p != end) return Fail("unexpected data after the JSON value", p);
      return true;
    }
    OpenContainer& top = ws_.open.back();
    top.canonical &= canonical;
    if (!top.is_object) goto array_next;
    if (canonical && top.key_plain && ws_runs_ == top.ws_at_member) {
      ws_.scratch.back().flags |= kMemberRaw;
    }
  }

  object_next:  // after a member of the innermost open object
    if (LLMCACHE_LIKELY(end - p >= 2 && p[0] == ',' && p[1] == '"')) {
      ++p;  // compact JSON: straight to the next name
      goto member_at_quote;
    }
    p = Skip(p);
    if (LLMCACHE_UNLIKELY(p == end)) {
      return Fail("unexpected end of input inside an object", p);
    }
    if (*p == ',') {
      p = Skip(p + 1);
      goto member;
    }
    if (*p == '}') {
      ++p;
      if (!Close(p, &canonical)) return false;
      goto after_value;
    }
    return Fail("expected ',' or '}' after an object member", p);

  array_next :  // after an element of the innermost open array
  {
    if (LLMCACHE_LIKELY(end - p >= 2 && p[0] == ',' &&
                        static_cast<unsigned char>(p[1]) > ' ')) {
      ++p;  // compact JSON: straight to the next element
      goto value;
    }
    p = Skip(p);
    if (LLMCACHE_UNLIKELY(p == end)) {
      return Fail("unexpected end of input inside an array", p);
    }
    if (*p == ',') {
      p = Skip(p + 1);
      goto value;
    }
    if (*p == ']') {
      ++p;
      if (!Close(p, &canonical)) return false;
      goto after_value;
    }
    return Fail("expected ',' or ']' after an array element", p);
  }
  }

  // Three-way bytewise (unsigned) comparison of decoded names. Names are
  // short, so an inline loop beats a memcmp call.
  static LLMCACHE_INLINE int CompareKeys(const Entry& a, const Entry& b) {
    const uint32_t n = std::min(a.key_len, b.key_len);
    for (uint32_t i = 0; i < n; ++i) {
      if (a.key[i] != b.key[i]) {
        return static_cast<unsigned char>(a.key[i]) <
                       static_cast<unsigned char>(b.key[i])
                   ? -1
                   : 1;
      }
    }
    return a.key_len < b.key_len ? -1 : (a.key_len > b.key_len ? 1 : 0);
  }

  bool DuplicateKey(const Entry& e, const OpenContainer& top) {
    std::string what = "duplicate member name \"";
    what.append(e.key, std::min<size_t>(e.key_len, 64));
    what += "\" in the object starting here";
    return Fail(what, ws_.scratch[top.entry].raw);
  }

  // Sorts the members of a large object (more than 16) bytewise by name;
  // false (after Fail()) on a duplicate name. Sets *sorted to whether they
  // were in order already.
  bool SortMembers(Entry* first, Entry* last, const OpenContainer& top,
                   bool* sorted) {
    auto less = [](const Entry& a, const Entry& b) {
      return CompareKeys(a, b) < 0;
    };
    if (!std::is_sorted(first, last, less)) {
      *sorted = false;
      std::sort(first, last, less);
    }
    for (Entry* i = first + 1; i < last; ++i) {
      if (CompareKeys(*(i - 1), *i) == 0) return DuplicateKey(*i, top);
    }
    return true;
  }

  // Closes the innermost open container, which ends just before `after`:
  // moves the children to ws.entries, an object's sorted by name (rejecting
  // duplicates). Sets *canonical.
  bool Close(const char* after, bool* canonical) {
    const OpenContainer& top = ws_.open.back();
    Entry* const first = ws_.scratch.data() + top.entry + 1;
    Entry* const last = ws_.scratch.data() + ws_.scratch.size();
    const auto count = static_cast<uint32_t>(last - first);
    const auto at = static_cast<uint32_t>(ws_.entries.size());
    bool sorted = true;
    if (top.is_object && count > 1) {
      if (count <= 16) {
        // Sorted while moved: an insertion sort into ws.entries.
        if (!InsertSorted(first, last, ws_.entries.extend(count), top,
                          &sorted)) {
          return false;
        }
      } else {
        if (!SortMembers(first, last, top, &sorted)) return false;
        ws_.entries.append(first, last);
      }
    } else {
      ws_.entries.append(first, last);
    }
    const uint32_t index = static_cast<uint32_t>(ws_.containers.size());
    Container& container = ws_.containers.push_uninit();
    container.first = at;
    container.count = count;
    ws_.scratch.truncate(top.entry + 1);
    Entry& self = ws_.scratch[top.entry];
    self.raw_len = static_cast<uint32_t>(after - self.raw);
    self.aux = index;
    *canonical = top.canonical && sorted && ws_runs_ == top.ws_at_open;
    if (*canonical) self.flags |= kCanonical;
    ws_.open.pop();  // `top` is dead from here
    return true;
  }

  // Copies the members [first, last) (at most 16) to `out` sorted bytewise
  // by name; false (after Fail()) on a duplicate name. Sets *sorted to
  // whether they were in order already. One pass instead of sorting in
  // place and then copying: objects are small and often nearly sorted, and
  // equal names always end up adjacent, so every duplicate is compared.
  bool InsertSorted(const Entry* first, const Entry* last, Entry* out,
                    const OpenContainer& top, bool* sorted) {
    out[0] = first[0];
    Entry* tail = out;  // the last one placed
    for (const Entry* i = first + 1; i < last; ++i, ++tail) {
      int c = CompareKeys(*i, *tail);
      if (LLMCACHE_LIKELY(c > 0)) {
        tail[1] = *i;
        continue;
      }
      if (c == 0) return DuplicateKey(*i, top);
      *sorted = false;
      Entry* j = tail + 1;
      do {
        *j = *(j - 1);
        --j;
      } while (j > out && (c = CompareKeys(*i, *(j - 1))) < 0);
      if (j > out && c == 0) return DuplicateKey(*i, top);
      *j = *i;
    }
    return true;
  }

  // Scans string text from `q`: returns the closing quote (*quote true) or
  // the first byte the careful path (ScanStringRest) must look at, `end_` if
  // none. The first 16 bytes are checked inline and stop at any '\\',
  // control character or non-ASCII byte: most names and short values end
  // there. Longer strings continue in the 64-byte scanner for this CPU,
  // which steps over canonical two-character escapes (then sets kHasEscapes
  // in *flags) and well-formed UTF-8 (json_text.h, LongScan).
  LLMCACHE_INLINE const char* ScanFast(const char* q, bool* quote,
                                       Flags* flags) {
#if defined(__SSE2__)
    if (LLMCACHE_LIKELY(end_ - q >= 16)) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
      // Signed compare: bytes >= 0x80 are negative, so `< 0x20` also flags
      // every non-ASCII byte.
      const auto quotes = static_cast<unsigned>(
          _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"'))));
      const auto others = static_cast<unsigned>(_mm_movemask_epi8(
          _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')),
                       _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)))));
      const unsigned hits = quotes | others;
      if (hits != 0) {
        *quote = (quotes & (hits & (0u - hits))) != 0;
        return q + __builtin_ctz(hits);
      }
      const LongScan r = scan_long_(q + 16, end_);
      if (r.escapes) *flags |= kHasEscapes;
      *quote = r.quote;
      return r.at;
    }
#endif
    return ScanPlain(q, end_, quote);
  }

  // Scans the string whose opening quote is at `quote`: returns its closing
  // quote (nullptr after Fail()) and sets *flags as ScanStringRest() does.
  // The two-character escapes of prose (\n, \") are handled inline; anything
  // else goes to ScanStringRest().
  LLMCACHE_INLINE const char* ScanString(const char* quote, Flags* flags) {
    const char* q = quote + 1;
    Flags f = kCanonical;
    for (;;) {
      bool at_quote = false;
      q = ScanFast(q, &at_quote, &f);
      if (LLMCACHE_LIKELY(at_quote)) break;
      if (end_ - q >= 2 && *q == '\\' &&
          kCanonicalShortEscape[static_cast<unsigned char>(q[1])]) {
        f |= kHasEscapes;
        q += 2;
        continue;
      }
      *flags = f;
      return ScanStringRest(quote, q, flags);
    }
    *flags = f;
    return q;
  }

  // Continues validating a string from `q` (`quote` is its opening quote),
  // with *flags the state so far (kCanonical, kHasEscapes). Returns the
  // position of the closing quote, or nullptr after Fail(). Sets *flags:
  // kCanonical when the raw text is canonical, kHasEscapes when it has
  // escapes, kEscapesToDecode when they are not canonical.
  const char* ScanStringRest(const char* quote, const char* q, Flags* flags) {
    const char* const end = end_;
    Flags scanned = static_cast<Flags>(*flags & kHasEscapes);
    bool has_escapes = false;
    bool canonical = (*flags & kCanonical) != 0;
    for (;;) {
      bool at_quote = false;
      q = ScanFast(q, &at_quote, &scanned);
      if (q == end) return FailAt("unterminated string", quote);
      const unsigned char c = static_cast<unsigned char>(*q);
      if (c == '"') break;
      if (c == '\\') {
        has_escapes = true;
        if (end - q < 2) return FailAt("unterminated string", quote);
        switch (q[1]) {
          case '"':
          case '\\':
          case 'b':
          case 'f':
          case 'n':
          case 'r':
          case 't':
            q += 2;
            break;
          case '/':
            canonical = false;
            q += 2;
            break;
          case 'u':
            q = ScanUnicodeEscape(q, &canonical);
            if (q == nullptr) return nullptr;
            break;
          default:
            return FailAt("invalid escape sequence in string", q);
        }
        continue;
      }
      if (c < 0x20) return FailAt("unescaped control character in string", q);
      const size_t n = Utf8SequenceLength(q, end);
      if (n == 0) return FailAt("invalid UTF-8 in string", q);
      q += n;
    }
    *flags = canonical ? kCanonical : kEscapesToDecode;
    if (has_escapes || scanned != 0) *flags |= kHasEscapes;
    return q;
  }

  // `q` is at the backslash of "\uXXXX". Validates it (a high surrogate must
  // be followed by an escaped low surrogate) and returns the position after
  // it. Clears *canonical unless it is the form the emitter writes.
  const char* ScanUnicodeEscape(const char* q, bool* canonical) {
    if (end_ - q < 6) return FailAt("truncated \\u escape", q);
    const int32_t cp = Hex4(q + 2);
    if (cp < 0) return FailAt("invalid \\u escape", q);
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return FailAt("unpaired UTF-16 surrogate in \\u escape", q);
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (end_ - q < 12 || q[6] != '\\' || q[7] != 'u') {
        return FailAt("unpaired UTF-16 surrogate in \\u escape", q);
      }
      const int32_t low = Hex4(q + 8);
      if (low < 0xDC00 || low > 0xDFFF) {
        return FailAt("unpaired UTF-16 surrogate in \\u escape", q);
      }
      *canonical = false;
      return q + 12;
    }
    if (!IsCanonicalUnicodeEscape(q + 2, cp)) *canonical = false;
    return q + 6;
  }

  // `p` is at '-' or a digit. Validates the RFC 8259 number grammar, adds a
  // number entry (member name `key`) with its canonical text and returns the
  // position after the number (nullptr after Fail()). Sets *canonical.
  const char* ParseNumber(const char* p, const char* key, uint32_t key_len,
                          Flags key_flags, bool* canonical) {
    const char* const end = end_;
    const char* const start = p;
    const bool negative = *p == '-';
    if (negative) ++p;
    if (p == end || !IsDigit(*p)) {
      return FailAt("invalid number: expected a digit", start);
    }
    const char* const int_begin = p;
    if (*p == '0') {
      ++p;
    } else {
      while (p < end && IsDigit(*p)) ++p;
    }
    const char* const int_end = p;
    const char* frac_begin = p;
    const char* frac_end = p;
    bool plain_integer = true;
    if (p < end && *p == '.') {
      plain_integer = false;
      ++p;
      frac_begin = p;
      while (p < end && IsDigit(*p)) ++p;
      if (p == frac_begin) {
        return FailAt("invalid number: expected a digit after '.'", p);
      }
      frac_end = p;
    }
    int64_t exponent = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
      plain_integer = false;
      ++p;
      bool exp_negative = false;
      if (p < end && (*p == '+' || *p == '-')) {
        exp_negative = *p == '-';
        ++p;
      }
      const char* const exp_begin = p;
      // Saturate: anything beyond 1e9 is out of every range that matters.
      while (p < end && IsDigit(*p)) {
        if (exponent < 1000000000) exponent = exponent * 10 + (*p - '0');
        ++p;
      }
      if (p == exp_begin) {
        return FailAt("invalid number: expected a digit in the exponent", p);
      }
      if (exp_negative) exponent = -exponent;
    }
    const uint32_t raw_len = static_cast<uint32_t>(p - start);
    if (plain_integer && int_end - int_begin <= kMaxExactIntegerDigits &&
        !(negative && *int_begin == '0')) {
      // Already canonical: the grammar forbids leading zeros.
      AddEntry(key, start, key_len, raw_len, 0, Type::kNumber,
               static_cast<Flags>(key_flags | kCanonical));
      *canonical = true;
      return p;
    }
    const size_t offset = ws_.numbers.size();
    if (!Normalize(start, p, negative, int_begin, int_end, frac_begin, frac_end,
                   exponent)) {
      return nullptr;
    }
    const std::string_view text(ws_.numbers.data() + offset,
                                ws_.numbers.size() - offset);
    if (text == std::string_view(start, raw_len)) {
      ws_.numbers.resize(offset);
      AddEntry(key, start, key_len, raw_len, 0, Type::kNumber,
               static_cast<Flags>(key_flags | kCanonical));
      *canonical = true;
    } else {
      // `raw` is set to the text by ResolveNumbers() once the arena stops
      // growing; until then `aux` holds its offset.
      AddEntry(key, nullptr, key_len, static_cast<uint32_t>(text.size()),
               static_cast<uint32_t>(offset), Type::kNumber,
               static_cast<Flags>(key_flags | kNumberInArena));
      *canonical = false;
    }
    return p;
  }

  // Appends to ws.numbers the canonical text of a number that has a
  // fraction, an exponent, many digits or is -0. The value is D * 10^E where
  // D is the digit string without leading or trailing zeros; integral values
  // below 1e21 are written exactly, all others via the shortest round-trip
  // double. Values a double cannot hold (overflow to infinity, or a non-zero
  // value that underflows to zero) are rejected rather than silently changed.
  bool Normalize(const char* start, const char* stop, bool negative,
                 const char* int_begin, const char* int_end,
                 const char* frac_begin, const char* frac_end,
                 int64_t exponent) {
    const int64_t ni = int_end - int_begin;
    const int64_t nf = frac_end - frac_begin;
    auto digit = [&](int64_t i) {
      return i < ni ? int_begin[i] : frac_begin[i - ni];
    };
    std::string& out = ws_.numbers;
    int64_t first = 0;
    while (first < ni + nf && digit(first) == '0') ++first;
    if (first == ni + nf) {  // zero, whatever its sign or exponent
      out.push_back('0');
      return true;
    }
    int64_t last = ni + nf - 1;
    while (digit(last) == '0') --last;
    const int64_t count = last - first + 1;
    const int64_t scale = exponent - nf + (ni + nf - 1 - last);
    if (scale >= 0 && count + scale <= kMaxExactIntegerDigits) {
      if (negative) out.push_back('-');
      for (int64_t i = first; i <= last; ++i) out.push_back(digit(i));
      out.append(static_cast<size_t>(scale), '0');
      return true;
    }
    double value = 0;
    const auto parsed = std::from_chars(start, stop, value);
    if (parsed.ec != std::errc() || parsed.ptr != stop || value == 0 ||
        value == std::numeric_limits<double>::infinity() ||
        value == -std::numeric_limits<double>::infinity()) {
      return Fail("number out of the range of a double", start);
    }
    char buf[64];
    const auto written = std::to_chars(buf, buf + sizeof(buf), value);
    out.append(buf, written.ptr);
    return true;
  }

  // Points normalised numbers at their text, now that ws.numbers is final.
  void ResolveNumbers() {
    auto resolve = [this](Entry& e) {
      if (e.flags & kNumberInArena) e.raw = ws_.numbers.data() + e.aux;
    };
    resolve(ws_.root);
    for (size_t i = 0; i < ws_.entries.size(); ++i) resolve(ws_.entries[i]);
  }

  Workspace& ws_;
  const char* const begin_;
  const char* const end_;
  const size_t max_depth_;
  // The 64-byte string scanner for this CPU (AVX2 or SSE2).
  const LongScanner scan_long_ = LongScannerForCpu();
  uint32_t ws_runs_ = 0;
  std::string error_;
  const char* error_at_ = nullptr;
};

}  // namespace
}  // namespace llmcache::key_internal

#endif  // LLMCACHE_ENGINE_KEY_PARSER_H_
