// RedisUrl::Parse and Redacted. Error messages never quote the user-info
// part of the URL: it may hold the password.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>
#include <string_view>

#include "llmcache/net/redis.h"

namespace llmcache::net {
namespace {

constexpr int kMaxDb = 65535;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in` into `out`; false on a malformed escape.
bool PercentDecode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// Percent-encodes what would not parse back in the user-info part.
std::string PercentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : in) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

bool ParseInt(std::string_view s, int max, int& value) {
  if (s.empty() || s.size() > 6) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  return ec == std::errc() && ptr == s.data() + s.size() && value <= max;
}

bool IsHostNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
         c == '_';
}

bool IsIpv6Char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

// The host text as error messages may quote it: not when it could hold a
// password (a URL missing its '@', such as redis://:secret:host:6379).
std::string Shown(std::string_view text) {
  const bool bracketed = !text.empty() && text.front() == '[';
  if (!bracketed && std::count(text.begin(), text.end(), ':') > 1) {
    return "(not shown: it may hold a password)";
  }
  return std::string(text);
}

Status ParseNode(std::string_view text, RedisUrl::Node& node) {
  const std::string shown = Shown(text);
  std::string_view host;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgumentError("redis URL: unclosed '[' in host \"" + shown +
                                  "\"");
    }
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (host.empty() || host.find(':') == std::string_view::npos) {
      return InvalidArgumentError("redis URL: bad IPv6 address in \"" + shown +
                                  "\"");
    }
    for (char c : host) {
      if (!IsIpv6Char(c)) {
        return InvalidArgumentError("redis URL: bad IPv6 address in \"" +
                                    shown + "\"");
      }
    }
    if (!rest.empty() && rest.front() != ':') {
      return InvalidArgumentError("redis URL: junk after ']' in \"" + shown +
                                  "\"");
    }
  } else {
    const size_t colon = text.find(':');
    host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view()
                                           : text.substr(colon);
    if (host.empty()) {
      return InvalidArgumentError("redis URL: empty host in \"" + shown + "\"");
    }
    for (char c : host) {
      if (!IsHostNameChar(c)) {
        return InvalidArgumentError("redis URL: bad host \"" + shown + "\"");
      }
    }
  }
  node.host = std::string(host);
  node.port = 6379;
  if (!rest.empty()) {
    int port = 0;
    if (!ParseInt(rest.substr(1), 65535, port) || port == 0) {
      return InvalidArgumentError("redis URL: bad port in \"" + shown + "\"");
    }
    node.port = static_cast<uint16_t>(port);
  }
  return Status();
}

}  // namespace

Result<RedisUrl> RedisUrl::Parse(std::string_view url) {
  RedisUrl out;
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return InvalidArgumentError(
        "redis URL: expected redis://host:port or rediss://host:port");
  }
  std::string scheme(url.substr(0, sep));
  for (char& c : scheme) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (scheme == "rediss") {
    out.tls = true;
  } else if (scheme != "redis") {
    return InvalidArgumentError("redis URL: unsupported scheme \"" + scheme +
                                "\" (redis:// or rediss://)");
  }
  std::string_view rest = url.substr(sep + 3);

  // The last '@' ends the user info, so that an unescaped '@' or '/' in a
  // password still parses.
  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = userinfo.find(':');
    // "redis://secret@host" is refused rather than read as a user name: that
    // password would otherwise be logged as one.
    if (colon == std::string_view::npos) {
      return InvalidArgumentError(
          "redis URL: the user info must be [user]:password");
    }
    if (!PercentDecode(userinfo.substr(0, colon), out.user) ||
        !PercentDecode(userinfo.substr(colon + 1), out.password)) {
      return InvalidArgumentError(
          "redis URL: bad percent-escape in the user info");
    }
    // "user:" with no password: an ACL user whose password comes from
    // elsewhere (the caller fills it in, kept out of the URL).
    if (out.password.empty() && out.user.empty()) {
      return InvalidArgumentError("redis URL: empty password");
    }
  }

  std::string_view hosts = rest;
  const size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    hosts = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && !ParseInt(db, kMaxDb, out.db)) {
      return InvalidArgumentError("redis URL: bad database \"" +
                                  std::string(db) +
                                  "\" (a number after the last '/')");
    }
  }
  if (hosts.find_first_of("?#") != std::string_view::npos) {
    return InvalidArgumentError(
        "redis URL: query strings and fragments are not supported");
  }
  if (hosts.empty()) return InvalidArgumentError("redis URL: no host");
  size_t start = 0;
  for (;;) {
    const size_t comma = hosts.find(',', start);
    Node node;
    LLMCACHE_RETURN_IF_ERROR(
        ParseNode(hosts.substr(start, comma - start), node));
    out.nodes.push_back(std::move(node));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (out.nodes.size() > 1 && out.db != 0) {
    return InvalidArgumentError(
        "redis URL: a database other than 0 with several nodes (Redis "
        "Cluster has database 0 only)");
  }
  return out;
}

std::string RedisUrl::Redacted() const {
  std::string s = tls ? "rediss://" : "redis://";
  if (!user.empty() || !password.empty()) {
    s += PercentEncode(user);
    if (!password.empty()) s += ":***";
    s += '@';
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (i > 0) s += ',';
    if (nodes[i].host.find(':') != std::string::npos) {
      s += '[' + nodes[i].host + ']';
    } else {
      s += nodes[i].host;
    }
    s += ':' + std::to_string(nodes[i].port);
  }
  if (db != 0) s += '/' + std::to_string(db);
  return s;
}

}  // namespace llmcache::net
