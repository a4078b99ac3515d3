// Canonical request keys: a strict, iterative JSON parser into a compact
// per-thread tree, a canonical emitter, and SHA-256 through OpenSSL 3.
//
// Pipeline (KeyBuilder::Compute):
//   1. Parse: one pass over the body that validates RFC 8259 syntax and UTF-8
//      and records one Entry per value (with its member name inline).
//      Strings are not copied: an entry points at the raw text in the body,
//      flagged when it has escapes and whether those escapes are already the
//      canonical ones. Member names with escapes are decoded into a
//      per-thread arena, because objects are sorted by decoded name. When a
//      container closes its children move from the open stack to their final
//      place, an object's sorted (which also finds duplicates). No recursion:
//      open containers live on an explicit stack, checked against max_depth
//      before it grows. The parser also notes which values and `"name":value`
//      members are byte-for-byte canonical already (compact, sorted,
//      canonical scalars), so the emitter can copy them as one slice.
//   2. Inspect: the top-level members give RequestInfo and the required
//      `model` / `messages`.
//   3. Emit: an iterative walk writes the canonical bytes into a sink. For the
//      key the sink is a buffer flushed into EVP_DigestUpdate, so the
//      canonical body is never materialised; Canonicalize() runs the same
//      walk into a string.
//
// All scratch memory is thread_local and reused, so a steady-state call makes
// no heap allocation except for the strings it returns.
//
// Performance notes (measured; see bench/key_bench.cc): the cost is per
// token much more than per byte, so the hot paths avoid per-token heap work,
// function calls and wide loads of narrow recent stores; strings are scanned
// 16 bytes at a time.

#include "llmcache/key.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__GNUC__)
#define LLMCACHE_INLINE inline __attribute__((always_inline))
#define LLMCACHE_LIKELY(x) __builtin_expect(!!(x), 1)
#define LLMCACHE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LLMCACHE_INLINE inline
#define LLMCACHE_LIKELY(x) (x)
#define LLMCACHE_UNLIKELY(x) (x)
#endif

namespace llmcache {
namespace {

// ---------------------------------------------------------------------------
// SHA-256 through a fetched EVP_MD and a per-thread reused EVP_MD_CTX.

// Owns the explicitly fetched SHA-256 implementation. Fetching is expensive
// (provider lookup and locking), so it happens once per process. The static
// instance is constructed after OpenSSL registered its own atexit cleanup, so
// its destructor runs before OPENSSL_cleanup.
class FetchedSha256 {
 public:
  FetchedSha256() : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)) {}
  ~FetchedSha256() { EVP_MD_free(md_); }
  FetchedSha256(const FetchedSha256&) = delete;
  FetchedSha256& operator=(const FetchedSha256&) = delete;

  const EVP_MD* get() const { return md_; }

 private:
  EVP_MD* md_;
};

const EVP_MD* Sha256Md() {
  static const FetchedSha256 md;
  return md.get();
}

// One digest context per thread, reused by every hash on that thread and
// freed when the thread exits.
class ThreadDigestCtx {
 public:
  ThreadDigestCtx() : ctx_(EVP_MD_CTX_new()) {}
  ~ThreadDigestCtx() { EVP_MD_CTX_free(ctx_); }
  ThreadDigestCtx(const ThreadDigestCtx&) = delete;
  ThreadDigestCtx& operator=(const ThreadDigestCtx&) = delete;

  EVP_MD_CTX* get() const { return ctx_; }

 private:
  EVP_MD_CTX* ctx_;
};

// A running SHA-256 on the thread's context. Any OpenSSL failure is sticky
// and reported by Finish().
class Hasher {
 public:
  Hasher() {
    thread_local ThreadDigestCtx ctx;
    ctx_ = ctx.get();
    const EVP_MD* md = Sha256Md();
    ok_ = ctx_ != nullptr && md != nullptr &&
          EVP_DigestInit_ex2(ctx_, md, nullptr) == 1;
  }

