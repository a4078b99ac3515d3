// The replay of a stored chat completion as a chunk stream (ReplayAsSse):
// every choice, field and piece the live stream carried, in the order and
// chunk shape the OpenAI SDKs accept. Shapes: docs/openrouter.md
// (#streaming-sse).

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmcache/net/json_util.h"
#include "llmcache/net/sse.h"
#include "sse_util.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using json_util::ArrayMember;
using json_util::kMaxJsonDepth;
using json_util::Member;
using json_util::ObjectMember;
using json_util::ParseJson;
using sse_util::IndexOf;
using sse_util::IsEmptyValue;
using sse_util::IsTruthyError;
using sse_util::SerializeFinite;
using sse_util::SplitUtf8;
using sse_util::StringMember;
using sse_util::StringOr;

}  // namespace

namespace {

// Builds the chunks of one replayed stream.
class ChunkWriter {
 public:
  ChunkWriter(const json::object& response, std::vector<std::string>* out)
      : out_(out) {
    // Every chunk repeats the response's top-level members
    // (docs/openrouter.md#stream-chunks) but its choices, usage and error.
    for (const auto& kv : response) {
      const std::string_view key = kv.key();
      if (key == "choices" || key == "usage" || key == "error") continue;
      if (key == "object") {
        head_["object"] = "chat.completion.chunk";
      } else {
        head_.emplace(key, kv.value());
      }
    }
    if (!head_.contains("object")) head_["object"] = "chat.completion.chunk";
  }

  // A chunk with one choice: `delta`, and the choice members `members`
  // (finish_reason, native_finish_reason, logprobs, ...); `error` goes to
  // the top level, where the SDKs look for it.
  void Choice(json::object choice, const json::value* error = nullptr) {
    json::array choices;
    choices.push_back(std::move(choice));
    json::object chunk = head_;
    if (error != nullptr) chunk["error"] = *error;
    chunk["choices"] = std::move(choices);
    Emit(std::move(chunk));
  }

  // The usage chunk: `choices: []` (the documented shape).
  void UsageChunk(const json::value& usage) {
    json::object chunk = head_;
    chunk["choices"] = json::array();
    chunk["usage"] = usage;
    Emit(std::move(chunk));
  }

 private:
  void Emit(json::object chunk) {
    std::string line = "data: ";
    line += SerializeFinite(std::move(chunk));
    line += "\n\n";
    out_->push_back(std::move(line));
  }

  json::object head_;
  std::vector<std::string>* out_;
};

// The message members replayed by dedicated chunks; any other member with a
// value is sent whole in a chunk of its own.
bool HasOwnChunks(std::string_view key) {
  return key == "role" || key == "content" || key == "refusal" ||
         key == "reasoning" || key == "reasoning_content" ||
         key == "reasoning_details" || key == "annotations" ||
         key == "tool_calls";
}

// A text field is replayed in about this many pieces (a few more when
// pieces end early at UTF-8 sequences or token runs): past
// kMaxPiecesPerText * piece_bytes the pieces grow with the text. Each chunk
// repeats the response's top-level members (~200 bytes), so a 10 MiB answer
// in 64-byte pieces would be 163,840 chunks and ~45 MB to hold and send;
// in 256 pieces it is ~10 MB.
constexpr size_t kMaxPiecesPerText = 256;

// Replays one stored choice (docs/openrouter.md#stream-handling).
class ChoiceReplay {
 public:
  ChoiceReplay(const json::object& choice, int64_t index,
               const json::value* error, size_t piece_bytes,
               ChunkWriter* writer)
      : choice_(choice),
        index_(index),
        error_(error),
        piece_bytes_(piece_bytes),
        writer_(writer) {
    if (const json::object* m = ObjectMember(choice, "message")) message_ = m;
    if (const json::object* lp = ObjectMember(choice, "logprobs")) {
      logprobs_ = lp;
    }
  }

  // The piece size for a text of `bytes`: piece_bytes, or larger so that
  // the text goes in at most kMaxPiecesPerText pieces.
  size_t PieceBytesFor(size_t bytes) const {
    return std::max(piece_bytes_,
                    (bytes + kMaxPiecesPerText - 1) / kMaxPiecesPerText);
  }

