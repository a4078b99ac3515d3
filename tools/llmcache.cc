// llmcache: the command-line tool. Thin: every verb calls into the libraries.
//
//   llmcache fake-openrouter [--listen 127.0.0.1:8089] [--tls --ca-out FILE]
//
// Exit codes: 0 ok, 1 failure, 2 usage.

#include <signal.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>

#include "fake_openrouter.h"

namespace {

// Splits "host:port" / "[v6]:port"; false if malformed.
bool ParseListen(const std::string& listen, std::string* host, uint16_t* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  try {
    const int p = std::stoi(listen.substr(colon + 1));
    if (p < 0 || p > 65535) return false;
    *port = static_cast<uint16_t>(p);
  } catch (const std::exception&) {
    return false;
  }
  return !host->empty();
}

// Blocks until SIGINT or SIGTERM.
void WaitForSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
}

int FakeOpenRouterVerb(const std::string& listen, bool tls,
                       const std::string& ca_out, const std::string& api_key,
                       int threads, bool quiet) {
  llmcache::fake::FakeOptions o;
  if (!ParseListen(listen, &o.host, &o.port)) {
    std::cerr << "llmcache fake-openrouter: --listen wants HOST:PORT, got '"
              << listen << "'\n";
    return 2;
  }
  o.tls = tls;
  o.api_key = api_key;
  o.threads = threads;
  o.log_requests = !quiet;
  if (tls) {
    auto certs = llmcache::fake::TestCertificates::Generate();
    if (!certs.ok()) {
      std::cerr << "llmcache fake-openrouter: " << certs.status() << "\n";
      return 1;
    }
    o.cert_pem = certs->server_cert_pem;
    o.key_pem = certs->server_key_pem;
    std::ofstream out(ca_out);
    out << certs->ca_cert_pem;
    if (!out) {
      std::cerr << "llmcache fake-openrouter: cannot write " << ca_out << "\n";
      return 1;
    }
  }
  // Block the signals before threads start, so that only sigwait sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto fake = llmcache::fake::FakeOpenRouter::Start(o);
  if (!fake.ok()) {
    std::cerr << "llmcache fake-openrouter: " << fake.status() << "\n";
    return 1;
  }
  std::cout << "fake OpenRouter listening on " << (*fake)->base_url() << "\n";
  if (tls) std::cout << "trust its CA with: " << ca_out << "\n";
  std::cout << "faults by model id: fake/fault-<status>, fake/delay-<ms>, "
               "fake/hang, fake/cut, fake/reset, fake/error-200, ... "
               "(see net/fake/fake_openrouter.h)\n"
            << std::flush;
  WaitForSignal();
  (*fake)->Stop();
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"llmcache: a cache for LLM API calls"};
  app.require_subcommand(1);

  auto* fake = app.add_subcommand(
      "fake-openrouter",
      "Run a local fake of the OpenRouter API (no API key needed)");
  std::string listen = "127.0.0.1:8089";
  bool tls = false;
  std::string ca_out = "fake-openrouter-ca.pem";
  std::string api_key;
  int threads = 2;
  bool quiet = false;
  fake->add_option("--listen", listen, "Address to listen on (HOST:PORT)")
      ->capture_default_str();
  fake->add_flag("--tls", tls, "Serve HTTPS with a freshly generated test CA");
  fake->add_option("--ca-out", ca_out, "Where --tls writes the CA certificate")
      ->capture_default_str();
  fake->add_option("--api-key", api_key,
                   "Only accept this bearer token (default: any)");
  fake->add_option("--threads", threads, "Server threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  fake->add_flag("-q,--quiet", quiet, "Do not log requests");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (fake->parsed()) {
    return FakeOpenRouterVerb(listen, tls, ca_out, api_key, threads, quiet);
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "llmcache: " << e.what() << "\n";
    return 1;
  }
}
