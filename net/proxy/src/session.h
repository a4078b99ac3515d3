// Session: one client connection of the proxy, from accept to close. It
// reads HTTP/1.1 requests (Beast parser, size limits, 100-continue,
// timeouts), routes each to its handler (completions, /models, /healthz,
// /metrics, /stats, /admin/*) and writes the answer (whole, or as a live
// chunked stream), keeping the connection alive or closing it lingering.
// session.cc holds the implementation, session_state.h its states;
// ProxyImpl (server.h) creates sessions and closes them at shutdown.
//
// Timeouts (the read, idle and write timeouts, and the linger): one deadline
// per connection, armed around each read and write and checked by its
// worker's sweep (ProxyImpl), not a timer per operation.
//
// Thread safety: a session lives on its worker's thread; call its methods
// there only (deadline_ns() from any thread).

#ifndef LLMCACHE_NET_PROXY_SRC_SESSION_H_
#define LLMCACHE_NET_PROXY_SRC_SESSION_H_

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>

namespace llmcache::net::proxy {

class ProxyImpl;
struct Worker;

// How long a closing connection drains what the client still sends.
inline constexpr std::chrono::milliseconds kLingerTimeout{1000};

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
  // CloseNow at the end of the shutdown grace period: a request whose
  // answer has not begun gets a 503 first, not just a closed connection.
  virtual void CloseAtShutdown() = 0;
  // The deadline of the read or write in progress (steady-clock
  // nanoseconds; 0: none). Any thread.
  virtual int64_t deadline_ns() const = 0;
  // Closes the connection if its deadline has passed (it may have moved
  // since the sweep saw it).
  virtual void OnDeadline() = 0;

 protected:
  Session() = default;
};

}  // namespace llmcache::net::proxy

#endif  // LLMCACHE_NET_PROXY_SRC_SESSION_H_
