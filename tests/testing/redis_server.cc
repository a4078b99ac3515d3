#include "testing/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "testing/subprocess.h"
#include "testing/temp_dir.h"

namespace llmcache::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kSlots = 16384;
// Redis puts the cluster bus on port + 10000, so a cluster port must leave
// room for it below 65536.
constexpr uint16_t kBusOffset = 10000;
constexpr uint16_t kMaxClusterPort = 65535 - kBusOffset;
constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr int kStartAttempts = 3;
constexpr auto kPollPause = std::chrono::milliseconds(20);

// The absolute path of `name` in $PATH, or "" (posix_spawn does not search).
std::string FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/local/bin:/usr/bin";
  while (true) {
    const size_t colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) return "";
    rest.remove_prefix(colon + 1);
  }
}

const std::string& ServerBinary() {
  static const std::string path = FindInPath("redis-server");
  return path;
}

const std::string& CliBinary() {
  static const std::string path = FindInPath("redis-cli");
  return path;
}

// Whether 127.0.0.1:`port` can be bound now. SO_REUSEADDR as Redis sets it,
// so that a port held only by TIME_WAIT connections counts as free.
bool PortFree(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok =
      bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A port the kernel hands out as free (bind to port 0, read it, close). For
// a cluster node also below kMaxClusterPort with a free bus port. Another
// process may still take it before the server binds it: Start retries.
Result<uint16_t> PickPort(bool cluster) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return UnavailableError("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    uint16_t port = 0;
    if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    if (port == 0) continue;
    if (!cluster) return port;
    if (port <= kMaxClusterPort && PortFree(port + kBusOffset)) return port;
  }
  return UnavailableError("no free loopback port found");
}

// RFC 3986 userinfo: everything but the unreserved characters escaped.
std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') ||
        (u >= '0' && u <= '9') || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

// "redis://" or "rediss://", with ":password@" when there is one.
std::string UrlPrefix(const RedisServerOptions& options) {
  std::string url = options.tls ? "rediss://" : "redis://";
  if (!options.password.empty()) {
    url += ':';
    url += PercentEncode(options.password);
    url += '@';
  }
  return url;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

bool WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  return static_cast<bool>(out);
}

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// The value of "name:value" in an INFO-style reply, or "".
std::string InfoField(const std::string& info, std::string_view name) {
  for (const std::string& line : SplitLines(info)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        line[name.size()] == ':') {
      return line.substr(name.size() + 1);
    }
  }
  return "";
}

}  // namespace

bool RedisAvailable() {
  return !ServerBinary().empty() && !CliBinary().empty();
}

struct RedisServer::Impl {
  RedisServerOptions options;
  TempDir dir{"llmcache-redis"};
  uint16_t port = 0;
  std::string cert_file, key_file, ca_file;
  // Declared after `dir`, so destroyed (killed) before the folder goes.
  std::unique_ptr<BackgroundProcess> process;

  std::string LogPath() const { return dir.Sub("redis.log"); }

  std::vector<std::string> ServerArgs() const {
    const std::string port_text = std::to_string(port);
    std::vector<std::string> args = {ServerBinary(),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--enable-debug-command",
                                     "local",
                                     "--daemonize",
                                     "no",
                                     "--dir",
                                     dir.path(),
                                     "--logfile",
                                     LogPath()};
    if (options.tls) {
      args.insert(args.end(),
                  {"--port", "0", "--tls-port", port_text, "--tls-cert-file",
                   cert_file, "--tls-key-file", key_file, "--tls-ca-cert-file",
                   ca_file, "--tls-auth-clients", "no"});
    } else {
      args.insert(args.end(), {"--port", port_text});
    }
    if (!options.password.empty()) {
      args.insert(args.end(), {"--requirepass", options.password});
    }
    if (!options.maxmemory.empty()) {
      args.insert(args.end(), {"--maxmemory", options.maxmemory});
    }
    if (!options.maxmemory_policy.empty()) {
      args.insert(args.end(), {"--maxmemory-policy", options.maxmemory_policy});
    }
    if (options.cluster) {
      args.insert(args.end(),
                  {"--cluster-enabled", "yes", "--cluster-config-file",
                   dir.Sub("nodes-" + port_text + ".conf"),
                   "--cluster-node-timeout", "2000"});
      if (options.tls) args.insert(args.end(), {"--tls-cluster", "yes"});
    }
    args.insert(args.end(), options.extra_args.begin(),
                options.extra_args.end());
    return args;
  }

