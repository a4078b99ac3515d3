// hiredis 0.14 as a protocol library: redisReader and redisFormatCommandArgv.

#include "redis_protocol.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <memory>

namespace llmcache::net::redis_internal {
namespace {

RedisReply Convert(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r.elements);
      for (size_t i = 0; i < r.elements; ++i) {
        out.elements.push_back(Convert(*r.element[i]));
      }
      break;
    default:  // REDIS_REPLY_NIL
      out.type = RedisReply::Type::kNil;
      break;
  }
  return out;
}

}  // namespace

Status AppendCommand(const std::vector<std::string>& argv, std::string& out) {
  if (argv.empty()) return InvalidArgumentError("empty redis command");
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const std::string& arg : argv) {
    ptrs.push_back(arg.data());
    lens.push_back(arg.size());
  }
  char* cmd = nullptr;
  const int len = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()),
                                         ptrs.data(), lens.data());
  if (len < 0 || cmd == nullptr) {
    return ResourceExhaustedError("cannot format redis command");
  }
  out.append(cmd, static_cast<size_t>(len));
  redisFreeCommand(cmd);
  return Status();
}

ReplyReader::ReplyReader() : reader_(redisReaderCreate()) {}

ReplyReader::~ReplyReader() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

Status ReplyReader::Feed(std::string_view bytes) {
  if (reader_ == nullptr) return ResourceExhaustedError("no redis reader");
  if (redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK) {
    return InternalError(std::string("redis reader: ") + reader_->errstr);
  }
  return Status();
}

Result<std::optional<RedisReply>> ReplyReader::Next() {
  if (reader_ == nullptr) return ResourceExhaustedError("no redis reader");
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
    return InternalError(std::string("redis protocol error: ") +
                         reader_->errstr);
  }
  if (raw == nullptr) return std::optional<RedisReply>();
  std::unique_ptr<redisReply, void (*)(void*)> reply(
      static_cast<redisReply*>(raw), freeReplyObject);
  return std::optional<RedisReply>(Convert(*reply));
}

}  // namespace llmcache::net::redis_internal