  void Update(const void* data, size_t n) {
    if (ok_ && n != 0) ok_ = EVP_DigestUpdate(ctx_, data, n) == 1;
  }

  // Returns false if any step failed; `out` is then unspecified.
  bool Finish(Digest* out) {
    if (!ok_) return false;
    unsigned int len = 0;
    return EVP_DigestFinal_ex(ctx_, out->data(), &len) == 1 &&
           len == kDigestSize;
  }

 private:
  EVP_MD_CTX* ctx_ = nullptr;
  bool ok_ = false;
};

// ---------------------------------------------------------------------------
// Parsed tree.

// A growable array of trivially copyable T whose append has a single
// well-predicted capacity check inline (std::vector's is heavier). Grows
// geometrically; throws std::bad_alloc (caught at the API boundary).
template <typename T>
class PodVector {
 public:
  PodVector() = default;
  ~PodVector() { std::free(data_); }
  PodVector(const PodVector&) = delete;
  PodVector& operator=(const PodVector&) = delete;

  // Appends an element with indeterminate contents and returns it, so that
  // callers write the fields in place: building a temporary and copying it
  // makes wide loads of narrow, recent stores, which defeats store-to-load
  // forwarding and stalls.
  LLMCACHE_INLINE T& push_uninit() {
    if (LLMCACHE_UNLIKELY(size_ == capacity_)) Grow(size_ + 1);
    return data_[size_++];
  }
  // Appends [first, last), which must not point into this vector.
  LLMCACHE_INLINE void append(const T* first, const T* last) {
    const size_t n = static_cast<size_t>(last - first);
    if (LLMCACHE_UNLIKELY(size_ + n > capacity_)) Grow(size_ + n);
    T* out = data_ + size_;
    for (size_t i = 0; i < n; ++i) out[i] = first[i];
    size_ += n;
  }
  LLMCACHE_INLINE void pop() { --size_; }
  LLMCACHE_INLINE void truncate(size_t n) { size_ = n; }
  LLMCACHE_INLINE void clear() { size_ = 0; }
  LLMCACHE_INLINE T& back() { return data_[size_ - 1]; }
  LLMCACHE_INLINE T& operator[](size_t i) { return data_[i]; }
  LLMCACHE_INLINE const T& operator[](size_t i) const { return data_[i]; }
  LLMCACHE_INLINE T* data() { return data_; }
  LLMCACHE_INLINE const T* data() const { return data_; }
  LLMCACHE_INLINE size_t size() const { return size_; }
  LLMCACHE_INLINE bool empty() const { return size_ == 0; }
  size_t capacity() const { return capacity_; }

  // Frees the memory.
  void Release() {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    capacity_ = 0;
  }

 private:
  static_assert(std::is_trivially_copyable_v<T>);