  // redis-cli and its connection options; -e so that an error reply is a
  // non-zero exit rather than text on stdout.
  std::vector<std::string> CliArgs() const {
    std::vector<std::string> args = {
        CliBinary(), "-h", "127.0.0.1", "-p", std::to_string(port), "-e"};
    if (options.tls) {
      args.push_back("--tls");
      if (options.tls_ca_pem.empty()) {
        args.push_back("--insecure");
      } else {
        args.insert(args.end(), {"--cacert", ca_file});
      }
    }
    if (!options.password.empty()) {
      args.insert(args.end(), {"-a", options.password, "--no-auth-warning"});
    }
    return args;
  }

  Result<std::string> Cli(const std::vector<std::string>& command) const {
    std::vector<std::string> argv = CliArgs();
    argv.insert(argv.end(), command.begin(), command.end());
    ProcessResult r = RunProcess(argv);
    if (r.exit_code != 0) {
      std::string what = "redis-cli";
      for (const std::string& c : command) what += " " + c;
      std::string message = r.err.empty() ? r.out : r.err;
      while (!message.empty() && message.back() == '\n') message.pop_back();
      return UnavailableError(what + " (port " + std::to_string(port) +
                              "): " + message);
    }
    if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return std::move(r.out);
  }

  std::string LogTail() const {
    std::string log = ReadFile(LogPath());
    const std::string err =
        ReadFile(dir.Sub("stderr.log")) + ReadFile(dir.Sub("stdout.log"));
    log += err;
    constexpr size_t kTail = 2000;
    if (log.size() > kTail) log = "..." + log.substr(log.size() - kTail);
    return log;
  }

  // Starts redis-server on `port` and waits until it answers, as itself:
  // INFO's process_id must be our child's, so that another test's server on
  // the same port cannot pass for ours. kUnavailable if the server exited
  // (typically: the port was taken), so that Start can try another port.
  Status Launch() {
    BackgroundOptions bg;
    bg.stdout_path = dir.Sub("stdout.log");
    bg.stderr_path = dir.Sub("stderr.log");
    process = std::make_unique<BackgroundProcess>(ServerArgs(), bg);
    const std::string want_pid = std::to_string(process->pid());
    const Clock::time_point deadline = Clock::now() + kStartTimeout;
    while (Clock::now() < deadline) {
      if (process->Exited()) {
        process.reset();
        return UnavailableError("redis-server exited at start on port " +
                                std::to_string(port) + ": " + LogTail());
      }
      Result<std::string> info = Cli({"INFO", "server"});
      if (info.ok() && InfoField(*info, "process_id") == want_pid) {
        return Status();
      }
      std::this_thread::sleep_for(kPollPause);
    }
    process.reset();
    return DeadlineExceededError("redis-server on port " +
                                 std::to_string(port) +
                                 " did not answer within 10 s: " + LogTail());
  }
};

RedisServer::RedisServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RedisServer::~RedisServer() {
  if (impl_) impl_->process.reset();
}

