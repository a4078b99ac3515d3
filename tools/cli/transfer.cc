// export, import and verify: whole-database walks.

#include <unistd.h>  // and with it __GLIBC__

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <system_error>
#include <thread>
#include <vector>

#include "cli/json_print.h"
#include "cli/progress.h"
#include "cli/verbs.h"
#include "llmcache/cpus.h"
#include "llmcache/key.h"
#include "llmcache/net/import_line.h"
#include "llmcache/net/json_util.h"

namespace llmcache::cli {
namespace json = boost::json;
using net::ImportLine;
using net::ParseImportLine;

namespace {

uint64_t TotalEntries(Cache& cache, const std::optional<std::string>& model) {
  Result<CacheStats> st = cache.GetStats();
  if (!st.ok()) return 0;
  if (!model) return st->entries;
  const std::string_view base = BaseModel(*model);
  for (const ModelStats& m : st->models) {
    if (m.model == base) return m.entries;
  }
  return 0;
}

// glibc's malloc, tuned for a bulk load: blocks up to 32 MiB come from its
// heaps instead of fresh mappings, and freed memory stays for reuse until
// the process exits. By default each table file's write buffer (RocksDB
// grows it from 64 KiB to 1 MiB per file), each batch's item and time-record
// arrays and the BlockPool's 2 MiB blocks were new mappings, faulted in page
// by page and unmapped again: 11.5-13.2k page faults per import of 200k
// entries instead of 14.5-16.9k on the README's VM. There, alternated ten
// times with the build before: CPU 0.875 s against 0.940 s, 329.9k against
// 311.9k entries/s (medians); peak resident memory 200-207 MiB against
// 193-199 MiB. Process-wide, set when the first import starts: the CLI runs
// one command per process.
void TuneMallocForBulkLoad() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    // 32 MiB: the largest threshold glibc accepts on 64-bit systems.
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 512 << 20);
  });
#endif
}

// One input line of an import, parsed.
struct ParsedLine {
  enum Kind : uint8_t { kBlank, kOk, kMalformed };
  Kind kind = kBlank;
  ImportLine line;
  std::string error;  // kMalformed
};

// Consecutive input lines, parsed together on a worker thread. Chunks are
// reused: their buffer and parsed lines keep their memory.
struct ParseChunk {
  std::unique_ptr<char[]> text;         // whole lines, read in one go
  size_t capacity = 0;                  // of text
  size_t size = 0;                      // bytes of text in use
  std::vector<std::string_view> lines;  // into text, without line ends
  std::vector<ParsedLine> parsed;       // one per line
};
// Bytes read per chunk (a chunk holds at least one whole line, however long).
constexpr size_t kParseChunkBytes = size_t{1} << 20;

// Fills `chunk` with the next whole lines of `in`: `carry` holds what was
// read past the last line end (the start of the next chunk's first line). A
// last line without a line end is a line. False when nothing is left.
bool ReadChunk(std::istream& in, std::string& carry, ParseChunk* chunk) {
  chunk->lines.clear();
  chunk->size = 0;
  auto reserve = [chunk](size_t n) {
    if (n <= chunk->capacity) return;
    const size_t capacity = std::max(n, 2 * chunk->capacity);
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    if (chunk->size > 0)
      std::memcpy(bigger.get(), chunk->text.get(), chunk->size);
    chunk->text = std::move(bigger);
    chunk->capacity = capacity;
  };
  reserve(carry.size() + kParseChunkBytes);
  if (!carry.empty())
    std::memcpy(chunk->text.get(), carry.data(), carry.size());
  chunk->size = carry.size();
  carry.clear();
  size_t end = 0;  // one past the last line end in text (0: none yet)
  size_t scanned = 0;
  bool at_eof = false;
  while (true) {
    char* text = chunk->text.get();
    if (const void* nl = memrchr(text + scanned, '\n', chunk->size - scanned)) {
      end = static_cast<size_t>(static_cast<const char*>(nl) - text) + 1;
    }
    scanned = chunk->size;
    if (at_eof || (end > 0 && chunk->size >= kParseChunkBytes)) break;
    reserve(chunk->size + kParseChunkBytes);
    in.read(chunk->text.get() + chunk->size,
            static_cast<std::streamsize>(kParseChunkBytes));
    chunk->size += static_cast<size_t>(in.gcount());
    at_eof = in.gcount() == 0;
  }
  if (!at_eof) {  // at the end every byte belongs to a line
    carry.assign(chunk->text.get() + end, chunk->size - end);
    chunk->size = end;
  }
  std::string_view rest(chunk->text.get(), chunk->size);
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    chunk->lines.push_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return !chunk->lines.empty();
}

