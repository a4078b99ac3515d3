// Session: one client connection of the proxy, from accept to close. It
// reads HTTP/1.1 requests (Beast parser, size limits, 100-continue,
// timeouts), routes each to its handler (completions, /models, /healthz,
// /metrics, /stats, /admin/*) and writes the answer (whole, or as a live
// chunked stream), keeping the connection alive or closing it lingering.
// session.cc holds the implementation, session_state.h its states;
// ProxyImpl (server.h) creates sessions and closes them at shutdown.
//
// Thread safety: a session lives on its worker's thread; call its methods
// there only.

#ifndef LLMCACHE_NET_PROXY_SRC_SESSION_H_
#define LLMCACHE_NET_PROXY_SRC_SESSION_H_

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>

namespace llmcache::net::proxy {

class ProxyImpl;
struct Worker;

class Session {
 public:
  // A session for an accepted `socket` on `worker` (counted in the open
  // connections until it is destroyed). Not started, not registered.
  static std::shared_ptr<Session> Create(ProxyImpl& server, Worker& worker,
                                         boost::asio::ip::tcp::socket socket,
                                         uint64_t id);
  virtual ~Session() = default;

  // Starts reading the first request.
  virtual void Start() = 0;
  // Closes the connection unless a request is being answered (shutdown).
  virtual void CloseIfIdle() = 0;
  // Closes the connection now, cancelling a live upstream stream.
  virtual void CloseNow() = 0;

 protected:
  Session() = default;
};

}  // namespace llmcache::net::proxy

#endif  // LLMCACHE_NET_PROXY_SRC_SESSION_H_