Result<std::unique_ptr<RedisServer>> RedisServer::Start(
    RedisServerOptions options) {
  if (!RedisAvailable()) {
    return FailedPreconditionError("redis-server or redis-cli not in PATH");
  }
  auto impl = std::make_unique<Impl>();
  if (options.tls) {
    if (options.tls_cert_pem.empty() || options.tls_key_pem.empty()) {
      return InvalidArgumentError("tls needs tls_cert_pem and tls_key_pem");
    }
    impl->cert_file = impl->dir.Sub("server.crt");
    impl->key_file = impl->dir.Sub("server.key");
    impl->ca_file = impl->dir.Sub("ca.crt");
    const std::string& ca =
        options.tls_ca_pem.empty() ? options.tls_cert_pem : options.tls_ca_pem;
    if (!WriteFile(impl->cert_file, options.tls_cert_pem) ||
        !WriteFile(impl->key_file, options.tls_key_pem) ||
        !WriteFile(impl->ca_file, ca)) {
      return InternalError("cannot write the TLS files in " + impl->dir.path());
    }
  }
  impl->options = std::move(options);
  Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    Result<uint16_t> port = PickPort(impl->options.cluster);
    if (!port.ok()) return port.status();
    impl->port = *port;
    last = impl->Launch();
    if (last.ok()) {
      return std::unique_ptr<RedisServer>(new RedisServer(std::move(impl)));
    }
    if (last.code() != StatusCode::kUnavailable) return last;
  }
  return last;
}

uint16_t RedisServer::port() const { return impl_->port; }

std::string RedisServer::url() const {
  return UrlPrefix(impl_->options) + "127.0.0.1:" + std::to_string(impl_->port);
}

void RedisServer::Kill() { impl_->process.reset(); }

Status RedisServer::Restart() {
  Kill();
  return impl_->Launch();
}

bool RedisServer::running() const {
  return impl_->process != nullptr && !impl_->process->Exited();
}

Result<std::string> RedisServer::Cli(
    const std::vector<std::string>& args) const {
  return impl_->Cli(args);
}

int RedisServer::pid() const {
  return running() ? static_cast<int>(impl_->process->pid()) : -1;
}

void RedisServer::Signal(int sig) {
  if (impl_->process != nullptr) impl_->process->Signal(sig);
}

const std::string& RedisServer::dir() const { return impl_->dir.path(); }

std::string RedisServer::LogTail() const { return impl_->LogTail(); }

// --- RedisCluster ------------------------------------------------------------

Result<std::unique_ptr<RedisCluster>> RedisCluster::Start(int masters) {
  return Start(masters, RedisServerOptions{});
}

Result<std::unique_ptr<RedisCluster>> RedisCluster::Start(
    int masters, RedisServerOptions options) {
  if (masters < 1) return InvalidArgumentError("a cluster needs a master");
  options.cluster = true;
  std::unique_ptr<RedisCluster> cluster(new RedisCluster());
  cluster->options_ = options;
  for (int i = 0; i < masters; ++i) {
    Result<std::unique_ptr<RedisServer>> node = RedisServer::Start(options);
    if (!node.ok()) return node.status().WithContext("cluster node");
    cluster->nodes_.push_back(std::move(*node));
  }
  if (masters >= 3) {
    std::vector<std::string> argv = cluster->nodes_[0]->impl_->CliArgs();
    argv.push_back("--cluster");
    argv.push_back("create");
    for (const auto& node : cluster->nodes_) {
      argv.push_back("127.0.0.1:" + std::to_string(node->port()));
    }
    argv.insert(argv.end(), {"--cluster-replicas", "0", "--cluster-yes"});
    ProcessResult r = RunProcess(argv);
    if (r.exit_code != 0) {
      return UnavailableError("redis-cli --cluster create failed: " + r.out +
                              r.err);
    }
  } else {
    // redis-cli wants 3 masters at least: assign the slots in even ranges
    // and introduce the nodes. Distinct config epochs, set while each node
    // is alone, spare the collision resolution that would delay cluster_ok.
    for (int i = 0; i < masters; ++i) {
      const int first = kSlots * i / masters;
      const int last = kSlots * (i + 1) / masters - 1;
      RedisServer& node = *cluster->nodes_[static_cast<size_t>(i)];
      for (const std::vector<std::string>& command :
           {std::vector<std::string>{"CLUSTER", "SET-CONFIG-EPOCH",
                                     std::to_string(i + 1)},
            std::vector<std::string>{"CLUSTER", "ADDSLOTSRANGE",
                                     std::to_string(first),
                                     std::to_string(last)}}) {
        Result<std::string> r = node.Cli(command);
        if (!r.ok()) return r.status();
      }
    }
    for (int i = 1; i < masters; ++i) {
      Result<std::string> r = cluster->nodes_[0]->Cli(
          {"CLUSTER", "MEET", "127.0.0.1",
           std::to_string(cluster->nodes_[static_cast<size_t>(i)]->port())});
      if (!r.ok()) return r.status();
    }
  }
  LLMCACHE_RETURN_IF_ERROR(cluster->WaitUntilOk());
  for (const auto& node : cluster->nodes_) {
    Result<std::string> id = node->Cli({"CLUSTER", "MYID"});
    if (!id.ok()) return id.status();
    cluster->ids_.push_back(*id);
  }
  return cluster;
}

