// FaultFileSystem: a rocksdb::FileSystem (over the local disk by default)
// whose writes, syncs and reads fail on command, for tests of what the store
// and everything above it do on a full disk or a failing one.
//
//   auto fs = std::make_shared<llmcache::testing::FaultFileSystem>();
//   CacheOptions options = ...;
//   options.file_system = fs;               // the cache runs on it
//   fs->FailWrites(FaultFileSystem::NoSpace());      // disk full (ENOSPC)
//   fs->FailSyncs(FaultFileSystem::IoError(), kWalFiles);  // EIO on fsync
//   fs->FailSyncs(FaultFileSystem::IoError(), kTableFiles, 2);  // after 2
//   fs->FailReads(FaultFileSystem::IoError(), kTableFiles);
//   fs->SetSpaceLimit(64 << 10);  // full after 64 KiB more (short writes)
//   ...
//   fs->Clear();                            // the disk is fine again
//   EXPECT_GT(fs->injected(), 0u);          // failures it injected
//
// What fails:
//   - FailWrites: Append, PositionedAppend, Flush, Truncate of writable files
//     and Write of read-write files, and the creation of new files
//     (NewWritableFile, ReopenWritableFile, ReuseWritableFile,
//     NewRandomRWFile);
//   - FailSyncs: Sync, Fsync, RangeSync of files, and Fsync of directories
//     (counted as kOtherFiles);
//   - FailReads: Read, PositionedRead, MultiRead of every file kind;
//   - SetSpaceLimit: writes succeed until that many more bytes were
//     appended; the append that crosses the limit writes what fits (as a
//     full disk does) and fails with NoSpace(), as do all later ones.
// Each takes a mask of file kinds (FaultFileKind) it applies to, by file
// name: kWalFiles (*.log), kTableFiles (*.sst), kManifestFiles (MANIFEST-*),
// kOtherFiles (CURRENT, OPTIONS-*, IDENTITY, LOCK, directories, ...).
// Files opened before a call fail as well as new ones. Clear() lifts every
// fault (files keep working; what failed stays failed).
//
// Thread-safe: RocksDB's threads and the test's may call anything at any
// time. Header-only; links with RocksDB (through llmcache::engine).

#ifndef LLMCACHE_TESTS_TESTING_FAULT_FS_H_
#define LLMCACHE_TESTS_TESTING_FAULT_FS_H_

#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmcache::testing {

