#!/usr/bin/env bash
# The main job: set up, build (Release) and run the caching proxy on the
# embedded default cache ($LLMCACHE_DB, else $XDG_CACHE_HOME/llmcache, else
# ~/.cache/llmcache), listening on 127.0.0.1:8080, in front of OpenRouter.
# Clients send their own `Authorization: Bearer <OpenRouter key>`; or export
# OPENROUTER_API_KEY for clients that send none.
# Usage: scripts/serve.sh [llmcache serve options...]   (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cmake --preset release >/dev/null
cmake --build --preset release --target llmcache_cli >&2
exec build/release/tools/llmcache serve "$@"
