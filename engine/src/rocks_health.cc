// RocksCache: store health. Write errors and RocksDB background errors
// degrade the store; the recovery thread resumes (or reopens) the database
// with exponential backoff. See rocks_cache.h ("Store health") for the
// design.
//
// What RocksDB 7.8 does on errors (db/error_handler.cc): with paranoid_checks
// (the default), a failed write-ahead-log append or sync sets a background
// error: kHardError for ENOSPC, kFatalError for other I/O errors. A hard
// error stops writes until DB::Resume() succeeds; Resume() flushes every
// non-empty memtable, which also moves writes to a new log. A fatal error
// cannot be resumed: only a reopen clears it. A log writer that failed once
// must never be written again (WritableFileWriter asserts on it); when every
// memtable was empty, Resume() does not replace the log, so recovery then
// reopens the database too. RocksDB's own recovery (the SstFileManager
// polling free space after ENOSPC, the auto-resume thread after retryable
// errors) is switched off (ErrorListener, max_bgerror_resume_count = 0):
// DB::Resume() answers Busy while one runs, and one instance doing both
// would race recovery with reopening.

#include <rocksdb/db.h>
#include <rocksdb/listener.h>
#include <rocksdb/transaction_log.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>

#include "rocks_cache.h"
#include "rocks_status.h"

namespace llmcache {

// Receives RocksDB's background errors (flush, compaction, write-ahead log,
// MANIFEST) and vetoes RocksDB's own recovery. Called on RocksDB threads
// without its DB mutex; must not call into the DB, and must not throw.
class RocksCache::ErrorListener final : public rocksdb::EventListener {
 public:
  explicit ErrorListener(RocksCache* cache) : cache_(cache) {}

  const char* Name() const override { return "llmcache.ErrorListener"; }

  void OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                         rocksdb::Status* bg_error) override {
    try {
      if (bg_error == nullptr || bg_error->ok()) return;
      const char* what = "background work";
      switch (reason) {
        case rocksdb::BackgroundErrorReason::kFlush:
        case rocksdb::BackgroundErrorReason::kFlushNoWAL:
          what = "flushing a memtable";
          break;
        case rocksdb::BackgroundErrorReason::kCompaction:
          what = "compacting";
          break;
        case rocksdb::BackgroundErrorReason::kWriteCallback:
          what = "writing the write-ahead log";
          break;
        case rocksdb::BackgroundErrorReason::kMemTable:
          what = "writing a memtable";
          break;
        case rocksdb::BackgroundErrorReason::kManifestWrite:
        case rocksdb::BackgroundErrorReason::kManifestWriteNoWAL:
          what = "writing the MANIFEST";
          break;
      }
      Damage damage = Damage::kResumable;
      if (bg_error->severity() > rocksdb::Status::Severity::kHardError) {
        damage = Damage::kFatal;
      } else if (reason == rocksdb::BackgroundErrorReason::kWriteCallback) {
        damage = Damage::kWal;
      }
      cache_->Degrade(FromRocks(*bg_error, cache_->path_, what).ToString(),
                      damage);
    } catch (...) {
      // Out of memory building a message: the write that failed reports it.
    }
  }

  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status,
                            bool* auto_recovery) override {
    if (auto_recovery != nullptr) *auto_recovery = false;  // ours does it
  }

 private:
  RocksCache* const cache_;
};

std::shared_ptr<rocksdb::EventListener> RocksCache::NewErrorListener() {
  return std::make_shared<ErrorListener>(this);
}

namespace {

bool DegradesStore(const rocksdb::Status& s) {
  if (s.ok() || s.IsColumnFamilyDropped()) return false;
  return s.IsIOError() || s.IsCorruption() ||
         s.severity() >= rocksdb::Status::Severity::kHardError;
}

}  // namespace

Status RocksCache::WriteAllowed() {
  LLMCACHE_RETURN_IF_ERROR(MutationAllowed());
  if (!db_) {
    return UnavailableError("database " + path_ +
                            " is not open: recovery is reopening it");
  }
  if (!degraded_.load(std::memory_order_acquire)) return Status();
  std::string error;
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    ++health_.write_errors;
    error = health_.error;
  }
  stats_.Add(Counter::kStoreErrors, 1);
  return UnavailableError("store degraded after " + error +
                          "; recovering (writes are refused until then, "
                          "lookups go on)");
}

Status RocksCache::WriteFailed(const rocksdb::Status& s, std::string_view what,
                               bool wal_write) {
  Status st = FromRocks(s, path_, what);
  stats_.Add(Counter::kStoreErrors, 1);
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    ++health_.write_errors;
  }
  if (DegradesStore(s)) {
    Damage damage = wal_write ? Damage::kWal : Damage::kResumable;
    if (s.severity() > rocksdb::Status::Severity::kHardError) {
      damage = Damage::kFatal;
    }
    Degrade(st.ToString(), damage);
  }
  return st;
}

void RocksCache::Degrade(const std::string& error, Damage damage) {
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    ++degrade_seq_;
    if (damage == Damage::kFatal) reopen_needed_ = true;
    if (damage == Damage::kWal) wal_suspect_ = true;
    health_.last_error = error;
    if (!health_.degraded) {
      health_.degraded = true;
      health_.error = error;
      health_.recovery_error.clear();
      health_.degraded_since_ms = clock_->NowMillis();
      ++health_.degradations;
      degraded_.store(true, std::memory_order_release);
    }
  }
  health_cv_.notify_all();
}

