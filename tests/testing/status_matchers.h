// Tiny GoogleTest matchers for Status and Result<T> (Debian's abseil is too
// old for absl's): EXPECT_THAT(s, IsOk()); EXPECT_THAT(r, StatusIs(code)).

#ifndef LLMCACHE_TESTS_TESTING_STATUS_MATCHERS_H_
#define LLMCACHE_TESTS_TESTING_STATUS_MATCHERS_H_

#include <gmock/gmock.h>

#include <string>

#include "llmcache/status.h"

namespace llmcache::testing {

inline const Status& GetStatus(const Status& s) { return s; }
template <typename T>
Status GetStatus(const Result<T>& r) {
  return r.status();
}

MATCHER(IsOk, "is OK") {
  Status s = ::llmcache::testing::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

MATCHER_P(StatusIs, code,
          std::string("has status code ") +
              std::string(::llmcache::StatusCodeName(code))) {
  Status s = ::llmcache::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, substring,
           std::string("has status code ") +
               std::string(::llmcache::StatusCodeName(code)) +
               " and a message containing \"" + std::string(substring) +
               "\"") {
  Status s = ::llmcache::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         s.message().find(substring) != std::string_view::npos;
}

}  // namespace llmcache::testing

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::llmcache::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::llmcache::testing::IsOk())

#endif  // LLMCACHE_TESTS_TESTING_STATUS_MATCHERS_H_
