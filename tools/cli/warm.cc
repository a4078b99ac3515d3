// warm: fills a cache from a file of requests through the cached client's
// pipeline (Prepare, an uncounted Probe to skip what is cached, Complete).

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>
#include <vector>

#include "cli/json_print.h"
#include "cli/progress.h"
#include "cli/verbs.h"
#include "llmcache/key.h"  // ApiKeyScope
#include "llmcache/net/cached_client.h"
#include "llmcache/net/client.h"
#include "llmcache/policy.h"

namespace llmcache::cli {
namespace json = boost::json;
namespace {

// A line {"endpoint": NAME, "body": {...}} (no "model": not a request body
// itself) names its own endpoint: `req` gets it and the body. Returns why
// the line is malformed, or "".
std::string UnwrapEndpointLine(net::CachedRequest* req) {
  if (req->body.find("\"endpoint\"") == std::string::npos) return "";
  boost::system::error_code ec;
  json::value v = json::parse(req->body, ec);
  if (ec || !v.is_object()) return "";  // Prepare reports it
  const json::object& o = v.as_object();
  const json::value* endpoint = o.if_contains("endpoint");
  if (endpoint == nullptr || o.contains("model")) return "";
  const json::value* body = o.if_contains("body");
  if (!endpoint->is_string() || body == nullptr || !body->is_object()) {
    return "a line with \"endpoint\" needs a string endpoint and an object "
           "\"body\"";
  }
  std::optional<Endpoint> e = EndpointFromName(endpoint->as_string());
  if (!e) {
    return "unknown endpoint '" + std::string(endpoint->as_string()) + "'";
  }
  req->endpoint = *e;
  req->body = json::serialize(*body);
  return "";
}

}  // namespace

int Warm(const std::string& db, const WarmArgs& args, const Io& io) {
  const std::optional<Endpoint> file_endpoint = EndpointFromName(args.endpoint);
  if (!file_endpoint) {
    io.err << "llmcache warm: unknown --endpoint '" << args.endpoint
           << "' (chat_completions, embeddings, responses, messages)\n";
    return kExitUsage;
  }
  std::optional<CacheMode> mode = CacheModeFromName(args.mode);
  if (!mode) {
    io.err << "llmcache warm: unknown --mode '" << args.mode << "'\n";
    return kExitUsage;
  }
  if (args.concurrency < 1) {
    io.err << "llmcache warm: --concurrency must be at least 1\n";
    return kExitUsage;
  }
  std::optional<std::string> text = ReadInput(args.input, io);
  if (!text) return kExitFailure;

  int rc = kExitOk;
  std::unique_ptr<Cache> owned = OpenForWriting(db, /*create=*/true, io, &rc);
  if (!owned) return rc;
  std::shared_ptr<Cache> cache = std::move(owned);

  boost::asio::io_context ioc;
  auto guard = boost::asio::make_work_guard(ioc);
  std::thread io_thread([&] { ioc.run(); });

  const char* env_key = std::getenv("OPENROUTER_API_KEY");
  const std::string api_key = env_key != nullptr ? env_key : "";
  net::ClientOptions co;
  co.base_url = args.upstream;
  co.extra_ca_file = args.ca_file;
  co.api_key = api_key;
  co.x_title = "llmcache warm";
  co.request_timeout = std::chrono::seconds(args.timeout_s);
  Result<std::shared_ptr<net::Client>> client =
      net::Client::Create(ioc.get_executor(), co);
  if (!client.ok()) {
    guard.reset();
    io_thread.join();
    io.err << "llmcache warm: " << client.status() << "\n";
    return kExitUsage;
  }
  net::CachedClientOptions cco;
  cco.mode = *mode;
  if (args.ttl_s) cco.ttl_ms = *args.ttl_s * 1000;
  cco.default_namespace = args.ns;
  std::shared_ptr<net::CachedClient> cached =
      net::CachedClient::Create(cache, *client, std::move(cco));

  // Prepare (key and decide) every request before touching the network: a
  // malformed line is reported by number and skipped; what would bypass or
  // is cached already is not sent.
  const std::string scope = args.shared_cache ? "" : ApiKeyScope(api_key);
  struct Pending {
    uint64_t line;
    net::PreparedRequest request;
  };
  std::vector<Pending> to_send;
  uint64_t line_no = 0, requests = 0, malformed = 0, bypassed = 0, already = 0;
  std::map<std::string, uint64_t> bypass_reasons;
  {
    std::istringstream lines(*text);
    std::string line;
    while (std::getline(lines, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      ++requests;
      net::CachedRequest req;
      req.endpoint = *file_endpoint;
      req.body = std::move(line);
      req.scope = scope;
      if (std::string why = UnwrapEndpointLine(&req); !why.empty()) {
        ++malformed;
        io.err << "llmcache warm: line " << line_no << ": " << why
               << " (skipped)\n";
        continue;
      }
      Result<net::PreparedRequest> p = cached->Prepare(std::move(req));
      if (!p.ok()) {
        ++malformed;
        io.err << "llmcache warm: line " << line_no << ": "
               << p.status().message() << " (skipped)\n";
        continue;
      }
      if (!p->decision().cache) {
        ++bypassed;
        ++bypass_reasons[std::string(BypassReasonName(p->decision().reason))];
        continue;
      }
      if (cached->Probe(*p, /*count=*/false)) {
        ++already;
        continue;
      }
      to_send.push_back(Pending{line_no, std::move(*p)});
    }
  }

  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  uint64_t done = 0, stored = 0, joined = 0, not_stored = 0, failed = 0;
  std::map<std::string, uint64_t> not_stored_reasons;
  std::vector<std::string> failures;
  {
    Progress progress(io.err, io.stderr_is_tty, "warm", to_send.size());
    for (Pending& p : to_send) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return in_flight < args.concurrency; });
        ++in_flight;
      }
      const uint64_t line = p.line;
      cached->Complete(
          std::move(p.request), nullptr,
          [&, line](Result<net::CachedResponse> r) {
            std::lock_guard<std::mutex> lock(mu);
            ++done;
            if (!r.ok()) {
              ++failed;
              failures.push_back("line " + std::to_string(line) + ": " +
                                 r.status().ToString());
            } else if (r->status != 200) {
              ++failed;
              failures.push_back("line " + std::to_string(line) +
                                 ": upstream status " +
                                 std::to_string(r->status));
            } else if (r->stored) {
              ++stored;
            } else if (r->result == net::CacheResult::kHit &&
                       !r->joined_flight) {
              ++already;  // an embeddings batch whose inputs were all cached
            } else if (r->result == net::CacheResult::kHit ||
                       r->joined_flight) {
              ++joined;
            } else {
              ++not_stored;
              ++not_stored_reasons[r->not_stored_reason.empty()
                                       ? std::string(
                                             net::CacheResultName(r->result))
                                       : r->not_stored_reason];
            }
            --in_flight;
            cv.notify_all();
          });
      std::lock_guard<std::mutex> lock(mu);
      progress.Update(done);
    }
    std::unique_lock<std::mutex> lock(mu);
    while (in_flight > 0) {
      cv.wait_for(lock, std::chrono::milliseconds(100));
      progress.Update(done);
    }
  }
  guard.reset();
  cached.reset();
  io_thread.join();

  for (const std::string& f : failures)
    io.err << "llmcache warm: " << f << "\n";
  if (args.json) {
    json::object br, nsr;
    for (const auto& [k, v] : bypass_reasons) br[k] = v;
    for (const auto& [k, v] : not_stored_reasons) nsr[k] = v;
    PrintJsonLine(json::object{{"requests", requests},
                               {"already_cached", already},
                               {"sent", to_send.size()},
                               {"stored", stored},
                               {"duplicates", joined},
                               {"not_stored", not_stored},
                               {"not_stored_reasons", std::move(nsr)},
                               {"failed", failed},
                               {"bypassed", bypassed},
                               {"bypass_reasons", std::move(br)},
                               {"malformed", malformed}},
                  io.out);
  } else {
    io.out << "requests        " << requests << "\n"
           << "already cached  " << already << "\n"
           << "sent upstream   " << to_send.size() << "\n"
           << "stored          " << stored << "\n";
    if (joined > 0) io.out << "duplicates      " << joined << "\n";
    io.out << "not stored      " << not_stored;
    for (const auto& [k, v] : not_stored_reasons) {
      io.out << " (" << k << ": " << v << ")";
    }
    io.out << "\n"
           << "failed          " << failed << "\n"
           << "not cacheable   " << bypassed;
    for (const auto& [k, v] : bypass_reasons) {
      io.out << " (" << k << ": " << v << ")";
    }
    io.out << "\n";
    if (malformed > 0) io.out << "malformed lines " << malformed << "\n";
  }
  return (failed > 0 || malformed > 0) ? kExitFailure : kExitOk;
}

}  // namespace llmcache::cli
