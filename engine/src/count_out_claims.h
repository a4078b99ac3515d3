// Who counts an expired entry out of the statistics, when two could.
//
// The TTL compaction filter drops an expired version and counts it out
// (rocks_schema.cc) when the job that dropped it installs its output. Until
// then a read still returns that version, so a purge that deletes it, or an
// insert that replaces it, would count it out too (a purge takes it off the
// entry count, a replacing insert does not add one): the count ended low
// once per such entry (an outside probe: 292718 counted against 300000
// stored after new versions of expired keys were imported while the
// compactions ran).
//
// Both sides claim the version (column family, key, creation and expiry
// time) under one mutex, and whoever claims it first counts it:
//  - the filter, holding the mutex, checks that no writer holds a claim,
//    reads the key (a version a writer has replaced or deleted since is not
//    the one a read returns: not counted, as before), and claims it until
//    its job has ended (installed or failed);
//  - a purge or an insert reads the stored version again holding the mutex
//    (only when that version expires within the hour: a filter drops no
//    other before the write has long returned), and counts it out unless a
//    filter holds a claim; else it claims it itself until its write has
//    returned.
// A writer's read under the mutex and a filter's release (after its install)
// cannot interleave, so a writer that read the version before the install
// sees the filter's claim; a filter that reads after a writer released its
// claim reads what that writer wrote.

#ifndef LLMCACHE_ENGINE_COUNT_OUT_CLAIMS_H_
#define LLMCACHE_ENGINE_COUNT_OUT_CLAIMS_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string_view>
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
  bool ClaimedByFilter(uint64_t claim) const {
    return filters_.contains(claim);
  }
  void ClaimForFilter(uint64_t claim) { filters_.insert(claim); }
  void ClaimForWriter(uint64_t claim) { writers_.insert(claim); }

  // Take mu().
  void ReleaseFilterClaims(const std::vector<uint64_t>& claims) {
    if (claims.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t c : claims) Erase(&filters_, c);
    releases_.fetch_add(1, std::memory_order_release);
  }
  void ReleaseWriterClaims(const std::vector<uint64_t>& claims) {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t c : claims) Erase(&writers_, c);
  }

  // How many times filters released claims: a writer that finds the same
  // number before its read (without mu()) and once it holds mu() knows that
  // no claim was released in between, so its read saw every version a
  // filter still claims, and none a filter has stopped claiming.
  uint64_t releases() const {
    return releases_.load(std::memory_order_acquire);
  }

  // Drops the filters' claims: no job runs (the database is closed). A job
  // that failed to install without ending (a failed flush) leaves its
  // claims until then.
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
  static void Erase(std::unordered_multiset<uint64_t>* set, uint64_t claim) {
    auto it = set->find(claim);
    if (it != set->end()) set->erase(it);
  }

  std::mutex mu_;
  std::atomic<uint64_t> releases_{0};
  std::unordered_multiset<uint64_t> filters_;
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
  // Claims `claim` for this writer unless a filter holds it; true if it
  // does (the filter counts the version out). REQUIRES: claims().mu() held.
  bool ClaimUnlessFiltered(uint64_t claim) {
    if (claims_->ClaimedByFilter(claim)) return true;
    held_.push_back(claim);  // first: a throw leaves no claim unreleased
    claims_->ClaimForWriter(claim);
    return false;
  }

 private:
  CountOutClaims* const claims_;
  std::vector<uint64_t> held_;
};

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_COUNT_OUT_CLAIMS_H_
