// The admin endpoints' validation and purge. See admin.h.

#include "admin.h"

#include <boost/json.hpp>
#include <chrono>
#include <utility>

#include "llmcache/net/import_line.h"
#include "llmcache/net/json_util.h"

namespace llmcache::net::proxy {

namespace json = boost::json;
using proxy_util::HttpError;

namespace {

HttpError BadRequest(std::string message) {
  return HttpError{400, "invalid_request_error", std::move(message), {}};
}

// A failed admin action: 503 while the store cannot write (a full disk, a
// degraded store: worth retrying once it heals), else 500.
AdminAnswer Failed(const Status& s) {
  const bool transient = s.code() == StatusCode::kResourceExhausted ||
                         s.code() == StatusCode::kUnavailable;
  const int status = transient ? 503 : 500;
  return {status,
          proxy_util::ErrorJson(
              status, transient ? "service_unavailable" : "server_error",
              s.ToString())};
}

}  // namespace

AdminAction ValidateAdminRequest(const AdminRequest& request,
                                 std::string_view admin_token) {
  const std::string_view op = request.op;
  if (op != "flush" && op != "purge" && op != "compact" && op != "import") {
    return HttpError{
        404, "invalid_request_error", "no admin route " + std::string(op), {}};
  }
  if (request.method != "POST") return proxy_util::MethodNotAllowed("POST");
  const std::string_view token = proxy_util::BearerToken(request.authorization);
  if (token.empty() || !proxy_util::ConstantTimeEquals(token, admin_token)) {
    HttpError e{401,
                "authentication_error",
                "admin endpoints need Authorization: Bearer <admin token>",
                {}};
    proxy_util::AppendHeader(&e.extra_headers, "WWW-Authenticate", "Bearer");
    return e;
  }
  const auto params = proxy_util::ParseQuery(request.query);
  if (op == "compact" || op == "import") {
    if (!params.empty()) {
      return BadRequest(std::string(op) + " takes no parameters");
    }
    if (op == "import") return AdminImport{};
    return AdminCompact{};
  }
  if (params.size() != 1) {
    return BadRequest("give exactly one of model=M, all=1" +
                      std::string(op == "purge"
                                      ? ", key=HEX, namespace=NS, "
                                        "expired=1, older_than=DURATION"
                                      : ""));
  }
  Result<PurgeSelector> selector =
      ParsePurgeSelector(params[0].first, params[0].second);
  if (!selector.ok()) {
    return BadRequest(std::string(selector.status().message()));
  }
  if (op == "flush" && selector->kind != PurgeKind::kModel &&
      selector->kind != PurgeKind::kAll) {
    return BadRequest("flush takes model=M or all=1");
  }
  return std::move(selector).value();
}

AdminAnswer RunAdminPurge(Cache& cache, const PurgeSelector& sel,
                          const LogSink& log, SharedTier* shared) {
  // The shared tier first: purged locally first, a request in between could
  // refill the local tiers from the shared entry still valid there.
  Status shared_failed;
  json::object shared_out;
  if (shared != nullptr) {
    if (sel.kind == PurgeKind::kModel || sel.kind == PurgeKind::kAll) {
      Result<uint64_t> gen = sel.kind == PurgeKind::kAll
                                 ? shared->FlushAll()
                                 : shared->FlushModel(BaseModel(sel.value));
      if (gen.ok()) {
        shared_out["generation"] = *gen;
      } else {
        shared_failed = gen.status();
      }
    } else if (sel.kind == PurgeKind::kKey) {
      Result<Digest> digest = DigestFromHex(sel.value);
      Result<bool> gone = digest.ok() ? shared->PurgeKey(*digest)
                                      : Result<bool>(digest.status());
      if (gone.ok()) {
        shared_out["removed"] = *gone;
      } else {
        shared_failed = gone.status();
      }
    }
  }
  Result<uint64_t> removed = Purge(cache, sel);
  if (!removed.ok()) {
    log(LogLevel::kError,
        "admin " + sel.name + " failed: " + removed.status().ToString());
    return Failed(removed.status());
  }
  json::object out;
  if (sel.kind == PurgeKind::kAll || sel.kind == PurgeKind::kExpired) {
    out[sel.name] = true;
  } else {
    out[sel.name] = sel.value;
  }
  if (sel.kind == PurgeKind::kOlderThan) {
    out["older_than_seconds"] = sel.age_ms / 1000;
  }
  out["removed"] = *removed;
  log(LogLevel::kInfo, "admin " + sel.name + ": removed " +
                           std::to_string(*removed) + " entries");
  if (!shared_failed.ok()) {
    log(LogLevel::kError, "admin " + sel.name +
                              ": local tiers purged, shared tier failed: " +
                              shared_failed.ToString());
    // A timed-out command may still run when Redis answers again.
    const std::string maybe =
        shared_failed.code() == StatusCode::kDeadlineExceeded
            ? " (it may still be applied when Redis answers; repeating it is "
              "safe)"
            : "";
    return {503, proxy_util::ErrorJson(503, "service_unavailable",
                                       "local tiers purged (removed " +
                                           std::to_string(*removed) +
                                           "); the shared tier failed: " +
                                           shared_failed.ToString() + maybe)};
  }
  if (!shared_out.empty()) out["shared"] = std::move(shared_out);
  return {200, json_util::Serialize(out)};
}

AdminAnswer RunAdminCompact(Cache& cache, const LogSink& log) {
  const auto start = std::chrono::steady_clock::now();
  Status s = cache.Compact();
  if (!s.ok()) {
    log(LogLevel::kError, "admin compact failed: " + s.ToString());
    return Failed(s);
  }
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - start)
                         .count();
  log(LogLevel::kInfo, "admin compact: done in " + std::to_string(ms) + " ms");
  json::object out;
  out["compacted"] = true;
  out["ms"] = ms;
  return {200, json_util::Serialize(out)};
}

