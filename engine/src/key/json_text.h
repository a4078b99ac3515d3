// Byte-level helpers for JSON text: whitespace and digits, 16-byte (SSE2)
// scans for the end of plain string text, UTF-8 validation, \u escapes and
// the canonical short escapes, and decoding of validated strings.
//
// Private to the request-key code: part of engine/src/key.cc, included by it
// alone. Internal linkage (an unnamed namespace) on purpose: the pipeline is
// one translation unit, so the compiler inlines its single-call stages.

#ifndef LLMCACHE_ENGINE_KEY_JSON_TEXT_H_
#define LLMCACHE_ENGINE_KEY_JSON_TEXT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "key/compiler.h"

namespace llmcache::key_internal {
namespace {

LLMCACHE_INLINE bool IsDigit(char c) { return c >= '0' && c <= '9'; }

LLMCACHE_INLINE bool IsWhitespace(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

// memcpy for the short names and values that dominate requests, without a
// libc call; never reads or writes outside [src, src + n) / [dst, dst + n).
LLMCACHE_INLINE void CopyBytes(char* dst, const char* src, size_t n) {
  if (n >= 8 && n <= 16) {
    uint64_t a;
    uint64_t b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t a;
    uint32_t b;
    std::memcpy(&a, src, 4);
    std::memcpy(&b, src + n - 4, 4);
    std::memcpy(dst, &a, 4);
    std::memcpy(dst + n - 4, &b, 4);
  } else if (n < 4) {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i];
  } else {
    std::memcpy(dst, src, n);
  }
}

LLMCACHE_INLINE bool NeedsEscapeByte(unsigned char c) {
  return c < 0x20 || c == '"' || c == '\\';
}

// First byte in [p, end) that is '"', '\\', a control character or non-ASCII;
// `end` if none. *quote tells whether that byte is '"' (the end of a string
// without escapes), decided from the masks rather than by loading the byte,
// which keeps the load off the critical path. The common case (plain ASCII
// text) runs 16 bytes at a time.
LLMCACHE_INLINE const char* ScanPlain(const char* p, const char* end,
                                      bool* quote) {
#if defined(__SSE2__)
  const __m128i dquote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed compare: bytes >= 0x80 are negative, so `< 0x20` also flags
    // every non-ASCII byte.
    const unsigned quotes =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, dquote)));
    const unsigned others = static_cast<unsigned>(_mm_movemask_epi8(
        _mm_or_si128(_mm_cmpeq_epi8(v, backslash), _mm_cmplt_epi8(v, space))));
    const unsigned hits = quotes | others;
    if (hits != 0) {
      *quote = (quotes & (hits & (0u - hits))) != 0;
      return p + __builtin_ctz(hits);
    }
    p += 16;
  }
#endif
  while (p < end) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) {
      *quote = c == '"';
      return p;
    }
    ++p;
  }
  *quote = false;
  return p;
}

// First byte in [p, end) that the canonical form escapes ('"', '\\' or a
// control character); `end` if none.
LLMCACHE_INLINE const char* ScanEscapable(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i max_control = _mm_set1_epi8(0x1F);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Unsigned v <= 0x1F  <=>  min(v, 0x1F) == v.
    const __m128i hit = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
        _mm_cmpeq_epi8(_mm_min_epu8(v, max_control), v));
    const int mask = _mm_movemask_epi8(hit);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end && !NeedsEscapeByte(static_cast<unsigned char>(*p))) ++p;
  return p;
}

