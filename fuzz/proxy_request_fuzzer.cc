// Fuzz target: the caching proxy's request handling without sockets. The
// input is what a client sends on one connection: requests are parsed as
// session.cc parses them (a Beast request_parser<string_body> per request,
// with the proxy's default header and body limits, bytes fed as they are
// buffered, keep-alive requests one after the other), routed as session.cc
// routes them, and a chat completion goes through ReadCompletionHeaders
// (completion_request.h) and CachedClient::Prepare and Probe on a
// memory-mode cache whose client points nowhere: nothing is ever sent. A
// miss that would be stored is stored with a canned completion, so a repeat
// of the request in the same input is a hit. Admin requests are validated
// (ValidateAdminRequest) and run on that cache.
//
// Invariants checked: never a crash; errors are a 4xx answer with a message;
// a prepared request has a 64-hex key equal to KeyBuilder's key of the body
// under the namespace and the tenant scope the headers name (the key of
// `llmcache key`); a hit of a stream request has replay events ending in
// [DONE]; an admin purge on a memory-mode cache answers 200. Each input
// starts from an empty cache: no state carries over between inputs.

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>
#include <forward_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "access.h"
#include "admin.h"
#include "completion_request.h"
#include "fuzz_check.h"
#include "llmcache/cache.h"
#include "llmcache/key.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/client.h"
#include "llmcache/net/proxy.h"
#include "proxy_util.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using llmcache::net::CachedClient;
using llmcache::net::CachedRequest;
using llmcache::net::CacheResult;
using llmcache::net::proxy::CompletionHeaderOptions;
using llmcache::net::proxy::ScopeMemo;

constexpr std::string_view kAdminToken = "fuzz-admin-token";
constexpr std::string_view kServerKey = "sk-fuzz-server-key";
// A clean completion, stored for every miss that would be stored.
constexpr std::string_view kCannedCompletion =
    R"({"id":"gen-fuzz","object":"chat.completion","created":1767225600,)"
    R"("model":"openai/gpt-4o-mini","provider":"OpenAI","choices":[{"index":0,)"
    R"("message":{"role":"assistant","content":"Hello there"},)"
    R"("finish_reason":"stop","native_finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}})";
// Requests handled per input at most (one connection's keep-alive run).
constexpr int kMaxRequests = 16;

std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

struct Shared {
  asio::io_context ioc;
  std::shared_ptr<llmcache::net::Client> client;
  llmcache::KeyBuilder keys;
  llmcache::net::proxy::AccessPolicy access;  // serve's defaults
};

// The upstream client, created once: it never connects (no Complete call).
Shared& GetShared() {
  static Shared* const shared = [] {
    auto* s = new Shared;
    llmcache::net::ClientOptions o;
    o.base_url = "http://127.0.0.1:9/api/v1";
    o.api_key = std::string(kServerKey);
    auto client = llmcache::net::Client::Create(s->ioc.get_executor(), o);
    FUZZ_CHECK(client.ok());
    s->client = *client;
    auto access =
        llmcache::net::proxy::MakeAccessPolicy(llmcache::net::ProxyOptions{});
    FUZZ_CHECK(access.ok());
    s->access = std::move(*access);
    return s;
  }();
  return *shared;
}

class Connection {
 public:
  Connection(std::shared_ptr<llmcache::Cache> cache, bool shared_cache)
      : cache_(cache), shared_cache_(shared_cache) {
    llmcache::net::CachedClientOptions o;
    o.log = [](std::string_view) {};
    cached_ = CachedClient::Create(std::move(cache), GetShared().client, o);
  }

  // Handles one parsed request as session.cc's Handle() does.
  void Handle(http::request<http::string_body>& req) {
    const std::string_view target = Sv(req.target());
    const size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    const std::string_view query =
        q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    const http::verb method = req.method();
    if (path == "/v1/chat/completions" || path == "/api/v1/chat/completions") {
      if (method == http::verb::post) HandleChat(req);
      return;
    }
    if (path == "/v1/models" || path == "/api/v1/models") {
      (void)llmcache::net::proxy_util::BearerToken(
          Sv(req[http::field::authorization]));
      return;
    }
    if (path.starts_with("/admin/")) {
      HandleAdmin(req, path.substr(7), query);
      return;
    }
  }

