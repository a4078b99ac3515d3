// IoLoop: an io_context run by two threads for a test's lifetime, so that
// clients and servers under test see real concurrency.

#ifndef LLMCACHE_TESTS_TESTING_IO_LOOP_H_
#define LLMCACHE_TESTS_TESTING_IO_LOOP_H_

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <thread>
#include <vector>

namespace llmcache::testing {

class IoLoop {
 public:
  explicit IoLoop(int threads = 2)
      : guard_(boost::asio::make_work_guard(ioc_)) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
  }
  ~IoLoop() {
    guard_.reset();
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }
  IoLoop(const IoLoop&) = delete;
  IoLoop& operator=(const IoLoop&) = delete;

  boost::asio::io_context& ioc() { return ioc_; }

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type>
      guard_;
  std::vector<std::thread> threads_;
};

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_IO_LOOP_H_
