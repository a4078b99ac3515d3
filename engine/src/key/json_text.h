// Byte-level helpers for JSON text: whitespace and digits, 16-byte (SSE2)
// scans for the end of plain string text, UTF-8 validation, \u escapes and
// the canonical short escapes, and decoding of validated strings.
//
// Private to the request-key code: part of engine/src/key.cc, included by it
// alone. Internal linkage (an unnamed namespace) on purpose: the pipeline is
// one translation unit, so the compiler inlines its single-call stages.

#ifndef LLMCACHE_ENGINE_KEY_JSON_TEXT_H_
#define LLMCACHE_ENGINE_KEY_JSON_TEXT_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
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

constexpr int HexValue(char c) {
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

// ---------------------------------------------------------------------------
// Long strings: 64 bytes per step.
//
// Message contents are most of a request's bytes, so their scan is most of
// the parse. ScanLong() (ScanLongAvx2 or ScanLongSse2, picked once per
// process by LongScannerForCpu) classifies 64 bytes at a time into bit masks
// and walks the bits that are set, so that the canonical two-character escapes
// of prose (\n, \") and well-formed UTF-8 are stepped over within the block
// instead of ending the scan: it returns only at the closing quote or at
// something the caller's careful path must look at.

// Where ScanLong() stopped: at the closing quote (`quote`), or at the first
// byte that is none of plain ASCII text, a canonical two-character escape or
// well-formed UTF-8 (a control character, another escape, an invalid or
// truncated escape or UTF-8 sequence), or at the end of the input.
struct LongScan {
  const char* at;
  bool quote;
  bool escapes;  // a canonical two-character escape was stepped over
};

// The three bit masks of 64 bytes: '"', '\\', and bytes below 0x20 or above
// 0x7F.
struct BlockMasks {
  uint64_t quote;
  uint64_t backslash;
  uint64_t other;
};

// Steps over the events of one block of `limit` (<= 64) bytes at *q.
// Returns true with *out set when the scan stops in this block; otherwise
// advances *q past the block (or past an escape or UTF-8 sequence that
// crosses its end) and returns false. Bits at `limit` and above must be set
// in `other` only.
LLMCACHE_INLINE bool StepBlock(const char** q_io, const char* end, size_t limit,
                               const BlockMasks& m, bool* escapes,
                               LongScan* out) {
  const char* const q = *q_io;
  uint64_t events = m.quote | m.backslash | m.other;
  while (events != 0) {
    const unsigned i = static_cast<unsigned>(__builtin_ctzll(events));
    const uint64_t bit = uint64_t{1} << i;
    if (m.quote & bit) {
      *out = {q + i, true, *escapes};
      return true;
    }
    if (i >= limit) break;  // past the end of the input
    if (m.backslash & bit) {
      // Safe: i < limit, so q + i < end.
      if (end - (q + i) < 2 ||
          !kCanonicalShortEscape[static_cast<unsigned char>(q[i + 1])]) {
        *out = {q + i, false, *escapes};
        return true;
      }
      *escapes = true;
      if (i + 1 >= limit) {  // the escaped byte is in the next block
        *q_io = q + i + 2;
        return false;
      }
      events &= ~(uint64_t{3} << i);
      continue;
    }
    const auto c = static_cast<unsigned char>(q[i]);
    const size_t n = c >= 0x80 ? Utf8SequenceLength(q + i, end) : 0;
    if (n == 0) {
      *out = {q + i, false, *escapes};
      return true;
    }
    if (i + n >= limit) {  // the sequence ends the block
      *q_io = q + i + n;
      return false;
    }
    events &= ~(((uint64_t{1} << n) - 1) << i);
  }
  if (limit < 64) {  // the input ends inside the block
    *out = {end, false, *escapes};
    return true;
  }
  *q_io = q + 64;
  return false;
}

// Steps over a full 64-byte block at *q_io that has '\\' but no `other`
// byte, without a branch per escape. `letters` has the bytes that may follow
// a backslash in a canonical two-character escape ("\\/bfnrt without '/').
// Returns true with *out set when the scan stops in this block, otherwise
// advances *q_io past it (and past the escaped byte of an escape that starts
// at its last byte).
LLMCACHE_INLINE bool StepEscapes(const char** q_io, const char* end,
                                 uint64_t quote, uint64_t backslash,
                                 uint64_t letters, bool* escapes,
                                 LongScan* out) {
  // Which backslashes start an escape and which bytes are escaped: in a run
  // of backslashes every other one starts an escape (the carry of the
  // subtraction runs through each run from its first backslash).
  constexpr uint64_t kOddBits = 0xAAAAAAAAAAAAAAAAull;
  const uint64_t code = (((backslash << 1) | kOddBits) - backslash) ^ kOddBits;
  const uint64_t escaped = code ^ backslash;  // bytes after an escape's '\\'
  const uint64_t starts = code & backslash;   // the '\\' of each escape
  const char* const q = *q_io;
  const uint64_t stop = (quote & ~escaped) | (escaped & ~letters);
  if (stop == 0) {
    *escapes = true;
    if ((starts >> 63) == 0) {
      *q_io = q + 64;
      return false;
    }
    // The last byte starts an escape whose letter is in the next block.
    if (end - q > 64 &&
        kCanonicalShortEscape[static_cast<unsigned char>(q[64])]) {
      *q_io = q + 65;
      return false;
    }
    *out = {q + 63, false, true};
    return true;
  }
  const unsigned i = static_cast<unsigned>(__builtin_ctzll(stop));
  const uint64_t before = (uint64_t{1} << i) - 1;
  if ((backslash & before) != 0) *escapes = true;
  if ((quote & ~escaped) & (uint64_t{1} << i)) {
    *out = {q + i, true, *escapes};
  } else {
    // An escaped byte that no canonical two-character escape has (i >= 1:
    // escapes never start in the previous block here): the careful path
    // takes over at its backslash.
    *out = {q + i - 1, false, *escapes};
  }
  return true;
}

#if defined(__SSE2__)
LLMCACHE_INLINE uint64_t Movemask16(__m128i a, __m128i b, __m128i c,
                                    __m128i d) {
  return static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(a))) |
         static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(b)))
             << 16 |
         static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(c)))
             << 32 |
         static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(d)))
             << 48;
}

