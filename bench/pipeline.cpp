// Row 2: the pipeline demo (examples/pipeline: producer -> transformer -> sink, three processes)
// under both transports at three frame sizes. Parses its line
// "pipeline transport=T frames=N fps=X GBps=Y".
#include <cstdio>
#include <iostream>

#include "bench.hpp"
#include "processes.hpp"

namespace bench {

std::vector<pipeline_row> run_pipeline(const options& opts) {
  std::vector<pipeline_row> rows;
  daemon_process d{unique_name("cafshm-bench-p"), engine_options(opts.bin_dir, "1GiB")};
  // Frames per run: the caf transport is several times slower, so it gets fewer.
  struct frame {
    uint32_t w, h, shm_quick, shm_full, caf_quick, caf_full;
  };
  const std::vector<frame> frames{{640, 480, 600, 2000, 300, 1000},
                                  {1920, 1080, 120, 400, 40, 150},
                                  {3840, 2160, 40, 120, 16, 40}};
  const int runs = opts.quick ? 2 : 5;
  for (std::string transport : {"shm", "caf"}) {
    for (const auto& f : frames) {
      pipeline_row row;
      row.transport = transport;
      row.width = f.w;
      row.height = f.h;
      row.frame_bytes = uint64_t{f.w} * f.h * 3;
      if (transport == "shm")
        row.frames = opts.quick ? f.shm_quick : f.shm_full;
      else
        row.frames = opts.quick ? f.caf_quick : f.caf_full;
      std::cerr << "bench: pipeline: " << transport << " " << f.w << "x" << f.h << "\n";
      if (!d.ready()) {
        row.error = "cafshmd did not start";
        rows.push_back(row);
        continue;
      }
      std::vector<double> fps, gbps;
      for (int r = 0; r < runs; ++r) {
        child_process p{{opts.bin_dir + "/cafshm-pipeline", "--transport", transport, "--frames",
                 std::to_string(row.frames), "--width", std::to_string(f.w), "--height",
                 std::to_string(f.h), "--engine", d.address_text(), "--deadline", "120"}};
        auto rest = p.wait_for_line("pipeline transport=", std::chrono::seconds(150));
        auto st = p.wait(std::chrono::seconds(30));
        if (!rest) {
          row.error = "no result line (exit status " + (st ? std::to_string(*st) : "?") + ")";
          break;
        }
        char t[16] = {0};
        unsigned n = 0;
        double x = 0, y = 0;
        if (std::sscanf(rest->c_str(), "%15s frames=%u fps=%lf GBps=%lf", t, &n, &x, &y) != 4) {
          row.error = "cannot parse '" + *rest + "'";
          break;
        }
        fps.push_back(x);
        gbps.push_back(y);
      }
      row.fps = summarize(fps);
      row.gbps = summarize(gbps);
      rows.push_back(row);
    }
  }
  return rows;
}

} // namespace bench