  void Run() {
    RoleChunk();
    ReasoningChunk();
    RefusalChunk();
    ContentChunks();
    OtherChunks();
    ToolCallChunks();
    FinishChunk();
  }

 private:
  // The choice of one chunk: its index, `delta`, logprobs (a slice of the
  // stored ones, or null), and the stored choice members that are null
  // (the OpenRouter chunk shape repeats them).
  json::object Choice(json::object delta, json::value logprobs = nullptr) {
    json::object c;
    c["index"] = index_;
    c["delta"] = std::move(delta);
    c["finish_reason"] = nullptr;
    c["native_finish_reason"] = nullptr;
    c["logprobs"] = std::move(logprobs);
    for (const auto& kv : choice_) {
      if (kv.value().is_null() && !c.contains(kv.key()) &&
          kv.key() != "message" && kv.key() != "error") {
        c.emplace(kv.key(), nullptr);
      }
    }
    return c;
  }

  // The stored logprobs with `content` and `refusal` replaced by `content`
  // and `refusal` (null where absent): the part one chunk carries.
  json::value LogprobsSlice(json::value content, json::value refusal) {
    json::object lp = *logprobs_;
    if (lp.contains("content") || !content.is_null()) {
      lp["content"] = std::move(content);
    }
    if (lp.contains("refusal") || !refusal.is_null()) {
      lp["refusal"] = std::move(refusal);
    }
    logprobs_sent_ = true;
    return lp;
  }

  const json::array* LogprobsArray(std::string_view key) const {
    return logprobs_ != nullptr ? ArrayMember(*logprobs_, key) : nullptr;
  }

  // The role chunk: role, content "" (or null), and every other stored
  // member that is empty (null, "", [], {}), so that its presence survives.
  // Never logprobs: the openai-node SDK duplicates a first chunk's logprobs.
  void RoleChunk() {
    json::object delta;
    std::string_view role = "assistant";
    if (message_ != nullptr) StringMember(*message_, "role", &role);
    delta["role"] = role.empty() ? std::string_view("assistant") : role;
    const json::value* content =
        message_ != nullptr ? Member(*message_, "content") : nullptr;
    delta["content"] = content != nullptr && content->is_string()
                           ? json::value("")
                           : json::value(nullptr);
    if (message_ != nullptr) {
      for (const auto& kv : *message_) {
        if (kv.key() == "role" || kv.key() == "content") continue;
        if (IsEmptyValue(kv.value())) delta.emplace(kv.key(), kv.value());
      }
    }
    writer_->Choice(Choice(std::move(delta)));
  }

  // Reasoning whole, in one chunk: the openai-node SDK keeps only the last
  // value of a delta member it does not know, so a piece would be all it
  // kept; reasoning_details whole, so that each element arrives once.
  void ReasoningChunk() {
    if (message_ == nullptr) return;
    json::object delta;
    for (std::string_view key :
         {"reasoning", "reasoning_content", "reasoning_details"}) {
      const json::value* v = Member(*message_, key);
      if (v != nullptr && !IsEmptyValue(*v)) delta.emplace(key, *v);
    }
    if (!delta.empty()) writer_->Choice(Choice(std::move(delta)));
  }

  void RefusalChunk() {
    std::string_view refusal;
    if (message_ == nullptr || !StringMember(*message_, "refusal", &refusal) ||
        refusal.empty()) {
      return;
    }
    json::object delta;
    delta["refusal"] = refusal;
    json::value lp = nullptr;
    if (const json::array* r = LogprobsArray("refusal")) {
      lp = LogprobsSlice(nullptr, *r);
      refusal_logprobs_sent_ = true;
    }
    writer_->Choice(Choice(std::move(delta), std::move(lp)));
  }