void ParseLines(ParseChunk& chunk, int64_t now_ms) {
  chunk.parsed.resize(chunk.lines.size());
  for (size_t i = 0; i < chunk.lines.size(); ++i) {
    ParsedLine& p = chunk.parsed[i];
    p.kind = ParsedLine::kBlank;
    p.error.clear();
    std::string_view line = chunk.lines[i];
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    try {
      p.kind = ParseImportLine(line, now_ms, &p.line, &p.error)
                   ? ParsedLine::kOk
                   : ParsedLine::kMalformed;
    } catch (const std::exception& e) {  // bad_alloc: not on this thread
      p.kind = ParsedLine::kMalformed;
      p.error = e.what();
    }
  }
}

// Parses chunks on threads of its own, kept for the whole import, and hands
// each chunk back through a future. A thread per chunk (std::async) cost a
// thread start and exit per 1 MiB of input, and each new thread faulted in
// its stack again: ~280 of each for 270 MiB. Alternated ten times with it on
// the README's VM: CPU 0.840 s against 0.870 s (medians), the same rate.
class ChunkParsers {
 public:
  using Task = std::packaged_task<std::unique_ptr<ParseChunk>()>;

  ChunkParsers(size_t threads, int64_t now_ms) : now_ms_(now_ms) {
    try {
      workers_.reserve(threads);
      for (size_t i = 0; i < threads; ++i) {
        workers_.emplace_back([this] { Run(); });
      }
    } catch (const std::exception&) {  // system_error, bad_alloc
      // Fewer threads (or none: Submit parses on the caller's thread).
    }
  }
  ~ChunkParsers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wanted_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  ChunkParsers(const ChunkParsers&) = delete;
  ChunkParsers& operator=(const ChunkParsers&) = delete;

  std::future<std::unique_ptr<ParseChunk>> Submit(
      std::unique_ptr<ParseChunk> chunk) {
    Task task([c = std::move(chunk), now = now_ms_]() mutable {
      ParseLines(*c, now);
      return std::move(c);
    });
    std::future<std::unique_ptr<ParseChunk>> parsed = task.get_future();
    if (workers_.empty()) {
      task();
      return parsed;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    wanted_.notify_one();
    return parsed;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      wanted_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, nothing left
      Task task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();  // an exception goes to the future
      lock.lock();
    }
  }

  const int64_t now_ms_;
  std::mutex mu_;
  std::condition_variable wanted_;
  std::deque<Task> tasks_;
  bool stop_ = false;
  std::vector<std::thread> workers_;  // last: they use the members above
};

}  // namespace

int Export(const std::string& db, const std::optional<std::string>& model,
           const std::string& output, const Io& io) {
  std::unique_ptr<Cache> cache = OpenForReading(db, io);
  if (!cache) return kExitFailure;
  if (model) {
    if (std::optional<std::string> e = UnknownModel(*cache, *model)) {
      io.err << "llmcache export: " << *e << "\n";
      return kExitFailure;
    }
  }
  return ExportWith(
      [&cache](const std::optional<std::string>& m,
               const std::function<bool(const EntryView&)>& fn,
               const std::function<void(std::string_view, const Status&)>&
                   on_corrupt) {
        return cache->ForEachEntry(m, fn, on_corrupt);
      },
      TotalEntries(*cache, model), model, output, io);
}

