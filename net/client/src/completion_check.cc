// IsPlainlyCacheableCompletion: the common shape of a clean chat completion,
// recognised in one pass of Boost.JSON's own parser (the same grammar, UTF-8
// and depth checks as ParseCompletion's) with a handler that keeps a few
// flags instead of building a tree. `llmcache import` checks every line's
// answer; ParseCompletion's tree and copies were ~12% of an import's CPU
// (5% for this pass).
//
// What it accepts, ParseCompletion + WhyNotCacheable(200, ...) accept too:
// it answers true only for a top-level object with no "error" member whose
// "choices" is a non-empty array; no choice object has an "error" member;
// the first choice is an object whose "finish_reason" is not the string
// "error" and whose "message" is an object with a non-empty string
// "content". A member name it looks at that appears twice in one object
// (which of the two counts is then the tree's business) makes it answer
// false, as does anything else it does not recognise: the caller then asks
// the full parse, which also says why.

#include <boost/json/basic_parser_impl.hpp>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string_view>
#include <vector>

#include "llmcache/net/completion.h"
#include "llmcache/net/json_util.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;

class CleanCompletionHandler {
 public:
  // The tree's own limits (boost/json/detail/handler.hpp): a document the
  // tree would refuse is refused here too.
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  void Reset() {
    frames_.clear();
    expect_ = Slot::kNone;
    key_len_ = 0;
    key_long_ = false;
    string_started_ = false;
    finish_len_ = 0;
    choices_ = 0;
    content_ok_ = false;
  }

