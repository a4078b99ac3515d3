#include "llmcache/net/json_util.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace llmcache::net::json_util {
namespace {

// What json::parse with the same depth limit gives: ParseJson keeps a
// parser per thread, and must accept and reject exactly the same texts.
json::value Reference(std::string_view text, boost::system::error_code& ec) {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  return json::parse(text, ec, {}, options);
}

std::string Nested(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(ParseJsonTest, AcceptsAndRejectsWhatJsonParseDoes) {
  const std::string big_array = [] {
    std::string s = "[";
    for (int i = 0; i < 200'000; ++i) s += (i ? ",\"abcdef\"" : "\"abcdef\"");
    return s + "]";
  }();
  ASSERT_GT(big_array.size(), size_t{1} << 20);  // the unshared parser
  const std::vector<std::string> texts = {
      R"({"a":1,"b":[true,null,"x"]})",
      R"({"a":)",          // incomplete
      R"([1] x)",          // extra data
      R"({"a":1,"a":2})",  // duplicate key
      "\"\\ud800\"",       // lone surrogate escape
      "\"\xff\"",          // invalid UTF-8
      "",
      "   ",
      "1e999",
      Nested(kMaxJsonDepth),
      Nested(kMaxJsonDepth + 1),
      big_array,
      big_array.substr(0, big_array.size() - 1),  // incomplete, > 1 MiB
  };
  // Twice, so that each text also follows every other (an error must not
  // leave the kept parser in a state the next text sees).
  for (int round = 0; round < 2; ++round) {
    for (const std::string& text : texts) {
      SCOPED_TRACE(text.substr(0, 40));
      boost::system::error_code ec, ref_ec;
      const json::value got = ParseJson(text, ec);
      const json::value want = Reference(text, ref_ec);
      EXPECT_EQ(ec.failed(), ref_ec.failed()) << ec.message();
      EXPECT_EQ(ec, ref_ec);
      EXPECT_EQ(got, want);
    }
  }
}

TEST(ParseJsonTest, ValuesOutliveLaterParses) {
  boost::system::error_code ec;
  const json::value first = ParseJson(R"({"k":"first","n":[1,2,3]})", ec);
  ASSERT_FALSE(ec);
  const json::value second = ParseJson(R"({"k":"second"})", ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(first.at("k").as_string(), "first");
  EXPECT_EQ(first.at("n").as_array().size(), 3u);
  EXPECT_EQ(second.at("k").as_string(), "second");
}

// A value parsed into a resource on a caller's stack: the kept parser must
// not hold on to that resource after the call (the next call would touch a
// dead frame; AddressSanitizer would say so).
std::string ParseOnStack(std::string_view text, bool* ok) {
  unsigned char buffer[1024];
  json::monotonic_resource memory(buffer, sizeof(buffer));
  boost::system::error_code ec;
  const json::value v = ParseJson(text, ec, &memory);
  *ok = !ec;
  return ec ? std::string() : json::serialize(v);
}

TEST(ParseJsonTest, StackResourcesAreReleased) {
  bool ok = false;
  EXPECT_EQ(ParseOnStack(R"({"a":[1,2]})", &ok), R"({"a":[1,2]})");
  EXPECT_TRUE(ok);
  EXPECT_EQ(ParseOnStack(R"({"a":[1,2)", &ok), "");
  EXPECT_FALSE(ok);
  boost::system::error_code ec;
  const json::value v = ParseJson(R"(["heap"])", ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(v.as_array()[0].as_string(), "heap");
}

TEST(ParseJsonTest, EachThreadParsesOnItsOwn) {
  std::vector<std::thread> threads;
  std::vector<int> good(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &good] {
      for (int i = 0; i < 2000; ++i) {
        const std::string text =
            "{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}";
        boost::system::error_code ec;
        const json::value v = ParseJson(text, ec);
        if (!ec && v.at("t").as_int64() == t && v.at("i").as_int64() == i) {
          ++good[t];
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(good[t], 2000) << "thread " << t;
}

// Serialize writes what json::serialize writes, except doubles: the
// shortest decimal that reads back as the same double, laid out as
// JavaScript's Number::toString does (what upstreams write), never Boost.JSON
// 1.81's E notation ("0E0", "2.5E-1") or its "Infinity" and "NaN".
TEST(SerializeTest, WritesDoublesAsTheShortestPlainDecimal) {
  const std::vector<std::pair<double, std::string>> cases = {
      {0.0, "0.0"},
      {-0.0, "-0.0"},
      {2.0, "2.0"},
      {0.25, "0.25"},
      {0.9162871935251732, "0.9162871935251732"},
      {0.00015, "0.00015"},
      {0.0001, "0.0001"},
      {0.000003, "0.000003"},
      {-1e-6, "-0.000001"},
      {1e-7, "1e-7"},
      {-1.5e-7, "-1.5e-7"},
      {5e-324, "5e-324"},
      {-1234.5, "-1234.5"},
      {1e20, "100000000000000000000.0"},
      {1e21, "1e+21"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {123456789012.0, "123456789012.0"},
      {0.1 + 0.2, "0.30000000000000004"},
      {std::numeric_limits<double>::infinity(), "1e99999"},
      {-std::numeric_limits<double>::infinity(), "-1e99999"},
      {std::numeric_limits<double>::quiet_NaN(), "null"},
  };
  for (const auto& [d, text] : cases) {
    EXPECT_EQ(Serialize(json::value(d)), text) << text;
    if (std::isfinite(d)) {
      // Reads back as the same double, through the standard's parser.
      double back = 0;
      std::from_chars(text.data(), text.data() + text.size(), back);
      EXPECT_EQ(back, d) << text;
    }
  }
}

TEST(SerializeTest, WritesEverythingElseAsJsonSerializeDoes) {
  std::string all_bytes;
  for (int c = 1; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  json::object o;
  o["s"] = "quote \" backslash \\ tab \t nl \n cr \r ff \f bs \b nul";
  o["s"].as_string().push_back('\0');
  o["ctl"] = std::string("\x01\x1f\x7f", 3);
  o["i"] = -9223372036854775807LL - 1;
  o["u"] = 18446744073709551615ULL;
  o["b"] = json::array{true, false, nullptr, json::object{}, json::array{}};
  o["nested"] = json::object{{"k\"ey", json::array{1, -2, "x"}}};
  o["utf8"] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  o[std::string("\x02key", 4)] = "v";
  o["all"] = all_bytes;  // every byte but NUL, as a value and as a key
  o[all_bytes] = 1;
  EXPECT_EQ(Serialize(o), json::serialize(o));
  o.erase("all");  // bytes 0x80-0xff alone are not UTF-8: no parse back
  o.erase(all_bytes);
  EXPECT_EQ(Serialize(json::value("")), "\"\"");
  EXPECT_EQ(Serialize(json::value()), "null");
  // And it reads back to the same value, doubles included.
  o["d"] = json::array{0.5, 0.125, 3.0};
  boost::system::error_code ec;
  json::value back = ParseJson(Serialize(o), ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(back, json::value(o));
  std::string appended = "x";
  SerializeTo(json::value(1.5), &appended);
  EXPECT_EQ(appended, "x1.5");
}

}  // namespace
}  // namespace llmcache::net::json_util
