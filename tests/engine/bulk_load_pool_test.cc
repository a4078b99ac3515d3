// Tests for the bulk loader's block pool (engine/src/rocks_ingest_memory.h):
// past its soft cap, the thread that fills batches waits for the blocks of
// the batch being written instead of faulting in fresh ones, and never waits
// when there is nothing to wait for.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "rocks_ingest_memory.h"

namespace llmcache {
namespace {

using std::chrono::milliseconds;

// Get(may_wait) on another thread, given `limit` to return: false if it did
// not (it is then handed a block of its own, so that it returns and the
// test fails instead of hanging). The block goes back to the pool.
bool GetsWithin(BlockPool& pool, bool may_wait, milliseconds limit) {
  std::future<void> got = std::async(std::launch::async, [&pool, may_wait] {
    std::vector<Block> back;
    back.push_back(pool.Get(may_wait));
    pool.Put(back);
  });
  if (got.wait_for(limit) == std::future_status::ready) return true;
  std::vector<Block> unblock;
  unblock.push_back(NewBlock());
  pool.Put(unblock);
  got.wait();
  return false;
}

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

TEST(BlockPoolTest, ABlockTheMakerFinishesWakesAWaitingGet) {
  // The maker counts a block as made before it faults it in: a Get that
  // finds the cap reached meanwhile waits, and the maker's block must wake
  // it (not only the writer's return). Racy by nature: 20 tries, each
  // asking while the maker is likely still making its second block.
  for (int attempt = 0; attempt < 20; ++attempt) {
    BlockPool pool(/*max_kept=*/8, /*ready=*/1, /*soft_cap=*/2);
    std::vector<Block> batch;
    batch.push_back(pool.Get(/*may_wait=*/true));  // the maker's first
    pool.Lend(batch.size());
    EXPECT_TRUE(GetsWithin(pool, /*may_wait=*/true, milliseconds(2000)))
        << "attempt " << attempt << ": waited for the writer's blocks";
    pool.Put(batch);
  }
}

TEST(BlockPoolTest, NothingLentMeansNoWait) {
  BlockPool pool(/*max_kept=*/8, /*ready=*/0, /*soft_cap=*/1);
  std::vector<Block> held;
  held.push_back(pool.Get(/*may_wait=*/true));
  // Past the cap with nothing lent: fresh blocks, at once.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(GetsWithin(pool, /*may_wait=*/true, milliseconds(2000)));
  }
  pool.Put(held);
}

TEST(BlockPoolTest, TheWriterNeverWaits) {
  BlockPool pool(/*max_kept=*/8, /*ready=*/0, /*soft_cap=*/1);
  std::vector<Block> batch;
  batch.push_back(pool.Get(/*may_wait=*/true));
  pool.Lend(batch.size());
  // An overflow family's keys: the writer takes blocks of its own.
  EXPECT_TRUE(GetsWithin(pool, /*may_wait=*/false, milliseconds(2000)));
  pool.Put(batch);
  // Everything lent is back: nothing to wait for.
  EXPECT_TRUE(GetsWithin(pool, /*may_wait=*/true, milliseconds(2000)));
}

}  // namespace
}  // namespace llmcache
