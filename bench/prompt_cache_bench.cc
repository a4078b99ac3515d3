// Provider prompt caching on a 20-turn agent conversation, through the cached
// client to the fake OpenRouter (its Anthropic-style prompt-cache
// simulation, fake_prompt_cache.h), priced like a Sonnet-class model (input
// $3/M, cache write $3.75/M, cache read $0.30/M): the input cost with
// `--prompt-cache off`, with `auto`, and with the system prompt alone marked.
//
// Each turn adds the assistant's answer with a tool call, the tool's result
// and a user message to a history that follows an ~8 KiB system prompt and
// 6 tools, so every turn is a miss of the response cache. Counters:
//   input_usd     what the 20 turns' prompts cost
//   uncached_usd  the same prompts at the input price (= off)
//   ratio         input_usd / uncached_usd (target for auto: <= 0.4)
//   read_tokens, write_tokens  the provider cache's reads and writes
//
//   build/release/bench/net_bench --benchmark_filter=PromptCache

#include <benchmark/benchmark.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <string>
#include <thread>

#include "fake_openrouter.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/prompt_cache.h"

namespace llmcache::bench {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr int kTurns = 20;
constexpr char kModel[] = "anthropic/claude-sonnet-4.5";
constexpr double kInput = 3e-6, kWrite = 3.75e-6, kRead = 0.3e-6;

enum Variant { kOff = 0, kAuto = 1, kSystemOnly = 2 };

// ~8 KiB of instructions (distinct per run, so runs share no provider cache).
std::string SystemPrompt(int run) {
  std::string s = "Run " + std::to_string(run) +
                  ". You are a careful software agent working in a large "
                  "repository. ";
  for (int i = 0; s.size() < 8192; ++i) {
    s += "Rule " + std::to_string(i) +
         ": read the relevant files before editing, keep changes small, "
         "explain each step, run the tests, and never invent an API. ";
  }
  return s;
}

json::array Tools() {
  json::array tools;
  for (const char* name : {"read_file", "write_file", "list_dir", "run_tests",
                           "search_code", "git_diff"}) {
    json::object params{{"type", "object"}};
    params["properties"] = json::object{
        {"path", json::object{{"type", "string"},
                              {"description", "A path in the repository"}}},
        {"query", json::object{{"type", "string"},
                               {"description", "What to look for"}}}};
    tools.push_back(json::object{
        {"type", "function"},
        {"function",
         json::object{{"name", name},
                      {"description", std::string("Tool ") + name +
                                          ": operates on the repository and "
                                          "returns its output as text."},
                      {"parameters", std::move(params)}}}});
  }
  return tools;
}

void BM_PromptCacheAgent(benchmark::State& state) {
  const Variant variant = static_cast<Variant>(state.range(0));
  static int run = 0;
  asio::io_context ioc;
  auto guard = asio::make_work_guard(ioc);
  std::thread thread([&] { ioc.run(); });
  auto fake =
      std::move(fake::FakeOpenRouter::Start(fake::FakeOptions{})).value();
  net::ClientOptions co;
  co.base_url = fake->base_url();
  co.api_key = "bench";
  auto client = std::move(net::Client::Create(ioc.get_executor(), co)).value();
  auto cache = std::shared_ptr<Cache>(std::move(Cache::Open({})).value());
  net::CachedClientOptions o;
  o.prompt_cache = variant == kAuto ? net::PromptCacheMode::kAuto
                                    : net::PromptCacheMode::kOff;
  auto cached = net::CachedClient::Create(cache, client, o);

  double input = 0, uncached = 0;
  uint64_t read = 0, written = 0, misses = 0;
  for (auto _ : state) {
    json::array messages;
    messages.push_back(
        json::object{{"role", "system"}, {"content", SystemPrompt(++run)}});
    messages.push_back(json::object{
        {"role", "user"},
        {"content", "Fix the failing test in the parser module."}});
    for (int turn = 0; turn < kTurns; ++turn) {
      json::object body{{"model", kModel}, {"temperature", 0}};
      body["tools"] = Tools();
      body["messages"] = messages;
      std::string text = json::serialize(body);
      if (variant == kSystemOnly) {
        text = std::move(net::AddCacheBreakpoints(text, kModel)).value();
      }
      net::CachedRequest req;
      req.body = std::move(text);
      net::CachedResponse r =
          std::move(
              cached->AsyncComplete(std::move(req), nullptr, asio::use_future)
                  .get())
              .value();
      if (r.result == net::CacheResult::kMiss) ++misses;
      const net::CompletionUsage u =
          r.parsed.usage.value_or(net::CompletionUsage{});
      const uint64_t plain =
          u.prompt_tokens - u.cached_tokens - u.cache_write_tokens;
      input += plain * kInput + u.cached_tokens * kRead +
               u.cache_write_tokens * kWrite;
      uncached += u.prompt_tokens * kInput;
      read += u.cached_tokens;
      written += u.cache_write_tokens;
      // The agent's next step: a tool call, its result, a user follow-up.
      const std::string id = "call_" + std::to_string(turn);
      json::object call{{"id", id}, {"type", "function"}};
      call["function"] =
          json::object{{"name", "read_file"},
                       {"arguments", R"({"path":"src/parser_)" +
                                         std::to_string(turn) + R"(.cc"})"}};
      messages.push_back(json::object{{"role", "assistant"},
                                      {"content", r.parsed.content},
                                      {"tool_calls", json::array{call}}});
      messages.push_back(
          json::object{{"role", "tool"},
                       {"tool_call_id", id},
                       {"content", std::string(1500, 'a' + turn % 26) +
                                       " (contents of src/parser_" +
                                       std::to_string(turn) + ".cc)"}});
      messages.push_back(
          json::object{{"role", "user"},
                       {"content", "Good. Now check the next file, step " +
                                       std::to_string(turn + 1) + "."}});
    }
  }
  state.counters["input_usd"] = input / state.iterations();
  state.counters["uncached_usd"] = uncached / state.iterations();
  state.counters["ratio"] = uncached > 0 ? input / uncached : 0;
  state.counters["read_tokens"] =
      static_cast<double>(read) / state.iterations();
  state.counters["write_tokens"] =
      static_cast<double>(written) / state.iterations();
  state.counters["misses"] = static_cast<double>(misses) / state.iterations();
  state.SetLabel(variant == kOff    ? "off"
                 : variant == kAuto ? "auto"
                                    : "system prompt only");
  cached.reset();
  cache.reset();
  client.reset();
  fake->Stop();
  guard.reset();
  ioc.stop();
  thread.join();
}
BENCHMARK(BM_PromptCacheAgent)
    ->Arg(kOff)
    ->Arg(kAuto)
    ->Arg(kSystemOnly)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace llmcache::bench
