// Synthetic, deterministic chat-completions request bodies for benchmarks.

#include "bench_data.h"

#include <algorithm>
#include <array>
#include <string>
#include <string_view>

namespace llmcache::bench {
namespace {

// SplitMix64: tiny, fast and identical on every platform (std::
// distributions are implementation-defined, so they are not used).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [lo, hi] (hi >= lo); the modulo bias is irrelevant here.
  size_t Between(size_t lo, size_t hi) {
    return lo + static_cast<size_t>(Next() % (hi - lo + 1));
  }

  bool OneIn(uint64_t n) { return Next() % n == 0; }

 private:
  uint64_t state_;
};

constexpr std::array<std::string_view, 6> kModels = {
    "openai/gpt-4o-mini",           "anthropic/claude-sonnet-4.5",
    "google/gemini-2.5-flash",      "meta-llama/llama-3.3-70b-instruct",
    "mistralai/mistral-large-2411", "deepseek/deepseek-chat-v3.1",
};

constexpr std::array<std::string_view, 170> kWords = {
    "the",         "of",        "and",         "to",
    "a",           "in",        "is",          "that",
    "for",         "it",        "as",          "with",
    "was",         "on",        "be",          "at",
    "by",          "this",      "have",        "from",
    "or",          "one",       "had",         "not",
    "but",         "what",      "all",         "were",
    "when",        "we",        "there",       "can",
    "an",          "your",      "which",       "their",
    "said",        "if",        "do",          "will",
    "each",        "about",     "how",         "up",
    "out",         "them",      "then",        "she",
    "many",        "some",      "so",          "these",
    "would",       "other",     "into",        "has",
    "more",        "her",       "two",         "like",
    "him",         "see",       "time",        "could",
    "no",          "make",      "than",        "first",
    "been",        "its",       "who",         "now",
    "people",      "my",        "made",        "over",
    "did",         "down",      "only",        "way",
    "find",        "use",       "may",         "water",
    "long",        "little",    "very",        "after",
    "words",       "called",    "just",        "where",
    "most",        "know",      "get",         "through",
    "back",        "much",      "before",      "go",
    "good",        "new",       "write",       "our",
    "used",        "me",        "man",         "too",
    "any",         "day",       "same",        "right",
    "look",        "think",     "also",        "around",
    "another",     "came",      "come",        "work",
    "three",       "word",      "must",        "because",
    "does",        "part",      "even",        "place",
    "well",        "such",      "function",    "request",
    "cache",       "response",  "model",       "example",
    "question",    "answer",    "database",    "server",
    "important",   "different", "following",   "something",
    "however",     "available", "performance", "configuration",
    "application", "together",  "understand",  "information",
    "especially",  "probably",  "approach",    "explain",
    "summary",     "detail",    "problem",     "solution",
    "carefully",   "consider",  "result",      "simple",
    "memory",      "latency",   "throughput",  "document",
    "version",     "language",
};

constexpr std::array<std::string_view, 4> kSystemPrompts = {
    "You are a helpful assistant. Answer concisely and accurately.",
    "You are an expert software engineer. Explain your reasoning step by "
    "step and include short code examples when they help.",
    "You are a careful technical writer. Use plain English, short "
    "paragraphs and no marketing language.",
    "You are a research assistant. Cite the facts you rely on and say so "
    "when you are unsure.",
};

constexpr std::string_view kShortSystemPrompt = "Be brief.";

// Function tools with JSON-schema parameters, as SDKs send them.
constexpr std::array<std::string_view, 4> kTools = {
    R"({"type":"function","function":{"name":"get_weather","description":"Get the current weather for a city.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Paris"},"unit":{"type":"string","enum":["celsius","fahrenheit"],"description":"Temperature unit"}},"required":["city"],"additionalProperties":false}}})",
    R"({"type":"function","function":{"name":"search_documents","description":"Full-text search over the user's documents. Returns the best matching passages.","parameters":{"type":"object","properties":{"query":{"type":"string","description":"Search terms"},"limit":{"type":"integer","minimum":1,"maximum":50,"default":10},"filters":{"type":"object","properties":{"author":{"type":"string"},"after":{"type":"string","format":"date"}}}},"required":["query"]}}})",
    R"({"type":"function","function":{"name":"run_sql","description":"Run a read-only SQL query against the analytics database.","parameters":{"type":"object","properties":{"sql":{"type":"string","description":"A single SELECT statement"},"timeout_ms":{"type":"number","minimum":100,"maximum":30000}},"required":["sql"],"additionalProperties":false},"strict":true}})",
    R"({"type":"function","function":{"name":"send_email","description":"Send an email on behalf of the user after they confirmed it.","parameters":{"type":"object","properties":{"to":{"type":"array","items":{"type":"string","format":"email"}},"subject":{"type":"string"},"body":{"type":"string"},"priority":{"type":"string","enum":["low","normal","high"]}},"required":["to","subject","body"]}}})",
};

// Writes exactly `n` bytes of JSON string content (already escaped): prose
// with sentences, commas, occasional quoted phrases (\") and paragraph
// breaks (\n\n). Escape sequences are never split.
void AppendProse(Rng& rng, size_t n, std::string* out) {
  const size_t goal = out->size() + n;
  bool sentence_start = true;
  size_t words_in_sentence = 0;
  size_t sentence_length = rng.Between(6, 18);
  std::string token;
  while (out->size() < goal) {
    token.clear();
    if (!sentence_start) token += ' ';
    std::string_view word = kWords[rng.Next() % kWords.size()];
    const bool quoted = !sentence_start && rng.OneIn(40);
    if (quoted) token += "\\\"";
    if (sentence_start) {
      token += static_cast<char>(word[0] - 'a' + 'A');
      token.append(word.substr(1));
    } else {
      token.append(word);
    }
    if (quoted) token += "\\\"";
    sentence_start = false;
    if (++words_in_sentence == sentence_length) {
      const uint64_t end = rng.Next() % 10;
      token += end == 0 ? '?' : (end == 1 ? '!' : '.');
      // Paragraph break or a space; the next sentence adds no separator.
      token += rng.OneIn(5) ? "\\n\\n" : " ";
      sentence_start = true;
      words_in_sentence = 0;
      sentence_length = rng.Between(6, 18);
    } else if (rng.OneIn(12)) {
      token += ',';
    }
    const size_t room = goal - out->size();
    if (token.size() <= room) {
      out->append(token);
    } else {
      // Fill the last few bytes with the start of a plain word and full
      // stops: never a broken escape.
      out->append(word.substr(0, std::min(room, word.size())));
      while (out->size() < goal) out->push_back('.');
    }
  }
}

void AppendMessage(Rng& rng, std::string_view role, size_t text_bytes,
                   std::string* out) {
  *out += R"({"role":")";
  *out += role;
  *out += R"(","content":")";
  AppendProse(rng, text_bytes, out);
  *out += R"("})";
}