// The masks of the 64 bytes at p with SSE2 (every x86-64 CPU has it).
LLMCACHE_INLINE BlockMasks MasksSse2(const char* p) {
  const __m128i dquote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x20);
  const auto* v = reinterpret_cast<const __m128i*>(p);
  const __m128i a = _mm_loadu_si128(v);
  const __m128i b = _mm_loadu_si128(v + 1);
  const __m128i c = _mm_loadu_si128(v + 2);
  const __m128i d = _mm_loadu_si128(v + 3);
  // Signed compare: bytes >= 0x80 are negative, so they are `< 0x20` too.
  return {
      Movemask16(_mm_cmpeq_epi8(a, dquote), _mm_cmpeq_epi8(b, dquote),
                 _mm_cmpeq_epi8(c, dquote), _mm_cmpeq_epi8(d, dquote)),
      Movemask16(_mm_cmpeq_epi8(a, backslash), _mm_cmpeq_epi8(b, backslash),
                 _mm_cmpeq_epi8(c, backslash), _mm_cmpeq_epi8(d, backslash)),
      Movemask16(_mm_cmplt_epi8(a, space), _mm_cmplt_epi8(b, space),
                 _mm_cmplt_epi8(c, space), _mm_cmplt_epi8(d, space))};
}

// The mask of b, f, n, r and t in the 64 bytes at p.
inline uint64_t LettersSse2(const char* p) {
  const auto* v = reinterpret_cast<const __m128i*>(p);
  __m128i hit[4];
  for (int k = 0; k < 4; ++k) {
    const __m128i x = _mm_loadu_si128(v + k);
    hit[k] = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('b')),
                     _mm_cmpeq_epi8(x, _mm_set1_epi8('f'))),
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('n')),
                                  _mm_cmpeq_epi8(x, _mm_set1_epi8('r'))),
                     _mm_cmpeq_epi8(x, _mm_set1_epi8('t'))));
  }
  return Movemask16(hit[0], hit[1], hit[2], hit[3]);
}
#endif

// The masks of the `n` <= 64 bytes at p (the input's last bytes): bytes past
// the end read as 0, which is in `other`.
inline BlockMasks TailMasks(const char* p, size_t n) {
  alignas(16) char pad[64] = {};
  std::memcpy(pad, p, n);
#if defined(__SSE2__)
  return MasksSse2(pad);
#else
  BlockMasks m{0, 0, 0};
  for (size_t i = 0; i < 64; ++i) {
    const auto c = static_cast<unsigned char>(pad[i]);
    const uint64_t bit = uint64_t{1} << i;
    if (c == '"') m.quote |= bit;
    if (c == '\\') m.backslash |= bit;
    if (c < 0x20 || c >= 0x80) m.other |= bit;
  }
  return m;
#endif
}

// ScanLong() from the last 64 bytes of the input (or from anywhere without
// SSE2).
LLMCACHE_INLINE LongScan ScanTail(const char* q, const char* end,
                                  bool escapes) {
  LongScan out;
  while (q < end) {
    const size_t n = std::min<size_t>(static_cast<size_t>(end - q), 64);
    if (StepBlock(&q, end, n, TailMasks(q, n), &escapes, &out)) return out;
  }
  return {end, false, escapes};
}

