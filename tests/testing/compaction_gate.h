// A file system that holds RocksDB's background jobs where a test wants
// them: a compaction (the "rocksdb:low" threads) or a flush of memtables
// (the "rocksdb:high" threads) waits at the creation of its first table file
// while its gate is closed. It also counts the table files deleted, so that
// a test can wait for a compaction whose input files are gone (RocksDB
// deletes them after it has installed the output and announced the end).

#ifndef LLMCACHE_TESTS_TESTING_COMPACTION_GATE_H_
#define LLMCACHE_TESTS_TESTING_COMPACTION_GATE_H_

#include <pthread.h>
#include <rocksdb/file_system.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

namespace llmcache::testing {

class CompactionGate : public rocksdb::FileSystemWrapper {
 public:
  enum class Job { kCompaction, kFlush };

  CompactionGate() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  static const char* kClassName() { return "CompactionGate"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& fname,
                                    const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (fname.ends_with(".sst")) {
      const int job = ThreadJob();
      if (job >= 0) {
        std::unique_lock<std::mutex> lock(mu_);
        if (!open_[job]) {
          ++held_[job];
          changed_.notify_all();
          changed_.wait(lock, [&] { return open_[job]; });
        }
      }
    }
    return target()->NewWritableFile(fname, options, r, dbg);
  }

  rocksdb::IOStatus DeleteFile(const std::string& fname,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->DeleteFile(fname, options, dbg);
    if (s.ok() && fname.ends_with(".sst")) {
      std::lock_guard<std::mutex> lock(mu_);
      ++deleted_tables_;
      changed_.notify_all();
    }
    return s;
  }

  void Close(Job job = Job::kCompaction) {
    std::lock_guard<std::mutex> lock(mu_);
    open_[Index(job)] = false;
  }
  void Open(Job job) {
    std::lock_guard<std::mutex> lock(mu_);
    open_[Index(job)] = true;
    changed_.notify_all();
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_[0] = open_[1] = true;
    changed_.notify_all();
  }
  // Waits until a job of the kind is held at the gate.
  bool WaitForHeld(std::chrono::seconds limit, Job job = Job::kCompaction) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, limit,
                             [&] { return held_[Index(job)] > 0; });
  }
  int deleted_tables() {
    std::lock_guard<std::mutex> lock(mu_);
    return deleted_tables_;
  }
  // Waits until at least `n` table files have been deleted in all.
  bool WaitForDeletedTables(int n, std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, limit, [&] { return deleted_tables_ >= n; });
  }

 private:
  static int Index(Job job) { return job == Job::kCompaction ? 0 : 1; }
  // The gate of the job this thread runs, -1 for none.
  static int ThreadJob() {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    const std::string n(name);
    if (n == "rocksdb:low") return Index(Job::kCompaction);
    if (n == "rocksdb:high") return Index(Job::kFlush);
    return -1;
  }

  std::mutex mu_;
  std::condition_variable changed_;
  bool open_[2] = {true, true};
  int held_[2] = {0, 0};
  int deleted_tables_ = 0;
};

// Opens every gate when it goes out of scope, so that a failing test does
// not leave a job (and what waits for it) waiting forever. Declare it after
// the futures, so that it is destroyed before they wait.
struct OpenOnExit {
  CompactionGate* gate;
  ~OpenOnExit() { gate->Open(); }
};

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_COMPACTION_GATE_H_