  // Content in pieces. With logprobs whose tokens spell the content, each
  // piece is a run of whole tokens and carries their logprobs; otherwise
  // the first piece carries all of them.
  void ContentChunks() {
    const json::value* content =
        message_ != nullptr ? Member(*message_, "content") : nullptr;
    if (content == nullptr) return;
    if (content->is_array()) {
      // A parts array (rare for an answer) goes whole.
      if (content->get_array().empty()) return;
      json::object delta;
      delta["content"] = *content;
      writer_->Choice(Choice(std::move(delta), ContentLogprobsWhole()));
      return;
    }
    if (!content->is_string() || content->get_string().empty()) return;
    const std::string_view text = content->get_string();
    if (const json::array* tokens = LogprobsArray("content");
        tokens != nullptr && TokensSpell(*tokens, text)) {
      const size_t piece_bytes = PieceBytesFor(text.size());
      json::array group;
      std::string piece;
      for (const json::value& t : *tokens) {
        const std::string_view token = t.get_object().at("token").get_string();
        if (!group.empty() && piece.size() + token.size() > piece_bytes) {
          ContentPiece(piece, std::move(group));
          group = json::array();
          piece.clear();
        }
        group.push_back(t);
        piece += token;
      }
      if (!group.empty()) ContentPiece(piece, std::move(group));
      return;
    }
    bool first = true;
    for (std::string_view piece : SplitUtf8(text, PieceBytesFor(text.size()))) {
      json::object delta;
      delta["content"] = piece;
      writer_->Choice(
          Choice(std::move(delta), first ? ContentLogprobsWhole() : nullptr));
      first = false;
    }
  }

  void ContentPiece(std::string_view piece, json::array tokens) {
    json::object delta;
    delta["content"] = piece;
    writer_->Choice(
        Choice(std::move(delta), LogprobsSlice(std::move(tokens), nullptr)));
  }

  json::value ContentLogprobsWhole() {
    const json::array* tokens = LogprobsArray("content");
    if (tokens == nullptr) return nullptr;
    return LogprobsSlice(*tokens, nullptr);
  }

  static bool TokensSpell(const json::array& tokens, std::string_view text) {
    size_t pos = 0;
    for (const json::value& t : tokens) {
      if (!t.is_object()) return false;
      const json::value* token = Member(t.get_object(), "token");
      if (token == nullptr || !token->is_string()) return false;
      const std::string_view s = token->get_string();
      if (text.substr(pos, s.size()) != s) return false;
      pos += s.size();
    }
    return pos == text.size();
  }

  // Annotations whole (like reasoning), then any other member with a value
  // (images, audio, ...), each whole.
  void OtherChunks() {
    if (message_ == nullptr) return;
    if (const json::value* a = Member(*message_, "annotations");
        a != nullptr && !IsEmptyValue(*a)) {
      json::object delta;
      delta["annotations"] = *a;
      writer_->Choice(Choice(std::move(delta)));
    }
    for (const auto& kv : *message_) {
      if (HasOwnChunks(kv.key()) || IsEmptyValue(kv.value())) continue;
      json::object delta;
      delta.emplace(kv.key(), kv.value());
      writer_->Choice(Choice(std::move(delta)));
    }
  }

  // Each call: a head fragment with index, id, type, name (and any other
  // stored member), then its arguments in pieces.
  void ToolCallChunks() {
    const json::array* calls =
        message_ != nullptr ? ArrayMember(*message_, "tool_calls") : nullptr;
    if (calls == nullptr) return;
    int64_t index = 0;
    for (const json::value& c : *calls) {
      if (!c.is_object()) continue;
      const json::object& call = c.get_object();
      std::string_view name;
      std::string arguments;
      json::object fn;
      if (const json::object* f = ObjectMember(call, "function")) {
        StringMember(*f, "name", &name);
        const json::value* args = Member(*f, "arguments");
        if (args != nullptr && args->is_string()) {
          arguments = std::string(args->get_string());
        } else if (args != nullptr && !args->is_null()) {
          arguments = SerializeFinite(*args);
        }
        fn["name"] = name;
        fn["arguments"] = "";
        for (const auto& kv : *f) {
          if (kv.key() != "name" && kv.key() != "arguments") {
            fn.emplace(kv.key(), kv.value());
          }
        }
      } else {
        fn["name"] = name;
        fn["arguments"] = "";
      }
      json::object head;
      head["index"] = index;
      head["id"] = StringOr(call, "id");
      const std::string type = StringOr(call, "type");
      head["type"] = type.empty() ? "function" : type;
      head["function"] = std::move(fn);
      for (const auto& kv : call) {
        if (!head.contains(kv.key())) head.emplace(kv.key(), kv.value());
      }
      head["index"] = index;  // the position, whatever was stored
      ToolCallDelta(std::move(head));
      for (std::string_view piece :
           SplitUtf8(arguments, PieceBytesFor(arguments.size()))) {
        json::object piece_fn;
        piece_fn["arguments"] = piece;
        json::object fragment;
        fragment["index"] = index;
        fragment["function"] = std::move(piece_fn);
        ToolCallDelta(std::move(fragment));
      }
      ++index;
    }
  }

