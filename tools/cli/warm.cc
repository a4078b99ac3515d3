// warm: fills a cache from a file of requests through the cached client's
// pipeline (Prepare, an uncounted Probe to skip what is cached, Complete), or,
// with --proxy, through a running `llmcache serve` that holds the database:
// the database is then only read (an inspection) to skip what is cached, and
// each other request is sent to the proxy, which stores its answer.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "cli/json_print.h"
#include "cli/progress.h"
#include "cli/util.h"
#include "cli/verbs.h"
#include "llmcache/cache.h"
#include "llmcache/key.h"  // ApiKeyScope
#include "llmcache/net/cached_client.h"
#include "llmcache/net/client.h"
#include "llmcache/net/endpoint.h"
#include "llmcache/net/json_util.h"
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
  json::value v = net::json_util::ParseJson(req->body, ec);
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

// How one request ended, from the cached client or from the proxy.
struct Outcome {
  enum Kind {
    kStored,
    kAlready,
    kJoined,
    kNotStored,
    kFailed,
    kBypassed,
    kStreamed,  // proxy: a stream answered; stored only if it ended cleanly
  };
  Kind kind = kFailed;
  std::string reason;    // kNotStored, kBypassed: why; kFailed: the error
  bool refused = false;  // kFailed: the proxy refused the credentials
};

// The base URL of the proxy's API: `url` with "/v1" when it names no path
// ("http://127.0.0.1:8080"), else as given without trailing slashes; "" when
// ParseProxyUrl refuses it.
std::string ProxyBaseUrl(const std::string& url) {
  const std::optional<ProxyUrl> u = ParseProxyUrl(url);
  if (!u) return "";
  return u->root + (u->path.empty() ? "/v1" : u->path);
}