enum FaultFileKind : unsigned {
  kWalFiles = 1u << 0,
  kTableFiles = 1u << 1,
  kManifestFiles = 1u << 2,
  kOtherFiles = 1u << 3,
  kAllFiles = kWalFiles | kTableFiles | kManifestFiles | kOtherFiles,
};

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFileSystem(std::shared_ptr<rocksdb::FileSystem> base =
                               rocksdb::FileSystem::Default())
      : FileSystemWrapper(std::move(base)) {}

  static const char* kClassName() { return "llmcache.FaultFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // The errors the local file system reports for ENOSPC (retryable, as
  // RocksDB's posix file system marks it) and EIO.
  static rocksdb::IOStatus NoSpace() {
    rocksdb::IOStatus s =
        rocksdb::IOStatus::NoSpace("injected", "No space left on device");
    s.SetRetryable(true);
    return s;
  }
  static rocksdb::IOStatus IoError() {
    return rocksdb::IOStatus::IOError("injected", "Input/output error");
  }

  void FailWrites(rocksdb::IOStatus s, unsigned kinds = kAllFiles) {
    Set(&write_, std::move(s), kinds);
  }
  // `after`: that many syncs of those kinds succeed first.
  void FailSyncs(rocksdb::IOStatus s, unsigned kinds = kAllFiles,
                 uint64_t after = 0) {
    Set(&sync_, std::move(s), kinds, after);
  }
  void FailReads(rocksdb::IOStatus s, unsigned kinds = kAllFiles) {
    Set(&read_, std::move(s), kinds);
  }
  // Appends may add `bytes` more bytes in total, then fail with NoSpace().
  void SetSpaceLimit(int64_t bytes, unsigned kinds = kAllFiles) {
    std::lock_guard<std::mutex> lock(mu_);
    space_left_ = bytes;
    space_kinds_.store(kinds, std::memory_order_release);
  }
  // Called with the path before each NewSequentialFile (CURRENT and the
  // MANIFEST as an open reads them); null: none.
  void OnSequentialOpen(std::function<void(const std::string&)> hook) {
    std::lock_guard<std::mutex> lock(mu_);
    on_sequential_open_ = std::move(hook);
  }
  // Lifts every fault.
  void Clear() {
    for (Fault* f : {&write_, &sync_, &read_}) {
      f->kinds.store(0, std::memory_order_release);
    }
    space_kinds_.store(0, std::memory_order_release);
  }

  // Failures injected so far, in total and by kind of operation.
  uint64_t injected() const {
    return injected_writes() + injected_syncs() + injected_reads();
  }
  uint64_t injected_writes() const { return write_.count.load(); }
  uint64_t injected_syncs() const { return sync_.count.load(); }
  uint64_t injected_reads() const { return read_.count.load(); }

  static unsigned KindOf(std::string_view path) {
    const size_t slash = path.rfind('/');
    const std::string_view name =
        slash == std::string_view::npos ? path : path.substr(slash + 1);
    if (name.ends_with(".log")) return kWalFiles;
    if (name.ends_with(".sst")) return kTableFiles;
    if (name.starts_with("MANIFEST-")) return kManifestFiles;
    return kOtherFiles;
  }

  // ---- rocksdb::FileSystem ----
  rocksdb::IOStatus NewWritableFile(const std::string& f,
                                    const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (rocksdb::IOStatus s = Check(&write_, KindOf(f)); !s.ok()) return s;
    return WrapWritable(f, target()->NewWritableFile(f, o, r, dbg), r);
  }
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& f, const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override {
    if (rocksdb::IOStatus s = Check(&write_, KindOf(f)); !s.ok()) return s;
    return WrapWritable(f, target()->ReopenWritableFile(f, o, r, dbg), r);
  }
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& f, const std::string& old,
      const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override {
    if (rocksdb::IOStatus s = Check(&write_, KindOf(f)); !s.ok()) return s;
    return WrapWritable(f, target()->ReuseWritableFile(f, old, o, r, dbg), r);
  }
  rocksdb::IOStatus NewRandomRWFile(const std::string& f,
                                    const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (rocksdb::IOStatus s = Check(&write_, KindOf(f)); !s.ok()) return s;
    rocksdb::IOStatus s = target()->NewRandomRWFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<RWFile>(this, KindOf(f), std::move(*r));
    return s;
  }
  rocksdb::IOStatus NewSequentialFile(
      const std::string& f, const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSSequentialFile>* r,
      rocksdb::IODebugContext* dbg) override {
    {
      std::function<void(const std::string&)> hook;
      {
        std::lock_guard<std::mutex> lock(mu_);
        hook = on_sequential_open_;
      }
      if (hook) hook(f);
    }
    rocksdb::IOStatus s = target()->NewSequentialFile(f, o, r, dbg);
    if (s.ok()) {
      *r = std::make_unique<SequentialFile>(this, KindOf(f), std::move(*r));
    }
    return s;
  }
  rocksdb::IOStatus NewRandomAccessFile(
      const std::string& f, const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
      rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewRandomAccessFile(f, o, r, dbg);
    if (s.ok()) {
      *r = std::make_unique<RandomAccessFile>(this, KindOf(f), std::move(*r));
    }
    return s;
  }
  rocksdb::IOStatus NewDirectory(const std::string& name,
                                 const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewDirectory(name, o, r, dbg);
    if (s.ok()) *r = std::make_unique<Directory>(this, std::move(*r));
    return s;
  }

 private:
  struct Fault {
    std::atomic<unsigned> kinds{0};  // 0: no fault
    rocksdb::IOStatus status;        // guarded by mu_
    std::atomic<uint64_t> count{0};
    std::atomic<int64_t> pass{0};  // operations that still succeed
  };

  void Set(Fault* f, rocksdb::IOStatus s, unsigned kinds, uint64_t after = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    f->status = std::move(s);
    f->pass.store(static_cast<int64_t>(after), std::memory_order_relaxed);
    f->kinds.store(kinds, std::memory_order_release);
  }
  rocksdb::IOStatus Check(Fault* f, unsigned kind) {
    if ((f->kinds.load(std::memory_order_acquire) & kind) == 0) {
      return rocksdb::IOStatus::OK();
    }
    if (f->pass.load(std::memory_order_relaxed) > 0 &&
        f->pass.fetch_sub(1, std::memory_order_relaxed) > 0) {
      return rocksdb::IOStatus::OK();
    }
    f->count.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    return f->status;
  }
  // How many of `n` bytes an append may write under the space limit (n if
  // there is none); counts the failure when it is less than n.
  size_t Room(unsigned kind, size_t n) {
    if ((space_kinds_.load(std::memory_order_acquire) & kind) == 0) return n;
    std::lock_guard<std::mutex> lock(mu_);
    if (space_kinds_.load(std::memory_order_relaxed) == 0) return n;
    const size_t room = space_left_ <= 0
                            ? 0
                            : static_cast<size_t>(std::min<int64_t>(
                                  space_left_, static_cast<int64_t>(n)));
    space_left_ -= static_cast<int64_t>(room);
    if (room < n) write_.count.fetch_add(1);
    return room;
  }

  rocksdb::IOStatus WrapWritable(const std::string& f, rocksdb::IOStatus s,
                                 std::unique_ptr<rocksdb::FSWritableFile>* r) {
    if (s.ok()) {
      *r = std::make_unique<WritableFile>(this, KindOf(f), std::move(*r));
    }
    return s;
  }

  class WritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    WritableFile(FaultFileSystem* fs, unsigned kind,
                 std::unique_ptr<rocksdb::FSWritableFile> t)
        : FSWritableFileOwnerWrapper(std::move(t)), fs_(fs), kind_(kind) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->write_, kind_); !s.ok()) {
        return s;
      }
      const size_t room = fs_->Room(kind_, data.size());
      if (room < data.size()) {
        if (room > 0) {
          (void)target()->Append(rocksdb::Slice(data.data(), room), o, dbg);
        }
        return NoSpace();
      }
      return target()->Append(data, o, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo&,
                             rocksdb::IODebugContext* dbg) override {
      return Append(data, o, dbg);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                       uint64_t offset,
                                       const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->write_, kind_); !s.ok()) {
        return s;
      }
      const size_t room = fs_->Room(kind_, data.size());
      if (room < data.size()) {
        if (room > 0) {
          (void)target()->PositionedAppend(rocksdb::Slice(data.data(), room),
                                           offset, o, dbg);
        }
        return NoSpace();
      }
      return target()->PositionedAppend(data, offset, o, dbg);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                       uint64_t offset,
                                       const rocksdb::IOOptions& o,
                                       const rocksdb::DataVerificationInfo&,
                                       rocksdb::IODebugContext* dbg) override {
      return PositionedAppend(data, offset, o, dbg);
    }
    rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->write_, kind_); !s.ok()) {
        return s;
      }
      return target()->Truncate(size, o, dbg);
    }
    rocksdb::IOStatus Flush(const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->write_, kind_); !s.ok()) {
        return s;
      }
      return target()->Flush(o, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->sync_, kind_); !s.ok()) {
        return s;
      }
      return target()->Sync(o, dbg);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->sync_, kind_); !s.ok()) {
        return s;
      }
      return target()->Fsync(o, dbg);
    }
    rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes,
                                const rocksdb::IOOptions& o,
                                rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->sync_, kind_); !s.ok()) {
        return s;
      }
      return target()->RangeSync(offset, nbytes, o, dbg);
    }

   private:
    FaultFileSystem* const fs_;
    const unsigned kind_;
  };

  class RWFile final : public rocksdb::FSRandomRWFileOwnerWrapper {
   public:
    RWFile(FaultFileSystem* fs, unsigned kind,
           std::unique_ptr<rocksdb::FSRandomRWFile> t)
        : FSRandomRWFileOwnerWrapper(std::move(t)), fs_(fs), kind_(kind) {}
    rocksdb::IOStatus Write(uint64_t offset, const rocksdb::Slice& data,
                            const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->write_, kind_); !s.ok()) {
        return s;
      }
      return target()->Write(offset, data, o, dbg);
    }
    rocksdb::IOStatus Read(uint64_t offset, size_t n,
                           const rocksdb::IOOptions& o, rocksdb::Slice* result,
                           char* scratch,
                           rocksdb::IODebugContext* dbg) const override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->read_, kind_); !s.ok()) {
        return s;
      }
      return target()->Read(offset, n, o, result, scratch, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->sync_, kind_); !s.ok()) {
        return s;
      }
      return target()->Sync(o, dbg);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->sync_, kind_); !s.ok()) {
        return s;
      }
      return target()->Fsync(o, dbg);
    }

   private:
    FaultFileSystem* const fs_;
    const unsigned kind_;
  };

  class SequentialFile final : public rocksdb::FSSequentialFileOwnerWrapper {
   public:
    SequentialFile(FaultFileSystem* fs, unsigned kind,
                   std::unique_ptr<rocksdb::FSSequentialFile> t)
        : FSSequentialFileOwnerWrapper(std::move(t)), fs_(fs), kind_(kind) {}
    rocksdb::IOStatus Read(size_t n, const rocksdb::IOOptions& o,
                           rocksdb::Slice* result, char* scratch,
                           rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->read_, kind_); !s.ok()) {
        return s;
      }
      return target()->Read(n, o, result, scratch, dbg);
    }
    rocksdb::IOStatus PositionedRead(uint64_t offset, size_t n,
                                     const rocksdb::IOOptions& o,
                                     rocksdb::Slice* result, char* scratch,
                                     rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->read_, kind_); !s.ok()) {
        return s;
      }
      return target()->PositionedRead(offset, n, o, result, scratch, dbg);
    }

   private:
    FaultFileSystem* const fs_;
    const unsigned kind_;
  };

  class RandomAccessFile final
      : public rocksdb::FSRandomAccessFileOwnerWrapper {
   public:
    RandomAccessFile(FaultFileSystem* fs, unsigned kind,
                     std::unique_ptr<rocksdb::FSRandomAccessFile> t)
        : FSRandomAccessFileOwnerWrapper(std::move(t)), fs_(fs), kind_(kind) {}
    rocksdb::IOStatus Read(uint64_t offset, size_t n,
                           const rocksdb::IOOptions& o, rocksdb::Slice* result,
                           char* scratch,
                           rocksdb::IODebugContext* dbg) const override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->read_, kind_); !s.ok()) {
        return s;
      }
      return target()->Read(offset, n, o, result, scratch, dbg);
    }
    rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs,
                                const rocksdb::IOOptions& o,
                                rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->read_, kind_); !s.ok()) {
        for (size_t i = 0; i < num_reqs; ++i) reqs[i].status = s;
        return s;
      }
      return target()->MultiRead(reqs, num_reqs, o, dbg);
    }
    rocksdb::IOStatus ReadAsync(
        rocksdb::FSReadRequest& req, const rocksdb::IOOptions& o,
        std::function<void(const rocksdb::FSReadRequest&, void*)> cb,
        void* cb_arg, void** io_handle, rocksdb::IOHandleDeleter* del_fn,
        rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->read_, kind_); !s.ok()) {
        return s;
      }
      return target()->ReadAsync(req, o, std::move(cb), cb_arg, io_handle,
                                 del_fn, dbg);
    }

   private:
    FaultFileSystem* const fs_;
    const unsigned kind_;
  };

  class Directory final : public rocksdb::FSDirectoryWrapper {
   public:
    Directory(FaultFileSystem* fs, std::unique_ptr<rocksdb::FSDirectory> t)
        : FSDirectoryWrapper(std::move(t)), fs_(fs) {}
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o,
                            rocksdb::IODebugContext* dbg) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->sync_, kOtherFiles); !s.ok()) {
        return s;
      }
      return FSDirectoryWrapper::Fsync(o, dbg);
    }
    rocksdb::IOStatus FsyncWithDirOptions(
        const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg,
        const rocksdb::DirFsyncOptions& opts) override {
      if (rocksdb::IOStatus s = fs_->Check(&fs_->sync_, kOtherFiles); !s.ok()) {
        return s;
      }
      return FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, opts);
    }

   private:
    FaultFileSystem* const fs_;
  };

  std::function<void(const std::string&)> on_sequential_open_;  // mu_
  std::mutex mu_;
  Fault write_, sync_, read_;
  int64_t space_left_ = 0;  // guarded by mu_
  std::atomic<unsigned> space_kinds_{0};
};

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_FAULT_FS_H_
