// Tests for the cacheability policy (llmcache/policy.h).

#include "llmcache/policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "llmcache/key.h"

namespace llmcache {
namespace {

// A request that every mode caches: explicit temperature 0, plain model.
RequestInfo Deterministic() {
  RequestInfo info;
  info.model = "openai/gpt-4o";
  info.has_temperature = true;
  info.temperature = 0;
  return info;
}

void ExpectBypass(const RequestInfo& info, CacheMode mode,
                  BypassReason reason) {
  const Decision d = Decide(info, mode);
  EXPECT_FALSE(d.cache) << info.model << " in " << CacheModeName(mode);
  EXPECT_EQ(d.reason, reason)
      << info.model << " in " << CacheModeName(mode) << ": got "
      << BypassReasonName(d.reason) << ", want " << BypassReasonName(reason);
}

void ExpectCache(const RequestInfo& info, CacheMode mode) {
  const Decision d = Decide(info, mode);
  EXPECT_TRUE(d.cache) << info.model << " in " << CacheModeName(mode)
                       << ": bypassed for " << BypassReasonName(d.reason);
  EXPECT_EQ(d.reason, BypassReason::kNone);
}

TEST(PolicyDecideTest, DeterministicModeCachesOnlyExplicitZeroTemperature) {
  ExpectCache(Deterministic(), CacheMode::kDeterministic);
  RequestInfo negative_zero = Deterministic();
  negative_zero.temperature = -0.0;
  ExpectCache(negative_zero, CacheMode::kDeterministic);

  RequestInfo absent = Deterministic();
  absent.has_temperature = false;
  ExpectBypass(absent, CacheMode::kDeterministic, BypassReason::kNoTemperature);

  for (double t : {0.7, 1.0, 1e-9, -0.5}) {
    RequestInfo info = Deterministic();
    info.temperature = t;
    ExpectBypass(info, CacheMode::kDeterministic,
                 BypassReason::kNonZeroTemperature);
  }
  RequestInfo not_a_number = Deterministic();
  not_a_number.temperature = std::numeric_limits<double>::quiet_NaN();
  ExpectBypass(not_a_number, CacheMode::kDeterministic,
               BypassReason::kNonZeroTemperature);
}

TEST(PolicyDecideTest, AlwaysModeIgnoresTemperature) {
  RequestInfo info = Deterministic();
  info.has_temperature = false;
  ExpectCache(info, CacheMode::kAlways);
  info.has_temperature = true;
  info.temperature = 1.3;
  ExpectCache(info, CacheMode::kAlways);
}

TEST(PolicyDecideTest, NeverModeNeverCaches) {
  ExpectBypass(Deterministic(), CacheMode::kNever, BypassReason::kModeNever);
}

TEST(PolicyDecideTest, UnknownModeValueIsTreatedAsNever) {
  ExpectBypass(Deterministic(), static_cast<CacheMode>(42),
               BypassReason::kModeNever);
}

TEST(PolicyDecideTest, DebugBypassesInEveryMode) {
  RequestInfo info = Deterministic();
  info.has_debug = true;
  for (CacheMode mode :
       {CacheMode::kDeterministic, CacheMode::kAlways, CacheMode::kNever}) {
    ExpectBypass(info, mode, BypassReason::kDebug);
  }
}

TEST(PolicyDecideTest, EveryWebSearchSignalBypassesInEveryMode) {
  RequestInfo online = Deterministic();
  online.model = "openai/gpt-4o:online";
  RequestInfo online_combined = Deterministic();
  online_combined.model = "openai/gpt-4o:online:floor";
  RequestInfo plugin = Deterministic();
  plugin.has_web_plugin = true;
  RequestInfo options = Deterministic();
  options.has_web_search_options = true;
  RequestInfo tool = Deterministic();
  tool.has_web_search_tool = true;
  for (const RequestInfo& info :
       {online, online_combined, plugin, options, tool}) {
    for (CacheMode mode :
         {CacheMode::kDeterministic, CacheMode::kAlways, CacheMode::kNever}) {
      ExpectBypass(info, mode, BypassReason::kWebSearch);
    }
  }
}

TEST(PolicyDecideTest, OnlineMustBeAVariantNotPartOfTheName) {
  for (const char* model : {"vendor/online-model", "online/model", "a:online/b",
                            "a/b:onlinex", "a/b:floor"}) {
    RequestInfo info = Deterministic();
    info.model = model;
    ExpectCache(info, CacheMode::kDeterministic);
  }
}

TEST(PolicyDecideTest, EveryDriftingModelFormBypassesInEveryMode) {
  for (const char* model :
       {"openrouter/auto", "openrouter/free", "openrouter/pareto-router",
        "~anthropic/claude-sonnet-latest", "~openai/gpt-latest:floor",
        "@preset/my-preset", "openai/gpt-4o@preset/support",
        "OpenRouter/Auto"}) {
    RequestInfo info = Deterministic();
    info.model = model;
    for (CacheMode mode :
         {CacheMode::kDeterministic, CacheMode::kAlways, CacheMode::kNever}) {
      ExpectBypass(info, mode, BypassReason::kDriftingModel);
    }
  }
}

TEST(PolicyDecideTest, ConcreteModelsAreNotDrifting) {
  for (const char* model :
       {"openai/gpt-4o", "anthropic/claude-sonnet-4.5:floor",
        "meta-llama/llama-3.3-70b-instruct:free", "my-openrouter/model", "a/~b",
        "preset/x"}) {
    RequestInfo info = Deterministic();
    info.model = model;
    ExpectCache(info, CacheMode::kDeterministic);
  }
}

TEST(PolicyDecideTest, ChecksRunInDocumentedOrder) {
  // debug > web search > drifting model > mode.
  RequestInfo info = Deterministic();
  info.model = "openrouter/auto:online";
  info.has_temperature = false;
  info.has_debug = true;
  ExpectBypass(info, CacheMode::kNever, BypassReason::kDebug);
  info.has_debug = false;
  ExpectBypass(info, CacheMode::kNever, BypassReason::kWebSearch);
  info.model = "openrouter/auto";
  ExpectBypass(info, CacheMode::kNever, BypassReason::kDriftingModel);
  info.model = "openai/gpt-4o";
  ExpectBypass(info, CacheMode::kNever, BypassReason::kModeNever);
  ExpectBypass(info, CacheMode::kDeterministic, BypassReason::kNoTemperature);
  ExpectCache(info, CacheMode::kAlways);
}

TEST(PolicyDecideTest, DecisionFactories) {
  EXPECT_TRUE(Decision::Cache().cache);
  EXPECT_EQ(Decision::Cache().reason, BypassReason::kNone);
  EXPECT_FALSE(Decision::Bypass(BypassReason::kDebug).cache);
  EXPECT_EQ(Decision::Bypass(BypassReason::kDebug).reason,
            BypassReason::kDebug);
}

TEST(PolicyDecideTest, WorksOnInfoFromKeyBuilder) {
  const KeyBuilder builder;
  RequestInfo info;
  ASSERT_TRUE(builder
                  .Compute(R"({"model":"openai/gpt-4o","temperature":0,)"
                           R"("messages":[],"plugins":[{"id":"web"}]})",
                           {}, &info)
                  .ok());
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kWebSearch);
  ASSERT_TRUE(builder
                  .Compute(R"({"model":"openai/gpt-4o","temperature":0,)"
                           R"("messages":[]})",
                           {}, &info)
                  .ok());
  ExpectCache(info, CacheMode::kDeterministic);
}

TEST(PolicyNamesTest, ReasonNamesAreStable) {
  EXPECT_EQ(BypassReasonName(BypassReason::kNone), "none");
  EXPECT_EQ(BypassReasonName(BypassReason::kNoTemperature), "no_temperature");
  EXPECT_EQ(BypassReasonName(BypassReason::kNonZeroTemperature),
            "non_zero_temperature");
  EXPECT_EQ(BypassReasonName(BypassReason::kWebSearch), "web_search");
  EXPECT_EQ(BypassReasonName(BypassReason::kDriftingModel), "drifting_model");
  EXPECT_EQ(BypassReasonName(BypassReason::kDebug), "debug");
  EXPECT_EQ(BypassReasonName(BypassReason::kModeNever), "mode_never");
  EXPECT_EQ(BypassReasonName(BypassReason::kCount), "unknown");
  EXPECT_EQ(BypassReasonName(static_cast<BypassReason>(200)), "unknown");
}

TEST(PolicyNamesTest, ReasonNamesRoundTrip) {
  for (int i = 0; i < static_cast<int>(BypassReason::kCount); ++i) {
    const auto reason = static_cast<BypassReason>(i);
    EXPECT_EQ(BypassReasonFromName(BypassReasonName(reason)), reason);
  }
  EXPECT_EQ(BypassReasonFromName("unknown"), std::nullopt);
  EXPECT_EQ(BypassReasonFromName(""), std::nullopt);
  EXPECT_EQ(BypassReasonFromName("Debug"), std::nullopt);
}

TEST(PolicyNamesTest, ModeNamesRoundTrip) {
  EXPECT_EQ(CacheModeName(CacheMode::kDeterministic), "deterministic");
  EXPECT_EQ(CacheModeName(CacheMode::kAlways), "always");
  EXPECT_EQ(CacheModeName(CacheMode::kNever), "never");
  EXPECT_EQ(CacheModeName(static_cast<CacheMode>(9)), "unknown");
  for (CacheMode mode :
       {CacheMode::kDeterministic, CacheMode::kAlways, CacheMode::kNever}) {
    EXPECT_EQ(CacheModeFromName(CacheModeName(mode)), mode);
  }
  EXPECT_EQ(CacheModeFromName("sometimes"), std::nullopt);
  EXPECT_EQ(CacheModeFromName("unknown"), std::nullopt);
}

// ---------------------------------------------------------------------------
// Endpoints.

constexpr CacheMode kAllModes[] = {CacheMode::kDeterministic,
                                   CacheMode::kAlways, CacheMode::kNever};

TEST(PolicyEndpointTest, ResponsesStateBypassesInEveryMode) {
  for (CacheMode mode : kAllModes) {
    RequestInfo info = Deterministic();
    info.endpoint = Endpoint::kResponses;
    info.has_previous_response = true;
    ExpectBypass(info, mode, BypassReason::kPreviousResponse);
    info = Deterministic();
    info.endpoint = Endpoint::kResponses;
    info.store = true;
    ExpectBypass(info, mode, BypassReason::kStoreRequested);
    info = Deterministic();
    info.endpoint = Endpoint::kResponses;
    info.background = true;
    ExpectBypass(info, mode, BypassReason::kBackground);
    info = Deterministic();
    info.endpoint = Endpoint::kResponses;
    info.has_stored_prompt = true;
    ExpectBypass(info, mode, BypassReason::kStoredPrompt);
  }
  RequestInfo stateless = Deterministic();
  stateless.endpoint = Endpoint::kResponses;
  ExpectCache(stateless, CacheMode::kDeterministic);
  stateless.has_temperature = false;
  ExpectBypass(stateless, CacheMode::kDeterministic,
               BypassReason::kNoTemperature);
}

TEST(PolicyEndpointTest, ChecksRunInDocumentedOrderWithResponsesState) {
  // debug > web search > drifting model > previous response > store >
  // background > mode.
  RequestInfo info = Deterministic();
  info.endpoint = Endpoint::kResponses;
  info.model = "openrouter/auto";
  info.has_temperature = false;
  info.has_previous_response = true;
  info.store = true;
  info.background = true;
  info.has_web_search_tool = true;
  info.has_debug = true;
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kDebug);
  info.has_debug = false;
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kWebSearch);
  info.has_web_search_tool = false;
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kDriftingModel);
  info.model = "openai/gpt-5";
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kPreviousResponse);
  ExpectBypass(info, CacheMode::kNever, BypassReason::kPreviousResponse);
  info.has_previous_response = false;
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kStoreRequested);
  info.store = false;
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kBackground);
  info.background = false;
  ExpectCache(info, CacheMode::kAlways);
  ExpectBypass(info, CacheMode::kNever, BypassReason::kModeNever);
  ExpectBypass(info, CacheMode::kDeterministic, BypassReason::kNoTemperature);
}

