// Status and Result<T>: the error model at every llmcache library boundary.
//
// A Status is either OK (no allocation, cheap to copy) or a code plus a
// human-readable message. The codes follow the canonical set used by gRPC and
// abseil, so a caller can tell from the code alone whether a retry may help
// (kUnavailable, kResourceExhausted, kDeadlineExceeded, kAborted) or not
// (kInvalidArgument, kPermissionDenied, kFailedPrecondition, ...).
//
// Result<T> holds either a value or a non-OK Status (StatusOr-shaped; GCC 12
// has no std::expected in C++20).
//
// No function in llmcache's public API throws; failures are reported here.

#ifndef LLMCACHE_STATUS_H_
#define LLMCACHE_STATUS_H_

#include <cassert>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace llmcache {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// Returns the canonical name of `code`, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // An OK status. Costs nothing: no allocation.
  Status() noexcept = default;
  Status(StatusCode code, std::string_view message);

  Status(const Status& other)
      : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}
  Status& operator=(const Status& other) {
    if (this != &other) {
      rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
    }
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  // The message; empty for OK.
  std::string_view message() const {
    return rep_ ? std::string_view(rep_->message) : std::string_view();
  }
  // "OK" or "CODE_NAME: message".
  std::string ToString() const;

  // Returns a copy whose message is "`context`: <message>". OK stays OK.
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

std::ostream& operator<<(std::ostream& os, const Status& status);

// Factory helpers, one per code that llmcache reports.
Status InvalidArgumentError(std::string_view message);
Status NotFoundError(std::string_view message);
Status AlreadyExistsError(std::string_view message);
Status PermissionDeniedError(std::string_view message);
Status ResourceExhaustedError(std::string_view message);
Status FailedPreconditionError(std::string_view message);
Status AbortedError(std::string_view message);
Status UnavailableError(std::string_view message);
Status DeadlineExceededError(std::string_view message);
Status InternalError(std::string_view message);
Status DataLossError(std::string_view message);
Status UnimplementedError(std::string_view message);
Status CancelledError(std::string_view message);
Status UnauthenticatedError(std::string_view message);

// Either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::decay_t<T>, Status>,
                "Result<Status> is not allowed");

 public:
  // REQUIRES: !status.ok(). An OK status here is a programming error; it is
  // turned into kInternal so that callers never see an OK Result without a
  // value.
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit
    if (std::get<Status>(v_).ok()) {
      v_ = Status(StatusCode::kInternal, "Result constructed from OK status");
    }
  }
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit
  template <typename U, typename = std::enable_if_t<
                            std::is_constructible_v<T, U&&> &&
                            !std::is_same_v<std::decay_t<U>, T> &&
                            !std::is_same_v<std::decay_t<U>, Status>>>
  Result(U&& value) : v_(T(std::forward<U>(value))) {}  // NOLINT: implicit

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  // OK if this holds a value.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // REQUIRES: ok().
  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The value, or `fallback` when this holds an error.
  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<T>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<Status, T> v_;
};

}  // namespace llmcache

// Evaluates `expr` (a Status) and returns it from the enclosing function if it
// is not OK.
#define LLMCACHE_RETURN_IF_ERROR(expr)           \
  do {                                           \
    ::llmcache::Status _llmcache_st = (expr);    \
    if (!_llmcache_st.ok()) return _llmcache_st; \
  } while (0)

#define LLMCACHE_CONCAT_INNER_(a, b) a##b
#define LLMCACHE_CONCAT_(a, b) LLMCACHE_CONCAT_INNER_(a, b)

// `lhs` = value of `rexpr` (a Result<T>), or returns its Status.
#define LLMCACHE_ASSIGN_OR_RETURN(lhs, rexpr)                                 \
  LLMCACHE_ASSIGN_OR_RETURN_IMPL_(LLMCACHE_CONCAT_(_llmcache_res_, __LINE__), \
                                  lhs, rexpr)
#define LLMCACHE_ASSIGN_OR_RETURN_IMPL_(res, lhs, rexpr) \
  auto res = (rexpr);                                    \
  if (!res.ok()) return res.status();                    \
  lhs = std::move(res).value()

#endif  // LLMCACHE_STATUS_H_