// Length of the well-formed UTF-8 sequence starting at `p` (whose first byte
// is >= 0x80), or 0 if it is ill-formed: stray continuation byte, overlong
// form, surrogate code point, above U+10FFFF, or truncated.
inline size_t Utf8SequenceLength(const char* p, const char* end) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  const ptrdiff_t avail = end - p;
  const unsigned c = u[0];
  auto cont = [u](int i) { return (u[i] & 0xC0u) == 0x80u; };
  if (c < 0xC2) return 0;
  if (c < 0xE0) return (avail >= 2 && cont(1)) ? 2 : 0;
  if (c < 0xF0) {
    if (avail < 3 || !cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && u[1] < 0xA0) return 0;   // overlong
    if (c == 0xED && u[1] >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c < 0xF5) {
    if (avail < 4 || !cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && u[1] < 0x90) return 0;   // overlong
    if (c == 0xF4 && u[1] >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads 4 hex digits at p (the caller checked the length). -1 if not hex.
inline int32_t Hex4(const char* p) {
  int32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    const int h = HexValue(p[i]);
    if (h < 0) return -1;
    v = (v << 4) | h;
  }
  return v;
}

inline char* AppendUtf8(char* d, uint32_t cp) {
  if (cp < 0x80) {
    *d++ = static_cast<char>(cp);
  } else if (cp < 0x800) {
    *d++ = static_cast<char>(0xC0 | (cp >> 6));
    *d++ = static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *d++ = static_cast<char>(0xE0 | (cp >> 12));
    *d++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *d++ = static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *d++ = static_cast<char>(0xF0 | (cp >> 18));
    *d++ = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *d++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *d++ = static_cast<char>(0x80 | (cp & 0x3F));
  }
  return d;
}

constexpr char kLowerHex[] = "0123456789abcdef";

// Escape letters whose two-character form is also the canonical one.
constexpr auto kCanonicalShortEscape = [] {
  std::array<bool, 256> t{};
  for (unsigned char c : {'"', '\\', 'b', 'f', 'n', 'r', 't'}) t[c] = true;
  return t;
}();

// The two-character escape letter of a control character (\b \f \n \r \t),
// or 0 if it has none.
inline char ShortEscape(unsigned char c) {
  switch (c) {
    case '\b':
      return 'b';
    case '\f':
      return 'f';
    case '\n':
      return 'n';
    case '\r':
      return 'r';
    case '\t':
      return 't';
    default:
      return 0;
  }
}

// Whether the 4 hex digits at `hex` (value `cp`) are exactly what the
// canonical form writes for cp: only control characters without a short
// escape are \u-escaped, as \u00xx with lowercase hex.
inline bool IsCanonicalUnicodeEscape(const char* hex, int32_t cp) {
  return cp < 0x20 && ShortEscape(static_cast<unsigned char>(cp)) == 0 &&
         hex[0] == '0' && hex[1] == '0' && hex[2] == kLowerHex[cp >> 4] &&
         hex[3] == kLowerHex[cp & 0xF];
}

// Decodes the text between the quotes of a string the parser validated.
// Writes at most raw.size() bytes to `out` and returns the count; sets
// *needs_escape if the result contains `"`, `\` or a control character.
size_t DecodeValidated(std::string_view raw, char* out, bool* needs_escape) {
  const char* p = raw.data();
  const char* const end = p + raw.size();
  char* d = out;
  bool escape = false;
  while (p < end) {
    const void* const bs = std::memchr(p, '\\', static_cast<size_t>(end - p));
    const char* const run_end =
        bs != nullptr ? static_cast<const char*>(bs) : end;
    std::memcpy(d, p, static_cast<size_t>(run_end - p));
    d += run_end - p;
    p = run_end;
    if (p == end) break;
    const char e = p[1];
    p += 2;
    switch (e) {
      case 'b':
        *d++ = '\b';
        escape = true;
        break;
      case 'f':
        *d++ = '\f';
        escape = true;
        break;
      case 'n':
        *d++ = '\n';
        escape = true;
        break;
      case 'r':
        *d++ = '\r';
        escape = true;
        break;
      case 't':
        *d++ = '\t';
        escape = true;
        break;
      case 'u': {
        uint32_t cp = static_cast<uint32_t>(Hex4(p));
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // validated: "\uDC00-DFFF" next
          const uint32_t low = static_cast<uint32_t>(Hex4(p + 2));
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        if (cp < 0x20 || cp == '"' || cp == '\\') escape = true;
        d = AppendUtf8(d, cp);
        break;
      }
      default:  // '"', '\\' or '/'
        *d++ = e;
        if (e != '/') escape = true;
        break;
    }
  }
  *needs_escape = escape;
  return static_cast<size_t>(d - out);
}

}  // namespace
}  // namespace llmcache::key_internal

#endif  // LLMCACHE_ENGINE_KEY_JSON_TEXT_H_