int ExportWith(const EntryWalker& walk, uint64_t total,
               const std::optional<std::string>& model,
               const std::string& output, const Io& io) {
  std::ofstream file;
  std::ostream* out = &io.out;
  if (output != "-") {
    file.open(output, std::ios::binary | std::ios::trunc);
    if (!file) {
      io.err << "llmcache export: cannot write " << output << ": "
             << std::strerror(errno) << "\n";
      return kExitFailure;
    }
    out = &file;
  }
  Progress progress(io.err, io.stderr_is_tty, "export", total);
  const auto start = std::chrono::steady_clock::now();
  uint64_t written = 0, corrupt = 0;
  bool interrupted = false;
  // Whole lines, written 1 MiB at a time: a stream writes a line of 1 KiB
  // or more with a system call of its own (libstdc++), ~1 per entry.
  constexpr size_t kWriteBytes = 1u << 20;
  std::string pending;
  pending.reserve(kWriteBytes + (64u << 10));
  auto write_pending = [&] {
    out->write(pending.data(), static_cast<std::streamsize>(pending.size()));
    pending.clear();
  };
  Status s = walk(
      model,
      [&](const EntryView& v) {
        if (InterruptSignal() != 0) {
          interrupted = true;
          return false;
        }
        const EntryMeta& m = v.entry.meta;
        json::object line{
            {"key", DigestToHex(v.digest)},
            {"model", m.model},
            {"resolved_model", m.resolved_model},
            {"namespace", m.ns},
            {"created", m.created_ms},
            {"expires", m.expires_ms},
            {"flags", m.flags & ~kEntryFlagImported},
            {"usage",
             json::object{{"prompt_tokens", m.usage.prompt_tokens},
                          {"completion_tokens", m.usage.completion_tokens},
                          {"cached_tokens", m.usage.cached_tokens},
                          {"cache_write_tokens", m.usage.cache_write_tokens},
                          {"cost_nanousd", m.usage.cost_nanousd}}},
            {"response", v.entry.body}};
        pending += json::serialize(line);
        pending += '\n';
        if (pending.size() >= kWriteBytes) write_pending();
        ++written;
        progress.Update(written + corrupt);
        return static_cast<bool>(*out);
      },
      [&](std::string_view key, const Status& st) {
        ++corrupt;
        io.err << "llmcache export: skipping corrupt entry " << key << ": "
               << st.message() << "\n";
      });
  write_pending();
  progress.Finish();
  out->flush();
  if (!*out) {
    io.err << "llmcache export: write failed after " << written << " entries\n";
    return kExitFailure;
  }
  if (!s.ok()) {
    io.err << "llmcache export: " << s << "\n";
    return kExitFailure;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  io.err << "exported " << written << " entries";
  if (corrupt > 0) io.err << ", skipped " << corrupt << " corrupt";
  io.err << " in " << RateText(written + corrupt, seconds) << "\n";
  if (interrupted) {
    io.err << "llmcache export: interrupted (" << InterruptName()
           << "): " << (output == "-" ? std::string("the output") : output)
           << " holds those entries as whole lines, not the whole export\n";
    return InterruptExitCode();
  }
  return corrupt > 0 ? kExitFailure : kExitOk;
}

int Import(const std::string& db, const std::string& input, bool as_json,
           bool per_entry, bool compact, uint64_t batch_mib, const Io& io) {
  const auto started = std::chrono::steady_clock::now();
  // With --json a failed import still writes one object (as `import --proxy`
  // does): the entries stored and the error (said on stderr as well).
  auto failed = [&](const std::string& error, uint64_t stored, int code) {
    if (as_json) {
      PrintJsonLine(json::object{{"imported", stored}, {"error", error}},
                    io.out);
    }
    return code;
  };
  std::ifstream file;
  std::istream* in = OpenExportInput(input, io, &file);
  if (in == nullptr) {
    io.err << "llmcache import: nothing is stored\n";
    return failed("cannot read the input (see stderr)", 0, kExitFailure);
  }
  uint64_t total_lines = 0;  // for the bar: a file is counted first
  if (in == &file && io.stderr_is_tty) {
    total_lines = static_cast<uint64_t>(
        std::count(std::istreambuf_iterator<char>(file),
                   std::istreambuf_iterator<char>(), '\n'));
    file.clear();
    file.seekg(0);
  }
  int rc = kExitOk;
  std::unique_ptr<Cache> cache =
      OpenForWriting(db, /*create=*/true, io, &rc, "import");
  if (!cache) {
    io.err << "llmcache import: nothing is stored\n";
    return failed("cannot open the database (see stderr)", 0, rc);
  }
  // Entries are written in sorted batches of table files, not one insert
  // each: the same stored state, many times faster.
  std::unique_ptr<BulkLoader> loader;
  if (!per_entry) {
    TuneMallocForBulkLoad();
    BulkLoadOptions lo;
    lo.max_buffer_bytes = static_cast<size_t>(batch_mib) << 20;
    Result<std::unique_ptr<BulkLoader>> made = cache->NewBulkLoader(lo);
    if (!made.ok()) {
      io.err << "llmcache import: " << made.status() << "\n";
      return failed(made.status().ToString(), 0, kExitFailure);
    }
    loader = std::move(made).value();
  }
  // Without the bulk loader, replaced entries are what the store did not
  // count as new. This command is the only writer while it runs, but the
  // store's compactions may drop expired entries meanwhile: then the figure
  // is too high (or 0 if more were dropped than added).
  const uint64_t entries_before = per_entry ? TotalEntries(*cache, {}) : 0;
  // And unchanged ones what it did not write (`inserts` counts writes).
  auto inserts = [&cache]() -> std::optional<uint64_t> {
    Result<CacheStats> st = cache->GetStats();
    if (!st.ok()) return std::nullopt;
    return st->inserts;
  };
  const std::optional<uint64_t> inserts_before =
      per_entry ? inserts() : std::nullopt;
  Progress progress(io.err, io.stderr_is_tty, "import", total_lines);
  uint64_t line_no = 0, imported = 0, malformed = 0, expired = 0;
  const int64_t now = NowMs();
  Status store_error;
  bool interrupted = false;  // stopped before the end of the input
  // Takes the parsed lines of a chunk in order; false to stop.
  auto store = [&](ParseChunk& chunk) {
    for (ParsedLine& p : chunk.parsed) {
      if (InterruptSignal() != 0) {
        interrupted = true;
        return false;
      }
      ++line_no;
      progress.Update(line_no);
      if (p.kind == ParsedLine::kBlank) continue;
      if (p.kind == ParsedLine::kMalformed) {
        ++malformed;
        progress.Finish();
        io.err << "llmcache import: line " << line_no << ": " << p.error
               << " (skipped)\n";
        continue;
      }
      ImportLine& parsed = p.line;
      if (parsed.options.expires_ms != 0 && parsed.options.expires_ms <= now) {
        ++expired;
        continue;
      }
      parsed.options.ns = parsed.ns;
      parsed.options.resolved_model = parsed.resolved_model;
      Status s = loader
                     ? loader->Add(parsed.key, parsed.body, parsed.options)
                     : cache->Insert(parsed.key, parsed.body, parsed.options);
      if (!s.ok()) {
        store_error = s;
        return false;
      }
      ++imported;
    }
    return true;
  };
  // Lines are parsed (the bulk of the work) in chunks on other threads while
  // this one reads and stores, in input order.
  const size_t parsers = std::clamp<size_t>(UsableCpus(), 1, 8);
  std::deque<std::future<std::unique_ptr<ParseChunk>>> pending;
  std::vector<std::unique_ptr<ParseChunk>> spare;  // stored, to reuse
  // Declared after `pending`, so destroyed before it: its destructor parses
  // what is still queued and joins the threads.
  ChunkParsers parse(parsers, now);
  std::string carry;
  bool eof = false;
  bool first_chunk = true;
  while (true) {
    while (!eof && !interrupted && pending.size() <= parsers) {
      if (InterruptSignal() != 0) {
        interrupted = true;  // the lines before the next one are stored
        break;
      }
      std::unique_ptr<ParseChunk> chunk;
      if (spare.empty()) {
        chunk = std::make_unique<ParseChunk>();
      } else {
        chunk = std::move(spare.back());
        spare.pop_back();
      }
      if (!ReadChunk(*in, carry, chunk.get())) {
        eof = true;
        break;
      }
      // A byte-order mark (editors on Windows write one) is not part of
      // the first line.
      if (first_chunk && chunk->lines[0].starts_with("\xEF\xBB\xBF")) {
        chunk->lines[0].remove_prefix(3);
      }
      first_chunk = false;
      pending.push_back(parse.Submit(std::move(chunk)));
    }
    if (pending.empty()) break;
    std::unique_ptr<ParseChunk> chunk = pending.front().get();
    pending.pop_front();
    if (!store(*chunk)) break;
    spare.push_back(std::move(chunk));
  }
  // After a store error: the chunks still being parsed.
  for (std::future<std::unique_ptr<ParseChunk>>& f : pending) f.wait();
  pending.clear();
  BulkLoadStats loaded;
  if (store_error.ok() && loader) {
    // Every line is read; the last batch is still to be written and
    // ingested (up to 128 MiB: two batches): say so instead of a bar at its
    // end.
    progress.Finish();
    if (io.stderr_is_tty) {
      io.err << "import: storing the "
             << (interrupted ? "lines read so far" : "last batch") << " ("
             << line_no << " lines read)..." << std::flush;
    }
    Result<BulkLoadStats> finished = loader->Finish();
    if (io.stderr_is_tty) io.err << "\r\x1b[2K" << std::flush;
    if (finished.ok()) {
      loaded = *finished;
    } else {
      store_error = finished.status();
    }
  } else if (store_error.ok()) {
    const uint64_t after = TotalEntries(*cache, {});
    const uint64_t added = after > entries_before ? after - entries_before : 0;
    loaded.replaced = imported > added ? imported - added : 0;
    // Unknown when the statistics cannot be read: then none is counted.
    const std::optional<uint64_t> now_inserts = inserts();
    if (inserts_before && now_inserts) {
      const uint64_t written =
          *now_inserts > *inserts_before ? *now_inserts - *inserts_before : 0;
      loaded.unchanged = imported > written ? imported - written : 0;
    }
  }
  progress.Finish();
  if (!store_error.ok()) {
    // Batches are stored whole or not at all: say how many entries are,
    // once Finish has waited for the batch being written. After an entry
    // the loader refused (kInvalidArgument) it also writes the lines before
    // it; after a failed load it writes nothing more; after a failed Finish
    // a second call only says so.
    // The line read last, not the one that failed: a batch is stored when
    // the line after it is read.
    if (loader) (void)loader->Finish();
    const uint64_t stored = loader ? loader->stored() : imported;
    io.err << "llmcache import: storing failed (" << line_no
           << " lines read): " << store_error << " (the first " << stored
           << " entries are stored; once the cause is mended, the same "
              "import again stores the rest)\n";
    return failed(store_error.ToString(), stored, kExitFailure);
  }
  if (!interrupted && in->bad()) {
    const std::string error =
        "read error after line " + std::to_string(line_no);
    io.err << "llmcache import: " << error << "\n";
    return failed(error, loader ? loader->stored() : imported, kExitFailure);
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  // Loaded table files are not compressed: a compaction rewrites them with
  // the store's own compression.
  double compact_seconds = 0;
  // Stopped during the last batch: every line is stored, not compacted.
  const bool compact_skipped = compact && InterruptSignal() != 0;
  compact = compact && !compact_skipped;
  bool compact_stopped = false;  // by a signal while compacting
  if (compact) {
    const auto compact_started = std::chrono::steady_clock::now();
    CompactOptions co;
    co.cancel = InterruptFlag();
    Status s = cache->Compact(co);
    compact_stopped = s.code() == StatusCode::kCancelled;
    if (!s.ok() && !compact_stopped) {
      io.err << "llmcache import: imported " << imported
             << " entries, then compaction failed: " << s << "\n";
      return failed("compaction failed: " + s.ToString(), imported,
                    kExitFailure);
    }
    compact_seconds = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - compact_started)
                          .count();
  }
  // Closed before the report, and counted in its time: closing writes the
  // statistics, and many small loaded batches (--batch-mib 1) leave more
  // level-0 files than RocksDB takes writes with, so that write waits for
  // compactions (6.5 s after 200k entries in 1 MiB batches).
  const bool bulk = loader != nullptr;
  {
    const auto close_started = std::chrono::steady_clock::now();
    if (io.stderr_is_tty) {
      io.err << "import: closing the database..." << std::flush;
    }
    loader.reset();
    cache.reset();
    if (io.stderr_is_tty) io.err << "\r\x1b[2K" << std::flush;
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             close_started)
                   .count();
  }
  // Entries as stored already are not written again: not "replaced".
  const uint64_t changed = loaded.replaced > loaded.unchanged
                               ? loaded.replaced - loaded.unchanged
                               : 0;
  if (as_json) {
    json::object o{{"imported", imported},
                   {"malformed", malformed},
                   {"expired_skipped", expired},
                   {"lines", line_no},
                   {"replaced", changed},
                   {"unchanged", loaded.unchanged},
                   {"seconds", seconds},
                   {"entries_per_second", EntriesPerSecond(imported, seconds)}};
    if (compact) o["compact_seconds"] = compact_seconds;
    if (compact_stopped) o["compact_stopped"] = true;
    // Encoded entry bytes in table files that no compaction has compressed
    // yet (0 with --compact or --per-entry).
    o["uncompressed_bytes"] = bulk && !compact ? loaded.bytes : 0;
    if (interrupted) o["interrupted"] = InterruptName();
    PrintJsonLine(o, io.out);
  } else {
    io.out << "imported " << imported << " entries";
    if (changed > 0 || loaded.unchanged > 0) {
      io.out << " (";
      if (changed > 0) io.out << changed << " replaced";
      if (changed > 0 && loaded.unchanged > 0) io.out << ", ";
      if (loaded.unchanged > 0) io.out << loaded.unchanged << " unchanged";
      io.out << ")";
    }
    io.out << " in " << RateText(imported, seconds);
    if (expired > 0) io.out << ", skipped " << expired << " already expired";
    if (malformed > 0)
      io.out << ", skipped " << malformed << " malformed lines";
    if (compact) {
      char took[32];
      std::snprintf(took, sizeof(took), "%.2f", compact_seconds);
      io.out << (compact_stopped ? "; compaction stopped after "
                                 : "; compacted in ")
             << took << " s";
    }
    io.out << "\n";
    if (bulk && !compact && loaded.bytes > 0) {
      io.err << "note: the loaded files are not compressed yet ("
             << FormatBytes(loaded.bytes)
             << "); `llmcache compact` compresses them now (to about 0.4x), "
                "else the periodic compaction does (every 6 h by default)\n";
    }
  }
  if ((compact_skipped || compact_stopped) && !interrupted) {
    io.err << "llmcache import: interrupted (" << InterruptName() << ") "
           << (compact_stopped ? "while compacting" : "before compacting")
           << ": every line is stored; `llmcache compact` compresses them\n";
    return InterruptExitCode();
  }
  if (interrupted) {
    io.err << "llmcache import: interrupted (" << InterruptName() << ") ";
    if (line_no == 0) {
      io.err << "before its first line: nothing stored\n";
    } else {
      io.err << "after line " << line_no
             << ": the entries of the lines up to it are stored; the same "
                "import again stores the rest (entries stored already stay "
                "as they are)\n";
    }
    return InterruptExitCode();
  }
  return malformed > 0 ? kExitFailure : kExitOk;
}

