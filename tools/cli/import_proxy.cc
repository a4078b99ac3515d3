// `llmcache import --proxy URL`: the export's lines sent to a running
// `llmcache serve` (POST /admin/import), which stores them in the database
// it holds. See ImportViaProxy in verbs.h.

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "cli/json_print.h"
#include "cli/progress.h"
#include "cli/util.h"
#include "cli/verbs.h"
#include "llmcache/net/client.h"

namespace llmcache::cli {
namespace {

namespace json = boost::json;

// Lines per request: at most this many bytes, unless one line is longer.
// Each request is stored by the proxy's maintenance thread in one go, which
// runs the other /admin/* actions too: ~1k entries of 1 KiB keep that short.
constexpr size_t kBatchBytes = 1u << 20;

// The error object of a JSON error answer {"error":{...}}, or null.
const json::object* ErrorObject(const json::value& v) {
  const json::value* error =
      v.is_object() ? v.as_object().if_contains("error") : nullptr;
  return error != nullptr && error->is_object() ? &error->as_object() : nullptr;
}

// A member of `o` that is a whole number >= 0, or nullopt.
std::optional<uint64_t> Count(const json::object* o, std::string_view name) {
  const json::value* n = o != nullptr ? o->if_contains(name) : nullptr;
  if (n == nullptr) return std::nullopt;
  if (n->is_uint64()) return n->as_uint64();
  if (n->is_int64() && n->as_int64() >= 0) {
    return static_cast<uint64_t>(n->as_int64());
  }
  return std::nullopt;
}

// The message of a JSON error answer {"error":{"message":...}}, or the
// start of the body; printable on a terminal either way.
std::string ErrorMessage(const net::Response& r) {
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  const json::object* error = ec ? nullptr : ErrorObject(v);
  const json::value* message =
      error != nullptr ? error->if_contains("message") : nullptr;
  if (message != nullptr && message->is_string()) {
    return Printable(message->as_string().subview().substr(0, 300));
  }
  return Printable(std::string_view(r.body).substr(0, 300));
}

size_t LinesIn(std::string_view text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class ProxyImporter {
 public:
  ProxyImporter(std::shared_ptr<net::Client> client, const Io& io,
                Progress* progress)
      : client_(std::move(client)), io_(io), progress_(progress) {}

  // Sends `text` (whole lines, each ending in '\n'), whose first line is
  // line `first_line` of the input. False after a failure that ends the
  // import (reported on io.err).
  bool Send(std::string_view text, uint64_t first_line) {
    // Stopped by a signal: nothing more is sent (also between the halves
    // of a request that was too large).
    if (InterruptSignal() != 0) return true;
    Result<net::Response> r =
        Post("/admin/import", std::string(text), /*idempotent=*/true);
    if (!r.ok()) {
      return Fail("cannot reach the proxy: " + r.status().ToString());
    }
    if (r->status == 413) {
      // The proxy's --max-body-bytes is below this request: halves, and
      // sends no more than what fitted from then on.
      const size_t lines = LinesIn(text);
      if (lines < 2) {
        ++too_large_;
        progress_->Finish();
        io_.err << "llmcache import: line " << first_line
                << ": larger than the proxy's request body limit "
                   "(--max-body-bytes) (skipped)\n";
        done_through_ = first_line;
        return true;
      }
      size_t cut = 0;
      for (size_t i = 0; i < lines / 2; ++i) cut = text.find('\n', cut) + 1;
      batch_bytes_ = std::min(batch_bytes_, std::max<size_t>(cut, 1));
      return Send(text.substr(0, cut), first_line) &&
             Send(text.substr(cut), first_line + lines / 2);
    }
    if (r->status == 404 && ErrorMessage(*r).starts_with("no route for")) {
      return Fail(
          "the proxy has no admin endpoints: start `llmcache serve` with "
          "--admin-token (or $LLMCACHE_ADMIN_TOKEN)");
    }
    if (r->status == 401) {
      const std::string message = ErrorMessage(*r);
      if (message.starts_with("admin endpoints need")) {
        return Fail(
            "the proxy refused the admin token: set $LLMCACHE_ADMIN_TOKEN "
            "(or --admin-token) to its --admin-token");
      }
      // Not the admin check's answer: a proxy without admin endpoints that
      // asks every request for its access token.
      return Fail("status 401 from the proxy: " + message +
                  " (without --admin-token it has no admin endpoints)");
    }
    boost::system::error_code ec;
    const json::value v = json::parse(r->body, ec);
    if (r->status != 200) {
      // A store failure names the line of this request and how many of its
      // entries were stored before it.
      const json::object* error = ec ? nullptr : ErrorObject(v);
      const std::optional<uint64_t> line = Count(error, "line");
      const std::optional<uint64_t> stored = Count(error, "imported");
      if (stored) imported_ += *stored;
      std::string why = "status " + std::to_string(r->status) +
                        " from the proxy: " + ErrorMessage(*r);
      if (line && *line >= 1 && *line <= LinesIn(text)) {
        why += " (line " + std::to_string(first_line + *line - 1) +
               " of the file)";
      }
      return Fail(why);
    }
    const json::object* o = !ec && v.is_object() ? &v.as_object() : nullptr;
    const json::value* errors =
        o != nullptr ? o->if_contains("errors") : nullptr;
    const std::optional<uint64_t> imported = Count(o, "imported");
    if (!imported || errors == nullptr || !errors->is_array()) {
      return Fail("the answer of " + client_->options().base_url +
                  "/admin/import is not an llmcache proxy's");
    }
    const size_t lines = LinesIn(text);
    imported_ += *imported;
    expired_ += Count(o, "expired").value_or(0);
    const uint64_t malformed = Count(o, "malformed").value_or(0);
    malformed_ += malformed;
    uint64_t listed = 0;
    for (const json::value& e : errors->as_array()) {
      const json::object* eo = e.is_object() ? &e.as_object() : nullptr;
      const std::optional<uint64_t> line = Count(eo, "line");
      if (!line || *line < 1 || *line > lines) continue;
      const json::value* what = eo->if_contains("error");
      progress_->Finish();
      io_.err << "llmcache import: line " << first_line + *line - 1 << ": "
              << (what != nullptr && what->is_string()
                      ? Printable(what->as_string().subview())
                      : std::string("malformed"))
              << " (skipped)\n";
      ++listed;
    }
    if (malformed > listed) {
      progress_->Finish();
      io_.err << "llmcache import: " << malformed - listed
              << " more malformed lines in lines " << first_line << "-"
              << first_line + lines - 1 << " (skipped)\n";
    }
    done_through_ = first_line + lines - 1;
    return true;
  }

  // `idempotent`: storing the same lines again changes nothing, so a request
  // whose answer was lost is sent again (not a compaction, which may be long).
  Result<net::Response> Post(std::string path, std::string body,
                             bool idempotent = false) {
    net::Request req;
    req.path = std::move(path);
    req.body = std::move(body);
    req.idempotent = idempotent;
    std::promise<Result<net::Response>> done;
    std::future<Result<net::Response>> answer = done.get_future();
    client_->Send(std::move(req), nullptr, [&done](Result<net::Response> r) {
      done.set_value(std::move(r));
    });
    return answer.get();
  }

  // Bytes of lines per request: at most kBatchBytes, less once the proxy
  // refused a larger request.
  size_t batch_bytes() const { return batch_bytes_; }
  uint64_t imported() const { return imported_; }
  uint64_t expired() const { return expired_; }
  uint64_t malformed() const { return malformed_; }
  uint64_t too_large() const { return too_large_; }
  // The last line of the file whose request the proxy answered (its entries
  // stored, or reported as skipped); 0 before the first answer.
  uint64_t done_through() const { return done_through_; }

 private:
  bool Fail(const std::string& why) {
    progress_->Finish();
    io_.err << "llmcache import: " << why << "\n";
    return false;
  }

  std::shared_ptr<net::Client> client_;
  const Io& io_;
  Progress* const progress_;
  size_t batch_bytes_ = kBatchBytes;
  uint64_t imported_ = 0, expired_ = 0, malformed_ = 0, too_large_ = 0;
  uint64_t done_through_ = 0;
};

}  // namespace

int ImportViaProxy(const std::string& proxy, const std::string& admin_token,
                   const std::string& input, bool as_json, bool compact,
                   const Io& io) {
  const auto started = std::chrono::steady_clock::now();
  // The admin routes are at the root: a path is refused.
  const std::optional<ProxyUrl> url = ParseProxyUrl(proxy);
  if (!url || !url->path.empty()) {
    io.err << "llmcache import: --proxy needs the proxy's address as an "
              "http:// or https:// URL without a path, e.g. "
              "http://127.0.0.1:8080\n";
    return kExitUsage;
  }
  const std::string& root = url->root;
  if (admin_token.empty()) {
    io.err << "llmcache import: --proxy needs the proxy's admin token in "
              "$LLMCACHE_ADMIN_TOKEN (or --admin-token)\n";
    return kExitUsage;
  }
  std::ifstream file;
  std::istream* in = OpenExportInput(input, io, &file);
  if (in == nullptr) return kExitFailure;

  boost::asio::io_context ioc;
  auto guard = boost::asio::make_work_guard(ioc);
  std::thread io_thread([&ioc] { ioc.run(); });
  struct Joiner {
    decltype(guard)& g;
    std::thread& t;
    ~Joiner() {
      g.reset();
      t.join();
    }
  } joiner{guard, io_thread};

  net::ClientOptions co;
  co.base_url = root;
  co.api_key = admin_token;  // sent as Authorization: Bearer
  co.x_title = "llmcache import";
  // Storing 1 MiB of entries one by one takes well under a second; a disk
  // in trouble may take long.
  co.headers_timeout = std::chrono::seconds(600);
  co.request_timeout = std::chrono::seconds(600);
  co.max_attempts = 2;
  Result<std::shared_ptr<net::Client>> client =
      net::Client::Create(ioc.get_executor(), co);
  if (!client.ok()) {
    io.err << "llmcache import: " << client.status() << "\n";
    return kExitUsage;
  }
  Progress progress(io.err, io.stderr_is_tty, "import");
  ProxyImporter importer(*client, io, &progress);
  std::string batch, line;
  uint64_t line_no = 0, batch_first = 1;
  bool ok = true;
  // A signal (CatchInterrupts) stops before the next request: every request
  // sent was answered.
  auto interrupted = [] { return InterruptSignal() != 0; };
  while (ok && !interrupted() && std::getline(*in, line)) {
    if (line_no == 0 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    ++line_no;
    if (!batch.empty() &&
        batch.size() + line.size() + 1 > importer.batch_bytes()) {
      if (interrupted()) break;
      ok = importer.Send(batch, batch_first);
      batch.clear();
      batch_first = line_no;
      progress.Update(line_no - 1);
    }
    batch += line;
    batch += '\n';
  }
  if (ok && in->bad()) {
    io.err << "llmcache import: reading " << (input == "-" ? "stdin" : input)
           << " failed\n";
    ok = false;
  }
  if (ok && !interrupted() && !batch.empty()) {
    ok = importer.Send(batch, batch_first);
  }
  progress.Finish();
  const bool stopped_by_signal = ok && interrupted();
  double compact_seconds = 0;
  bool compacted = false;
  if (ok && compact && !stopped_by_signal) {
    const auto compact_started = std::chrono::steady_clock::now();
    Result<net::Response> r = importer.Post("/admin/compact", "");
    if (!r.ok() || r->status != 200) {
      io.err << "llmcache import: imported " << importer.imported()
             << " entries, then the proxy's compaction failed: "
             << (r.ok() ? ErrorMessage(*r) : r.status().ToString()) << "\n";
      ok = false;
    } else {
      compacted = true;
      compact_seconds = std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - compact_started)
                            .count();
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  if (as_json) {
    json::object o{
        {"imported", importer.imported()},
        {"malformed", importer.malformed()},
        {"too_large", importer.too_large()},
        {"expired_skipped", importer.expired()},
        {"lines", line_no},
        {"seconds", seconds},
        {"entries_per_second", EntriesPerSecond(importer.imported(), seconds)},
        {"proxy", root}};
    if (compacted) o["compact_seconds"] = compact_seconds;
    if (!ok) o["error"] = "stopped early (see stderr)";
    if (!ok || stopped_by_signal)
      o["done_through_line"] = importer.done_through();
    if (stopped_by_signal) o["interrupted"] = InterruptName();
    PrintJsonLine(o, io.out);
  } else {
    io.out << "imported " << importer.imported() << " entries through " << root
           << " in " << RateText(importer.imported(), seconds);
    if (importer.expired() > 0) {
      io.out << ", skipped " << importer.expired() << " already expired";
    }
    if (importer.malformed() > 0) {
      io.out << ", skipped " << importer.malformed() << " malformed lines";
    }
    if (importer.too_large() > 0) {
      io.out << ", skipped " << importer.too_large()
             << " lines over the proxy's body limit";
    }
    if (compacted) {
      char took[32];
      std::snprintf(took, sizeof(took), "%.2f", compact_seconds);
      io.out << "; compacted in " << took << " s";
    }
    if (!ok) io.out << " (stopped early)";
    io.out << "\n";
  }
  if (!ok || stopped_by_signal) {
    // Where to go on from: the lines the proxy answered for are stored;
    // importing the whole file again stores the rest and leaves those as
    // they are.
    const uint64_t done = importer.done_through();
    io.err << "llmcache import: ";
    if (stopped_by_signal) {
      io.err << "interrupted (" << InterruptName() << "): ";
    }
    if (done == 0) {
      io.err << "no line was stored";
      if (line_no > 0) io.err << "; the same import again stores them";
    } else {
      io.err << "lines 1-" << done << " are stored";
      if (done < line_no) {
        io.err << "; the same import again stores the rest, from line "
               << done + 1 << " (entries stored already stay as they are)";
      }
    }
    io.err << "\n";
    if (stopped_by_signal) return InterruptExitCode();
  }
  return ok && importer.malformed() == 0 && importer.too_large() == 0
             ? kExitOk
             : kExitFailure;
}

}  // namespace llmcache::cli