AdminAnswer RunAdminImport(Cache& cache, std::string_view body,
                           const LogSink& log) {
  constexpr size_t kMaxErrors = 20;
  const auto start = std::chrono::steady_clock::now();
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count();
  auto elapsed_ms = [&start] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now() - start)
        .count();
  };
  // A byte-order mark (editors on Windows write one) is not part of the
  // first line.
  if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);
  uint64_t lines = 0, imported = 0, expired = 0, malformed = 0, line_no = 0;
  json::array errors;
  ImportLine parsed;
  std::string error;
  while (!body.empty()) {
    const size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    ++lines;
    if (!ParseImportLine(line, now_ms, &parsed, &error)) {
      ++malformed;
      if (errors.size() < kMaxErrors) {
        errors.push_back(json::object{{"line", line_no}, {"error", error}});
      }
      continue;
    }
    if (parsed.options.expires_ms != 0 && parsed.options.expires_ms <= now_ms) {
      ++expired;
      continue;
    }
    parsed.options.ns = parsed.ns;
    parsed.options.resolved_model = parsed.resolved_model;
    if (Status s = cache.Insert(parsed.key, parsed.body, parsed.options);
        !s.ok()) {
      const std::string what = "storing the entry of line " +
                               std::to_string(line_no) + " failed (" +
                               std::to_string(imported) +
                               " entries before it stored): " + s.ToString();
      log(LogLevel::kError, "admin import: " + what);
      // ErrorJson's members, and where it stopped.
      const AdminAnswer failed = Failed(s);
      json::object failure{{"message", what},
                           {"type", failed.status == 503 ? "service_unavailable"
                                                         : "server_error"},
                           {"code", failed.status},
                           {"line", line_no},
                           {"imported", imported}};
      return {failed.status, json_util::Serialize(
                                 json::object{{"error", std::move(failure)}})};
    }
    ++imported;
  }
  json::object out;
  out["lines"] = lines;
  out["imported"] = imported;
  out["expired"] = expired;
  out["malformed"] = malformed;
  out["errors"] = std::move(errors);
  out["ms"] = elapsed_ms();
  log(LogLevel::kInfo, "admin import: " + std::to_string(imported) +
                           " entries stored, " + std::to_string(expired) +
                           " expired, " + std::to_string(malformed) +
                           " malformed lines");
  return {200, json_util::Serialize(out)};
}

AdminAnswer RunAdmin(Cache& cache, const AdminAction& action,
                     std::string_view body, const LogSink& log,
                     SharedTier* shared) {
  if (std::holds_alternative<AdminCompact>(action)) {
    return RunAdminCompact(cache, log);
  }
  if (std::holds_alternative<AdminImport>(action)) {
    return RunAdminImport(cache, body, log);
  }
  if (const auto* sel = std::get_if<PurgeSelector>(&action)) {
    return RunAdminPurge(cache, *sel, log, shared);
  }
  return {500,
          proxy_util::ErrorJson(500, "server_error", "not an admin action")};
}

}  // namespace llmcache::net::proxy
