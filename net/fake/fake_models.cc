// The fake's model table and the GET /api/v1/models body built from it.

#include "fake_models.h"

#include <boost/json.hpp>
#include <charconv>
#include <iterator>
#include <utility>

namespace llmcache::fake::internal {
namespace {

namespace json = boost::json;

// Prices: sonnet-4.5 as in docs/openrouter.md (usage and cost, the worked
// example); the others are list prices of the same era (only their shape
// matters to tests).
constexpr ModelInfo kModels[] = {
    {"anthropic/claude-sonnet-4.5", "Anthropic: Claude Sonnet 4.5", "Anthropic",
     "Claude", 1759161676, 1000000, 64000, "0.000003", "0.000015", "0.0000003",
     "0.00000375", "0.000006"},
    {"openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", "OpenAI", "GPT", 1721260800,
     128000, 16384, "0.00000015", "0.0000006", "0.000000075", "0.00000015",
     nullptr},
    {"openai/gpt-4o", "OpenAI: GPT-4o", "OpenAI", "GPT", 1715558400, 128000,
     16384, "0.0000025", "0.00001", "0.00000125", "0.0000025", nullptr},
    {"google/gemini-2.5-flash", "Google: Gemini 2.5 Flash", "Google AI Studio",
     "Gemini", 1750172488, 1048576, 65535, "0.0000003", "0.0000025",
     "0.000000075", "0.0000003833", nullptr},
    {"deepseek/deepseek-chat-v3.1", "DeepSeek: DeepSeek V3.1", "DeepSeek",
     "DeepSeek", 1755779628, 163840, 163840, "0.0000002", "0.0000008",
     "0.00000002", "0.0000002", nullptr},
    {"fake/echo", "Fake: Echo", "Fake", "Other", 1700000000, 200000, 8192,
     "0.000001", "0.000002", "0.0000001", "0.00000125", "0.000002"},
};
constexpr size_t kDefaultModel = 5;  // fake/echo prices unknown models
static_assert(std::string_view(kModels[kDefaultModel].id) == "fake/echo");

}  // namespace

const ModelInfo& FindModel(std::string_view base_model) {
  for (const ModelInfo& m : kModels) {
    if (base_model == m.id) return m;
  }
  return kModels[kDefaultModel];
}

std::string ProviderName(std::string_view base_model) {
  for (const ModelInfo& m : kModels) {
    if (base_model == m.id) return m.provider;
  }
  static constexpr std::pair<std::string_view, std::string_view> kByAuthor[] = {
      {"openai/", "OpenAI"},
      {"anthropic/", "Anthropic"},
      {"google/", "Google AI Studio"},
      {"deepseek/", "DeepSeek"},
      {"x-ai/", "xAI"},
      {"mistralai/", "Mistral"},
      {"meta-llama/", "Together"}};
  for (const auto& [prefix, name] : kByAuthor) {
    if (base_model.starts_with(prefix)) return std::string(name);
  }
  return "Fake";
}

double ParsePrice(const char* price) {
  if (price == nullptr) return 0;
  std::string_view sv(price);
  double v = 0;
  std::from_chars(sv.data(), sv.data() + sv.size(), v);
  return v;
}

std::string ModelsJson() {
  json::array data;
  for (const ModelInfo& m : kModels) {
    json::object pricing;
    pricing["prompt"] = m.prompt;
    pricing["completion"] = m.completion;
    pricing["request"] = "0";
    pricing["image"] = "0";
    pricing["web_search"] = "0";
    pricing["internal_reasoning"] = "0";
    pricing["input_cache_read"] = m.input_cache_read;
    pricing["input_cache_write"] = m.input_cache_write;
    if (m.input_cache_write_1h != nullptr) {
      pricing["input_cache_write_1h"] = m.input_cache_write_1h;
    }
    json::object arch;
    arch["modality"] = "text->text";
    arch["input_modalities"] = json::array{"text"};
    arch["output_modalities"] = json::array{"text"};
    arch["tokenizer"] = m.tokenizer;
    arch["instruct_type"] = nullptr;
    json::object top;
    top["context_length"] = m.context_length;
    top["max_completion_tokens"] = m.max_completion_tokens;
    top["is_moderated"] = std::string_view(m.provider) == "Anthropic" ||
                          std::string_view(m.provider) == "OpenAI";
    json::object model;
    model["id"] = m.id;
    model["canonical_slug"] = m.id;
    model["name"] = m.name;
    model["created"] = m.created;
    model["description"] =
        std::string(m.name) + " (served by the llmcache fake)";
    model["context_length"] = m.context_length;
    model["architecture"] = std::move(arch);
    model["pricing"] = std::move(pricing);
    model["top_provider"] = std::move(top);
    model["per_request_limits"] = nullptr;
    model["supported_parameters"] = json::array{
        "max_tokens", "temperature", "top_p",       "stop",
        "seed",       "tools",       "tool_choice", "response_format"};
    model["default_parameters"] = nullptr;
    model["expiration_date"] = nullptr;
    data.emplace_back(std::move(model));
  }
  json::object root;
  root["data"] = std::move(data);
  root["total_count"] = static_cast<int64_t>(std::size(kModels));
  root["links"] = json::object{{"next", nullptr}};
  return json::serialize(root);
}

}  // namespace llmcache::fake::internal