// ScanLong() with SSE2 blocks: the fallback for CPUs without AVX2.
__attribute__((noinline)) LongScan ScanLongSse2(const char* q,
                                                const char* end) {
  bool escapes = false;
  LongScan out;
#if defined(__SSE2__)
  while (end - q >= 64) {
    const BlockMasks m = MasksSse2(q);
    if (m.other == 0 && m.backslash != 0) {
      const uint64_t letters = LettersSse2(q) | m.quote | m.backslash;
      if (StepEscapes(&q, end, m.quote, m.backslash, letters, &escapes, &out)) {
        return out;
      }
      continue;
    }
    if (StepBlock(&q, end, 64, m, &escapes, &out)) return out;
  }
#endif
  return ScanTail(q, end, escapes);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define LLMCACHE_KEY_AVX2 1
__attribute__((target("avx2"))) LLMCACHE_INLINE uint64_t
Movemask32(__m256i lo, __m256i hi) {
  return static_cast<uint64_t>(
             static_cast<uint32_t>(_mm256_movemask_epi8(lo))) |
         static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(hi)))
             << 32;
}

// 0xFF where a byte of v is b, f, n, r or t.
__attribute__((target("avx2"))) LLMCACHE_INLINE __m256i LettersAvx2(__m256i v) {
  return _mm256_or_si256(
      _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('b')),
                      _mm256_cmpeq_epi8(v, _mm256_set1_epi8('f'))),
      _mm256_or_si256(
          _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('n')),
                          _mm256_cmpeq_epi8(v, _mm256_set1_epi8('r'))),
          _mm256_cmpeq_epi8(v, _mm256_set1_epi8('t'))));
}

// ScanLong() with AVX2 blocks: two 32-byte loads per block. Only called
// when the CPU has AVX2 (LongScanner()).
__attribute__((target("avx2"), noinline)) LongScan ScanLongAvx2(
    const char* q, const char* end) {
  bool escapes = false;
  LongScan out;
  const __m256i dquote = _mm256_set1_epi8('"');
  const __m256i backslash = _mm256_set1_epi8('\\');
  const __m256i space = _mm256_set1_epi8(0x20);
  while (end - q >= 64) {
    const auto* v = reinterpret_cast<const __m256i*>(q);
    const __m256i lo = _mm256_loadu_si256(v);
    const __m256i hi = _mm256_loadu_si256(v + 1);
    // Signed compare: bytes >= 0x80 are negative, so they are `< 0x20` too.
    const __m256i lo_other = _mm256_cmpgt_epi8(space, lo);
    const __m256i hi_other = _mm256_cmpgt_epi8(space, hi);
    const __m256i lo_quote = _mm256_cmpeq_epi8(lo, dquote);
    const __m256i hi_quote = _mm256_cmpeq_epi8(hi, dquote);
    const __m256i lo_backslash = _mm256_cmpeq_epi8(lo, backslash);
    const __m256i hi_backslash = _mm256_cmpeq_epi8(hi, backslash);
    // Most blocks of prose have no event: one test for all three.
    const __m256i any =
        _mm256_or_si256(_mm256_or_si256(_mm256_or_si256(lo_other, hi_other),
                                        _mm256_or_si256(lo_quote, hi_quote)),
                        _mm256_or_si256(lo_backslash, hi_backslash));
    if (_mm256_testz_si256(any, any)) {
      q += 64;
      continue;
    }
    const BlockMasks m{Movemask32(lo_quote, hi_quote),
                       Movemask32(lo_backslash, hi_backslash),
                       Movemask32(lo_other, hi_other)};
    if (m.other == 0 && m.backslash != 0) {
      // Prose: escapes (\n, \") but no UTF-8.
      const uint64_t letters =
          Movemask32(LettersAvx2(lo), LettersAvx2(hi)) | m.quote | m.backslash;
      if (StepEscapes(&q, end, m.quote, m.backslash, letters, &escapes, &out)) {
        return out;
      }
      continue;
    }
    if (StepBlock(&q, end, 64, m, &escapes, &out)) return out;
  }
  return ScanTail(q, end, escapes);
}
#endif

using LongScanner = LongScan (*)(const char* q, const char* end);

// The best ScanLong() for this CPU, chosen once.
inline LongScanner PickLongScanner() {
#if defined(LLMCACHE_KEY_AVX2)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return &ScanLongAvx2;
#endif
  return &ScanLongSse2;
}

inline LongScanner LongScannerForCpu() {
  static const LongScanner scanner = PickLongScanner();
  return scanner;
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
