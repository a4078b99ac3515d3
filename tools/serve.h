// The `llmcache serve` verb: the caching proxy (llmcache::net::ProxyServer)
// configured from flags, environment variables and a config file.

#ifndef LLMCACHE_TOOLS_SERVE_H_
#define LLMCACHE_TOOLS_SERVE_H_

#include <CLI/CLI.hpp>
#include <functional>

namespace llmcache::tools {

// Registers the "serve" subcommand and all its options on `app`, and sets
// *run to the function that runs the server (call it when the subcommand was
// parsed). It serves until SIGINT or SIGTERM and returns the exit code: 0
// after a clean shutdown, 1 on a failure (database locked, port in use, ...),
// 2 on a usage error (e.g. a bad config file value).
//
// Precedence of settings: flags > environment (LLMCACHE_*, OPENROUTER_API_KEY)
// > config file (--config FILE / LLMCACHE_CONFIG, TOML or INI, keys named
// like the long flags, at the top level or in a [serve] section) > defaults.
CLI::App* AddServeCommand(CLI::App& app, std::function<int()>* run);

}  // namespace llmcache::tools

#endif  // LLMCACHE_TOOLS_SERVE_H_