 private:
  void HandleChat(http::request<http::string_body>& req) {
    std::forward_list<std::string> joined;  // as session.cc reads them
    const auto find = [&req, &joined](std::string_view name) {
      return llmcache::net::proxy::FindJoined(req, name, &joined);
    };
    // Who may send it (session.cc's Admit), before anything else.
    llmcache::net::proxy::AccessRequest ar;
    ar.route = llmcache::net::metrics::Route::kChatCompletions;
    ar.method = Sv(req.method_string());
    ar.version = static_cast<int>(req.version());
    ar.repeated = llmcache::net::proxy::RepeatedField(req);
    ar.host = find("Host");
    ar.origin = find("Origin");
    ar.sec_fetch_site = find("Sec-Fetch-Site");
    ar.access_control_request_method = find("Access-Control-Request-Method");
    ar.authorization = find("Authorization");
    ar.token = find("X-Llmcache-Token");
    auto checked = llmcache::net::proxy::CheckAccess(GetShared().access, ar);
    if (auto* error =
            std::get_if<llmcache::net::proxy_util::HttpError>(&checked)) {
      FUZZ_CHECK(error->status == 400 || error->status == 401 ||
                 error->status == 403);
      // A refused request never carries a page's Origin through.
      return;
    }
    const auto& access = std::get<llmcache::net::proxy::Access>(checked);
    if (access.preflight) return;
    // Whatever the headers, a request let in has a Host this proxy answers
    // to and no foreign Origin.
    FUZZ_CHECK(ar.host.has_value() || req.version() < 11);
    FUZZ_CHECK(!ar.origin.has_value());
    CachedRequest creq;
    CompletionHeaderOptions options;
    options.shared_cache = shared_cache_;
    options.server_key = kServerKey;
    options.api_key = access.api_key;
    const llmcache::Status headers =
        llmcache::net::proxy::ReadCompletionHeaders(find, options, &memo_,
                                                    &creq);
    if (!headers.ok()) {
      FUZZ_CHECK(headers.code() == llmcache::StatusCode::kInvalidArgument);
      FUZZ_CHECK(!headers.message().empty());
      (void)llmcache::net::proxy_util::ErrorJson(400, "invalid_request_error",
                                                 headers.message());
      return;
    }
    // The scope the tenant's key gives, as the README documents it.
    const std::string_view token = access.api_key;
    const std::string scope =
        shared_cache_
            ? std::string()
            : llmcache::ApiKeyScope(token.empty() ? kServerKey : token);
    FUZZ_CHECK(creq.scope == scope);
    const std::string ns = creq.ns;
    creq.body = std::move(req.body());
    const std::string body = creq.body;

    auto prepared = cached_->Prepare(std::move(creq));
    if (!prepared.ok()) {
      FUZZ_CHECK(prepared.status().code() ==
                 llmcache::StatusCode::kInvalidArgument);
      FUZZ_CHECK(!prepared.status().message().empty());
      // Rejected by the key builder, or keyed but with an empty model or
      // no messages (Prepare's own checks).
      llmcache::RequestInfo info;
      const auto key =
          GetShared().keys.Compute(body, llmcache::KeyScope{ns, scope}, &info);
      FUZZ_CHECK(!key.ok() || info.model.empty() || info.message_count == 0);
      return;
    }
    llmcache::net::PreparedRequest& p = *prepared;
    FUZZ_CHECK(p.key_hex().size() == 64 && IsLowerHex(p.key_hex()));
    const auto expected =
        GetShared().keys.Compute(body, llmcache::KeyScope{ns, scope});
    FUZZ_CHECK(expected.ok() && expected->digest == p.key().digest);

    std::string extra;
    if (std::optional<llmcache::net::CacheHit> hit = cached_->Probe(p)) {
      FUZZ_CHECK(p.decision().cache);
      FUZZ_CHECK(hit->entry != nullptr &&
                 hit->entry->body == kCannedCompletion);
      if (p.streaming()) {
        FUZZ_CHECK(!hit->events.empty() &&
                   hit->events.back() == "data: [DONE]\n\n");
      }
      llmcache::net::proxy::AppendCacheHeaders(&extra, CacheResult::kHit,
                                               llmcache::BypassReason::kNone,
                                               p.key_hex(), hit->age_ms);
      return;
    }
    const CacheResult result =
        p.decision().cache ? CacheResult::kMiss : CacheResult::kBypass;
    llmcache::net::proxy::AppendCacheHeaders(
        &extra, result, p.decision().reason, p.key_hex(), 0);
    // The upstream's answer, stored as the cached client would store it.
    if (p.decision().cache && !p.request().no_store) {
      llmcache::InsertOptions o;
      o.ns = p.request().ns;
      o.ttl_ms = p.request().ttl_ms;
      FUZZ_CHECK(cache_->Insert(p.key(), kCannedCompletion, o).ok());
    }
  }

  void HandleAdmin(const http::request<http::string_body>& req,
                   std::string_view op, std::string_view query) {
    llmcache::net::proxy::AdminAction action =
        llmcache::net::proxy::ValidateAdminRequest(
            {op, Sv(req.method_string()), Sv(req[http::field::authorization]),
             query},
            kAdminToken);
    if (auto* error =
            std::get_if<llmcache::net::proxy_util::HttpError>(&action)) {
      FUZZ_CHECK(error->status >= 400 && error->status < 500);
      FUZZ_CHECK(!error->message.empty());
      return;
    }
    const llmcache::net::proxy::AdminAnswer answer =
        llmcache::net::proxy::RunAdminPurge(
            *cache_, std::get<llmcache::PurgeSelector>(action),
            [](llmcache::net::LogLevel, std::string_view) {});
    FUZZ_CHECK(answer.status == 200);
  }

  std::shared_ptr<llmcache::Cache> cache_;
  const bool shared_cache_;
  std::shared_ptr<CachedClient> cached_;
  ScopeMemo memo_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const llmcache::net::ProxyOptions defaults;
  llmcache::CacheOptions cache_options;
  auto cache = llmcache::Cache::Open(cache_options);
  FUZZ_CHECK(cache.ok());
  // The last byte picks --shared-cache, so both modes are fuzzed.
  const bool shared_cache = size > 0 && (data[size - 1] & 1) != 0;
  Connection conn(std::shared_ptr<llmcache::Cache>(std::move(*cache)),
                  shared_cache);

  size_t pos = 0;
  for (int i = 0; i < kMaxRequests && pos < size; ++i) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(defaults.max_header_bytes));
    parser.body_limit(defaults.max_body_bytes);
    beast::error_code ec;
    // As session.cc: the header once it is all buffered, then the body
    // bytes buffered with it.
    while (!parser.is_done() && pos < size) {
      const size_t n = parser.put(asio::buffer(data + pos, size - pos), ec);
      pos += n;
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec || n == 0) break;
    }
    if (ec) {
      // 431, 413 or 400, and the connection closes.
      FUZZ_CHECK(!ec.message().empty());
      return 0;
    }
    if (!parser.is_done()) return 0;  // waits for more, then times out
    http::request<http::string_body> req = parser.release();
    const bool keep_alive = req.keep_alive();
    conn.Handle(req);
    if (!keep_alive) return 0;
  }
  return 0;
}
