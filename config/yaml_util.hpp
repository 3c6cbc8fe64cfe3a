#pragma once
/// \file
/// Internal helpers shared by pipeline_config.cpp and node_options.cpp: reading files,
/// loading exactly one YAML document, formatting positioned errors and strict conversion of
/// scalar text to numbers. Not part of the public contract.

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.hpp"

namespace keyflow::config::detail {

/// Formats "<file>:<line>:<column>: <path>: <what>" from a 0-based yaml-cpp mark.
inline std::string positioned(const std::string& file, const YAML::Mark& mark,
                              std::string_view path, std::string_view what) {
  const int line = mark.is_null() ? 1 : mark.line + 1;
  const int column = mark.is_null() ? 1 : mark.column + 1;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
         std::string(path) + ": " + std::string(what);
}

/// Reads a whole file; throws config_error "<path>: cannot read <what>: <reason>".
inline std::string read_text_file(const std::string& path, std::string_view what) {
  auto fail = [&](const std::string& reason) -> config_error {
    return config_error(path + ": cannot read " + std::string(what) + ": " + reason);
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw fail("is a directory");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    throw fail(std::strerror(errno));
  std::string text;
  char buf[8192];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    text.append(buf, n);
  const bool bad = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (bad)
    throw fail(std::strerror(err));
  return text;
}

/// Parses `text` as exactly one YAML document (an empty text gives a null node). Syntax
/// errors and further documents throw config_error with yaml-cpp's position.
inline YAML::Node load_document(const std::string& text, const std::string& file) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::ParserException& e) {
    throw config_error(positioned(file, e.mark, "YAML syntax error", e.msg));
  } catch (const YAML::Exception& e) {
    throw config_error(positioned(file, e.mark, "YAML error", e.msg));
  }
  if (docs.size() > 1)
    throw config_error(
        positioned(file, docs[1].Mark(), "(document 2)", "only one YAML document is allowed"));
  return docs.empty() ? YAML::Node() : docs.front();
}

/// Converts decimal text to an unsigned integer in [lo, hi]; returns an error description
/// ("expected ...") or an empty string on success.
inline std::string parse_unsigned(std::string_view text, uint64_t lo, uint64_t hi, uint64_t& out) {
  const std::string shown = "'" + std::string(text) + "'";
  if (!text.empty() && text.front() == '-' && text.size() > 1 &&
      std::isdigit(static_cast<unsigned char>(text[1])))
    return "must not be negative, got " + shown;
  if (!text.empty() && text.front() == '+')
    text.remove_prefix(1);
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size())
    return "expected an unsigned integer, got " + shown;
  const bool unbounded = hi >= std::numeric_limits<uint32_t>::max();
  if (ec == std::errc::result_out_of_range || v < lo || v > hi)
    return (unbounded && v < lo && ec == std::errc() ? "must be at least " + std::to_string(lo)
            : lo == 0                                ? "must be at most " + std::to_string(hi)
                      : "must be in " + std::to_string(lo) + ".." + std::to_string(hi)) +
           ", got " + shown;
  out = v;
  return {};
}

/// Converts decimal text to a finite double; returns an error description or "".
inline std::string parse_finite_double(std::string_view text, double& out) {
  const std::string shown = "'" + std::string(text) + "'";
  std::string_view digits = text;
  if (!digits.empty() && digits.front() == '+')
    digits.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec == std::errc::invalid_argument || end != digits.data() + digits.size())
    return "expected a number, got " + shown;
  if (ec == std::errc::result_out_of_range || !std::isfinite(v))
    return "expected a finite number, got " + shown;
  out = v;
  return {};
}

/// Converts YAML boolean text (true/false in any case) to bool; returns an error or "".
inline std::string parse_bool(std::string_view text, bool& out) {
  std::string lower(text);
  for (char& c : lower)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true" || lower == "false") {
    out = lower == "true";
    return {};
  }
  return "expected true or false, got '" + std::string(text) + "'";
}

/// Describes what a YAML node is, for "expected X, got Y" messages.
inline std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
  case YAML::NodeType::Map:
    return "a map";
  case YAML::NodeType::Sequence:
    return "a list";
  case YAML::NodeType::Scalar:
    return "'" + n.Scalar() + "'";
  default:
    return "no value";
  }
}

} // namespace keyflow::config::detail