TEST(PolicyEndpointTest, EmbeddingsNeedNoTemperature) {
  RequestInfo info;
  info.model = "openai/text-embedding-3-small";
  info.endpoint = Endpoint::kEmbeddings;
  ExpectCache(info, CacheMode::kDeterministic);
  ExpectCache(info, CacheMode::kAlways);
  ExpectBypass(info, CacheMode::kNever, BypassReason::kModeNever);
  // Whatever a temperature says, it samples nothing.
  info.has_temperature = true;
  info.temperature = 0.7;
  ExpectCache(info, CacheMode::kDeterministic);
  // The same info as chat completions is not cached.
  info.endpoint = Endpoint::kChatCompletions;
  ExpectBypass(info, CacheMode::kDeterministic,
               BypassReason::kNonZeroTemperature);
  // The checks before the mode still apply.
  info.endpoint = Endpoint::kEmbeddings;
  info.has_debug = true;
  ExpectBypass(info, CacheMode::kDeterministic, BypassReason::kDebug);
  info.has_debug = false;
  info.model = "openai/text-embedding-3-small:online";
  ExpectBypass(info, CacheMode::kDeterministic, BypassReason::kWebSearch);
  info.model = "~openai/text-embedding-latest";
  ExpectBypass(info, CacheMode::kDeterministic, BypassReason::kDriftingModel);
}