  void ToolCallDelta(json::object fragment) {
    json::array fragments;
    fragments.push_back(std::move(fragment));
    json::object delta;
    delta["tool_calls"] = std::move(fragments);
    writer_->Choice(Choice(std::move(delta)));
  }

  // The finish chunk: finish_reason, native_finish_reason and every other
  // stored choice member with a value; a stored error as the mid-stream
  // error event (docs/openrouter.md#errors-in-200), which the SDKs raise on;
  // logprobs not carried yet (e.g. an empty array).
  void FinishChunk() {
    json::value lp = nullptr;
    if (logprobs_ != nullptr && !logprobs_sent_) {
      lp = *logprobs_;
    } else if (const json::array* r = LogprobsArray("refusal");
               r != nullptr && !refusal_logprobs_sent_ && !r->empty()) {
      lp = LogprobsSlice(nullptr, *r);
    }
    json::object c = Choice(json::object(), std::move(lp));
    for (const auto& kv : choice_) {
      const std::string_view key = kv.key();
      if (key == "index" || key == "message" || key == "logprobs" ||
          key == "delta") {
        continue;
      }
      if (!kv.value().is_null()) c[key] = kv.value();
    }
    writer_->Choice(std::move(c), error_);
  }

  const json::object& choice_;
  const int64_t index_;
  const json::value* error_;
  const size_t piece_bytes_;
  ChunkWriter* writer_;
  const json::object* message_ = nullptr;
  const json::object* logprobs_ = nullptr;
  bool logprobs_sent_ = false;
  bool refusal_logprobs_sent_ = false;
};

}  // namespace

Result<std::vector<std::string>> ReplayAsSse(std::string_view completion_json,
                                             size_t piece_bytes) {
  try {
    boost::system::error_code ec;
    const json::value v = ParseJson(completion_json, ec);
    if (ec || !v.is_object()) {
      return InvalidArgumentError("stored response is not a JSON object");
    }
    const json::object& response = v.get_object();
    const json::array* choices = ArrayMember(response, "choices");
    if (choices == nullptr || choices->empty() ||
        !choices->front().is_object()) {
      return InvalidArgumentError("stored response has no choices");
    }
    if (piece_bytes == 0) piece_bytes = 1;

    std::vector<std::string> out;
    ChunkWriter writer(response, &out);
    // A stored error is replayed as the mid-stream error event on the finish
    // chunk of the choice that holds it (a top-level one: the first choice).
    const json::value* top_error = Member(response, "error");
    if (!IsTruthyError(top_error)) top_error = nullptr;
    int64_t position = 0;
    for (const json::value& c : *choices) {
      if (!c.is_object()) continue;
      const json::object& choice = c.get_object();
      const int64_t index = IndexOf(choice).value_or(position);
      const json::value* error = Member(choice, "error");
      if (!IsTruthyError(error)) error = nullptr;
      if (error == nullptr && position == 0) error = top_error;
      ChoiceReplay(choice, index, error, piece_bytes, &writer).Run();
      ++position;
    }
    if (const json::value* usage = Member(response, "usage");
        usage != nullptr && usage->is_object()) {
      writer.UsageChunk(*usage);
    }
    out.emplace_back("data: [DONE]\n\n");
    return out;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory replaying a response");
  } catch (const std::exception& e) {
    return InternalError(std::string("replaying a response: ") + e.what());
  }
}

}  // namespace llmcache::net
