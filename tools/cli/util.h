// Helpers shared by the `llmcache` verbs: opening a database for reading or
// writing with operator-friendly errors, durations, sizes and times.

#ifndef LLMCACHE_TOOLS_CLI_UTIL_H_
#define LLMCACHE_TOOLS_CLI_UTIL_H_

#include <atomic>
#include <cstdint>
#include <fstream>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "llmcache/cache.h"
#include "llmcache/status.h"

namespace llmcache::cli {

// Exit codes of every verb (documented in `llmcache --help` and the README).
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,
  kExitUsage = 2,
  kExitBusy = 3,  // a mutating verb found the database held by a process
};

// Interrupts of the long verbs (import, export, verify, purge, warm). After
// CatchInterrupts, the first SIGINT or SIGTERM only sets a flag: the verb
// stops at the next entry, keeps whole what it did (an import's lines before
// that entry, an export's whole lines), closes the database (which writes its
// counters), says how far it got and returns InterruptExitCode(); main()
// then ends by the signal itself. A second signal ends the process at once,
// as without the handler (RocksDB recovers from its log).
void CatchInterrupts();
// The signal that asked to stop, 0 if none.
int InterruptSignal();
// True once a signal asked to stop (for CompactOptions::cancel).
std::atomic<bool>* InterruptFlag();
// 128 + the signal, the shell's convention.
int InterruptExitCode();
// "SIGINT", "SIGTERM" or "signal N".
std::string InterruptName();
// Tests: as if `sig` had arrived (0: as if none had).
void SetInterruptForTest(int sig);

// Terminal streams and what they are connected to. Tests pass string
// streams; main() passes std::cin/cout/cerr.
struct Io {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  bool stdin_is_tty = false;
  bool stderr_is_tty = false;
  bool stdout_is_tty = false;
};

// Which process holds the RocksDB lock of the database at `path`, asked of
// the kernel with fcntl(F_GETLK) on its LOCK file. nullopt if none (or the
// lock is not visible, e.g. held through another mount namespace).
struct LockHolder {
  int pid = 0;
  std::string command;  // /proc/<pid>/cmdline, spaces for NULs; may be empty
};
std::optional<LockHolder> FindLockHolder(const std::string& path);

// Where a running `llmcache serve` on the database at `path` listens: it
// writes "pid <pid>\nurl <base URL>\n" to <path>/LLMCACHE-SERVE (private,
// replaced atomically) once it listens, whatever set the address (flag,
// environment, config file, port 0), and removes it when it stops.
// WriteServeFile returns false if the file could not be written (the hints
// then fall back to the holder's command line).
bool WriteServeFile(const std::string& path, int pid, const std::string& url);
void RemoveServeFile(const std::string& path, int pid);
// The URL from that file if process `pid` wrote it, else nullopt.
std::optional<std::string> ReadServeFile(const std::string& path, int pid);

// A NUL-separated command line joined with spaces, with the values of flags
// naming a key, token, secret or password, and the password in any URL's user
// info (redis://user:password@host), replaced by "***".
std::string RedactCommandLine(std::string_view nul_separated);

// The check of a --db value: "" if usable, else why not (an empty path, as
// an unset variable in --db "$DIR" gives, is refused: it is not the default
// database).
std::string CheckDbPath(const std::string& path);

// Opens the database at `path` read-only through the engine's inspection
// mode, so it works while another process owns it. On failure prints the
// error to io.err and returns null. `accept_damaged_view`: see
// InspectOptions (verify reads on past a table file RocksDB cannot open).
std::unique_ptr<Cache> OpenForReading(const std::string& path, const Io& io,
                                      bool accept_damaged_view = false);

// Opens the database at `path` for writing. On failure prints the error and
// sets *exit_code: kExitBusy (with the holder's pid and command, and what to
// do) when another process holds it, kExitFailure otherwise. `verb` names the
// command, for a hint of its own ("warm": send through the proxy);
// `admin_op`, the proxy's admin operation that does the same
// ("purge?namespace=docs"), if there is one.
std::unique_ptr<Cache> OpenForWriting(const std::string& path, bool create,
                                      const Io& io, int* exit_code,
                                      std::string_view verb = {},
                                      std::string_view admin_op = {});

// For --model of ls, export, verify and purge: the error for a model the
// cache has no trace of (a mistyped name: no statistics row for its base
// model, which every column family and every counted model has, and no
// entry of it), naming the nearest known model; nullopt for a model it has
// or had, or when the statistics cannot be read (the verb's own walk then
// reports what is wrong).
std::optional<std::string> UnknownModel(Cache& cache, std::string_view model);

// Splits "host:port" / "[v6]:port" (port 0-65535, digits only); false if
// malformed.
bool ParseListen(const std::string& listen, std::string* host, uint16_t* port);

// A proxy's address given to --proxy, split: `root` is "http(s)://host[:port]"
// and `path` what follows it without trailing slashes ("" or "/v1").
struct ProxyUrl {
  std::string root;
  std::string path;
};

// nullopt unless `url` is an http:// or https:// URL with a host and no
// query, fragment or user info (which would be printed in messages).
std::optional<ProxyUrl> ParseProxyUrl(std::string url);

// `s` (a model id, namespace or other text a client or server chose) safe
// to print on a terminal: control characters (C0, DEL, C1 as UTF-8), the
// bidirectional-text controls and line separators, and bytes that are not
// valid UTF-8 are written as \xNN, so that a name cannot move the cursor,
// set the window title, reorder what is shown or start a fake table row.
// Other UTF-8 text and backslashes are unchanged; with `keep_newlines`, so
// is '\n'.
std::string Printable(std::string_view s, bool keep_newlines = false);

// The columns `s` (UTF-8, as Printable returns it) takes on a terminal: one
// per character, two for East Asian wide and fullwidth ones and emoji, none
// for combining marks and zero-width characters. For aligning tables.
size_t DisplayWidth(std::string_view s);

// 1536 -> "1.5 KiB"; 12 -> "12 B".
std::string FormatBytes(uint64_t bytes);
// 93'000 ms -> "1m33s"; 0 -> "0s"; 3 days -> "3d0h".
std::string FormatDuration(int64_t ms);
// Unix ms -> "2026-11-26T14:05:09Z" (UTC).
std::string FormatTime(int64_t unix_ms);
// Nano-USD -> "$0.001234".
std::string FormatUsd(int64_t nanousd);

// Current wall-clock time in Unix milliseconds.
int64_t NowMs();

// The export file `input` of `import` ("-" = io.in), opened into `file`
// when it is a path; nullptr after reporting on io.err when it cannot be
// read or is a directory (which opens as a stream whose first read looks
// like the end of the input). Checked before any database is opened.
std::istream* OpenExportInput(const std::string& input, const Io& io,
                              std::ifstream* file);

// Reads all of `path` ("-" = io.in). On failure prints to io.err.
std::optional<std::string> ReadInput(const std::string& path, const Io& io);

// Asks "<question> [y/N] " on io.err when stdin is a terminal and `yes` is
// false; true if confirmed (or no terminal / --yes).
bool Confirm(const Io& io, bool yes, const std::string& question);

}  // namespace llmcache::cli

#endif  // LLMCACHE_TOOLS_CLI_UTIL_H_
