// fake/flood-<mib>[-every-<ms>] (fake_openrouter.h): the flood event of a
// streamed answer's Plan.

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fake_responder.h"

namespace llmcache::fake::internal {

namespace json = boost::json;

void AddFlood(int64_t mib, int gap_ms, Plan* plan) {
  constexpr size_t kPiece = size_t{64} << 10;
  for (size_t at = 0; at < plan->events.size(); ++at) {
    std::string_view text = plan->events[at];
    if (!text.starts_with("data: {")) continue;
    text.remove_prefix(6);
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    json::object* choice = nullptr;
    if (json::object* o = ec ? nullptr : v.if_object()) {
      if (json::value* c = o->if_contains("choices")) {
        json::array* choices = c->if_array();
        if (choices != nullptr && !choices->empty()) {
          choice = (*choices)[0].if_object();
        }
      }
    }
    if (choice == nullptr) continue;
    const json::value* index = choice->if_contains("index");
    const json::value* delta = choice->if_contains("delta");
    const json::value* content =
        delta != nullptr && delta->is_object()
            ? delta->get_object().if_contains("content")
            : nullptr;
    if (index == nullptr || !index->is_int64() || index->get_int64() != 0 ||
        content == nullptr || !content->is_string() ||
        content->get_string().empty()) {
      continue;
    }
    std::string piece;
    piece.reserve(kPiece);
    while (piece.size() < kPiece) piece += "All work and no play. ";
    piece.resize(kPiece);
    (*choice)["delta"] = ContentDelta(piece);
    (*choice)["logprobs"] = nullptr;
    plan->flood_event = Sse(v);
    plan->flood_count = mib * 16;
    plan->flood_at = at;
    plan->flood_gap_ms = gap_ms;
    return;
  }
}

}  // namespace llmcache::fake::internal
