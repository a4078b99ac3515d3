// The parsed request tree and the per-thread scratch memory it lives in.
//
// PodVector is the growable array of the hot path; Entry (one JSON value, with
// its member name when in an object), Container and the parser's and
// emitter's stacks are stored in a Workspace, which each thread reuses across
// calls (WorkspaceLease), so a steady-state key computation allocates
// nothing. Entries point into the request body: the body must outlive the
// tree.
//
// Private to the request-key code: part of engine/src/key.cc, included by it
// alone. Internal linkage (an unnamed namespace) on purpose: the pipeline is
// one translation unit, so the compiler inlines its single-call stages.

#ifndef LLMCACHE_ENGINE_KEY_WORKSPACE_H_
#define LLMCACHE_ENGINE_KEY_WORKSPACE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

#include "key/compiler.h"

namespace llmcache::key_internal {
namespace {

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
  // Appends n elements with indeterminate contents and returns the first.
  LLMCACHE_INLINE T* extend(size_t n) {
    if (LLMCACHE_UNLIKELY(size_ + n > capacity_)) Grow(size_ + n);
    T* const out = data_ + size_;
    size_ += n;
    return out;
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

// Where the emitter is in the request: which members are excluded there and
// what the children's contexts are (key/emitter.h). The first seven are the
// chat-completions (and embeddings) request; the rest are reached only from
// the Anthropic Messages and Responses roots (key/emitter.h).
enum class Ctx : uint8_t {
  kPlain,     // no exclusions below this point
  kTop,       // the request object
  kMessages,  // the top-level `messages` array
  kMessage,   // messages[i]
  kContent,   // messages[i].content, or an Anthropic `system` array
  kTools,     // the top-level `tools` array
  kBlock,     // messages[i].content[j], tools[i], system[j] or a nested block
  kTopAnthropic,  // the Anthropic Messages request object
  kTopResponses,  // the Responses API request object
  kApiMessages,   // Anthropic `messages`
  kApiMessage,    // Anthropic messages[i]
  kApiContent,    // Anthropic messages[i].content
  kApiBlock,      // Anthropic messages[i].content[j]
  kNestedBlocks,  // messages[i].content[j].content, Responses
                  // input[i].content: arrays of blocks
  kInput,         // the Responses `input` array
  kInputItem,     // Responses input[i]
  kCount,
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

inline std::string_view KeyText(const Entry& e) {
  return std::string_view(e.key, e.key_len);
}

// Whether `name` is `literal`: a length check and a fixed-size compare, which
// the compiler expands inline (string_view's == calls memcmp).
template <size_t N>
LLMCACHE_INLINE bool IsName(std::string_view name, const char (&literal)[N]) {
  return name.size() == N - 1 && std::memcmp(name.data(), literal, N - 1) == 0;
}

}  // namespace
}  // namespace llmcache::key_internal

#endif  // LLMCACHE_ENGINE_KEY_WORKSPACE_H_
