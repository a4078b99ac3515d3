// Helpers shared by the verbs: opening databases (and naming the process
// that holds one), durations, sizes and times. See util.h.

#include "cli/util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <sstream>
#include <vector>

#include "llmcache/key.h"
#include "llmcache/options.h"

namespace llmcache::cli {

namespace {

// `arg` with the password of every URL's user info (scheme://user:password@
// or scheme://password@) replaced by "***". The user info ends at the last
// '@' before the next URL, as the Redis URL parser reads it (a password may
// hold '/', '?', '#' or '@'): a '@' in a path is redacted too, which is safe.
std::string RedactUrlPasswords(std::string_view arg) {
  std::string out;
  size_t done = 0;
  for (size_t scheme = arg.find("://"); scheme != std::string_view::npos;
       scheme = arg.find("://", done)) {
    const size_t start = scheme + 3;
    size_t end = arg.find("://", start);
    if (end == std::string_view::npos) end = arg.size();
    const size_t at = arg.substr(start, end - start).rfind('@');
    if (at == std::string_view::npos) {
      out.append(arg.substr(done, start - done));
      done = start;
      continue;
    }
    const std::string_view userinfo = arg.substr(start, at);
    const size_t colon = userinfo.find(':');
    out.append(arg.substr(done, start - done));
    if (colon != std::string_view::npos) {
      out.append(userinfo.substr(0, colon + 1));
    }
    out += "***";
    done = start + at;  // at the '@'
  }
  out.append(arg.substr(done));
  return out;
}

}  // namespace

std::string RedactCommandLine(std::string_view nul_separated) {
  auto secret_flag = [](std::string_view arg) {
    if (arg.size() < 2 || arg[0] != '-') return false;
    for (std::string_view word : {"key", "token", "secret", "password"}) {
      if (arg.substr(0, arg.find('=')).find(word) != std::string_view::npos) {
        return true;
      }
    }
    return false;
  };
  std::string out;
  bool redact_next = false;
  size_t start = 0;
  while (start <= nul_separated.size()) {
    size_t end = nul_separated.find('\0', start);
    if (end == std::string_view::npos) end = nul_separated.size();
    std::string_view arg = nul_separated.substr(start, end - start);
    if (!out.empty()) out += ' ';
    if (redact_next) {
      out += "***";
      redact_next = false;
    } else if (secret_flag(arg) && arg.find('=') != std::string_view::npos) {
      out.append(arg.substr(0, arg.find('=') + 1));
      out += "***";
    } else {
      out.append(RedactUrlPasswords(arg));
      redact_next = secret_flag(arg);
    }
    start = end + 1;
  }
  return out;
}

std::optional<LockHolder> FindLockHolder(const std::string& path) {
  const std::string lock_file = path + "/LOCK";
  const int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  const int rc = ::fcntl(fd, F_GETLK, &fl);
  ::close(fd);
  if (rc != 0 || fl.l_type == F_UNLCK || fl.l_pid <= 0) return std::nullopt;
  LockHolder holder;
  holder.pid = fl.l_pid;
  std::ifstream cmdline("/proc/" + std::to_string(fl.l_pid) + "/cmdline",
                        std::ios::binary);
  std::string cmd((std::istreambuf_iterator<char>(cmdline)),
                  std::istreambuf_iterator<char>());
  while (!cmd.empty() && cmd.back() == '\0') cmd.pop_back();
  holder.command = RedactCommandLine(cmd);
  return holder;
}

namespace {
constexpr const char kServeFile[] = "/LLMCACHE-SERVE";
}  // namespace

bool WriteServeFile(const std::string& path, int pid, const std::string& url) {
  const std::string file = path + kServeFile;
  const std::string tmp = file + ".tmp";
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const std::string text = "pid " + std::to_string(pid) + "\nurl " + url + "\n";
  const bool written = ::write(fd, text.data(), text.size()) ==
                       static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), file.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

void RemoveServeFile(const std::string& path, int pid) {
  if (ReadServeFile(path, pid)) ::unlink((path + kServeFile).c_str());
}

std::optional<std::string> ReadServeFile(const std::string& path, int pid) {
  std::ifstream in(path + kServeFile);
  std::string key, url;
  int file_pid = 0;
  if (!(in >> key >> file_pid) || key != "pid" || file_pid != pid ||
      !(in >> key >> url) || key != "url" ||
      !(url.starts_with("http://") || url.starts_with("https://"))) {
    return std::nullopt;
  }
  return url;
}

namespace {

// "no database at PATH", or why PATH cannot hold one.
void ReportNoDatabase(const Io& io, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    io.err << "llmcache: database path " << path
           << " exists and is not a directory\n";
    return;
  }
  io.err << "llmcache: no database at " << path
         << " (set --db or LLMCACHE_DB)\n";
}

}  // namespace

