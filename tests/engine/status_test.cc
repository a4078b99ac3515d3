// Tests for Status, Result<T> and the propagation macros
// (llmcache/status.h).

#include "llmcache/status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <utility>

#include "testing/status_matchers.h"

namespace llmcache {
namespace {

using ::llmcache::testing::IsOk;
using ::llmcache::testing::StatusIs;

TEST(StatusTest, DefaultIsOkWithEmptyMessage) {
  const Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s, Status::Ok());
}

TEST(StatusTest, ErrorKeepsCodeAndMessage) {
  const Status s = NotFoundError("no such key");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "no such key");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: no such key");
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "NOT_FOUND: no such key");
}

TEST(StatusTest, ConstructingWithOkCodeIsOk) {
  const Status s(StatusCode::kOk, "ignored");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
}

TEST(StatusTest, FactoriesSetTheirCodes) {
  EXPECT_THAT(InvalidArgumentError("m"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(NotFoundError("m"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(AlreadyExistsError("m"), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(PermissionDeniedError("m"),
              StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(ResourceExhaustedError("m"),
              StatusIs(StatusCode::kResourceExhausted));
  EXPECT_THAT(FailedPreconditionError("m"),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(AbortedError("m"), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(UnavailableError("m"), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(DeadlineExceededError("m"),
              StatusIs(StatusCode::kDeadlineExceeded));
  EXPECT_THAT(InternalError("m"), StatusIs(StatusCode::kInternal));
  EXPECT_THAT(DataLossError("m"), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(UnimplementedError("m"), StatusIs(StatusCode::kUnimplemented));
  EXPECT_THAT(CancelledError("m"), StatusIs(StatusCode::kCancelled));
  EXPECT_THAT(UnauthenticatedError("m"),
              StatusIs(StatusCode::kUnauthenticated, "m"));
}

TEST(StatusTest, CodeNamesAreCanonical) {
  EXPECT_EQ(StatusCodeName(StatusCode::kOk), "OK");
  EXPECT_EQ(StatusCodeName(StatusCode::kInvalidArgument), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeName(StatusCode::kResourceExhausted),
            "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeName(static_cast<StatusCode>(99)), "UNKNOWN");
}

TEST(StatusTest, WithContextPrefixesTheMessage) {
  const Status s = UnavailableError("connection reset");
  const Status c = s.WithContext("fetching gen-123");
  EXPECT_EQ(c.code(), StatusCode::kUnavailable);
  EXPECT_EQ(c.message(), "fetching gen-123: connection reset");
  // The original is unchanged.
  EXPECT_EQ(s.message(), "connection reset");
  EXPECT_TRUE(Status().WithContext("anything").ok());
}

TEST(StatusTest, CopiesAreIndependentAndEqual) {
  Status a = InternalError("boom");
  Status b = a;
  EXPECT_EQ(a, b);
  b = NotFoundError("other");
  EXPECT_EQ(a.message(), "boom");
  EXPECT_NE(a, b);
  Status c = std::move(b);
  EXPECT_EQ(c.code(), StatusCode::kNotFound);
  const Status& alias = a;
  a = alias;  // self-assignment keeps the value
  EXPECT_EQ(a.message(), "boom");
  EXPECT_NE(InternalError("x"), InternalError("y"));
  EXPECT_NE(InternalError("x"), NotFoundError("x"));
}

TEST(StatusResultTest, HoldsAValue) {
  Result<std::string> r = std::string("hello");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_THAT(r, IsOk());
  EXPECT_TRUE(r.status().ok());
  EXPECT_EQ(r.value(), "hello");
  EXPECT_EQ(*r, "hello");
  EXPECT_EQ(r->size(), 5u);
  EXPECT_EQ(r.value_or("fallback"), "hello");
  std::string moved = std::move(r).value();
  EXPECT_EQ(moved, "hello");
}

TEST(StatusResultTest, HoldsAnError) {
  Result<int> r = NotFoundError("missing");
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_THAT(r, StatusIs(StatusCode::kNotFound, "missing"));
  EXPECT_EQ(r.value_or(7), 7);
}

TEST(StatusResultTest, OkStatusBecomesInternalError) {
  Result<int> r = Status();
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r, StatusIs(StatusCode::kInternal));
}

TEST(StatusResultTest, ConvertsFromCompatibleValues) {
  Result<std::string> r = "literal";
  ASSERT_OK(r);
  EXPECT_EQ(*r, "literal");
  Result<std::unique_ptr<int>> p = std::make_unique<int>(5);
  ASSERT_OK(p);
  EXPECT_EQ(**p, 5);
}

Status FailIf(bool fail) {
  if (fail) return AbortedError("failed");
  return Status();
}

Status Chain(bool fail, int* reached) {
  LLMCACHE_RETURN_IF_ERROR(FailIf(fail));
  *reached = 1;
  return Status();
}

TEST(StatusMacroTest, ReturnIfErrorPropagatesOnlyErrors) {
  int reached = 0;
  EXPECT_THAT(Chain(true, &reached), StatusIs(StatusCode::kAborted, "failed"));
  EXPECT_EQ(reached, 0);
  EXPECT_THAT(Chain(false, &reached), IsOk());
  EXPECT_EQ(reached, 1);
}

Result<int> Parse(bool fail) {
  if (fail) return InvalidArgumentError("bad number");
  return 41;
}

Result<int> AddOne(bool fail) {
  LLMCACHE_ASSIGN_OR_RETURN(int v, Parse(fail));
  return v + 1;
}

Status AssignTwice(int* out) {
  // Two uses in one scope need distinct hidden variables.
  LLMCACHE_ASSIGN_OR_RETURN(int a, Parse(false));
  LLMCACHE_ASSIGN_OR_RETURN(int b, Parse(false));
  *out = a + b;
  return Status();
}

TEST(StatusMacroTest, AssignOrReturnUnwrapsOrPropagates) {
  Result<int> ok = AddOne(false);
  ASSERT_OK(ok);
  EXPECT_EQ(*ok, 42);
  EXPECT_THAT(AddOne(true),
              StatusIs(StatusCode::kInvalidArgument, "bad number"));
  int sum = 0;
  EXPECT_THAT(AssignTwice(&sum), IsOk());
  EXPECT_EQ(sum, 82);
}

Result<std::unique_ptr<int>> MakeBox() { return std::make_unique<int>(3); }

Status UseBox(int* out) {
  LLMCACHE_ASSIGN_OR_RETURN(std::unique_ptr<int> box, MakeBox());
  *out = *box;
  return Status();
}

TEST(StatusMacroTest, AssignOrReturnMovesMoveOnlyValues) {
  int v = 0;
  EXPECT_THAT(UseBox(&v), IsOk());
  EXPECT_EQ(v, 3);
}

}  // namespace
}  // namespace llmcache