// Bytes of a message around its text: {"role":"user","content":""}.
size_t MessageOverhead(std::string_view role) {
  return std::string_view(R"({"role":"","content":""})").size() + role.size();
}

}  // namespace

std::string MakeChatRequest(size_t target_bytes, uint64_t seed) {
  Rng rng(seed ^ 0x6C6C6D6361636865ull);  // "llmcache"
  std::string model(kModels[rng.Next() % kModels.size()]);
  const size_t max_tokens = 256u << rng.Between(0, 4);

  std::string head = R"({"model":")" + model + R"(","messages":[)";
  std::string tail = R"(],"temperature":0,"max_tokens":)";
  tail += std::to_string(max_tokens);
  if (target_bytes >= 1500) {
    const size_t count =
        std::min<size_t>(1 + target_bytes / 4096, kTools.size());
    const size_t first = rng.Next() % kTools.size();
    tail += R"(,"tools":[)";
    for (size_t i = 0; i < count; ++i) {
      if (i != 0) tail += ',';
      tail += kTools[(first + i) % kTools.size()];
    }
    tail += R"(],"tool_choice":"auto")";
  }
  tail += '}';

  std::string out;
  out.reserve(target_bytes + 64);
  out += head;
  // Short targets get the shortest system prompt so that the request stays
  // within the target.
  constexpr size_t kMinFinalText = 40;
  const size_t user_overhead = 1 + MessageOverhead("user");
  std::string_view system = kSystemPrompts[rng.Next() % kSystemPrompts.size()];
  const size_t fixed = head.size() + tail.size() + user_overhead +
                       kMinFinalText + MessageOverhead("system");
  if (fixed + system.size() > target_bytes) system = kShortSystemPrompt;
  out += R"({"role":"system","content":")";
  out += system;
  out += R"("})";

  // Conversation turns: (user, assistant) pairs while there is room for one
  // more pair plus the final user message.
  const size_t assistant_overhead = 1 + MessageOverhead("assistant");
  for (;;) {
    const size_t used = out.size() + tail.size();
    const size_t remaining = target_bytes > used ? target_bytes - used : 0;
    const size_t user_text = rng.Between(60, 600);
    const size_t assistant_text = rng.Between(200, 2500);
    if (remaining < user_overhead + user_text + assistant_overhead +
                        assistant_text + user_overhead + kMinFinalText) {
      break;
    }
    out += ',';
    AppendMessage(rng, "user", user_text, &out);
    out += ',';
    AppendMessage(rng, "assistant", assistant_text, &out);
  }
  const size_t used = out.size() + tail.size() + user_overhead;
  const size_t final_text = target_bytes > used + 1 ? target_bytes - used : 1;
  out += ',';
  AppendMessage(rng, "user", final_text, &out);
  out += tail;
  return out;
}

