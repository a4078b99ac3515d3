// Who counts an expired entry out of the statistics, when two could.
//
// The TTL compaction filter drops an expired version and counts it out
// (rocks_schema.cc) when the job that dropped it installs its output. Until
// then a read still returns that version, so a purge that deletes it, an
// insert or a bulk load that replaces it, counts it out too (a purge takes
// it off the entry count, a replacement does not add one): the count ended
// low once per such entry (an outside probe: 292718 counted against 300000
// stored after new versions of expired keys were imported while the
// compactions ran).
//
// The writer's count is the one that stays: it is in the write's own batch,
// whatever becomes of the filter's job (a job stopped by a closing store, or
// failed, installs nothing and counts nothing). Both sides claim the version
// (column family, key, creation and expiry time) under one mutex:
//  - the filter, holding the mutex, leaves the version to a writer that
//    claims it (one about to write), else reads the key (a version a
//    writer has replaced or deleted since is not the one a read returns:
//    not counted, as before) and claims it until its job has ended;
//  - a purge, insert or bulk load reads the stored version holding the mutex
//    (only one that expires within the hour: a filter drops no other before
//    the write has long returned), claims it until its write has returned,
//    and takes over the claim of a filter that holds one: that filter's job
//    then does not count the version out when it installs.
// A writer's read and claim, and a filter's release (after its install),
// cannot interleave, so a writer that read the version before the install
// finds the filter's claim; a filter that reads after a writer released its
// claim reads what that writer wrote. (Purges read first without the mutex
// and read again under it only if a filter released claims meanwhile:
// releases().)
//
// A writer whose write fails after it claimed a version a filter then met
// leaves that version counted in (the filter left it to the writer): one
// entry per such key, on a store that a failed write degrades anyway.

#ifndef LLMCACHE_ENGINE_COUNT_OUT_CLAIMS_H_
#define LLMCACHE_ENGINE_COUNT_OUT_CLAIMS_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace llmcache {

class CountOutClaims {
 public:
  // The claim on one version of `key` (its last 8 bytes are the digest's,
  // random) in column family `cf_id`: a 64-bit mix, so that a claim costs
  // no string. Two versions that mix alike (one pair in 2^64) leave the
  // second one's count to the first one's claimant: the count may end one
  // off, nothing else.
  static uint64_t Key(uint32_t cf_id, std::string_view key, int64_t created_ms,
                      int64_t expires_ms) {
    uint64_t tail = 0;
    std::memcpy(&tail,
                key.data() + key.size() - std::min<size_t>(8, key.size()),
                std::min<size_t>(8, key.size()));
    uint64_t h = tail ^ (uint64_t{cf_id} * 0x9e3779b97f4a7c15ULL);
    h = Mix(h ^ static_cast<uint64_t>(created_ms));
    return Mix(h ^ static_cast<uint64_t>(expires_ms));
  }

  // Whether a writer claims a version that expires at `expires_ms` (0:
  // never) for a write begun at `now_ms`: only one that expires within the
  // hour. A claim costs a lock and a second read; a write that takes an
  // hour from its read is not expected.
  static bool Claims(int64_t expires_ms, int64_t now_ms) {
    return expires_ms != 0 && expires_ms <= now_ms + kHorizonMs;
  }

  std::mutex& mu() { return mu_; }

  // REQUIRES: mu() held.
  bool ClaimedByWriter(uint64_t claim) const {
    return writers_.contains(claim);
  }
  void ClaimForFilter(uint64_t claim) { ++filters_[claim].holders; }
  // A writer about to delete or replace the version: it counts it, and a
  // filter that claims it will not.
  void ClaimForWriter(uint64_t claim) {
    writers_.insert(claim);
    auto it = filters_.find(claim);
    if (it != filters_.end()) it->second.taken_over = true;
  }

  // Takes mu(). Sets (*taken_over)[i] when a writer took claims[i] over.
  void ReleaseFilterClaims(const std::vector<uint64_t>& claims,
                           std::vector<char>* taken_over) {
    taken_over->assign(claims.size(), 0);
    if (claims.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < claims.size(); ++i) {
      auto it = filters_.find(claims[i]);
      if (it == filters_.end()) continue;
      (*taken_over)[i] = it->second.taken_over;
      if (--it->second.holders == 0) filters_.erase(it);
    }
    releases_.fetch_add(1, std::memory_order_release);
  }
  void ReleaseWriterClaims(const std::vector<uint64_t>& claims) {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t c : claims) {
      auto it = writers_.find(c);
      if (it != writers_.end()) writers_.erase(it);
    }
  }

  // How many times filters released claims: a writer that finds the same
  // number before its read (without mu()) and once it holds mu() knows that
  // no claim was released in between, so its read saw every version a
  // filter still claims, and none a filter has stopped claiming.
  uint64_t releases() const {
    return releases_.load(std::memory_order_acquire);
  }

  // Drops the filters' claims: no job runs (the database is closed). A job
  // that never ended (a failed flush; a job a closing store stopped) leaves
  // its claims until then: writers that meet them take them over, and count.
  void ReleaseAllFilterClaims() {
    std::lock_guard<std::mutex> lock(mu_);
    filters_.clear();
    releases_.fetch_add(1, std::memory_order_release);
  }

 private:
  static constexpr int64_t kHorizonMs = 3600 * 1000;

  static uint64_t Mix(uint64_t z) {  // SplitMix64's finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  struct FilterClaim {
    uint32_t holders = 0;     // jobs (two copies of a version: two)
    bool taken_over = false;  // by a writer, which counts the version
  };

  std::mutex mu_;
  std::atomic<uint64_t> releases_{0};
  std::unordered_map<uint64_t, FilterClaim> filters_;
  std::unordered_multiset<uint64_t> writers_;
};

// A writer's claims, released when it goes out of scope: declare it before
// the read under the claims' mutex, so that it outlives the write.
class WriterClaims {
 public:
  explicit WriterClaims(CountOutClaims* claims) : claims_(claims) {}
  ~WriterClaims() {
    if (!held_.empty()) claims_->ReleaseWriterClaims(held_);
  }
  WriterClaims(const WriterClaims&) = delete;
  WriterClaims& operator=(const WriterClaims&) = delete;

  CountOutClaims& claims() { return *claims_; }
  // Claims `claim` for this writer (taking a filter's claim over).
  // REQUIRES: claims().mu() held.
  void Claim(uint64_t claim) {
    held_.push_back(claim);  // first: a throw leaves no claim unreleased
    claims_->ClaimForWriter(claim);
  }

 private:
  CountOutClaims* const claims_;
  std::vector<uint64_t> held_;
};

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_COUNT_OUT_CLAIMS_H_
