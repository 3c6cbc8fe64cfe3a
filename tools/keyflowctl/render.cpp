// Rendering helpers of keyflowctl (render.hpp).

#include "render.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

namespace keyflowctl {

std::string compact(const nlohmann::json& v) {
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void table::print(std::FILE* out, const std::string& indent) const {
  std::vector<size_t> widths(header_.size(), 0);
  auto measure = [&widths](const std::vector<std::string>& row) {
    if (widths.size() < row.size())
      widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  };
  measure(header_);
  for (const auto& r : rows_)
    measure(r);
  auto line = [&](const std::vector<std::string>& row) {
    std::string s = indent;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i + 1 == row.size())
        s += row[i];
      else
        s += fmt::format("{:<{}}  ", row[i], widths[i]);
    }
    while (s.size() > indent.size() && s.back() == ' ')
      s.pop_back();
    std::fprintf(out, "%s\n", s.c_str());
  };
  if (!header_.empty())
    line(header_);
  for (const auto& r : rows_)
    line(r);
}

const nlohmann::json* find(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  if (!j.is_object())
    return nullptr;
  for (const char* k : keys) {
    auto it = j.find(k);
    if (it != j.end() && !it->is_null())
      return &*it;
  }
  return nullptr;
}

std::optional<int64_t> integer(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  const auto* v = find(j, keys);
  if (v == nullptr)
    return std::nullopt;
  if (v->is_number_integer())
    return v->get<int64_t>();
  if (v->is_number())
    return static_cast<int64_t>(v->get<double>());
  if (v->is_string()) {
    try {
      size_t used = 0;
      auto n = std::stoll(v->get<std::string>(), &used);
      if (used == v->get<std::string>().size())
        return n;
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

std::string field(const nlohmann::json& j, std::initializer_list<const char*> keys,
                  const std::string& fallback) {
  const auto* v = find(j, keys);
  return v == nullptr ? fallback : text(*v);
}

std::string text(const nlohmann::json& v) {
  switch (v.type()) {
  case nlohmann::json::value_t::null:
    return "-";
  case nlohmann::json::value_t::string:
    return v.get<std::string>();
  case nlohmann::json::value_t::boolean:
    return v.get<bool>() ? "yes" : "no";
  case nlohmann::json::value_t::array: {
    std::string out;
    for (const auto& e : v)
      out += (out.empty() ? "" : ", ") + (e.is_structured() ? compact(e) : text(e));
    return out.empty() ? "-" : out;
  }
  case nlohmann::json::value_t::object: {
    std::string out;
    for (const auto& [k, e] : v.items())
      out += fmt::format("{}{}: {}", out.empty() ? "" : ", ", k,
                         e.is_structured() ? compact(e) : text(e));
    return out.empty() ? "-" : out;
  }
  case nlohmann::json::value_t::number_float: {
    // Counters summed from metrics come as doubles: 600.0 reads better as 600.
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15)
      return std::to_string(static_cast<int64_t>(d));
    return compact(v);
  }
  default:
    return compact(v);
  }
}

std::string value_text(const nlohmann::json& v, size_t max) {
  std::string s = v.is_string() ? v.get<std::string>() : compact(v);
  if (max > 3 && s.size() > max)
    s = s.substr(0, max - 3) + "...";
  return s;
}

std::string bytes_text(uint64_t bytes) {
  if (bytes < 1024)
    return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string utc_text(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr)
    return std::to_string(ms);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string age_text(int64_t ms) {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto s = (now - ms) / 1000;
  if (s < 0)
    return "in the future";
  if (s < 120)
    return fmt::format("{} s ago", s);
  if (s < 2 * 3600)
    return fmt::format("{} min ago", s / 60);
  if (s < 2 * 86400)
    return fmt::format("{} h ago", s / 3600);
  return fmt::format("{} days ago", s / 86400);
}

const nlohmann::json* list_of(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  if (j.is_array())
    return &j;
  if (const auto* v = find(j, keys); v != nullptr && v->is_array())
    return v;
  if (j.is_object())
    for (const auto& [k, v] : j.items())
      if (v.is_array())
        return &v;
  return nullptr;
}

std::vector<std::pair<std::string, nlohmann::json>> operators_of(const nlohmann::json& j) {
  std::vector<std::pair<std::string, nlohmann::json>> out;
  const auto* ops = find(j, {"operators"});
  if (ops != nullptr && ops->is_array()) {
    for (const auto& o : *ops)
      out.emplace_back(o.is_object() ? field(o, {"id", "operator", "name"}, "?") : text(o), o);
  } else if (ops != nullptr && ops->is_object()) {
    for (const auto& [id, o] : ops->items())
      out.emplace_back(id, o);
  } else if (const auto* one = find(j, {"operator"}); one != nullptr && one->is_string()) {
    out.emplace_back(one->get<std::string>(), j);
  }
  return out;
}

void fields::add(const std::string& name, const std::string& value) {
  if (!value.empty())
    lines_.emplace_back(name, value);
}

void fields::print() const {
  size_t w = 0;
  for (const auto& [n, v] : lines_)
    w = std::max(w, n.size());
  for (const auto& [n, v] : lines_)
    std::printf("%s\n", fmt::format("{:<{}}  {}", n, w, v).c_str());
}

} // namespace keyflowctl
