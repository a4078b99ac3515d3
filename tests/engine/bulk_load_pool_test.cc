// Tests for the bulk loader's block pool (engine/src/rocks_ingest_memory.h):
// past its soft cap, the thread that fills batches waits for the blocks of
// the batch being written instead of faulting in fresh ones, and never waits
// when there is nothing to wait for.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "rocks_ingest_memory.h"

namespace llmcache {
namespace {

using std::chrono::milliseconds;

TEST(BlockPoolTest, PastTheSoftCapAGetWaitsForLentBlocks) {
  // No blocks made ahead (ready 0): every block below is accounted for.
  BlockPool pool(/*max_kept=*/8, /*ready=*/0, /*soft_cap=*/2);
  std::vector<Block> batch;
  batch.push_back(pool.Get(/*may_wait=*/true));
  batch.push_back(pool.Get(/*may_wait=*/true));
  const char* const first = batch[0].get();
  const char* const second = batch[1].get();
  pool.Lend(batch.size());  // the batch goes to its writer

  std::atomic<bool> got{false};
  const char* taken = nullptr;
  std::thread filler([&] {
    Block b = pool.Get(/*may_wait=*/true);
    taken = b.get();
    got = true;
    std::vector<Block> back;
    back.push_back(std::move(b));
    pool.Put(back);
  });
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_FALSE(got) << "made a third block instead of waiting";
  pool.Put(batch);  // the writer is done with them
  filler.join();
  EXPECT_TRUE(got);
  EXPECT_TRUE(taken == first || taken == second) << "not a returned block";
}

TEST(BlockPoolTest, NothingLentMeansNoWait) {
  BlockPool pool(/*max_kept=*/8, /*ready=*/0, /*soft_cap=*/1);
  std::vector<Block> held;
  // Past the cap with nothing lent: fresh blocks, at once.
  for (int i = 0; i < 3; ++i) held.push_back(pool.Get(/*may_wait=*/true));
  for (const Block& b : held) EXPECT_NE(b.get(), nullptr);
  pool.Put(held);
}

TEST(BlockPoolTest, TheWriterNeverWaits) {
  BlockPool pool(/*max_kept=*/8, /*ready=*/0, /*soft_cap=*/1);
  std::vector<Block> batch;
  batch.push_back(pool.Get(/*may_wait=*/true));
  pool.Lend(batch.size());
  // An overflow family's keys: the writer takes blocks of its own.
  Block b = pool.Get(/*may_wait=*/false);
  EXPECT_NE(b.get(), nullptr);
  EXPECT_NE(b.get(), batch[0].get());
  batch.push_back(std::move(b));
  pool.Put(batch);  // more back than lent: nothing is owed after
  std::vector<Block> more;
  more.push_back(pool.Get(/*may_wait=*/true));
  more.push_back(pool.Get(/*may_wait=*/true));
  more.push_back(pool.Get(/*may_wait=*/true));  // a fresh one, no wait
  pool.Put(more);
}

}  // namespace
}  // namespace llmcache
