// The proxy's test fixture: the fake OpenRouter on loopback and a
// ProxyServer in front of it on a fresh cache, (re)started with the options
// each test file adjusts. Only for tests linked with the fake and the proxy
// (net_tests).

#ifndef LLMCACHE_TESTS_TESTING_PROXY_FIXTURE_H_
#define LLMCACHE_TESTS_TESTING_PROXY_FIXTURE_H_

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "fake_openrouter.h"
#include "llmcache/cache.h"
#include "llmcache/net/proxy.h"
#include "testing/status_matchers.h"

namespace llmcache::testing {

class ProxyFixture : public ::testing::Test {
 protected:
  void TearDown() override { Stop(); }

  void StartFake(fake::FakeOptions options = {}) {
    auto f = fake::FakeOpenRouter::Start(std::move(options));
    ASSERT_OK(f);
    fake_ = std::move(f).value();
  }

  // What every proxy test starts from: an ephemeral loopback port, the fake
  // as the upstream with one attempt, the server's key `api_key`, no log.
  net::ProxyOptions BaseProxyOptions(int threads, std::string api_key) const {
    net::ProxyOptions o;
    o.port = 0;
    o.threads = threads;
    o.upstream.base_url = fake_->base_url();
    o.upstream.max_attempts = 1;
    o.upstream.api_key = std::move(api_key);
    o.log = [](net::LogLevel, std::string_view) {};
    return o;
  }

  // Stops the running proxy, opens a cache with `cache_options` (without
  // the maintenance thread) and starts a proxy with `proxy_options` on it.
  void StartProxy(CacheOptions cache_options, net::ProxyOptions proxy_options) {
    Stop();
    cache_options.maintenance_interval_ms = 0;
    auto c = Cache::Open(cache_options);
    ASSERT_OK(c);
    cache_ = std::shared_ptr<Cache>(std::move(c).value());
    auto p = net::ProxyServer::Start(std::move(proxy_options), cache_);
    ASSERT_OK(p);
    proxy_ = std::move(p).value();
    port_ = proxy_->port();
  }

  // Shuts the proxy down (in-flight requests get 2 s) and closes its cache.
  void Stop() {
    if (proxy_) proxy_->Shutdown(std::chrono::seconds(2));
    proxy_.reset();
    cache_.reset();
  }

  std::unique_ptr<fake::FakeOpenRouter> fake_;
  std::shared_ptr<Cache> cache_;
  std::unique_ptr<net::ProxyServer> proxy_;
  uint16_t port_ = 0;
};

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_PROXY_FIXTURE_H_