TEST(PolicyEndpointTest, WorksOnInfoFromKeyBuilderForEveryEndpoint) {
  const KeyBuilder builder;
  RequestInfo info;
  ASSERT_TRUE(builder
                  .Compute(R"({"model":"openai/text-embedding-3-small",)"
                           R"("input":["a","b"]})",
                           {}, Endpoint::kEmbeddings, &info)
                  .ok());
  ExpectCache(info, CacheMode::kDeterministic);
  ExpectBypass(info, CacheMode::kNever, BypassReason::kModeNever);

  ASSERT_TRUE(builder
                  .Compute(R"({"model":"openai/gpt-5","temperature":0,)"
                           R"("input":"x","previous_response_id":"resp_1"})",
                           {}, Endpoint::kResponses, &info)
                  .ok());
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kPreviousResponse);
  ASSERT_TRUE(builder
                  .Compute(R"({"model":"openai/gpt-5","temperature":0,)"
                           R"("input":"x","previous_response_id":null,)"
                           R"("store":false})",
                           {}, Endpoint::kResponses, &info)
                  .ok());
  ExpectCache(info, CacheMode::kDeterministic);
  ASSERT_TRUE(builder
                  .Compute(R"({"model":"openai/gpt-5","temperature":0,)"
                           R"("input":"x","store":true})",
                           {}, Endpoint::kResponses, &info)
                  .ok());
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kStoreRequested);
  ASSERT_TRUE(builder
                  .Compute(R"({"model":"openai/gpt-5","temperature":0,)"
                           R"("input":"x","background":true})",
                           {}, Endpoint::kResponses, &info)
                  .ok());
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kBackground);
  ASSERT_TRUE(builder
                  .Compute(R"({"model":"openai/gpt-5","temperature":0,)"
                           R"("input":"x","tools":[{"type":"web_search"}]})",
                           {}, Endpoint::kResponses, &info)
                  .ok());
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kWebSearch);

  ASSERT_TRUE(builder
                  .Compute(R"({"model":"claude-sonnet-4-5","temperature":0,)"
                           R"("max_tokens":8,"messages":[],"tools":[{"type":)"
                           R"("web_search_20250305","name":"web_search"}]})",
                           {}, Endpoint::kMessages, &info)
                  .ok());
  ExpectBypass(info, CacheMode::kAlways, BypassReason::kWebSearch);
  ASSERT_TRUE(builder
                  .Compute(R"({"model":"claude-sonnet-4-5","temperature":0,)"
                           R"("max_tokens":8,"messages":[]})",
                           {}, Endpoint::kMessages, &info)
                  .ok());
  ExpectCache(info, CacheMode::kDeterministic);
}

TEST(PolicyNamesTest, ResponsesReasonNamesAreStable) {
  EXPECT_EQ(BypassReasonName(BypassReason::kPreviousResponse),
            "previous_response");
  EXPECT_EQ(BypassReasonName(BypassReason::kStoreRequested), "store_requested");
  EXPECT_EQ(BypassReasonName(BypassReason::kBackground), "background");
  EXPECT_EQ(BypassReasonFromName("previous_response"),
            BypassReason::kPreviousResponse);
  EXPECT_EQ(BypassReasonFromName("store_requested"),
            BypassReason::kStoreRequested);
  EXPECT_EQ(BypassReasonFromName("background"), BypassReason::kBackground);
  EXPECT_EQ(BypassReasonName(BypassReason::kStoredPrompt), "stored_prompt");
  EXPECT_EQ(BypassReasonFromName("stored_prompt"), BypassReason::kStoredPrompt);
  EXPECT_EQ(static_cast<int>(BypassReason::kCount), 11);
}

}  // namespace
}  // namespace llmcache
