// Private files: a rocksdb::FileSystem wrapper that makes every file RocksDB
// creates owner-only (0600) and every directory it creates 0700, both masked
// further by the process umask (mode & ~umask: a stricter umask is respected,
// a looser one is not). Cached responses may hold anything a user sent an
// LLM; other local users must not read them.

#ifndef LLMCACHE_ENGINE_ROCKS_PRIVATE_FS_H_
#define LLMCACHE_ENGINE_ROCKS_PRIVATE_FS_H_

#include <rocksdb/file_system.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/status.h"

namespace llmcache {

// The modes used for database files and directories: 0600 and 0700 less the
// process umask (read from /proc/self/status, which does not change it; 022
// when that is unreadable).
mode_t PrivateFileMode();
mode_t PrivateDirectoryMode();

// Wraps `base` (null = rocksdb::FileSystem::Default()): files created through
// NewWritableFile, ReopenWritableFile, ReuseWritableFile, NewRandomRWFile,
// NewLogger (the info log) and LockFile are chmodded to PrivateFileMode(),
// directories created through CreateDir and CreateDirIfMissing to
// PrivateDirectoryMode(). The chmod goes by path, after `base` created the
// file: the database directory is made 0700 before RocksDB creates anything in
// it, so no other user can open a file in between. A chmod that fails (a
// FileSystem that is not the local disk) is ignored.
// LockFile is counted per path: the first call takes the lock of `base`,
// later ones (a store's own hold of its database's LOCK beside the RocksDB
// instance that has it) get handles of that one lock, which is let go when
// the last handle is. So a store can keep its database locked while it
// closes and reopens the instance. Another file system (another store in
// this process, another process) still finds the lock taken.
std::shared_ptr<rocksdb::FileSystem> NewPrivateFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base);

// Creates `path` (and missing parents) with PrivateDirectoryMode(), or
// tightens an existing one to it, together with the regular files directly
// in it that are readable or writable by group or others (databases written
// before files were private). Errors name the path.
Status MakePrivateDirectory(const std::string& path);

// Before a database is created at `path` (it has no CURRENT file): OK if
// `path` does not exist, holds a creation's staging directory (files moved
// up by a creation that stopped half-way, or one under way), or nothing but
// what RocksDB writes before CURRENT and `lost+found` (the root of a file
// system). Otherwise an error naming what was found:
// - DataLoss: table or blob files, or a write-ahead log with records: a
//   database that lost its CURRENT file. Creating a new one there would
//   delete them as obsolete; the message says how to restore CURRENT.
// - FailedPrecondition: any other file or directory, in a directory that is
//   not ours to fill.
Status CheckDirectoryForNewDatabase(const std::string& path);

// The paths of the entries directly in `dir` whose names start with
// `prefix`; none if it cannot be read. Throws std::bad_alloc only.
std::vector<std::string> EntriesWithPrefix(const std::string& dir,
                                           std::string_view prefix);

// Removes `path` and everything under it (symbolic links, not what they
// point to). Best effort, and never throws: std::filesystem's error_code
// overloads are no help here, as libstdc++ 12 ends the process when it runs
// out of memory inside them (its directory iterator).
void RemoveTree(const std::string& path) noexcept;

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_ROCKS_PRIVATE_FS_H_
