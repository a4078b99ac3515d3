// CRC16 key slots, redirection parsing and the cluster slot map.

#include "redis_topology.h"

#include <charconv>
#include <utility>

namespace llmcache::net {
namespace {

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the one Redis
// Cluster uses, as a table computed at compile time.
constexpr std::array<uint16_t, 256> MakeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
    table[static_cast<size_t>(i)] = crc;
  }
  return table;
}
constexpr std::array<uint16_t, 256> kCrc16Table = MakeCrc16Table();

uint16_t Crc16(std::string_view data) {
  uint16_t crc = 0;
  for (char c : data) {
    const auto byte = static_cast<uint8_t>(c);
    crc = static_cast<uint16_t>((crc << 8) ^
                                kCrc16Table[((crc >> 8) ^ byte) & 0xff]);
  }
  return crc;
}

}  // namespace

uint16_t RedisKeySlot(std::string_view key) {
  // Hash tag: the part between the first '{' and the first '}' after it,
  // when that part is not empty.
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<uint16_t>(Crc16(key) & (redis_internal::kSlots - 1));
}

namespace redis_internal {

std::string NodeKey(const RedisUrl::Node& node) {
  if (node.host.find(':') != std::string::npos) {
    return "[" + node.host + "]:" + std::to_string(node.port);
  }
  return node.host + ":" + std::to_string(node.port);
}

namespace {

bool ParseHostPort(std::string_view text, std::string_view default_host,
                   RedisUrl::Node& node) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string_view port = text.substr(colon + 1);
  int value = 0;
  auto [ptr, ec] =
      std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value <= 0 ||
      value > 65535) {
    return false;
  }
  node.host = std::string(host.empty() || host == "?" ? default_host : host);
  node.port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

Redirect ParseRedirect(std::string_view error, std::string_view default_host) {
  Redirect r;
  if (error.starts_with("TRYAGAIN") || error.starts_with("CLUSTERDOWN")) {
    r.kind = Redirect::Kind::kTryAgain;
    return r;
  }
  Redirect::Kind kind;
  if (error.starts_with("MOVED ")) {
    kind = Redirect::Kind::kMoved;
  } else if (error.starts_with("ASK ")) {
    kind = Redirect::Kind::kAsk;
  } else {
    return r;
  }
  // "MOVED <slot> <host>:<port>"
  const size_t first = error.find(' ');
  const size_t second = error.find(' ', first + 1);
  if (second == std::string_view::npos) return r;
  const std::string_view slot = error.substr(first + 1, second - first - 1);
  int value = -1;
  auto [ptr, ec] =
      std::from_chars(slot.data(), slot.data() + slot.size(), value);
  if (ec != std::errc() || ptr != slot.data() + slot.size() || value < 0 ||
      value >= kSlots) {
    return r;
  }
  std::string_view endpoint = error.substr(second + 1);
  const size_t end = endpoint.find(' ');
  if (end != std::string_view::npos) endpoint = endpoint.substr(0, end);
  if (!ParseHostPort(endpoint, default_host, r.node)) return r;
  r.kind = kind;
  r.slot = value;
  return r;
}

Status SlotMap::Apply(const RedisReply& reply, std::string_view default_host) {
  if (reply.type != RedisReply::Type::kArray) {
    return InvalidArgumentError("CLUSTER SLOTS: not an array");
  }
  SlotMap next;
  for (const RedisReply& range : reply.elements) {
    if (range.type != RedisReply::Type::kArray || range.elements.size() < 3 ||
        range.elements[0].type != RedisReply::Type::kInteger ||
        range.elements[1].type != RedisReply::Type::kInteger) {
      return InvalidArgumentError("CLUSTER SLOTS: malformed slot range");
    }
    const int64_t first = range.elements[0].integer;
    const int64_t last = range.elements[1].integer;
    const RedisReply& master = range.elements[2];
    if (first < 0 || last >= kSlots || first > last ||
        master.type != RedisReply::Type::kArray || master.elements.size() < 2 ||
        master.elements[0].type != RedisReply::Type::kString ||
        master.elements[1].type != RedisReply::Type::kInteger ||
        master.elements[1].integer <= 0 || master.elements[1].integer > 65535) {
      return InvalidArgumentError("CLUSTER SLOTS: malformed slot range");
    }
    RedisUrl::Node node;
    const std::string& host = master.elements[0].str;
    node.host = host.empty() || host == "?" ? std::string(default_host) : host;
    node.port = static_cast<uint16_t>(master.elements[1].integer);
    const int index = next.IndexOf(node);
    for (int64_t slot = first; slot <= last; ++slot) {
      next.owner_[static_cast<size_t>(slot)] = static_cast<int16_t>(index);
    }
  }
  *this = std::move(next);
  return Status();
}

void SlotMap::SetOwner(int slot, const RedisUrl::Node& node) {
  if (slot < 0 || slot >= kSlots) return;
  owner_[static_cast<size_t>(slot)] = static_cast<int16_t>(IndexOf(node));
}

void SlotMap::SetMasters(std::vector<RedisUrl::Node> masters) {
  masters_ = std::move(masters);
  owner_.fill(-1);
}

std::optional<RedisUrl::Node> SlotMap::OwnerOf(int slot) const {
  if (slot < 0 || slot >= kSlots) return std::nullopt;
  const int16_t index = owner_[static_cast<size_t>(slot)];
  if (index < 0) return std::nullopt;
  return masters_[static_cast<size_t>(index)];
}

bool SlotMap::IsMaster(const RedisUrl::Node& node) const {
  for (const RedisUrl::Node& m : masters_) {
    if (m == node) return true;
  }
  return false;
}

int SlotMap::IndexOf(const RedisUrl::Node& node) {
  for (size_t i = 0; i < masters_.size(); ++i) {
    if (masters_[i] == node) return static_cast<int>(i);
  }
  masters_.push_back(node);
  return static_cast<int>(masters_.size() - 1);
}

}  // namespace redis_internal
}  // namespace llmcache::net
