// The blocking test HTTP client: Beast over a beast::tcp_stream whose
// asynchronous operations are driven to completion one at a time, so that
// the stream's expiry bounds every operation. See http_client.h.

#include "testing/http_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <optional>
#include <utility>

namespace llmcache::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

bool HasHeader(const HttpHeaders& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (beast::iequals(h.first, name)) return true;
  }
  return false;
}

constexpr uint64_t kBodyLimit = 64u << 20;
constexpr uint32_t kHeaderLimit = 1u << 20;

}  // namespace

std::string HttpReply::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (beast::iequals(h.first, name)) return h.second;
  }
  return "";
}

bool HttpReply::has_header(std::string_view name) const {
  return HasHeader(headers, name);
}

size_t HttpReply::header_count(std::string_view name) const {
  size_t n = 0;
  for (const auto& h : headers) {
    if (beast::iequals(h.first, name)) ++n;
  }
  return n;
}

struct HttpConnection::Impl {
  explicit Impl(std::chrono::milliseconds t) : timeout(t) {}

  // Starts an operation with a completion handler `done(ec, ...)` under the
  // deadline and runs the io_context until it has completed.
  template <class Start>
  beast::error_code Run(Start&& start) {
    beast::error_code result = asio::error::operation_aborted;
    bool finished = false;
    stream.expires_after(timeout);
    start([&](beast::error_code ec, auto&&...) {
      result = ec;
      finished = true;
    });
    ioc.restart();
    while (!finished && ioc.run_one() > 0) {
    }
    stream.expires_never();
    return result;
  }

  // Records the outcome of an operation; true if it succeeded.
  bool Record(const beast::error_code& ec) {
    error = ec ? ec.message() : "";
    if (ec && error.empty()) error = "error " + std::to_string(ec.value());
    timed_out = ec == beast::error::timeout;
    return !ec;
  }

  void NewParser() {
    parser.emplace();
    parser->body_limit(kBodyLimit);
    parser->header_limit(kHeaderLimit);
    handed_out = 0;
    failed = false;
  }

  HttpReply Failed() const {
    HttpReply r;
    r.error = error;
    r.timed_out = timed_out;
    return r;
  }

  // The response in the parser; the body only if `with_body`.
  HttpReply Head(bool with_body) {
    HttpReply r;
    const auto& res = parser->get();
    r.status = static_cast<int>(res.result_int());
    for (const auto& f : res) {
      r.headers.emplace_back(std::string(f.name_string()),
                             std::string(f.value()));
    }
    if (with_body) r.body = res.body();
    return r;
  }

  std::chrono::milliseconds timeout;
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  size_t handed_out = 0;  // body bytes already returned by ReadBodyPiece
  bool failed = false;    // the response being read broke off
  bool connected = false;
  std::string error;
  bool timed_out = false;
};

HttpConnection::HttpConnection(uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(timeout)) {
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  impl_->connected = impl_->Record(
      impl_->Run([&](auto done) { impl_->stream.async_connect(ep, done); }));
  if (!impl_->connected) impl_->error = "connect: " + impl_->error;
}

HttpConnection::~HttpConnection() {
  beast::error_code ignored;
  impl_->stream.socket().close(ignored);
}

bool HttpConnection::connected() const { return impl_->connected; }
const std::string& HttpConnection::error() const { return impl_->error; }
bool HttpConnection::timed_out() const { return impl_->timed_out; }
void HttpConnection::set_timeout(std::chrono::milliseconds timeout) {
  impl_->timeout = timeout;
}

bool HttpConnection::Write(std::string_view method, std::string_view target,
                           std::string_view body, const HttpHeaders& headers) {
  if (!impl_->connected) return false;
  http::request<http::string_body> req;
  req.version(11);
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    req.method_string(method);
  } else {
    req.method(verb);
  }
  req.target(target);
  if (!HasHeader(headers, "Host")) req.set(http::field::host, "127.0.0.1");
  const bool has_body = verb == http::verb::post || verb == http::verb::put ||
                        verb == http::verb::patch;
  if (has_body && !HasHeader(headers, "Content-Type")) {
    req.set(http::field::content_type, "application/json");
  }
  for (const auto& [name, value] : headers) req.insert(name, value);
  req.body() = body;
  if (has_body || !body.empty()) req.prepare_payload();
  return impl_->Record(impl_->Run(
      [&](auto done) { http::async_write(impl_->stream, req, done); }));
}

bool HttpConnection::WriteRaw(std::string_view bytes) {
  if (!impl_->connected) return false;
  return impl_->Record(impl_->Run([&](auto done) {
    asio::async_write(impl_->stream, asio::buffer(bytes.data(), bytes.size()),
                      done);
  }));
}

HttpReply HttpConnection::Send(std::string_view method, std::string_view target,
                               std::string_view body,
                               const HttpHeaders& headers) {
  if (!Write(method, target, body, headers)) return impl_->Failed();
  return Read();
}

HttpReply HttpConnection::Read() {
  if (!impl_->connected) return impl_->Failed();
  auto& p = impl_->parser;
  if (!p || !p->is_header_done() || p->is_done() || impl_->failed) {
    impl_->NewParser();
  }
  if (!impl_->Record(impl_->Run([&](auto done) {
        http::async_read(impl_->stream, impl_->buffer, *p, done);
      }))) {
    impl_->failed = true;
    return impl_->Failed();
  }
  HttpReply r = impl_->Head(/*with_body=*/true);
  impl_->handed_out = p->get().body().size();
  return r;
}

HttpReply HttpConnection::ReadHead() {
  if (!impl_->connected) return impl_->Failed();
  impl_->NewParser();
  auto& p = impl_->parser;
  if (!impl_->Record(impl_->Run([&](auto done) {
        http::async_read_header(impl_->stream, impl_->buffer, *p, done);
      }))) {
    impl_->failed = true;
    return impl_->Failed();
  }
  return impl_->Head(/*with_body=*/false);
}

bool HttpConnection::ReadBodyPiece(std::string* piece) {
  piece->clear();
  auto& p = impl_->parser;
  if (!p || !p->is_header_done()) {
    impl_->error = "ReadBodyPiece without a response head";
    return false;
  }
  for (;;) {
    const std::string& body = p->get().body();
    if (body.size() > impl_->handed_out) {
      piece->assign(body, impl_->handed_out);
      impl_->handed_out = body.size();
      return true;
    }
    if (impl_->failed || p->is_done()) return false;
    if (!impl_->Record(impl_->Run([&](auto done) {
          http::async_read_some(impl_->stream, impl_->buffer, *p, done);
        }))) {
      impl_->failed = true;  // hand out what came before the error, then stop
    }
  }
}

bool HttpConnection::body_complete() const {
  return impl_->parser && !impl_->failed && impl_->parser->is_done();
}

HttpReply HttpSend(uint16_t port, std::string_view method,
                   std::string_view target, std::string_view body,
                   const HttpHeaders& headers,
                   std::chrono::milliseconds timeout) {
  HttpConnection conn(port, timeout);
  if (!conn.connected()) {
    HttpReply r;
    r.error = conn.error();
    r.timed_out = conn.timed_out();
    return r;
  }
  return conn.Send(method, target, body, headers);
}

}  // namespace llmcache::testing