  void Grow(size_t min_capacity) {
    const size_t cap = std::max<size_t>({min_capacity, 2 * capacity_, 64});
    void* p = std::realloc(data_, cap * sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    data_ = static_cast<T*>(p);
    capacity_ = cap;
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

enum class Type : uint8_t {
  kNull,
  kFalse,
  kTrue,
  kNumber,
  kString,
  kArray,
  kObject
};

// Entry::flags. Not a character type: stores through `unsigned char` may
// alias anything and would make the compiler reload every pointer after them.
using Flags = uint16_t;
// The value's raw text is exactly its canonical form (for a container:
// compact, members already sorted, every descendant canonical), so it can be
// emitted as one slice wherever no exclusion applies.
constexpr Flags kCanonical = 1;
// String: it has escapes that must be decoded and re-escaped when emitted
// (a canonical string has no escapes or only canonical ones).
constexpr Flags kEscapesToDecode = 2;
// String: it has escapes, so its value must be decoded before comparing.
constexpr Flags kHasEscapes = 4;
// Number: `raw` is its canonical text in Workspace::numbers, not the body.
constexpr Flags kNumberInArena = 8;
// Object member: the decoded name contains `"`, `\` or bytes < 0x20.
constexpr Flags kKeyNeedsEscape = 16;
// Object member: `"name":value` is a canonical slice of the body (the name
// has no escapes, no whitespace inside, the value is canonical). It runs
// from key - 1 to raw + raw_len.
constexpr Flags kMemberRaw = 32;

// One value in the tree, with its member name when it is in an object.
// Containers refer to the range of their children in Workspace::entries.
struct Entry {
  const char* key;  // object member: decoded name (unset for other values)
  const char* raw;  // first byte of the value in the body (see kNumberInArena)
  uint32_t key_len;
  uint32_t raw_len;  // byte length of the value in the body
  // Array / object: index in Workspace::containers. Number with
  // kNumberInArena: offset of its text in Workspace::numbers, until
  // Parser::ResolveNumbers() points `raw` at it.
  uint32_t aux;
  Type type;
  Flags flags;
};

struct Container {
  uint32_t first;  // first child in Workspace::entries (objects: sorted)
  uint32_t count;
};

struct OpenContainer {
  uint32_t entry;         // its own entry in Workspace::scratch
  uint32_t ws_at_open;    // Parser::ws_runs_ when it opened
  uint32_t ws_at_member;  // object: ws_runs_ when the current member began
  bool is_object;
  bool canonical;  // every child so far is canonical
  bool key_plain;  // object: the current member's name has no escapes
};

enum class Ctx : uint8_t {
  kPlain,     // no exclusions below this point
  kTop,       // the request object
  kMessages,  // the top-level `messages` array
  kMessage,   // messages[i]
  kContent,   // messages[i].content
  kTools,     // the top-level `tools` array
  kBlock,     // messages[i].content[j] or tools[i]
};

struct Frame {
  uint32_t next;  // next child in Workspace::entries
  uint32_t stop;
  Ctx ctx;
  bool is_object;
  bool first;
};

// Per-thread scratch reused across calls.
struct Workspace {
  Entry root;                // the parsed body
  PodVector<Entry> entries;  // children of closed containers
  PodVector<Container> containers;
  PodVector<Entry> scratch;  // entries of still-open containers
  PodVector<OpenContainer> open;
  PodVector<Frame> frames;
  std::string numbers;  // canonical text of normalised numbers
  std::string decoded;  // emitter scratch for strings with escapes
  // Decoded member names. Sized to at least the body before parsing: decoding
  // never lengthens a string, so it never reallocates and pointers into it
  // stay valid.
  std::unique_ptr<char[]> strings;
  size_t strings_capacity = 0;
  size_t strings_used = 0;
  // The body being canonicalised.
  const char* body_begin = nullptr;
  const char* body_end = nullptr;

  void Reset(std::string_view body) {
    const size_t body_size = body.size();
    body_begin = body.data();
    body_end = body.data() + body.size();
    entries.clear();
    containers.clear();
    scratch.clear();
    open.clear();
    frames.clear();
    numbers.clear();
    strings_used = 0;
    if (strings_capacity < body_size) {
      const size_t cap = std::max<size_t>(body_size, 4096);
      strings.reset(new char[cap]);
      strings_capacity = cap;
    }
  }

  // Gives back memory after an unusually large request, so that one big body
  // does not pin megabytes in every thread that ever saw one.
  void Trim() {
    constexpr size_t kKeepBytes = 1u << 20;
    if (entries.capacity() * sizeof(Entry) > kKeepBytes) entries.Release();
    if (containers.capacity() * sizeof(Container) > kKeepBytes) {
      containers.Release();
    }
    if (scratch.capacity() * sizeof(Entry) > kKeepBytes) scratch.Release();
    if (open.capacity() * sizeof(OpenContainer) > kKeepBytes) open.Release();
    if (frames.capacity() * sizeof(Frame) > kKeepBytes) frames.Release();
    if (numbers.capacity() > kKeepBytes) std::string().swap(numbers);
    if (decoded.capacity() > kKeepBytes) std::string().swap(decoded);
    if (strings_capacity > kKeepBytes) {
      strings.reset();
      strings_capacity = 0;
    }
  }

  // The children of container entry `e`.
  LLMCACHE_INLINE const Entry* begin(const Entry& e) const {
    return entries.data() + containers[e.aux].first;
  }
  LLMCACHE_INLINE const Entry* end(const Entry& e) const {
    const Container& c = containers[e.aux];
    return entries.data() + c.first + c.count;
  }
};

// The calling thread's workspace, trimmed however the call ends.
class WorkspaceLease {
 public:
  WorkspaceLease() : ws_(ThreadWorkspace()) {}
  ~WorkspaceLease() { ws_.Trim(); }
  WorkspaceLease(const WorkspaceLease&) = delete;
  WorkspaceLease& operator=(const WorkspaceLease&) = delete;

  Workspace& ws() { return ws_; }

 private:
  static Workspace& ThreadWorkspace() {
    thread_local Workspace ws;
    return ws;
  }

  Workspace& ws_;
};

// ---------------------------------------------------------------------------
// Character helpers.

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

// ---------------------------------------------------------------------------
// Parser.

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

  // Sorts the members of an object bytewise by name; false (after Fail()) on
  // a duplicate name. Sets *sorted to whether they were in order already.
  bool SortMembers(Entry* first, Entry* last, const OpenContainer& top,
                   bool* sorted) {
    if (last - first <= 16) {
      // Insertion sort: objects are small and often nearly sorted. Equal
      // names always end up adjacent, so every duplicate is compared.
      for (Entry* i = first + 1; i < last; ++i) {
        int c = CompareKeys(*i, *(i - 1));
        if (c > 0) continue;
        if (c == 0) return DuplicateKey(*i, top);
        *sorted = false;
        const Entry m = *i;
        Entry* j = i;
        do {
          *j = *(j - 1);
          --j;
        } while (j > first && (c = CompareKeys(m, *(j - 1))) < 0);
        if (j > first && c == 0) return DuplicateKey(m, top);
        *j = m;
      }
      return true;
    }
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
  // sorts an object's members (rejecting duplicates) and moves the children
  // to ws.entries. Sets *canonical.
  bool Close(const char* after, bool* canonical) {
    const OpenContainer& top = ws_.open.back();
    Entry* const first = ws_.scratch.data() + top.entry + 1;
    Entry* const last = ws_.scratch.data() + ws_.scratch.size();
    bool sorted = true;
    if (top.is_object && last - first > 1 &&
        !SortMembers(first, last, top, &sorted)) {
      return false;
    }
    const uint32_t index = static_cast<uint32_t>(ws_.containers.size());
    Container& container = ws_.containers.push_uninit();
    container.first = static_cast<uint32_t>(ws_.entries.size());
    container.count = static_cast<uint32_t>(last - first);
    ws_.entries.append(first, last);
    ws_.scratch.truncate(top.entry + 1);
    Entry& self = ws_.scratch[top.entry];
    self.raw_len = static_cast<uint32_t>(after - self.raw);
    self.aux = index;
    *canonical = top.canonical && sorted && ws_runs_ == top.ws_at_open;
    if (*canonical) self.flags |= kCanonical;
    ws_.open.pop();  // `top` is dead from here
    return true;
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
      q = ScanPlain(q, end_, &at_quote);
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
    bool has_escapes = (*flags & kHasEscapes) != 0;
    bool canonical = (*flags & kCanonical) != 0;
    for (;;) {
      bool at_quote = false;
      q = ScanPlain(q, end, &at_quote);
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
    if (has_escapes) *flags |= kHasEscapes;
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
  uint32_t ws_runs_ = 0;
  std::string error_;
  const char* error_at_ = nullptr;
};

// The decoded value of string entry `e`; uses *scratch if it has escapes.
std::string_view StringValue(const Entry& e, std::string* scratch) {
  const std::string_view raw(e.raw + 1, e.raw_len - 2);
  if ((e.flags & kHasEscapes) == 0) return raw;
  scratch->resize(raw.size());
  bool needs_escape = false;
  scratch->resize(DecodeValidated(raw, scratch->data(), &needs_escape));
  return *scratch;
}

inline std::string_view KeyText(const Entry& e) {
  return std::string_view(e.key, e.key_len);
}

// ---------------------------------------------------------------------------
// Sinks and the canonical emitter.

// Buffers writes in a fixed array and feeds the hasher in large chunks; long
// slices of the body go to the hasher directly, without a copy.
class HashSink {
 public:
  explicit HashSink(Hasher* hasher) : hasher_(hasher) {}
  HashSink(const HashSink&) = delete;
  HashSink& operator=(const HashSink&) = delete;

  LLMCACHE_INLINE void Put(char c) {
    if (LLMCACHE_UNLIKELY(cur_ == buffer_ + kBufferSize)) Flush();
    *cur_++ = c;
  }

  LLMCACHE_INLINE void Write(const char* p, size_t n) {
    if (LLMCACHE_LIKELY(n <=
                        static_cast<size_t>(buffer_ + kBufferSize - cur_))) {
      CopyBytes(cur_, p, n);
      cur_ += n;
      return;
    }
    WriteSlow(p, n);
  }

  // At least `n` (<= kMaxRoom) writable bytes at the returned pointer; pass
  // the end of what was written to Commit().
  static constexpr size_t kMaxRoom = 512;
  LLMCACHE_INLINE char* Room(size_t n) {
    if (LLMCACHE_UNLIKELY(n >
                          static_cast<size_t>(buffer_ + kBufferSize - cur_))) {
      Flush();
    }
    return cur_;
  }
  LLMCACHE_INLINE void Commit(char* end) { cur_ = end; }

  void Flush() {
    hasher_->Update(buffer_, static_cast<size_t>(cur_ - buffer_));
    cur_ = buffer_;
  }

 private:
  static constexpr size_t kBufferSize = 8192;
  // A slice at least this long that does not fit in the buffer goes to the
  // hasher directly: past this size one more EVP_DigestUpdate call costs less
  // than the copy.
  static constexpr size_t kDirectThreshold = 1024;

  void WriteSlow(const char* p, size_t n) {
    Flush();
    if (n >= kDirectThreshold) {
      hasher_->Update(p, n);
    } else {
      std::memcpy(cur_, p, n);
      cur_ += n;
    }
  }

  Hasher* hasher_;
  char* cur_ = buffer_;
  char buffer_[kBufferSize];
};

// Writes into a string that it grows as needed (Canonicalize).
class StringSink {
 public:
  StringSink(std::string* out, size_t size_hint) : out_(out) {
    out_->resize(std::max<size_t>(size_hint, 64));
    cur_ = out_->data();
    end_ = cur_ + out_->size();
  }
  StringSink(const StringSink&) = delete;
  StringSink& operator=(const StringSink&) = delete;

  LLMCACHE_INLINE void Put(char c) {
    if (LLMCACHE_UNLIKELY(cur_ == end_)) Grow(1);
    *cur_++ = c;
  }

  LLMCACHE_INLINE void Write(const char* p, size_t n) {
    if (LLMCACHE_UNLIKELY(n > static_cast<size_t>(end_ - cur_))) Grow(n);
    CopyBytes(cur_, p, n);
    cur_ += n;
  }

  // As HashSink::Room / Commit.
  static constexpr size_t kMaxRoom = 512;
  LLMCACHE_INLINE char* Room(size_t n) {
    if (LLMCACHE_UNLIKELY(n > static_cast<size_t>(end_ - cur_))) Grow(n);
    return cur_;
  }
  LLMCACHE_INLINE void Commit(char* end) { cur_ = end; }

  // Trims the string to what was written.
  void Finish() { out_->resize(static_cast<size_t>(cur_ - out_->data())); }

 private:
  void Grow(size_t n) {
    const size_t used = static_cast<size_t>(cur_ - out_->data());
    out_->resize(std::max(2 * out_->size(), used + n));
    cur_ = out_->data() + used;
    end_ = out_->data() + out_->size();
  }

  std::string* out_;
  char* cur_;
  char* end_;
};

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

template <typename Sink>
class Emitter {
 public:
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
    EmitValue(ws_.root, Ctx::kTop);
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
          if ((e->flags & kMemberRaw) && child == Ctx::kPlain) {
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
  LLMCACHE_INLINE bool Excluded(Ctx ctx, std::string_view key) const {
    if (ctx == Ctx::kTop && fields_.Contains(key)) return true;
    return block_fields_.Contains(key);
  }

  static LLMCACHE_INLINE Ctx MemberCtx(Ctx parent, std::string_view key) {
    if (parent == Ctx::kTop) {
      if (key == "messages") return Ctx::kMessages;
      if (key == "tools") return Ctx::kTools;
    } else if (parent == Ctx::kMessage && key == "content") {
      return Ctx::kContent;
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
    if (e.type == Type::kObject) {
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
    if (ctx == Ctx::kContent) {
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
      if (key == "text" && m.type == Type::kString) {
        text = &m;
      } else if (key == "type" && m.type == Type::kString &&
                 std::string_view(m.raw, m.raw_len) == "\"text\"") {
        typed = true;
      } else {
        return nullptr;
      }
    }
    return typed ? text : nullptr;
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

// ---------------------------------------------------------------------------
// Request-level checks.

Status CheckBodySize(std::string_view body, const KeyOptions& options) {
  // Entry lengths and indices are 32-bit.
  constexpr size_t kImplementationLimit = std::numeric_limits<int32_t>::max();
  const size_t limit = std::min(options.max_body_bytes, kImplementationLimit);
  if (body.size() > limit) {
    return InvalidArgumentError(
        "request body is " + std::to_string(body.size()) +
        " bytes, over max_body_bytes (" + std::to_string(limit) + ")");
  }
  return Status();
}

double NumberValue(const Entry& e) {
  double value = 0;
  if (std::from_chars(e.raw, e.raw + e.raw_len, value).ec != std::errc()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return value;
}

// Member `name` of object entry `object`; nullptr if absent.
const Entry* FindMember(const Workspace& ws, const Entry& object,
                        std::string_view name) {
  for (const Entry* m = ws.begin(object); m != ws.end(object); ++m) {
    if (KeyText(*m) == name) return m;
  }
  return nullptr;
}

// Whether `pred` holds for any object element of `array` (false if `array`
// is not an array).
template <typename Pred>
bool AnyObjectElement(const Workspace& ws, const Entry& array, Pred pred) {
  if (array.type != Type::kArray) return false;
  for (const Entry* e = ws.begin(array); e != ws.end(array); ++e) {
    if (e->type == Type::kObject && pred(*e)) return true;
  }
  return false;
}

// Checks the top-level requirements, sets *model to the decoded model id and
// fills *info when not null (info->model is left to the caller).
Status Inspect(const Workspace& ws, RequestInfo* info, std::string* model) {
  const Entry& root = ws.root;
  if (root.type != Type::kObject) {
    return InvalidArgumentError("request body is not a JSON object");
  }
  bool has_model = false;
  bool has_messages = false;
  std::string scratch;
  for (const Entry* m = ws.begin(root); m != ws.end(root); ++m) {
    const std::string_view key = KeyText(*m);
    if (key == "model") {
      if (m->type != Type::kString) {
        return InvalidArgumentError("request member \"model\" is not a string");
      }
      const std::string_view id = StringValue(*m, model);
      if (id.data() != model->data()) model->assign(id);
      has_model = true;
    } else if (key == "messages") {
      if (m->type != Type::kArray) {
        return InvalidArgumentError(
            "request member \"messages\" is not an array");
      }
      has_messages = true;
    }
    if (info == nullptr) continue;
    if (key == "stream") {
      info->stream = m->type == Type::kTrue;
    } else if (key == "temperature") {
      info->has_temperature = true;
      info->temperature = m->type == Type::kNumber
                              ? NumberValue(*m)
                              : std::numeric_limits<double>::quiet_NaN();
    } else if (key == "plugins") {
      info->has_web_plugin =
          AnyObjectElement(ws, *m, [&ws, &scratch](const Entry& e) {
            const Entry* id = FindMember(ws, e, "id");
            return id != nullptr && id->type == Type::kString &&
                   StringValue(*id, &scratch) == "web";
          });
    } else if (key == "web_search_options") {
      info->has_web_search_options = true;
    } else if (key == "tools") {
      info->has_web_search_tool =
          AnyObjectElement(ws, *m, [&ws, &scratch](const Entry& e) {
            const Entry* type = FindMember(ws, e, "type");
            return type != nullptr && type->type == Type::kString &&
                   StringValue(*type, &scratch).starts_with("openrouter:web");
          });
    } else if (key == "debug") {
      info->has_debug = true;
    } else if (key == "messages") {
      info->message_count = static_cast<size_t>(ws.end(*m) - ws.begin(*m));
    }
  }
  if (!has_model) {
    return InvalidArgumentError("request has no \"model\" member");
  }
  if (!has_messages) {
    return InvalidArgumentError("request has no \"messages\" member");
  }
  return Status();
}

// Parses `body` into `ws` and inspects it.
Status ParseRequest(Workspace& ws, std::string_view body,
                    const KeyOptions& options, RequestInfo* info,
                    std::string* model) {
  if (Status s = CheckBodySize(body, options); !s.ok()) return s;
  ws.Reset(body);
  if (Status s = Parser(ws, body, options.max_depth).Parse(); !s.ok()) {
    return s;
  }
  return Inspect(ws, info, model);
}

// Writes the low `bytes` bytes of `value` to `out`, most significant first.
inline void PutBigEndian(char* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out[i] = static_cast<char>((value >> (8 * (bytes - 1 - i))) & 0xFF);
  }
}

// Writes the digest prefix documented in key.h: "llmcache\0", the format
// version (4 bytes BE), then namespace and scope, each as an 8-byte BE
// length followed by the bytes.
void WriteDigestPrefix(const KeyScope& scope, HashSink& sink) {
  char head[13] = {'l', 'l', 'm', 'c', 'a', 'c', 'h', 'e', '\0'};
  PutBigEndian(head + 9, kKeyFormatVersion, 4);
  sink.Write(head, sizeof(head));
  char len[8];
  PutBigEndian(len, scope.ns.size(), 8);
  sink.Write(len, sizeof(len));
  sink.Write(scope.ns.data(), scope.ns.size());
  PutBigEndian(len, scope.scope.size(), 8);
  sink.Write(len, sizeof(len));
  sink.Write(scope.scope.data(), scope.scope.size());
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API.

std::string DigestToHex(const Digest& digest) {
  std::string out(2 * kDigestSize, '\0');
  for (size_t i = 0; i < kDigestSize; ++i) {
    out[2 * i] = kLowerHex[digest[i] >> 4];
    out[2 * i + 1] = kLowerHex[digest[i] & 0xF];
  }
  return out;
}

Result<Digest> DigestFromHex(std::string_view hex) {
  if (hex.size() != 2 * kDigestSize) {
    return InvalidArgumentError("digest hex must be 64 characters, got " +
                                std::to_string(hex.size()));
  }
  Digest digest{};
  for (size_t i = 0; i < kDigestSize; ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return InvalidArgumentError(
          "digest hex has a non-hex character at offset " +
          std::to_string(hi < 0 ? 2 * i : 2 * i + 1));
    }
    digest[i] = static_cast<uint8_t>((hi << 4) | lo);
  }
  return digest;
}

std::string_view BaseModel(std::string_view model) {
  // The last ':' with no '/' after it.
  for (size_t i = model.size(); i > 0; --i) {
    const char c = model[i - 1];
    if (c == ':') return model.substr(0, i - 1);
    if (c == '/') break;
  }
  return model;
}

std::vector<std::string> KeyOptions::DefaultExcludedFields() {
  return {"stream",       "stream_options",   "usage",
          "user",         "session_id",       "metadata",
          "trace",        "prompt_cache_key", "prompt_cache_options",
          "cache_control"};
}

std::vector<std::string> KeyOptions::DefaultExcludedBlockFields() {
  return {"cache_control", "prompt_cache_breakpoint"};
}

KeyBuilder::KeyBuilder(KeyOptions options) : options_(std::move(options)) {}

KeyBuilder::~KeyBuilder() = default;

Result<RequestKey> KeyBuilder::Compute(std::string_view body,
                                       const KeyScope& scope,
                                       RequestInfo* info) const {
  try {
    WorkspaceLease lease;
    Workspace& ws = lease.ws();
    RequestInfo facts;
    RequestKey key;
    if (Status s = ParseRequest(ws, body, options_,
                                info != nullptr ? &facts : nullptr, &key.model);
        !s.ok()) {
      return s;
    }
    Hasher hasher;
    {
      HashSink sink(&hasher);
      WriteDigestPrefix(scope, sink);
      Emitter<HashSink>(ws, options_, &sink).Run();
      sink.Flush();
    }
    if (!hasher.Finish(&key.digest)) {
      return InternalError("SHA-256 through OpenSSL failed");
    }
    key.base_model.assign(BaseModel(key.model));
    if (info != nullptr) {
      // Field by field, so that info->model reuses its buffer.
      info->model.assign(key.model);
      info->stream = facts.stream;
      info->has_temperature = facts.has_temperature;
      info->temperature = facts.temperature;
      info->has_web_plugin = facts.has_web_plugin;
      info->has_web_search_options = facts.has_web_search_options;
      info->has_web_search_tool = facts.has_web_search_tool;
      info->has_debug = facts.has_debug;
      info->message_count = facts.message_count;
    }
    return key;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory computing the request key");
  } catch (...) {
    return InternalError("unexpected exception computing the request key");
  }
}

Result<std::string> KeyBuilder::Canonicalize(std::string_view body) const {
  try {
    WorkspaceLease lease;
    Workspace& ws = lease.ws();
    std::string model;
    if (Status s = ParseRequest(ws, body, options_, nullptr, &model); !s.ok()) {
      return s;
    }
    std::string out;
    StringSink sink(&out, body.size());
    Emitter<StringSink>(ws, options_, &sink).Run();
    sink.Finish();
    return out;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory canonicalising the request");
  } catch (...) {
    return InternalError("unexpected exception canonicalising the request");
  }
}

Digest Sha256(std::string_view data) {
  // Cannot report errors: if OpenSSL fails (no default provider) the result
  // is the all-zero digest. Compute() reports the same failure as kInternal.
  Digest digest{};
  Hasher hasher;
  hasher.Update(data.data(), data.size());
  if (!hasher.Finish(&digest)) digest.fill(0);
  return digest;
}

std::string ApiKeyScope(std::string_view api_key) {
  if (api_key.empty()) return std::string();
  std::string input = "llmcache-scope-v1:";
  input.append(api_key);
  return DigestToHex(Sha256(input));
}

}  // namespace llmcache