// `body` (a JSON object) without its `stream` and `stream_options` members,
// or nullopt if it cannot be rewritten.
std::optional<std::string> WithoutStream(const std::string& body) {
  boost::system::error_code ec;
  json::value v = net::json_util::ParseJson(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  v.as_object().erase("stream");
  v.as_object().erase("stream_options");
  return json::serialize(v);
}

// The proxy's answer, read from its X-Cache headers (README: Answers).
Outcome FromProxy(const Result<net::Response>& r) {
  Outcome o;
  if (!r.ok()) {
    o.reason = "proxy: " + r.status().ToString();
    return o;
  }
  const std::string_view cache = r->header("x-cache");
  if (r->status != 200) {
    o.refused = r->status == 401 || r->status == 403;
    o.reason = "status " + std::to_string(r->status) + " from the proxy";
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    const json::value* error =
        !ec && v.is_object() ? v.as_object().if_contains("error") : nullptr;
    const json::value* message = error != nullptr && error->is_object()
                                     ? error->as_object().if_contains("message")
                                     : nullptr;
    if (message != nullptr && message->is_string()) {
      o.reason +=
          ": " + std::string(message->as_string().subview().substr(0, 300));
    }
    return o;
  }
  if (cache == "HIT") {
    o.kind = Outcome::kAlready;
  } else if (cache == "BYPASS") {
    o.kind = Outcome::kBypassed;
    o.reason = std::string(r->header("x-cache-bypass-reason"));
    if (o.reason.empty()) o.reason = "proxy";
  } else if (cache != "MISS") {
    o.reason = cache.empty() ? "the answer has no X-Cache header"
                             : "the answer's X-Cache is '" +
                                   std::string(cache.substr(0, 40)) + "'";
    o.reason += ": is this an llmcache proxy?";
  } else if (r->header("x-cache-stored") == "1") {
    o.kind = Outcome::kStored;
  } else if (r->header("x-cache-stored").empty() && r->streamed) {
    o.kind = Outcome::kStreamed;  // its headers came before its end
  } else {
    o.kind = Outcome::kNotStored;
    o.reason = "not stored by the proxy";
  }
  return o;
}

Outcome FromCachedClient(const Result<net::CachedResponse>& r) {
  Outcome o;
  if (!r.ok()) {
    o.reason = r.status().ToString();
  } else if (r->status != 200) {
    o.reason = "upstream status " + std::to_string(r->status);
  } else if (r->stored) {
    o.kind = Outcome::kStored;
  } else if (r->result == net::CacheResult::kHit && !r->joined_flight) {
    o.kind = Outcome::kAlready;  // an embeddings batch whose inputs were all
                                 // cached
  } else if (r->result == net::CacheResult::kHit || r->joined_flight) {
    o.kind = Outcome::kJoined;
  } else {
    o.kind = Outcome::kNotStored;
    o.reason = r->not_stored_reason.empty()
                   ? std::string(net::CacheResultName(r->result))
                   : r->not_stored_reason;
  }
  return o;
}

// The cache that `warm --proxy` reads to skip what is cached: the database
// opened for inspection, when a process holds it (the proxy) and the scope
// computed here can be the proxy's; else an empty one in memory, so that
// nothing is skipped on the word of a database or scope the proxy does not
// use (every request then goes to the proxy, which answers what it has).
// *checked says which.
std::shared_ptr<Cache> OpenToProbe(const std::string& db, const WarmArgs& args,
                                   bool has_api_key, const Io& io,
                                   bool* checked) {
  *checked = false;
  std::error_code ec;
  const char* why = nullptr;
  if (!has_api_key && !args.shared_cache) {
    why =
        "no $OPENROUTER_API_KEY: the proxy uses its own key, whose scope "
        "is not known here";
  } else if (!std::filesystem::exists(db + "/CURRENT", ec)) {
    why = "no database at --db";
  } else if (!FindLockHolder(db)) {
    why =
        "no process holds the database at --db, so it is not the "
        "proxy's";
  }
  if (why == nullptr) {
    std::unique_ptr<Cache> cache = OpenForReading(db, io);
    *checked = cache != nullptr;
    return std::shared_ptr<Cache>(std::move(cache));
  }
  io.err << "llmcache warm: " << why << " (" << db
         << "): not checking here what is cached; every request goes to the "
            "proxy, and what it has counts as its hits\n";
  CacheOptions memory;  // empty path: memory mode
  memory.memory_tier_bytes = 1u << 20;
  Result<std::unique_ptr<Cache>> cache = Cache::Open(memory);
  if (!cache.ok()) {
    io.err << "llmcache warm: " << cache.status() << "\n";
    return nullptr;
  }
  return std::shared_ptr<Cache>(std::move(*cache));
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
  const bool via_proxy = !args.proxy.empty();
  const std::string proxy_url = ProxyBaseUrl(args.proxy);
  if (via_proxy && proxy_url.empty()) {
    io.err << "llmcache warm: --proxy needs an http:// or https:// URL "
              "without query or user info, e.g. http://127.0.0.1:8080\n";
    return kExitUsage;
  }
  std::optional<std::string> text = ReadInput(args.input, io);
  if (!text) return kExitFailure;

  const char* env_key = std::getenv("OPENROUTER_API_KEY");
  const std::string api_key = env_key != nullptr ? env_key : "";
  std::shared_ptr<Cache> cache;
  bool checked_here = true;  // what is cached is looked up in `db`
  if (via_proxy) {
    cache = OpenToProbe(db, args, !api_key.empty(), io, &checked_here);
    if (!cache) return kExitFailure;
  } else {
    int rc = kExitOk;
    std::unique_ptr<Cache> owned =
        OpenForWriting(db, /*create=*/true, io, &rc, "warm");
    if (!owned) return rc;
    cache = std::move(owned);
  }

  boost::asio::io_context ioc;
  auto guard = boost::asio::make_work_guard(ioc);
  std::thread io_thread([&] { ioc.run(); });

  net::ClientOptions co;
  co.base_url = via_proxy ? proxy_url : args.upstream;
  co.extra_ca_file = args.ca_file;
  co.api_key = api_key;
  co.x_title = "llmcache warm";
  co.request_timeout = std::chrono::seconds(args.timeout_s);
  // --timeout is the deadline of one request, headers included (the
  // client's own 120 s headers deadline would cut a longer --timeout short;
  // the proxy answers a miss's headers only once the upstream has).
  co.headers_timeout = co.request_timeout;
  if (via_proxy) {
    // The proxy retries the upstream itself (a retry here would multiply
    // them).
    co.max_attempts = 2;
  }
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
  // malformed line is reported by number and skipped; what would bypass, is
  // cached already or repeats a line before it is not sent.
  const std::string scope = args.shared_cache ? "" : ApiKeyScope(api_key);
  struct Pending {
    uint64_t line;
    net::PreparedRequest request;
  };
  std::vector<Pending> to_send;
  std::set<Digest> queued;
  uint64_t line_no = 0, requests = 0, malformed = 0, bypassed = 0, already = 0;
  uint64_t joined = 0;  // duplicates: of a line before, or joined a flight
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
      // A repeat first, so that a run counts it the same whether or not
      // the line it repeats is cached.
      if (!queued.insert(p->key().digest).second) {
        ++joined;
        continue;
      }
      if (cached->Probe(*p, /*count=*/false)) {
        ++already;
        continue;
      }
      to_send.push_back(Pending{line_no, std::move(*p)});
    }
  }

  // Through the proxy: the request as a client of it sends it, with the
  // namespace and TTL as headers; the proxy keys, looks up and stores.
  auto send_to_proxy = [&](const net::PreparedRequest& p,
                           std::function<void(Outcome)> done) {
    net::Request r;
    r.path = std::string(net::UpstreamPath(p.endpoint()));
    r.body = p.request().body;
    if (p.streaming()) {
      // Sent whole when that keeps its key (`stream` is not part of it, but
      // a number might not survive the rewrite): a whole answer says whether
      // the proxy stored it (X-Cache-Stored), which a stream's headers
      // cannot.
      r.stream = true;
      if (std::optional<std::string> body = WithoutStream(r.body)) {
        net::CachedRequest whole = p.request();
        whole.body = std::move(*body);
        Result<net::PreparedRequest> q = cached->Prepare(std::move(whole));
        if (q.ok() && q->key().digest == p.key().digest) {
          r.body = q->request().body;
          r.stream = false;
        }
      }
    }
    if (!args.ns.empty()) r.headers.push_back({"X-Cache-Namespace", args.ns});
    if (args.ttl_s) {
      r.headers.push_back({"X-Cache-TTL", std::to_string(*args.ttl_s)});
    }
    if (!args.proxy_token.empty()) {
      r.headers.push_back({"X-Llmcache-Token", args.proxy_token});
    }
    (*client)->Send(std::move(r), nullptr,
                    [done = std::move(done)](Result<net::Response> resp) {
                      done(FromProxy(resp));
                    });
  };

  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  uint64_t done = 0, stored = 0, not_stored = 0, failed = 0;
  uint64_t proxy_hits = 0;
  // The proxy refused the credentials: the other lines would be refused too
  // (a wrong token is one error, not one per line); how many were not sent.
  bool refused = false;
  bool interrupted = false;  // by a signal: the rest not sent
  uint64_t not_sent = 0;
  std::vector<size_t> streamed;  // indexes in to_send: proxy streams
  std::map<std::string, uint64_t> not_stored_reasons;
  std::vector<std::string> failures;
  {
    Progress progress(io.err, io.stderr_is_tty, "warm", to_send.size());
    for (size_t i = 0; i < to_send.size(); ++i) {
      Pending& p = to_send[i];
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return in_flight < args.concurrency; });
        if (refused || InterruptSignal() != 0) {
          interrupted = !refused;
          not_sent = to_send.size() - i;
          break;
        }
        ++in_flight;
      }
      const uint64_t line = p.line;
      auto finish = [&, line, i](Outcome o) {
        std::lock_guard<std::mutex> lock(mu);
        ++done;
        switch (o.kind) {
          case Outcome::kStored:
            ++stored;
            break;
          case Outcome::kAlready:
            ++already;
            if (via_proxy) ++proxy_hits;
            break;
          case Outcome::kJoined:
            ++joined;
            break;
          case Outcome::kNotStored:
            ++not_stored;
            ++not_stored_reasons[o.reason];
            break;
          case Outcome::kBypassed:
            ++bypassed;
            ++bypass_reasons[o.reason];
            break;
          case Outcome::kFailed:
            ++failed;
            if (o.refused && refused) break;  // said once
            refused = refused || o.refused;
            failures.push_back("line " + std::to_string(line) + ": " +
                               o.reason);
            break;
          case Outcome::kStreamed:
            streamed.push_back(i);
            break;
        }
        --in_flight;
        cv.notify_all();
      };
      if (via_proxy) {
        send_to_proxy(p.request, std::move(finish));
      } else {
        // A stream request is read as the stream it is (and stored from its
        // events); nothing is done with them here.
        net::StreamHandler events;
        if (p.request.streaming()) {
          events = [](std::string_view) { return true; };
        }
        cached->Complete(std::move(p.request), std::move(events),
                         [finish = std::move(finish)](
                             Result<net::CachedResponse> r) mutable {
                           finish(FromCachedClient(r));
                         });
      }
      std::lock_guard<std::mutex> lock(mu);
      progress.Update(done);
    }
    std::unique_lock<std::mutex> lock(mu);
    while (in_flight > 0) {
      cv.wait_for(lock, std::chrono::milliseconds(100));
      progress.Update(done);
    }
  }
  // A stream's headers came before its end: whether the proxy stored it is
  // read from the database, once it has caught up with the proxy's writes.
  if (!streamed.empty()) {
    const bool caught_up = checked_here && cache->CatchUp().ok();
    for (size_t i : streamed) {
      if (caught_up && cached->Probe(to_send[i].request, /*count=*/false)) {
        ++stored;
      } else {
        ++not_stored;
        ++not_stored_reasons[caught_up ? "a stream the proxy did not store"
                                       : "a stream, not confirmed here"];
      }
    }
  }
  guard.reset();
  cached.reset();
  io_thread.join();

  for (const std::string& f : failures)
    io.err << "llmcache warm: " << f << "\n";
  if (not_sent > 0 && refused) {
    io.err << "llmcache warm: stopped: the proxy refused the credentials ("
              "its access token goes in $LLMCACHE_CLIENT_TOKEN or "
              "--client-token); "
           << not_sent << " requests not sent\n";
  }
  if (args.json) {
    json::object br, nsr;
    for (const auto& [k, v] : bypass_reasons) br[k] = v;
    for (const auto& [k, v] : not_stored_reasons) nsr[k] = v;
    json::object summary{{"requests", requests},
                         {"already_cached", already},
                         {"sent", to_send.size()},
                         {"stored", stored},
                         {"duplicates", joined},
                         {"not_stored", not_stored},
                         {"not_stored_reasons", std::move(nsr)},
                         {"failed", failed},
                         {"not_sent", not_sent},
                         {"bypassed", bypassed},
                         {"bypass_reasons", std::move(br)},
                         {"malformed", malformed}};
    if (via_proxy) {
      summary["via"] = "proxy";
      summary["proxy_hits"] = proxy_hits;
    }
    if (interrupted) summary["interrupted"] = InterruptName();
    PrintJsonLine(summary, io.out);
  } else {
    io.out << "requests        " << requests << "\n"
           << "already cached  " << already;
    if (proxy_hits > 0) io.out << " (" << proxy_hits << " found by the proxy)";
    io.out << "\n"
           << (via_proxy ? "sent to proxy   " : "sent upstream   ")
           << to_send.size() << "\n"
           << "stored          " << stored << "\n";
    if (joined > 0) io.out << "duplicates      " << joined << "\n";
    io.out << "not stored      " << not_stored;
    for (const auto& [k, v] : not_stored_reasons) {
      io.out << " (" << k << ": " << v << ")";
    }
    io.out << "\n"
           << "failed          " << failed << "\n";
    if (not_sent > 0) io.out << "not sent        " << not_sent << "\n";
    io.out << "not cacheable   " << bypassed;
    for (const auto& [k, v] : bypass_reasons) {
      io.out << " (" << k << ": " << v << ")";
    }
    io.out << "\n";
    if (malformed > 0) io.out << "malformed lines " << malformed << "\n";
  }
  if (interrupted) {
    io.err << "llmcache warm: interrupted (" << InterruptName()
           << "): " << not_sent
           << " requests not sent (those sent were answered first); the "
              "same warm again sends them\n";
    return InterruptExitCode();
  }
  return (failed > 0 || malformed > 0 || not_sent > 0) ? kExitFailure : kExitOk;
}

}  // namespace llmcache::cli
