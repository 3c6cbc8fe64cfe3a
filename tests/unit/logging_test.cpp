// Structured logs (src/core/logging.hpp): the JSON format writes one parseable object per
// line with its fields and the call's context, escaping whatever the message holds; the text
// format keeps spdlog's look, adds the node and appends the context.

#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "core/logging.hpp"

namespace keyflow::logging {
namespace {

/// Makes the default logger write into a string stream with a given format, and restores
/// the previous default logger afterwards.
class captured_log {
public:
  captured_log(const std::string& format, uint32_t node_id) : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_formatter(make_formatter(format, node_id));
    auto logger = std::make_shared<spdlog::logger>("keyflowd", std::move(sink));
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(std::move(logger));
  }
  ~captured_log() { spdlog::set_default_logger(previous_); }
  captured_log(const captured_log&) = delete;
  captured_log& operator=(const captured_log&) = delete;

  /// The lines written so far.
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in{out_.str()};
    for (std::string line; std::getline(in, line);)
      out.push_back(line);
    return out;
  }

private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

TEST(LoggingJson, OneObjectPerLineWithContext) {
  captured_log log{"json", 2};
  warn({.op = "dedup", .key_group = 17, .actor = "stage0/1"}, "hot key '{}' at {:.0f}%", "c-1",
       42.0);
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u);
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j.at("level"), "warn");
  EXPECT_EQ(j.at("node"), 2);
  EXPECT_EQ(j.at("logger"), "keyflowd");
  EXPECT_EQ(j.at("msg"), "hot key 'c-1' at 42%");
  EXPECT_EQ(j.at("operator"), "dedup");
  EXPECT_EQ(j.at("key_group"), 17);
  EXPECT_EQ(j.at("actor"), "stage0/1");
  // ISO-8601 UTC with milliseconds.
  std::regex iso{R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)"};
  EXPECT_TRUE(std::regex_match(j.at("ts").get<std::string>(), iso)) << j.at("ts");
  // The timestamp comes first, for people reading the raw lines.
  EXPECT_EQ(lines[0].rfind("{\"ts\":", 0), 0u) << lines[0];
}

TEST(LoggingJson, ContextOnlyWhereGiven) {
  captured_log log{"json", 0};
  spdlog::info("plain line");
  error({.key_group = 0}, "key group only");
  info({.actor = "source events/3"}, "actor only");
  spdlog::info("plain again");
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 4u);
  auto plain = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(plain.at("node"), 0);
  EXPECT_EQ(plain.at("level"), "info");
  EXPECT_FALSE(plain.contains("operator"));
  EXPECT_FALSE(plain.contains("key_group"));
  EXPECT_FALSE(plain.contains("actor"));
  auto kg = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(kg.at("level"), "error");
  EXPECT_EQ(kg.at("key_group"), 0);
  EXPECT_FALSE(kg.contains("operator"));
  auto actor = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(actor.at("actor"), "source events/3");
  EXPECT_FALSE(actor.contains("key_group"));
  // The context ends with its call.
  EXPECT_FALSE(nlohmann::json::parse(lines[3]).contains("actor"));
  EXPECT_EQ(current_context(), nullptr);
}

TEST(LoggingJson, EscapesWhatTheMessageHolds) {
  captured_log log{"json", 1};
  const std::string nasty = "quote \" backslash \\ newline \n tab \t bell \x07 brace {}";
  warn({.op = "op \"x\""}, "key '{}'", nasty);
  // Record keys are arbitrary bytes: invalid UTF-8 must not break the line (or throw).
  warn({}, "bytes {}", std::string{"\xff\xfe ok"});
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 2u) << "a message's newline must not split its line";
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j.at("msg"), "key '" + nasty + "'");
  EXPECT_EQ(j.at("operator"), "op \"x\"");
  auto bytes = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(bytes.at("msg"), "bytes \xEF\xBF\xBD\xEF\xBF\xBD ok"); // U+FFFD twice
}

TEST(LoggingJson, BelowTheLevelNothingIsFormatted) {
  captured_log log{"json", 1};
  debug({.op = "dedup"}, "not shown {}", 1);
  EXPECT_TRUE(log.lines().empty());
}

TEST(LoggingText, KeepsTheLookAddsNodeAndContext) {
  captured_log log{"text", 3};
  warn({.op = "sessions", .key_group = 5, .actor = "stage0/1"}, "late {}", 7);
  spdlog::info("plain");
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 2u);
  std::regex with_ctx{R"(\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] \[keyflowd\] \[node 3\] )"
                      R"(\[warning\] late 7 \[operator=sessions key_group=5 actor=stage0/1\])"};
  EXPECT_TRUE(std::regex_match(lines[0], with_ctx)) << lines[0];
  std::regex plain{R"(\[[^\]]+\] \[keyflowd\] \[node 3\] \[info\] plain)"};
  EXPECT_TRUE(std::regex_match(lines[1], plain)) << lines[1];
}

TEST(LoggingText, StandaloneShowsNoNodeAndQuotesValuesWithSpaces) {
  captured_log log{"text", 0};
  error({.actor = "source events/3"}, "failed");
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].find("[node"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("] [error] failed [actor=\"source events/3\"]"), std::string::npos)
      << lines[0];
}

TEST(Logging, UnknownFormatIsRefused) {
  EXPECT_THROW(make_formatter("xml", 1), std::invalid_argument);
}

TEST(Logging, SetupInstallsTheDefaultLogger) {
  auto previous = spdlog::default_logger();
  setup_logging("json", "warn", 4);
  EXPECT_EQ(spdlog::default_logger()->name(), "keyflowd");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::warn);
  setup_logging("text", "info", 0); // again: replaces it, no duplicate-name error
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::info);
  spdlog::set_default_logger(previous);
}

} // namespace
} // namespace keyflow::logging