RedisCluster::~RedisCluster() = default;

std::string RedisCluster::url() const {
  std::string url = UrlPrefix(options_);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (i > 0) url += ',';
    url += "127.0.0.1:" + std::to_string(nodes_[i]->port());
  }
  return url;
}

size_t RedisCluster::size() const { return nodes_.size(); }

RedisServer& RedisCluster::node(size_t i) {
  assert(i < nodes_.size());
  return *nodes_[i];
}

const std::string& RedisCluster::node_id(size_t i) const {
  assert(i < ids_.size());
  return ids_[i];
}

Status RedisCluster::WaitUntilOk(std::chrono::milliseconds timeout) {
  const std::string want_nodes = std::to_string(nodes_.size());
  const std::string all_slots = std::to_string(kSlots);
  const Clock::time_point deadline = Clock::now() + timeout;
  std::string last;
  while (true) {
    bool ok = true;
    for (const auto& node : nodes_) {
      if (!node->running()) continue;
      Result<std::string> info = node->Cli({"CLUSTER", "INFO"});
      if (!info.ok()) {
        last = info.status().ToString();
        ok = false;
        break;
      }
      if (InfoField(*info, "cluster_state") != "ok" ||
          InfoField(*info, "cluster_slots_ok") != all_slots ||
          InfoField(*info, "cluster_known_nodes") != want_nodes) {
        last = "port " + std::to_string(node->port()) + ":\n" + *info;
        ok = false;
        break;
      }
    }
    if (ok) return Status();
    if (Clock::now() >= deadline) {
      std::string logs;
      for (const auto& node : nodes_) {
        logs += "\n--- log of port " + std::to_string(node->port()) + ":\n" +
                node->LogTail();
      }
      return DeadlineExceededError("the cluster is not ok: " + last + logs);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Result<size_t> RedisCluster::NodeOfSlot(int slot) {
  if (slot < 0 || slot >= kSlots) return InvalidArgumentError("bad slot");
  // Any running node's view; MigrateSlot tells every node at once, so they
  // agree.
  RedisServer* asked = nullptr;
  for (const auto& node : nodes_) {
    if (node->running()) {
      asked = node.get();
      break;
    }
  }
  if (asked == nullptr) return UnavailableError("no cluster node is running");
  Result<std::string> nodes = asked->Cli({"CLUSTER", "NODES"});
  if (!nodes.ok()) return nodes.status();
  // <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch>
  // <link> <slot or range>... ; "[slot->-id]" entries are migrations.
  for (const std::string& line : SplitLines(*nodes)) {
    std::istringstream fields(line);
    std::vector<std::string> f{std::istream_iterator<std::string>(fields),
                               std::istream_iterator<std::string>()};
    if (f.size() < 9) continue;
    const size_t colon = f[1].rfind(':', f[1].find('@'));
    const size_t at = f[1].find('@');
    if (colon == std::string::npos || at == std::string::npos) continue;
    const std::string port = f[1].substr(colon + 1, at - colon - 1);
    for (size_t k = 8; k < f.size(); ++k) {
      if (f[k].empty() || f[k][0] == '[') continue;
      const size_t dash = f[k].find('-');
      const int first = std::atoi(f[k].c_str());
      const int last = dash == std::string::npos
                           ? first
                           : std::atoi(f[k].c_str() + dash + 1);
      if (slot < first || slot > last) continue;
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (std::to_string(nodes_[i]->port()) == port) return i;
      }
      return NotFoundError("slot " + std::to_string(slot) +
                           " is served by an unknown node: " + line);
    }
  }
  return NotFoundError("slot " + std::to_string(slot) + " is not served");
}

Status RedisCluster::MigrateSlot(int slot, size_t to, int pause_ms) {
  if (to >= nodes_.size()) return InvalidArgumentError("no such node");
  Result<size_t> from_or = NodeOfSlot(slot);
  if (!from_or.ok()) return from_or.status();
  const size_t from = *from_or;
  if (from == to) return Status();
  RedisServer& src = *nodes_[from];
  RedisServer& dst = *nodes_[to];
  const std::string s = std::to_string(slot);
  for (const auto& [node, command] :
       {std::pair<RedisServer*, std::vector<std::string>>{
            &dst, {"CLUSTER", "SETSLOT", s, "IMPORTING", ids_[from]}},
        std::pair<RedisServer*, std::vector<std::string>>{
            &src, {"CLUSTER", "SETSLOT", s, "MIGRATING", ids_[to]}}}) {
    Result<std::string> r = node->Cli(command);
    if (!r.ok()) return r.status();
  }
  auto keys_left = [&]() -> Result<std::vector<std::string>> {
    Result<std::string> r = src.Cli({"CLUSTER", "GETKEYSINSLOT", s, "100"});
    if (!r.ok()) return r.status();
    std::vector<std::string> keys;
    std::istringstream in(*r);
    std::string key;
    while (std::getline(in, key)) {
      if (!key.empty()) keys.push_back(key);
    }
    return keys;
  };
  auto migrate = [&](const std::vector<std::string>& keys) -> Status {
    if (keys.empty()) return Status();
    std::vector<std::string> command = {
        "MIGRATE", "127.0.0.1", std::to_string(dst.port()), "", "0", "5000"};
    if (!options_.password.empty()) {
      command.insert(command.end(), {"AUTH", options_.password});
    }
    command.push_back("KEYS");
    command.insert(command.end(), keys.begin(), keys.end());
    return src.Cli(command).status();
  };
  if (pause_ms > 0) {
    // Half of the first batch now, the rest after the pause: meanwhile the
    // source answers -ASK for the keys it no longer has.
    Result<std::vector<std::string>> keys = keys_left();
    if (!keys.ok()) return keys.status();
    keys->resize(keys->size() / 2);
    LLMCACHE_RETURN_IF_ERROR(migrate(*keys));
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
  }
  while (true) {
    Result<std::vector<std::string>> keys = keys_left();
    if (!keys.ok()) return keys.status();
    if (keys->empty()) break;
    LLMCACHE_RETURN_IF_ERROR(migrate(*keys));
  }
  // The destination first, so that it never refuses the slot while the
  // source already points there.
  std::vector<size_t> order = {to, from};
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (i != to && i != from) order.push_back(i);
  }
  for (const size_t i : order) {
    if (!nodes_[i]->running()) continue;
    Result<std::string> r =
        nodes_[i]->Cli({"CLUSTER", "SETSLOT", s, "NODE", ids_[to]});
    if (!r.ok()) return r.status();
  }
  return Status();
}

Result<uint64_t> RedisCluster::DbSize(size_t i) {
  if (i >= nodes_.size()) return InvalidArgumentError("no such node");
  Result<std::string> r = nodes_[i]->Cli({"DBSIZE"});
  if (!r.ok()) return r.status();
  char* end = nullptr;
  const unsigned long long n = std::strtoull(r->c_str(), &end, 10);
  if (r->empty() || end == nullptr || *end != '\0') {
    return InternalError("DBSIZE answered \"" + *r + "\"");
  }
  return static_cast<uint64_t>(n);
}

}  // namespace llmcache::testing
