// Pure helpers of the caching proxy. See proxy_util.h.

#include "proxy_util.h"

#include <openssl/crypto.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>

#include "llmcache/key.h"
#include "llmcache/net/client.h"
#include "llmcache/net/completion.h"
#include "llmcache/net/endpoint.h"
#include "llmcache/net/json_util.h"

namespace llmcache::net::proxy_util {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// '+' is a space in a query string (form encoding), itself in a path.
std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      out.push_back(
          static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::optional<int64_t> ParseSeconds(std::string_view s) {
  s = Trim(s);
  if (s.empty() || s.size() > 12) return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 0) {
    return std::nullopt;
  }
  return v;
}

Result<CacheDirectives> ParseCacheControl(std::string_view value) {
  CacheDirectives d;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view item = Trim(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view()
                                            : value.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view name = Trim(item.substr(0, eq));
    std::string_view arg = eq == std::string_view::npos
                               ? std::string_view()
                               : Trim(item.substr(eq + 1));
    if (boost::beast::iequals(name, "no-cache")) {
      d.no_cache = true;
    } else if (boost::beast::iequals(name, "no-store")) {
      d.no_store = true;
    } else if (boost::beast::iequals(name, "only-if-cached")) {
      d.only_if_cached = true;
    } else if (boost::beast::iequals(name, "max-age")) {
      if (arg.size() >= 2 && arg.front() == '"' && arg.back() == '"') {
        arg = arg.substr(1, arg.size() - 2);
      }
      std::optional<int64_t> s = ParseSeconds(arg);
      if (!s && !arg.empty() &&
          arg.find_first_not_of("0123456789") == std::string_view::npos) {
        // Digits past what is represented: 2^31 (RFC 9111 1.2.2).
        s = int64_t{2147483648};
      }
      if (!s) {
        return InvalidArgumentError(
            "Cache-Control max-age must be a non-negative integer of seconds");
      }
      d.max_age_s = *s;
    }
  }
  return d;
}

bool OnlyIfCached(std::optional<std::string_view> cache_control) {
  if (!cache_control) return false;
  std::string_view value = *cache_control;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (boost::beast::iequals(Trim(value.substr(0, comma)), "only-if-cached")) {
      return true;
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool ValidNamespace(std::string_view ns) {
  if (ns.empty() || ns.size() > 128) return false;
  for (char c : ns) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> ParseQuery(
    std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view()
                                          : query.substr(amp + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    out.emplace_back(PercentDecode(item.substr(0, eq), true),
                     eq == std::string_view::npos
                         ? std::string()
                         : PercentDecode(item.substr(eq + 1), true));
  }
  return out;
}

std::string_view BearerToken(std::string_view authorization) {
  authorization = Trim(authorization);
  if (authorization.size() < 7 ||
      !boost::beast::iequals(authorization.substr(0, 7), "bearer ")) {
    return {};
  }
  return Trim(authorization.substr(7));
}

std::string_view RequestLineTarget(std::string_view parsed,
                                   std::string_view head) {
  if (!parsed.empty()) return parsed;
  const size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return {};
  const std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 =
      sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == 0 || sp2 == std::string_view::npos || sp2 == sp1 + 1 ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    return {};
  }
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  // Unparsed bytes: only a visible ASCII path, as a parser would take (it
  // goes into the log).
  if (target.front() != '/' ||
      !std::all_of(target.begin(), target.end(),
                   [](char c) { return c > 0x20 && c < 0x7F; })) {
    return {};
  }
  return target;
}

HeadRepair RepairRequestHead(char* head, size_t n, bool bad_version) {
  HeadRepair r;
  while (r.skip < n && (head[r.skip] == '\r' || head[r.skip] == '\n')) {
    ++r.skip;
  }
  if (r.skip != 0) {
    r.kind = HeadRepair::kRetry;
    return r;
  }
  if (!bad_version) return r;
  // The request line ends "SP HTTP/d.d", then CRLF (Beast refuses a version
  // before the CRLF has come).
  const void* lf = std::memchr(head, '\n', n);
  size_t len =
      lf ? static_cast<size_t>(static_cast<const char*>(lf) - head) : n;
  if (len != 0 && head[len - 1] == '\r') {
    --len;
  } else if (lf != nullptr) {
    return r;  // a bare LF
  }
  constexpr std::string_view kName = " HTTP/";
  if (len < kName.size() + 3) return r;
  char* const v = head + len - 3;  // "d.d"
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (std::string_view(v - kName.size(), kName.size()) != kName ||
      !digit(v[0]) || v[1] != '.' || !digit(v[2])) {
    return r;
  }
  if (v[0] != '1') {
    r.kind = HeadRepair::kVersionNotSupported;
  } else if (v[2] > '1') {
    v[2] = '1';
    r.kind = HeadRepair::kRetry;
  }
  return r;
}

TargetParts SplitTarget(std::string_view target) {
  TargetParts t;
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() &&
        boost::beast::iequals(target.substr(0, scheme.size()), scheme)) {
      target.remove_prefix(scheme.size());
      const size_t end = target.find_first_of("/?#");
      t.authority = target.substr(0, end);
      target = end == std::string_view::npos ? std::string_view()
                                             : target.substr(end);
      if (target.empty() || target.front() != '/') {
        static constexpr std::string_view kRoot = "/";
        const std::string_view rest = target;
        t.path = kRoot;
        if (!rest.empty() && rest.front() == '?') t.query = rest.substr(1);
        return t;
      }
      break;
    }
  }
  const size_t q = target.find('?');
  t.path = target.substr(0, q);
  if (q != std::string_view::npos) t.query = target.substr(q + 1);
  return t;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  const Digest da = Sha256(a);
  const Digest db = Sha256(b);
  return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

std::optional<std::string> ModelIdOfPath(std::string_view path) {
  for (std::string_view prefix : {"/v1/models/", "/api/v1/models/"}) {
    if (!path.starts_with(prefix) || path.size() == prefix.size()) continue;
    return PercentDecode(path.substr(prefix.size()), /*plus_is_space=*/false);
  }
  return std::nullopt;
}

std::optional<std::unordered_map<std::string, std::string>> IndexModels(
    std::string_view list) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(list, ec);
  const boost::json::object* root = ec ? nullptr : v.if_object();
  const boost::json::value* data = root ? root->if_contains("data") : nullptr;
  if (data == nullptr || !data->is_array()) return std::nullopt;
  std::unordered_map<std::string, std::string> by_id;
  for (const boost::json::value& m : data->get_array()) {
    const boost::json::value* id =
        m.is_object() ? m.get_object().if_contains("id") : nullptr;
    if (id == nullptr || !id->is_string()) continue;
    by_id.emplace(std::string(id->get_string()), json_util::Serialize(m));
  }
  return by_id;
}

std::string ErrorJson(int status, std::string_view type,
                      std::string_view message) {
  boost::json::object error;
  error["message"] = message;
  error["type"] = type;
  error["code"] = status;
  boost::json::object root;
  root["error"] = std::move(error);
  return boost::json::serialize(root);
}

std::string AnthropicErrorJson(int status, std::string_view message) {
  // Anthropic's error types by status (its API reference, "Errors"); any
  // other 4xx is the request's fault, any other status the API's.
  std::string_view type =
      status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
  switch (status) {
    case 401:
      type = "authentication_error";
      break;
    case 402:
      type = "billing_error";
      break;
    case 403:
      type = "permission_error";
      break;
    case 404:
      type = "not_found_error";
      break;
    case 413:
      type = "request_too_large";
      break;
    case 429:
      type = "rate_limit_error";
      break;
    case 408:  // the upstream (OpenRouter) timed the request out
    case 504:
    case 524:  // a timeout at OpenRouter's edge
      type = "timeout_error";
      break;
    case 503:
    case 529:
      type = "overloaded_error";
      break;
    default:
      break;
  }
  boost::json::object error;
  error["type"] = type;
  error["message"] = message;
  boost::json::object root;
  root["type"] = "error";
  root["error"] = std::move(error);
  return boost::json::serialize(root);
}

std::optional<std::string> AnthropicErrorFromUpstream(int status,
                                                      std::string_view body) {
  try {
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(body, ec);
    if (ec || !v.is_object() || v.as_object().contains("type")) {
      return std::nullopt;
    }
    const boost::json::value* error = v.as_object().if_contains("error");
    if (error == nullptr || !error->is_object()) return std::nullopt;
    const boost::json::value* message =
        error->as_object().if_contains("message");
    return AnthropicErrorJson(status,
                              message != nullptr && message->is_string()
                                  ? std::string_view(message->as_string())
                                  : std::string_view("upstream error"));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

HttpError MethodNotAllowed(std::string_view allow) {
  HttpError e;
  e.status = 405;
  e.type = "invalid_request_error";
  e.message = "method not allowed; use " + std::string(allow);
  AppendHeader(&e.extra_headers, "Allow", allow);
  return e;
}

HttpError MalformedHead(const HeadRepair& fix, std::string_view why) {
  if (fix.kind == HeadRepair::kVersionNotSupported) {
    return {505,
            "invalid_request_error",
            "only HTTP/1.0 and HTTP/1.1 are served",
            {}};
  }
  return {400,
          "invalid_request_error",
          "malformed HTTP request: " + std::string(why),
          {}};
}

HttpError BodyTooLarge(size_t max_body_bytes) {
  return {
      413,
      "request_too_large",
      "request body larger than " + std::to_string(max_body_bytes) + " bytes",
      {}};
}

HttpError HeadTooLarge(size_t max_header_bytes) {
  return {431,
          "request_header_fields_too_large",
          "request headers larger than " + std::to_string(max_header_bytes) +
              " bytes",
          {}};
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 524:
      return "A Timeout Occurred";
    case 529:
      return "Site Overloaded";
    default:
      return "Unknown";
  }
}

void AppendHeader(std::string* out, std::string_view name,
                  std::string_view value) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

void AppendResponseHead(std::string* out, int status,
                        std::string_view content_type, int64_t content_length,
                        bool keep_alive, std::string_view extra,
                        std::string_view extra2) {
  char num[24];
  out->append("HTTP/1.1 ");
  auto r = std::to_chars(num, num + sizeof(num), status);
  out->append(num, r.ptr);
  out->push_back(' ');
  out->append(ReasonPhrase(status));
  out->append("\r\nServer: llmcache\r\n");
  if (!content_type.empty()) AppendHeader(out, "Content-Type", content_type);
  if (status == 204 || status == 304 || content_length == kUntilClose) {
    // No body, and no framing headers (RFC 9110, 8.6 and 15.3.5), or a body
    // that the closing connection ends (RFC 9112, 6.3, item 8).
  } else if (content_length >= 0) {
    out->append("Content-Length: ");
    r = std::to_chars(num, num + sizeof(num), content_length);
    out->append(num, r.ptr);
    out->append("\r\n");
  } else {
    out->append("Transfer-Encoding: chunked\r\n");
  }
  out->append(keep_alive ? "Connection: keep-alive\r\n"
                         : "Connection: close\r\n");
  out->append(extra);
  out->append(extra2);
  out->append("\r\n");
}

size_t ConnectionCap(size_t requested, uint64_t fd_limit, uint64_t reserve) {
  if (fd_limit == 0) return std::max<size_t>(1, requested);
  const uint64_t room = fd_limit > reserve ? (fd_limit - reserve) / 2 : 0;
  return static_cast<size_t>(
      std::max<uint64_t>(1, std::min<uint64_t>(requested, room)));
}

void AppendChunk(std::string* out, std::string_view bytes) {
  if (bytes.empty()) return;
  char num[20];
  auto r = std::to_chars(num, num + sizeof(num), bytes.size(), 16);
  out->append(num, r.ptr);
  out->append("\r\n");
  out->append(bytes);
  out->append("\r\n");
}

void AppendSseChunk(std::string* out, std::string_view data) {
  char num[20];
  auto r = std::to_chars(num, num + sizeof(num), data.size() + 8, 16);
  out->append(num, r.ptr);
  out->append("\r\ndata: ");
  out->append(data);
  out->append("\n\n\r\n");
}

void AppendStreamBytes(std::string* out, std::string_view bytes, bool chunked) {
  if (chunked) return AppendChunk(out, bytes);
  out->append(bytes);
}

void StreamBody(const std::vector<std::string>& events, bool chunked,
                std::string* out) {
  out->clear();
  for (const std::string& e : events) AppendStreamBytes(out, e, chunked);
  if (chunked) out->append(kLastChunk);
}

void AppendSseEvent(std::string* out, std::string_view data, bool chunked) {
  if (chunked) return AppendSseChunk(out, data);
  out->append("data: ");
  out->append(data);
  out->append("\n\n");
}

std::string AccessLogLine(std::string_view method, std::string_view path,
                          int status, std::string_view result, double ms,
                          std::string_view note) {
  auto field = [](std::string_view s) { return s.empty() ? "-" : s; };
  std::string line;
  line.reserve(64 + std::min<size_t>(path.size(), 200) + note.size());
  line.append(field(method));
  line += ' ';
  line.append(field(path.substr(0, 200)));
  line += ' ';
  line.append(std::to_string(status));
  line += ' ';
  line.append(field(result));
  char took[32];
  std::snprintf(took, sizeof(took), " %.3fms", ms);
  line.append(took);
  if (!note.empty()) {
    line.append(" (");
    line.append(note);
    line += ')';
  }
  return line;
}

std::string StreamBrokenNote(const Result<CachedResponse>& r) {
  if (r.ok()) return "stream cut upstream before its end";
  std::string note = "stream broken: ";
  const Status status = r.status();  // a copy: message() points into it
  const std::string_view why = status.message();
  for (size_t i = 0; i < why.size() && i < 160; ++i) {
    const char c = why[i];
    note += c >= 0x20 && c < 0x7F ? c : '?';
  }
  return note;
}

InBandAnswer AnswerEvents(Endpoint endpoint, const Result<CachedResponse>& r) {
  if (r.ok() && r->status == 200) {
    if (Result<std::vector<std::string>> events =
            ReplayEvents(endpoint, r->body);
        events.ok()) {
      return {std::move(*events), 0};
    }
  }
  const bool messages = endpoint == Endpoint::kMessages;
  if (r.ok()) {
    const int status = r->status == 200 ? 502 : r->status;
    if (messages) {
      if (std::optional<std::string> a =
              AnthropicErrorFromUpstream(status, r->body)) {
        return {{std::move(*a)}, status};
      }
    }
    // Already an error envelope (on Messages: already Anthropic's).
    if (ParseErrorEnvelope(r->body).has_value()) return {{r->body}, status};
    const std::string m = "upstream answered " + std::to_string(r->status) +
                          " with no error envelope";
    return {{messages ? AnthropicErrorJson(status, m)
                      : ErrorJson(status, "upstream_error", m)},
            status};
  }
  const HttpError e = CompletionFailure(r.status());
  return {{messages ? AnthropicErrorJson(e.status, e.message)
                    : ErrorJson(e.status, e.type, e.message)},
          e.status};
}

HttpError CompletionFailure(const Status& s) {
  const std::string m(s.message());
  if (s.code() == StatusCode::kInvalidArgument) {
    return HttpError{400, "invalid_request_error", m, {}};
  }
  // The OpenAI and Anthropic SDKs retry a 5xx unless told not to: not a
  // call the upstream may have billed, nor one already retried here.
  std::string no_retry = RepeatingMayBill(s) ? "X-Should-Retry: false\r\n" : "";
  if (s.code() == StatusCode::kDeadlineExceeded) {
    return HttpError{504, "upstream_timeout", "upstream timed out: " + m,
                     std::move(no_retry)};
  }
  if (IsNotCached(s)) {
    // RFC 9111 5.2.1.7: a 504; asking again cannot help.
    return HttpError{504, "not_cached", m, "X-Should-Retry: false\r\n"};
  }
  return HttpError{502, "upstream_error", "upstream failed: " + m,
                   std::move(no_retry)};
}

bool PeerClosed(int fd) {
  char c;
  const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n >= 0) return n == 0;
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace llmcache::net::proxy_util