int Verify(const std::string& db, const std::optional<std::string>& model,
           bool as_json, const Io& io) {
  std::unique_ptr<Cache> cache =
      OpenForReading(db, io, /*accept_damaged_view=*/true);
  if (!cache) return kExitFailure;
  if (model) {
    if (std::optional<std::string> e = UnknownModel(*cache, *model)) {
      io.err << "llmcache verify: " << *e << "\n";
      return kExitFailure;
    }
  }
  return VerifyWith(
      [&cache](const std::optional<std::string>& m,
               const std::function<bool(const EntryView&)>& fn,
               const std::function<void(std::string_view, const Status&)>&
                   on_corrupt) {
        return cache->ForEachEntry(m, fn, on_corrupt);
      },
      TotalEntries(*cache, model), model, as_json, io,
      [&cache] { return cache->VerifyFiles(); });
}

int VerifyWith(
    const EntryWalker& walk, uint64_t total,
    const std::optional<std::string>& model, bool as_json, const Io& io,
    const std::function<Result<std::vector<Cache::FileProblem>>()>& files) {
  // No bar when the JSON line goes to the same terminal: each redraw
  // would erase the part of it on screen.
  Progress progress(io.err, io.stderr_is_tty && !(as_json && io.stdout_is_tty),
                    "verify", total);
  const auto start = std::chrono::steady_clock::now();
  uint64_t checked = 0, expired = 0, problems = 0;
  bool interrupted = false;
  // Each problem is written as it is found (a database where every entry is
  // bad must not be held in memory): a line of text, or an element of the
  // JSON object's "entries", which therefore comes first.
  if (as_json) BeginJsonEntries(io.out);
  auto report = [&](std::string_view key, const std::string* entry_model,
                    const std::string& problem) {
    if (as_json) {
      json::object o{{"key", key}};
      if (entry_model != nullptr) o["model"] = *entry_model;
      o["problem"] = problem;
      io.out << (problems == 0 ? "" : ",") << json::serialize(o);
    } else {
      progress.Finish();  // drawn again below the line (at most 10/s)
      io.out << key << "  " << problem << "\n";
    }
    ++problems;
  };
  const int64_t now = NowMs();
  Status s = walk(
      model,
      [&](const EntryView& v) {
        if (InterruptSignal() != 0) {
          interrupted = true;
          return false;
        }
        ++checked;
        if (v.entry.meta.ExpiredAt(now)) ++expired;
        boost::system::error_code ec;
        net::json_util::ParseJson(v.entry.body, ec);
        if (ec) {
          report(DigestToHex(v.digest), &v.entry.meta.model,
                 "response is not valid JSON: " + ec.message());
        }
        progress.Update(checked);
        return true;
      },
      [&](std::string_view key, const Status& st) {
        ++checked;
        report(key, nullptr, "corrupt: " + std::string(st.message()));
        progress.Update(checked);
      });
  progress.Finish();
  // A damaged block ends the walk (the entries after it cannot be reached
  // through it), and a damaged index file is never walked: each file is
  // read whole too, and every damaged one named.
  uint64_t damaged_files = 0;
  interrupted = interrupted || InterruptSignal() != 0;
  if (files && !interrupted) {
    Result<std::vector<Cache::FileProblem>> damaged = files();
    if (!damaged.ok() && s.ok()) s = damaged.status();
    for (const Cache::FileProblem& f :
         damaged.ok() ? *damaged : std::vector<Cache::FileProblem>()) {
      // With --model, another model's file is not this model's problem.
      if (model && !f.model.empty() && f.model != BaseModel(*model)) continue;
      ++damaged_files;
      const std::string problem =
          "damaged file (holds " + f.holds + "): " + f.problem;
      if (as_json) {  // "file", not "key": no digest to purge by
        json::object o{
            {"file", f.file}, {"holds", f.holds}, {"problem", problem}};
        io.out << (problems == 0 ? "" : ",") << json::serialize(o);
        ++problems;
      } else {
        report(f.file, nullptr, problem);
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (as_json) {
    json::object tail{
        {"checked", checked},
        {"expired", expired},
        {"problems", problems},
        {"damaged_files", damaged_files},
        {"seconds", seconds},
        {"entries_per_second", EntriesPerSecond(checked, seconds)}};
    if (!s.ok()) tail["error"] = s.ToString();
    if (interrupted) tail["interrupted"] = InterruptName();
    EndJsonEntries(tail, io.out);
  }
  if (!as_json) {
    // Also when an error stopped the walk: how far it got (--json says it
    // with "checked" beside "error").
    io.out << "checked " << checked << " entries";
    if (!s.ok()) io.out << " (stopped by the error below: not the rest)";
    io.out << ": " << problems - damaged_files << " bad, ";
    if (damaged_files > 0) io.out << damaged_files << " damaged files, ";
    io.out << expired << " expired (awaiting compaction), in "
           << RateText(checked, seconds) << "\n";
  }
  if (!s.ok()) {
    io.err << "llmcache verify: " << s << "\n";
    return kExitFailure;
  }
  if (interrupted) {
    io.err << "llmcache verify: interrupted (" << InterruptName() << ") after "
           << checked << " entries: the rest, and the files, are not checked\n";
    return InterruptExitCode();
  }
  return problems == 0 ? kExitOk : kExitFailure;
}

}  // namespace llmcache::cli
