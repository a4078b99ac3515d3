#include "stream_tally.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace llmcache::net::internal {
namespace {

// Past the limit, the events worth a look for usage and errors: small ones
// that name either, at most this many bytes of them in all.
constexpr size_t kMaxTailEventBytes = 64u << 10;
constexpr size_t kMaxTailBytes = 1u << 20;

// Whether `data` has `name` with an object value (whitespace allowed
// around the colon).
bool HasObjectMember(std::string_view data, std::string_view name) {
  for (size_t at = data.find(name); at != std::string_view::npos;
       at = data.find(name, at + 1)) {
    size_t i = at + name.size();
    auto skip = [&] {
      while (i < data.size() && (data[i] == ' ' || data[i] == '\t' ||
                                 data[i] == '\n' || data[i] == '\r')) {
        ++i;
      }
    };
    skip();
    if (i >= data.size() || data[i] != ':') continue;
    ++i;
    skip();
    if (i < data.size() && data[i] == '{') return true;
  }
  return false;
}

// A usage or error object: not "usage":null, which some upstreams put in
// every chunk and which would use up the budget before the last one.
bool MayCarryUsageOrError(std::string_view data) {
  return data.size() <= kMaxTailEventBytes &&
         (HasObjectMember(data, "\"usage\"") ||
          HasObjectMember(data, "\"error\""));
}

}  // namespace

StreamTally::StreamTally(std::unique_ptr<EventAccumulator> acc,
                         Endpoint endpoint, size_t limit)
    : acc_(std::move(acc)), endpoint_(endpoint), limit_(limit) {}

void StreamTally::Add(std::string_view data) {
  begun_ = true;
  if (!over_ && data.size() > limit_ - std::min(limit_, bytes_)) {
    over_ = true;
    acc_.reset();
    tail_ = MakeEventAccumulator(endpoint_);
  }
  if (!over_) {
    bytes_ += data.size();
    if (status_.ok()) status_ = acc_->Add(data);
    return;
  }
  terminal_ |= IsTerminalEvent(endpoint_, data);
  if (tail_ != nullptr && MayCarryUsageOrError(data) &&
      tail_bytes_ + data.size() <= kMaxTailBytes) {
    tail_bytes_ += data.size();
    // Events out of their context may not add up (a delta without its
    // start): only what they say of usage and errors is used.
    static_cast<void>(tail_->Add(data));
  }
}

bool StreamTally::Whole(bool done_seen) const {
  if (over_) return terminal_;
  return status_.ok() && acc_->done() &&
         (endpoint_ != Endpoint::kChatCompletions || done_seen);
}

std::string StreamTally::ToJson() const {
  return over_ ? std::string() : acc_->ToJson();
}

ParsedCompletion StreamTally::Parsed() const {
  ParsedCompletion out;
  if (!over_) {
    out = acc_->Parsed();
    if (acc_->error()) out.error = acc_->error();
  } else if (tail_ != nullptr) {
    const ParsedCompletion tail = tail_->Parsed();
    out.usage = tail.usage;
    out.error = tail_->error() ? tail_->error() : tail.error;
  }
  return out;
}

}  // namespace llmcache::net::internal
