// ConnectionSlot (net/proxy/src/session_state.h): when a connection's place
// under max_connections is given back.

#include "session_state.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>

namespace llmcache::net::proxy {
namespace {

class ConnectionSlotTest : public ::testing::Test {
 protected:
  std::atomic<int64_t> open_{1};  // the accept counted this connection
};

TEST_F(ConnectionSlotTest, AClosedIdleConnectionGivesItsPlaceBackOnce) {
  {
    ConnectionSlot slot(open_);
    slot.Closed();
    EXPECT_EQ(open_.load(), 0);
    slot.Closed();
  }  // and not again when destroyed
  EXPECT_EQ(open_.load(), 0);
}

TEST_F(ConnectionSlotTest, ItIsGivenBackWhenDestroyedAtTheLatest) {
  { ConnectionSlot slot(open_); }
  EXPECT_EQ(open_.load(), 0);
}

TEST_F(ConnectionSlotTest, AGoneLeaderKeepsItsPlaceUntilItsCallEnds) {
  ConnectionSlot slot(open_);
  slot.Awaiting(1);
  EXPECT_TRUE(slot.awaiting());
  slot.Closed();
  EXPECT_EQ(open_.load(), 1);
  slot.Answered(/*closed=*/true);
  EXPECT_FALSE(slot.awaiting());
  EXPECT_EQ(open_.load(), 0);
}

TEST_F(ConnectionSlotTest, AGoneWaiterGivesItsPlaceBackAtOnce) {
  {
    ConnectionSlot slot(open_);  // told before its client leaves
    slot.Awaiting(1);
    slot.Waits(1, true, /*closed=*/false);
    EXPECT_EQ(open_.load(), 1);
    slot.Closed();
    EXPECT_EQ(open_.load(), 0);
    slot.Answered(/*closed=*/true);
  }
  EXPECT_EQ(open_.load(), 0);
  open_ = 1;
  ConnectionSlot slot(open_);  // told after
  slot.Awaiting(1);
  slot.Closed();
  EXPECT_EQ(open_.load(), 1);
  slot.Waits(1, true, /*closed=*/true);
  EXPECT_EQ(open_.load(), 0);
}

TEST_F(ConnectionSlotTest, AWaiterThatCallsUpstreamAfterAllTakesItsPlaceBack) {
  ConnectionSlot slot(open_);
  slot.Awaiting(1);
  slot.Waits(1, true, /*closed=*/false);
  slot.Closed();  // gone just after it was found still there
  EXPECT_EQ(open_.load(), 0);
  slot.Waits(1, false, /*closed=*/true);  // it calls upstream all the same
  EXPECT_EQ(open_.load(), 1);
  slot.Answered(/*closed=*/true);
  EXPECT_EQ(open_.load(), 0);
}

TEST_F(ConnectionSlotTest, NoticesOfAnotherRequestOrAfterTheAnswerAreIgnored) {
  ConnectionSlot slot(open_);
  slot.Awaiting(2);
  slot.Waits(1, true, /*closed=*/true);  // the connection's first request
  EXPECT_EQ(open_.load(), 1);
  slot.Answered(/*closed=*/false);
  slot.Waits(2, true, /*closed=*/true);  // late: its answer came first
  EXPECT_EQ(open_.load(), 1);
  slot.Closed();
  EXPECT_EQ(open_.load(), 0);
}

}  // namespace
}  // namespace llmcache::net::proxy
