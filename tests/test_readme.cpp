// README.md's C++ code is taken from files in examples/ that the build compiles: every ```cpp
// block follows a marker `<!-- snippet: examples/FILE#NAME -->` and equals the lines between
// `// [readme:NAME]` and `// [/readme:NAME]` in that file (less their common indentation).
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in{path};
  std::vector<std::string> result;
  for (std::string line; std::getline(in, line);)
    result.push_back(line);
  return result;
}

std::string trimmed(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos)
    return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// The lines of region `name` in `file`, without their common indentation; nullopt if absent.
std::optional<std::vector<std::string>> region(const std::string& file, const std::string& name) {
  auto lines = lines_of(file);
  auto begin = std::find_if(lines.begin(), lines.end(), [&](const std::string& l) {
    return trimmed(l) == "// [readme:" + name + "]";
  });
  if (begin == lines.end())
    return std::nullopt;
  auto end = std::find_if(begin, lines.end(), [&](const std::string& l) {
    return trimmed(l) == "// [/readme:" + name + "]";
  });
  if (end == lines.end())
    return std::nullopt;
  std::vector<std::string> result(begin + 1, end);
  size_t indent = std::string::npos;
  for (const auto& l : result)
    if (!trimmed(l).empty())
      indent = std::min(indent, l.find_first_not_of(' '));
  for (auto& l : result)
    l = l.size() >= indent ? l.substr(indent) : std::string{};
  return result;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string result;
  for (const auto& l : lines)
    result += l + "\n";
  return result;
}

// The file and region of a line "<!-- snippet: examples/FILE#NAME -->" (NAME of [A-Za-z0-9_-]),
// else nothing.
std::optional<std::pair<std::string, std::string>> snippet_marker(const std::string& line) {
  const std::string open = "<!-- snippet: ", close = " -->";
  if (line.size() <= open.size() + close.size() || line.compare(0, open.size(), open) != 0
      || line.compare(line.size() - close.size(), close.size(), close) != 0)
    return std::nullopt;
  auto body = line.substr(open.size(), line.size() - open.size() - close.size());
  auto hash = body.find('#');
  if (hash == std::string::npos || body.compare(0, 9, "examples/") != 0 || hash <= 9)
    return std::nullopt;
  auto file = body.substr(0, hash), name = body.substr(hash + 1);
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; };
  if (name.empty() || !std::all_of(name.begin(), name.end(), name_char))
    return std::nullopt;
  return std::pair{file, name};
}

} // namespace

TEST_CASE("README: every C++ block is a region of a compiled example, unchanged") {
  const std::string root = CAFSHM_SOURCE_DIR;
  auto readme = lines_of(root + "/README.md");
  REQUIRE_FALSE(readme.empty());
  size_t blocks = 0;
  for (size_t i = 0; i < readme.size(); ++i) {
    if (readme[i] != "```cpp")
      continue;
    ++blocks;
    INFO("README.md line " << i + 1);
    REQUIRE_MESSAGE(i > 0, "a C++ block without a snippet marker");
    auto marker = snippet_marker(readme[i - 1]);
    REQUIRE_MESSAGE(marker, "a C++ block without a snippet marker before it");
    auto [file, name] = *marker;
    auto expected = region(root + "/" + file, name);
    REQUIRE_MESSAGE(expected, "no region '" << name << "' in " << file);
    std::vector<std::string> shown;
    size_t j = i + 1;
    for (; j < readme.size() && readme[j] != "```"; ++j)
      shown.push_back(readme[j]);
    REQUIRE_MESSAGE(j < readme.size(), "an unterminated C++ block");
    CHECK_MESSAGE(joined(shown) == joined(*expected),
                  "README shows\n" << joined(shown) << "but " << file << "#" << name
                                   << " is\n" << joined(*expected));
  }
  CHECK(blocks > 0);
}