StoreHealth RocksCache::Health() const {
  std::lock_guard<std::mutex> lock(health_mu_);
  return health_;
}

uint64_t RocksCache::CurrentWalNumber() {
  std::unique_ptr<rocksdb::LogFile> wal;
  if (!db_ || !db_->GetCurrentWalFile(&wal).ok() || !wal) return 0;
  return wal->LogNumber();
}

bool RocksCache::TryRecover(std::string* error) {
  bool reopen, wal_suspect;
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    reopen = reopen_needed_;
    wal_suspect = wal_suspect_;
  }
  if (!reopen) {
    DbLock lock(this);
    if (!db_ || read_only_) {
      reopen = true;
    } else {
      // Drain the writers first: one that passed its health check just
      // before the error must not reach the DB once Resume() has cleared
      // RocksDB's error (into a log that failed, when it is kept). Writers
      // fail fast while the error is set, so this waits briefly.
      std::unique_lock<FenceMutex> fence(write_fence_);
      const uint64_t wal_before = CurrentWalNumber();
      rocksdb::Status s = db_->Resume();
      if (s.ok()) {
        // A log that failed stays the current one when Resume() had no
        // memtable to flush; it must not be written again.
        if (!wal_suspect || wal_before == 0 ||
            CurrentWalNumber() != wal_before) {
          // Writable again, and still refusing other writers: finish a
          // flush the error interrupted (a reopen does it in OpenDb).
          Status st = FinishInterruptedFlushes();
          if (!st.ok()) {
            *error = st.ToString();
            return false;
          }
          return true;
        }
        reopen = true;
      } else if (s.severity() > rocksdb::Status::Severity::kHardError) {
        reopen = true;  // fatal or unrecoverable: only a reopen clears it
      } else {
        *error = FromRocks(s, path_, "resuming").ToString();
        return false;  // e.g. the disk is still full: try again later
      }
    }
  }
  // A read-only instance on a disk with no room left: a read-write open
  // would fail on its new MANIFEST (and leave an empty one and a log behind)
  // after closing the instance lookups are served from.
  if (read_only_) {
    struct statvfs vfs {};
    if (statvfs(path_.c_str(), &vfs) == 0 &&
        static_cast<uint64_t>(vfs.f_bfree) * vfs.f_frsize < (64u << 10)) {
      *error = "the disk of " + path_ + " is still full";
      return false;
    }
  }
  return Reopen(error);
}

bool RocksCache::Reopen(std::string* error) {
  DbLock lock(this, /*exclusive=*/true);
  {
    std::lock_guard<std::mutex> health_lock(health_mu_);
    reopen_needed_ = true;  // until a read-write open succeeds
  }
  // The lock stays this process's throughout: held beside the instance
  // that has it, through its close, RocksDB's read-write open and, if that
  // fails, the read-only one. Letting go in between let another process
  // open the database and own it.
  if (Status held = HoldLock(); !held.ok()) {
    *error = "reopening: " + held.ToString();
    return false;
  }
  CloseDb(/*keep_lock=*/true);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  Status s = OpenDb(/*read_only=*/false);
  if (s.ok()) {
    read_only_ = false;
    std::lock_guard<std::mutex> health_lock(health_mu_);
    reopen_needed_ = false;
    ++health_.reopens;
    return true;
  }
  *error = "reopening: " + s.ToString();
  // Lookups go on from a read-only instance until the next attempt.
  Status ro = OpenDb(/*read_only=*/true);
  read_only_ = ro.ok();
  if (!ro.ok()) *error += "; read-only too: " + ro.ToString();
  return false;
}

bool RocksCache::RecoverNowForTest() { return RecoverOnce(); }

bool RocksCache::RecoverOnce() {
  std::lock_guard<std::mutex> run(recovery_run_mu_);
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    if (!health_.degraded) return true;
    seq = degrade_seq_;
    ++health_.recovery_attempts;
  }
  std::string error;
  const bool ok = TryRecover(&error);
  std::lock_guard<std::mutex> lock(health_mu_);
  if (ok && seq == degrade_seq_) {
    wal_suspect_ = false;
    health_.degraded = false;
    health_.error.clear();
    health_.recovery_error.clear();
    health_.recovered_ms = clock_->NowMillis();
    ++health_.recoveries;
    degraded_.store(false, std::memory_order_release);
    return true;
  }
  if (!ok) health_.recovery_error = error;
  return false;
}

void RocksCache::RecoveryLoop() {
  const auto initial = std::chrono::milliseconds(
      std::max<int64_t>(1, options_.recovery_initial_backoff_ms));
  const auto most = std::chrono::milliseconds(std::max<int64_t>(
      options_.recovery_initial_backoff_ms, options_.recovery_max_backoff_ms));
  auto backoff = initial;
  std::unique_lock<std::mutex> lock(health_mu_);
  while (!recovery_stop_) {
    if (!health_.degraded) {
      backoff = initial;
      health_cv_.wait(lock,
                      [this] { return recovery_stop_ || health_.degraded; });
      continue;
    }
    // Give the cause time to go away (and RocksDB's failing job time to
    // finish) before each attempt.
    health_cv_.wait_for(lock, backoff, [this] { return recovery_stop_; });
    if (recovery_stop_) break;
    lock.unlock();
    const bool healthy = RecoverOnce();
    lock.lock();
    backoff = healthy ? initial : std::min(backoff * 2, most);
  }
}

}  // namespace llmcache