std::string MakeCompletion(uint64_t i, size_t bytes) {
  constexpr std::string_view kWords = "lorem ipsum dolor ";
  constexpr std::string_view kTail = R"("},"finish_reason":"stop"}])";
  std::string body = R"({"id":"gen-)" + std::to_string(i) +
                     R"(","object":"chat.completion","choices":[{"index":0,)"
                     R"("message":{"role":"assistant","content":")";
  // Words while they and the tail fit, then spaces before the closing
  // brace: valid JSON of exactly `bytes` bytes.
  while (body.size() + kWords.size() + kTail.size() + 1 <= bytes) {
    body += kWords;
  }
  body += kTail;
  if (body.size() + 1 < bytes) body.resize(bytes - 1, ' ');
  body += '}';
  return body;
}

std::string MakeEnglishCompletion(uint64_t i, size_t bytes) {
  Rng rng(i ^ 0x636F6D706C657465ull);  // "complete"
  constexpr std::string_view kAlnum =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "chatcmpl-";
  for (int k = 0; k < 29; ++k) id += kAlnum[rng.Next() % kAlnum.size()];
  std::string fingerprint = "fp_";
  for (int k = 0; k < 10; ++k) {
    fingerprint += "0123456789abcdef"[rng.Next() % 16];
  }
  const uint64_t prompt_tokens = rng.Between(20, 4000);
  const uint64_t completion_tokens = rng.Between(50, 400);

  std::string head = R"({"id":")" + id +
                     R"(","object":"chat.completion","created":)" +
                     std::to_string(1'735'000'000 + i * 7) + R"(,"model":")" +
                     std::string(kModels[rng.Next() % kModels.size()]) +
                     R"(","choices":[{"index":0,"message":{"role":)"
                     R"("assistant","content":")";
  std::string tail = R"(","refusal":null},"logprobs":null,"finish_reason":)"
                     R"("stop"}],"usage":{"prompt_tokens":)" +
                     std::to_string(prompt_tokens) +
                     R"(,"completion_tokens":)" +
                     std::to_string(completion_tokens) + R"(,"total_tokens":)" +
                     std::to_string(prompt_tokens + completion_tokens) +
                     R"(},"system_fingerprint":")" + fingerprint + R"("})";
  const size_t fixed = head.size() + tail.size();
  const size_t text = bytes > fixed + 1 ? bytes - fixed : 1;
  std::string out;
  out.reserve(fixed + text);
  out += head;
  AppendProse(rng, text, &out);
  out += tail;
  return out;
}

}  // namespace llmcache::bench
