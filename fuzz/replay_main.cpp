// Replays fuzz inputs without libFuzzer: every file named on the command line, or found in a
// directory named there, runs through the target once. The normal and sanitizer test suites run
// each target over its seed corpus (fuzz/corpus/<target>/) and over every crash it ever found
// (fuzz/regressions/<target>/), so a fixed crash stays fixed. A crash or a violated property
// aborts the process, failing the test. Targets keep their engine for the whole process (as
// under libFuzzer); its segments are removed by name before the replay exits.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "support/stale_segments.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr)
    LLVMFuzzerInitialize(&argc, &argv);
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    fs::path p{argv[i]};
    if (fs::is_directory(p)) {
      for (const auto& e : fs::directory_iterator(p))
        if (e.is_regular_file() && e.path().filename().string().front() != '.')
          files.push_back(e.path());
    } else if (fs::exists(p)) {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in{f, std::ios::binary};
    std::vector<char> bytes{std::istreambuf_iterator<char>{in}, {}};
    std::fprintf(stderr, "replay %s (%zu bytes)\n", f.c_str(), bytes.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("replayed %zu inputs\n", files.size());
  cafshm::test::remove_own_test_segments();
  return files.empty() ? 1 : 0;
}