  // After a complete parse: whether the document had the clean shape.
  bool Clean() const { return choices_ > 0 && content_ok_; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code& ec) {
    Kind kind = Kind::kOther;
    if (frames_.empty()) {
      kind = Kind::kTop;
    } else if (frames_.back().kind == Kind::kChoices) {
      kind =
          frames_.back().elements++ == 0 ? Kind::kFirstChoice : Kind::kChoice;
    } else if (expect_ == Slot::kMessage) {
      kind = Kind::kMessage;
    } else if (expect_ != Slot::kNone) {
      return Unsure(ec);  // "choices" or "content" as an object
    }
    expect_ = Slot::kNone;
    frames_.push_back(Frame{kind});
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    frames_.pop_back();
    return true;
  }
  bool on_array_begin(json::error_code& ec) {
    Kind kind = Kind::kOther;
    if (expect_ == Slot::kChoices) {
      kind = Kind::kChoices;
    } else if (frames_.empty() || expect_ != Slot::kNone) {
      return Unsure(ec);  // a top-level array, "message" or "content"
    } else if (frames_.back().kind == Kind::kChoices) {
      if (frames_.back().elements++ == 0) return Unsure(ec);
    }
    expect_ = Slot::kNone;
    frames_.push_back(Frame{kind});
    return true;
  }
  bool on_array_end(std::size_t n, json::error_code&) {
    if (frames_.back().kind == Kind::kChoices) choices_ = n;
    frames_.pop_back();
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    AppendKey(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    AppendKey(s);
    const std::string_view key =
        key_long_ ? std::string_view() : std::string_view(key_, key_len_);
    key_len_ = 0;
    key_long_ = false;
    Frame& f = frames_.back();
    switch (f.kind) {
      case Kind::kTop:
        if (key == "error") return Unsure(ec);
        if (key == "choices") {
          return Expect(f, kSeenChoices, Slot::kChoices, ec);
        }
        break;
      case Kind::kFirstChoice:
        if (key == "finish_reason") {
          return Expect(f, kSeenFinish, Slot::kFinishReason, ec);
        }
        if (key == "message") {
          return Expect(f, kSeenMessage, Slot::kMessage, ec);
        }
        [[fallthrough]];
      case Kind::kChoice:
        if (key == "error") return Unsure(ec);
        break;
      case Kind::kMessage:
        if (key == "content") {
          return Expect(f, kSeenContent, Slot::kContent, ec);
        }
        break;
      case Kind::kChoices:
      case Kind::kOther:
        break;
    }
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, json::error_code& ec) {
    return OnStringPiece(s, false, ec);
  }
  bool on_string(json::string_view s, std::size_t n, json::error_code& ec) {
    if (!OnStringPiece(s, true, ec)) return false;
    if (expect_ == Slot::kContent) {
      if (n == 0) return Unsure(ec);
      content_ok_ = true;
    }
    expect_ = Slot::kNone;
    return true;
  }

  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, json::error_code& ec) {
    return Scalar(ec);
  }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code& ec) {
    return Scalar(ec);
  }
  bool on_double(double, json::string_view, json::error_code& ec) {
    return Scalar(ec);
  }
  bool on_bool(bool, json::error_code& ec) { return Scalar(ec); }
  bool on_null(json::error_code& ec) { return Scalar(ec); }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  enum class Kind : uint8_t {
    kTop,          // the document
    kChoices,      // its "choices"
    kFirstChoice,  // choices[0]
    kChoice,       // choices[1...]
    kMessage,      // choices[0].message
    kOther,
  };
  // What the value about to come is.
  enum class Slot : uint8_t {
    kNone,
    kChoices,
    kFinishReason,
    kMessage,
    kContent,
  };
  // Frame::seen bits: member names met once in that object.
  static constexpr uint8_t kSeenChoices = 1;
  static constexpr uint8_t kSeenFinish = 2;
  static constexpr uint8_t kSeenMessage = 4;
  static constexpr uint8_t kSeenContent = 8;

  struct Frame {
    Kind kind;
    uint8_t seen = 0;
    size_t elements = 0;  // kChoices: values met so far
  };

  bool Unsure(json::error_code& ec) {
    // Any error stops the parse; the caller only reads Clean() when the
    // parse succeeded.
    ec = json::error::exception;
    return false;
  }

  bool Expect(Frame& f, uint8_t bit, Slot slot, json::error_code& ec) {
    if ((f.seen & bit) != 0) return Unsure(ec);  // a second one
    f.seen |= bit;
    expect_ = slot;
    return true;
  }

  // A value that is not a string, object or array.
  bool Scalar(json::error_code& ec) {
    if (!frames_.empty() && frames_.back().kind == Kind::kChoices &&
        frames_.back().elements++ == 0) {
      return Unsure(ec);  // choices[0] is not an object
    }
    // "finish_reason" may be anything but the string "error"; "choices",
    // "message" and "content" as scalars are not the clean shape.
    if (expect_ != Slot::kNone && expect_ != Slot::kFinishReason) {
      return Unsure(ec);
    }
    expect_ = Slot::kNone;
    return true;
  }

  // A piece of a string value (`last`: its end).
  bool OnStringPiece(json::string_view s, bool last, json::error_code& ec) {
    if (!string_started_) {
      string_started_ = true;
      if (!frames_.empty() && frames_.back().kind == Kind::kChoices &&
          frames_.back().elements++ == 0) {
        return Unsure(ec);  // choices[0] is not an object
      }
      if (expect_ == Slot::kChoices || expect_ == Slot::kMessage) {
        return Unsure(ec);
      }
      finish_len_ = 0;
    }
    if (expect_ == Slot::kFinishReason) {
      // Only "error" matters: keep up to 6 bytes.
      for (char c : s) {
        if (finish_len_ < sizeof(finish_)) finish_[finish_len_] = c;
        ++finish_len_;
      }
      if (last && finish_len_ == 5 && std::string_view(finish_, 5) == "error") {
        return Unsure(ec);
      }
    }
    if (last) string_started_ = false;
    return true;
  }

  void AppendKey(json::string_view s) {
    if (key_long_) return;
    if (s.size() > sizeof(key_) - key_len_) {
      key_long_ = true;  // longer than any name looked at
      return;
    }
    for (char c : s) key_[key_len_++] = c;
  }

  std::vector<Frame> frames_;
  Slot expect_ = Slot::kNone;
  char key_[16];
  size_t key_len_ = 0;
  bool key_long_ = false;
  bool string_started_ = false;
  char finish_[6];
  size_t finish_len_ = 0;
  size_t choices_ = 0;
  bool content_ok_ = false;
};

using CleanCompletionParser = json::basic_parser<CleanCompletionHandler>;

}  // namespace

bool IsPlainlyCacheableCompletion(std::string_view body) {
  try {
    json::parse_options options;
    options.max_depth = json_util::kMaxJsonDepth;  // as ParseJson
    thread_local CleanCompletionParser parser(options);
    parser.reset();
    parser.handler().Reset();
    json::error_code ec;
    const size_t n = parser.write_some(false, body.data(), body.size(), ec);
    return !ec && n == body.size() && parser.done() && parser.handler().Clean();
  } catch (const std::exception&) {  // bad_alloc: the full parse decides
    return false;
  }
}

}  // namespace llmcache::net
