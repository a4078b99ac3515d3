// simdjson against the request-key parser, on the bodies of key_bench.cc.
//
// Debian's simdjson 3.0.1 (libsimdjson-dev) is a SIMD structural parser. A
// key built on it would still need everything after its parse: duplicate
// member names, member sorting, exact number normalisation, re-escaping the
// strings it unescaped, then SHA-256. These benchmarks measure the part it
// would replace against the whole of ours:
//
//   BM_SimdjsonDomParse/<bytes>   dom::parser::parse (UTF-8 and syntax
//                                 validated, tape built; the kernel is
//                                 chosen at run time)
//   BM_SimdjsonDomWalk/<bytes>    the same, then a visit of every value and
//                                 member name: the least a canonical writer
//                                 reads
//   BM_Canonicalize/<bytes>       KeyBuilder::Canonicalize: our parse,
//                                 checks and canonical bytes, no SHA-256
//   BM_KeyMinusSha256/<bytes>     KeyBuilder::Compute minus Sha256 of the
//                                 same body, the fastest of alternating
//                                 batches (interleaved.h; counters key_ns,
//                                 sha256_ns, key_minus_sha_ns)
//
// Built only where simdjson is installed (scripts/setup.sh --bench).

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "bench_data.h"
#include "interleaved.h"
#include "llmcache/key.h"

namespace llmcache::bench {
namespace {

constexpr uint64_t kSeed = 42;  // the body of key_bench.cc

size_t Visit(simdjson::dom::element e) {
  size_t n = 1;
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      simdjson::dom::object object;
      if (e.get_object().get(object) != simdjson::SUCCESS) return 0;
      for (simdjson::dom::key_value_pair field : object) {
        n += field.key.size() + Visit(field.value);
      }
      break;
    }
    case simdjson::dom::element_type::ARRAY: {
      simdjson::dom::array array;
      if (e.get_array().get(array) != simdjson::SUCCESS) return 0;
      for (simdjson::dom::element v : array) n += Visit(v);
      break;
    }
    case simdjson::dom::element_type::STRING: {
      std::string_view s;
      if (e.get_string().get(s) != simdjson::SUCCESS) return 0;
      n += s.size();
      break;
    }
    default:
      break;
  }
  return n;
}

void DomParse(benchmark::State& state, bool walk) {
  const std::string body =
      MakeChatRequest(static_cast<size_t>(state.range(0)), kSeed);
  const simdjson::padded_string padded(body);
  simdjson::dom::parser parser;
  if (parser.parse(padded).error() != simdjson::SUCCESS) {
    state.SkipWithError("simdjson rejected the body");
    return;
  }
  size_t visited = 0;
  for (auto _ : state) {
    simdjson::dom::element doc;
    if (parser.parse(padded).get(doc) != simdjson::SUCCESS) {
      state.SkipWithError("simdjson rejected the body");
      break;
    }
    if (walk) visited += Visit(doc);
    benchmark::DoNotOptimize(doc);
  }
  benchmark::DoNotOptimize(visited);
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(body.size()));
  state.SetLabel(simdjson::get_active_implementation()->name());
}

void BM_SimdjsonDomParse(benchmark::State& state) { DomParse(state, false); }
void BM_SimdjsonDomWalk(benchmark::State& state) { DomParse(state, true); }

void BM_Canonicalize(benchmark::State& state) {
  const std::string body =
      MakeChatRequest(static_cast<size_t>(state.range(0)), kSeed);
  const KeyBuilder builder;
  if (!builder.Canonicalize(body).ok()) {
    state.SkipWithError("the body was rejected");
    return;
  }
  for (auto _ : state) {
    Result<std::string> canonical = builder.Canonicalize(body);
    benchmark::DoNotOptimize(canonical);
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(body.size()));
}

void BM_KeyMinusSha256(benchmark::State& state) {
  const std::string body =
      MakeChatRequest(static_cast<size_t>(state.range(0)), kSeed);
  const KeyBuilder builder;
  const KeyScope scope{"bench", "tenant-1"};
  if (!builder.Compute(body, scope).ok()) {
    state.SkipWithError("the body was rejected");
    return;
  }
  InterleavedTimes t;
  for (auto _ : state) {
    t = TimeInterleaved(
        body.size(),
        [&] {
          Digest d = Sha256(body);
          benchmark::DoNotOptimize(d);
        },
        [&] {
          Result<RequestKey> k = builder.Compute(body, scope);
          benchmark::DoNotOptimize(k);
        });
  }
  state.counters["sha256_ns"] = t.a_s * 1e9;
  state.counters["key_ns"] = t.b_s * 1e9;
  state.counters["key_minus_sha_ns"] = (t.b_s - t.a_s) * 1e9;
}

BENCHMARK(BM_SimdjsonDomParse)->Arg(2048)->Arg(16384);
BENCHMARK(BM_SimdjsonDomWalk)->Arg(2048)->Arg(16384);
BENCHMARK(BM_Canonicalize)->Arg(2048)->Arg(16384);
BENCHMARK(BM_KeyMinusSha256)->Arg(2048)->Arg(16384)->Iterations(1);

}  // namespace
}  // namespace llmcache::bench

BENCHMARK_MAIN();