std::unique_ptr<Cache> OpenForReading(const std::string& path, const Io& io,
                                      bool accept_damaged_view) {
  InspectOptions options;
  options.path = path;
  options.accept_damaged_view = accept_damaged_view;
  Result<std::unique_ptr<Cache>> cache = Cache::Inspect(options);
  if (cache.status().code() == StatusCode::kNotFound) {
    ReportNoDatabase(io, path);
    return nullptr;
  }
  if (!cache.ok()) {
    io.err << "llmcache: " << cache.status() << "\n";
    return nullptr;
  }
  return std::move(*cache);
}

std::string CheckDbPath(const std::string& path) {
  if (!path.empty()) return {};
  return "the database path is empty (an unset variable?); leave --db out "
         "for the default database";
}

namespace {

// Levenshtein distance between a and b (bytes), for "did you mean".
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::optional<std::string> UnknownModel(Cache& cache, std::string_view model) {
  const std::string_view base = BaseModel(model);
  Result<CacheStats> st = cache.GetStats();
  if (!st.ok()) return std::nullopt;
  // A row's own base: an older version gave an id with two variants
  // (m/x:free:online) a row of its own, m/x:free, which FlushModel("m/x")
  // flushes with m/x.
  for (const ModelStats& m : st->models) {
    if (BaseModel(m.model) == base) return std::nullopt;
  }
  // An entry the statistics do not count yet (a service's unwritten
  // counters) still makes the model known.
  bool found = false;
  const Status walked = cache.ForEachEntryByAge(
      std::string(model), /*newest_first=*/true,
      [&found](const EntryView&) {
        found = true;
        return false;
      },
      [&found](std::string_view, const Status&) { found = true; });
  if (!walked.ok() || found) return std::nullopt;
  std::string text = "no model \"" + Printable(base) + "\" in this cache";
  if (st->models.empty()) return text + " (it has no entries)";
  // The nearest name, if it is near: a typo, a wrong case, a missing prefix.
  const ModelStats* nearest = nullptr;
  size_t best = std::numeric_limits<size_t>::max();
  std::string lower(base);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (const ModelStats& m : st->models) {
    std::string other(BaseModel(m.model));
    std::transform(other.begin(), other.end(), other.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    size_t d = EditDistance(lower, other);
    const size_t slash = other.rfind('/');
    if (slash != std::string::npos &&
        other.compare(slash + 1, std::string::npos, lower) == 0) {
      d = 0;  // the name without its provider
    }
    if (d < best) {
      best = d;
      nearest = &m;
    }
  }
  if (nearest != nullptr && best <= std::max<size_t>(2, base.size() / 4)) {
    text += "; did you mean \"" + Printable(BaseModel(nearest->model)) + "\"?";
  }
  text += " (`llmcache models` lists its " + std::to_string(st->models.size()) +
          (st->models.size() == 1 ? " model)" : " models)");
  return text;
}

std::unique_ptr<Cache> OpenForWriting(const std::string& path, bool create,
                                      const Io& io, int* exit_code,
                                      std::string_view verb,
                                      std::string_view admin_op) {
  CacheOptions options;
  options.path = path;
  options.create_if_missing = create;
  // The CLI's writes are its own: no background thread; statistics are
  // written when the cache closes.
  options.maintenance_interval_ms = 0;
  options.sync_writes = false;
  Result<std::unique_ptr<Cache>> cache = Cache::Open(options);
  if (cache.ok()) {
    *exit_code = kExitOk;
    return std::move(*cache);
  }
  const Status& s = cache.status();
  if (s.code() == StatusCode::kNotFound && !create) {
    ReportNoDatabase(io, path);
    *exit_code = kExitFailure;
    return nullptr;
  }
  std::optional<LockHolder> holder;
  if (s.code() == StatusCode::kFailedPrecondition)
    holder = FindLockHolder(path);
  const bool locked = holder.has_value() ||
                      (s.code() == StatusCode::kFailedPrecondition &&
                       s.message().find("locked") != std::string_view::npos);
  if (!locked) {
    io.err << "llmcache: " << s << "\n";
    *exit_code = kExitFailure;
    return nullptr;
  }
  // Where the holder listens, if it is `llmcache serve --listen H:P`.
  std::string listen = "127.0.0.1:8080";
  if (holder) {
    const std::string& cmd = holder->command;
    for (std::string_view flag : {"--listen=", "--listen "}) {
      const size_t at = cmd.find(flag);
      if (at == std::string::npos) continue;
      const size_t from = at + flag.size();
      listen = cmd.substr(from, cmd.find(' ', from) - from);
      break;
    }
  }
  // What it wrote once listening wins: the flag may be absent (environment,
  // config file) or name port 0.
  bool serve = false;
  if (holder) {
    if (std::optional<std::string> url = ReadServeFile(path, holder->pid)) {
      listen = url->substr(url->find("://") + 3);
      serve = true;
    }
    // Still starting (no file yet): a `serve` word in its command line (a
    // program that embeds the proxy is taken for another program).
    const std::string padded = " " + holder->command + " ";
    serve = serve || padded.find(" serve ") != std::string::npos;
  }
  // A wildcard listen address is reached on loopback.
  if (listen.starts_with("0.0.0.0:")) listen.replace(0, 7, "127.0.0.1");
  if (listen.starts_with("[::]:")) listen.replace(0, 4, "[::1]");
  io.err << "llmcache: the database " << path << " is in use by ";
  if (holder) {
    io.err << "process " << holder->pid;
    if (!holder->command.empty()) io.err << " (" << holder->command << ")";
  } else {
    io.err << "another process";
  }
  io.err << ".\n"
         << "Read-only verbs (stats, models, ls, show, get, export, verify) "
            "work while it runs.\n";
  if (holder && !holder->command.empty() && !serve) {
    // Another verb (an import, a purge) or another program: no endpoint to
    // send the change to.
    io.err << "To change it: wait for that process to end (or stop it) and "
              "retry.\n";
    *exit_code = kExitBusy;
    return nullptr;
  }
  io.err << "To change it: stop that process and retry, or, if it is "
            "`llmcache serve` started with an admin token, use its admin "
            "endpoint, e.g.\n";
  const auto admin = [&](std::string_view op_query) {
    io.err << "  curl -X POST -H \"Authorization: Bearer "
              "$LLMCACHE_ADMIN_TOKEN\" 'http://"
           << listen << "/admin/" << op_query << "'\n";
  };
  if (!admin_op.empty()) {
    admin(admin_op);
  } else if (verb == "compact") {
    admin("compact");
  } else {
    admin("purge?model=MODEL");
    admin("flush?model=MODEL");
  }
  if (verb == "warm" || verb == "import") {
    // Plain http reaches only a loopback address.
    std::string host;
    uint16_t port = 0;
    const bool loopback =
        ParseListen(listen, &host, &port) && port != 0 &&
        (host == "127.0.0.1" || host == "localhost" || host == "::1");
    const std::string url =
        loopback ? "http://" + listen
                 : std::string("URL (its address, e.g. http://127.0.0.1:8080)");
    if (verb == "warm") {
      io.err << "To warm it while it runs, send the requests through it "
                "(this database is then only read, to skip what is cached; "
                "the proxy's access token, if it has one, in "
                "$LLMCACHE_CLIENT_TOKEN):\n"
             << "  llmcache warm --db " << path << " --proxy " << url
             << " FILE\n";
    } else {
      io.err << "To import while it runs, send the entries to it (it needs "
                "an admin token; the same in $LLMCACHE_ADMIN_TOKEN here):\n"
             << "  llmcache import --proxy " << url << " FILE\n";
    }
  }
  *exit_code = kExitBusy;
  return nullptr;
}

size_t DisplayWidth(std::string_view s) {
  size_t width = 0;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (len == 1 || i + len > s.size()) {  // ASCII, or a cut sequence
      ++width;
      ++i;
      continue;
    }
    uint32_t cp = c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    i += len;
    auto in = [cp](uint32_t lo, uint32_t hi) { return cp >= lo && cp <= hi; };
    if (in(0x0300, 0x036F) || in(0x1AB0, 0x1AFF) || in(0x1DC0, 0x1DFF) ||
        in(0x200B, 0x200F) || in(0x20D0, 0x20FF) || in(0xFE00, 0xFE0F) ||
        cp == 0xFEFF) {
      continue;  // combining, zero-width, variation selectors
    }
    const bool wide =
        in(0x1100, 0x115F) || in(0x2E80, 0x303E) || in(0x3041, 0x33FF) ||
        in(0x3400, 0x4DBF) || in(0x4E00, 0x9FFF) || in(0xA000, 0xA4CF) ||
        in(0xAC00, 0xD7A3) || in(0xF900, 0xFAFF) || in(0xFE30, 0xFE4F) ||
        in(0xFF00, 0xFF60) || in(0xFFE0, 0xFFE6) || in(0x1F300, 0x1F64F) ||
        in(0x1F900, 0x1F9FF) || in(0x20000, 0x3FFFD);
    width += wide ? 2 : 1;
  }
  return width;
}

std::optional<ProxyUrl> ParseProxyUrl(std::string url) {
  if (!url.starts_with("http://") && !url.starts_with("https://")) {
    return std::nullopt;
  }
  if (url.find_first_of("?#@") != std::string::npos) return std::nullopt;
  const size_t host = url.find("://") + 3;
  while (url.size() > host && url.back() == '/') url.pop_back();
  const size_t path = std::min(url.find('/', host), url.size());
  if (path == host || url[host] == ':') return std::nullopt;  // no host
  if (url.find("//", path) != std::string::npos) return std::nullopt;
  return ProxyUrl{url.substr(0, path), url.substr(path)};
}

bool ParseListen(const std::string& listen, std::string* host, uint16_t* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  const std::string p = listen.substr(colon + 1);
  if (p.empty() || p.size() > 5 ||
      p.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const int v = std::stoi(p);
  if (v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return !host->empty();
}

std::string Printable(std::string_view s, bool keep_newlines) {
  std::string out;
  out.reserve(s.size());
  auto escape = [&out](unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
  };
  auto byte = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = byte(i);
    if ((c >= 0x20 && c < 0x7F) || (c == '\n' && keep_newlines)) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A UTF-8 sequence (RFC 3629): its length from the lead byte, the range
    // of its second byte (no overlong forms, no surrogates, nothing past
    // U+10FFFF), then continuation bytes.
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool valid =
        n != 0 && i + n <= s.size() && byte(i + 1) >= lo && byte(i + 1) <= hi;
    for (size_t k = 2; valid && k < n; ++k) {
      valid = (byte(i + k) & 0xC0) == 0x80;
    }
    if (!valid) {
      escape(c);
      ++i;
      continue;
    }
    // Valid, but a control: U+0080..U+009F (C1; 0x9B is CSI), U+200E/F
    // (marks), U+2028/9 (separators), U+202A..E and U+2066..9 (bidi).
    const bool control = (n == 2 && c == 0xC2 && byte(i + 1) < 0xA0) ||
                         (n == 3 && c == 0xE2 && byte(i + 1) == 0x80 &&
                          (byte(i + 2) == 0x8E || byte(i + 2) == 0x8F ||
                           (byte(i + 2) >= 0xA8 && byte(i + 2) <= 0xAE))) ||
                         (n == 3 && c == 0xE2 && byte(i + 1) == 0x81 &&
                          byte(i + 2) >= 0xA6 && byte(i + 2) <= 0xA9);
    if (control) {
      for (size_t k = 0; k < n; ++k) escape(byte(i + k));
      i += n;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

std::istream* OpenExportInput(const std::string& input, const Io& io,
                              std::ifstream* file) {
  if (input == "-") {
    if (struct stat st; &io.in == &std::cin && fstat(STDIN_FILENO, &st) == 0 &&
                        S_ISDIR(st.st_mode)) {
      io.err << "llmcache import: standard input is a directory, not an "
                "export file\n";
      return nullptr;
    }
    return &io.in;
  }
  std::error_code ec;
  if (std::filesystem::is_directory(input, ec)) {
    io.err << "llmcache import: " << input
           << " is a directory, not an export file\n";
    return nullptr;
  }
  file->open(input, std::ios::binary);
  if (!*file) {
    io.err << "llmcache import: cannot read " << input << ": "
           << std::strerror(errno) << "\n";
    return nullptr;
  }
  return file;
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[unit]);
  return buf;
}

std::string FormatDuration(int64_t ms) {
  if (ms < 0) return std::string("-").append(FormatDuration(-ms));
  const int64_t s = ms / 1000;
  char buf[48];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%" PRId64 "s", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%" PRId64 "m%" PRId64 "s", s / 60, s % 60);
  } else if (s < 86400) {
    std::snprintf(buf, sizeof(buf), "%" PRId64 "h%" PRId64 "m", s / 3600,
                  (s % 3600) / 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%" PRId64 "d%" PRId64 "h", s / 86400,
                  (s % 86400) / 3600);
  }
  return buf;
}

std::string FormatTime(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm = {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string FormatUsd(int64_t nanousd) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s$%.6f", nanousd < 0 ? "-" : "",
                static_cast<double>(nanousd < 0 ? -nanousd : nanousd) / 1e9);
  return buf;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<std::string> ReadInput(const std::string& path, const Io& io) {
  if (path == "-") {
    std::string data((std::istreambuf_iterator<char>(io.in)),
                     std::istreambuf_iterator<char>());
    return data;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    io.err << "llmcache: cannot read " << path << ": " << std::strerror(errno)
           << "\n";
    return std::nullopt;
  }
  std::string data((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) {
    io.err << "llmcache: error reading " << path << "\n";
    return std::nullopt;
  }
  return data;
}

bool Confirm(const Io& io, bool yes, const std::string& question) {
  if (yes || !io.stdin_is_tty) return true;
  io.err << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(io.in, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES";
}

namespace {

std::atomic<int> g_interrupt{0};
static_assert(std::atomic<int>::is_always_lock_free);  // signal-safe
// The same, for what takes a flag (a compaction: CompactOptions::cancel).
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);
bool g_interrupt_tty = false;

extern "C" void OnInterrupt(int sig) {
  g_interrupt.store(sig, std::memory_order_relaxed);
  g_interrupted.store(true, std::memory_order_relaxed);
  // The next signal ends the process.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGINT, &dfl, nullptr);
  sigaction(SIGTERM, &dfl, nullptr);
  if (g_interrupt_tty) {
    // write(2) is async-signal-safe; the bar's line is erased first.
    static constexpr char kSay[] =
        "\r\x1b[2Kllmcache: stopping at the next entry (again to quit at "
        "once)\n";
    ssize_t ignored = write(STDERR_FILENO, kSay, sizeof(kSay) - 1);
    (void)ignored;
  }
}

}  // namespace

void CatchInterrupts() {
  g_interrupt_tty = isatty(STDERR_FILENO) == 1;
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  // Interrupted system calls resume: the verbs look at the flag between
  // entries, and a read that waits on a pipe ends with its writer.
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int InterruptSignal() { return g_interrupt.load(std::memory_order_relaxed); }

std::atomic<bool>* InterruptFlag() { return &g_interrupted; }

int InterruptExitCode() { return 128 + InterruptSignal(); }

std::string InterruptName() {
  const int sig = InterruptSignal();
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGTERM) return "SIGTERM";
  return "signal " + std::to_string(sig);
}

void SetInterruptForTest(int sig) {
  g_interrupt.store(sig, std::memory_order_relaxed);
  g_interrupted.store(sig != 0, std::memory_order_relaxed);
}

}  // namespace llmcache::cli
