# Plots of cafshm-bench's data files (bench/results/*.dat). Called by scripts/bench.sh:
#   gnuplot -e "dir='bench/results'" bench/plot.gp
if (!exists("dir")) dir = "bench/results"
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set grid
set key top left
set logscale x 2
rows(f) = int(system("grep -vc '^#' ".f." 2>/dev/null || true"))
sizes = '("64 B" 64, "4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576, "4 MiB" 4194304, "16 MiB" 16777216, "64 MiB" 67108864, "256 MiB" 268435456, "1 GiB" 1073741824)'

# 1. hand-off round trip vs payload size, log-log
if (rows(dir."/handoff.dat") > 0) {
set output dir."/handoff_latency.png"
set terminal pngcairo size 900,640 font "sans,11" noenhanced
set title "Hand-off round trip between two processes vs payload size (median)"
set key outside bottom center horizontal maxrows 3 width -2
unset xlabel
set ylabel "round trip [us]"
set logscale y 10
eval "set xtics ".sizes
set xrange [40:100000000]
plot dir."/handoff.dat" using 1:2 with linespoints lw 2 pt 7 title "cafshm (hand-made pool, block_ref each way)", \
     ''               using 1:8 with linespoints lw 2 pt 9 title "cafshm (library pool, pool_frame each way)", \
     ''               using 1:9 with linespoints lw 1 dt 3 pt 3 title "cafshm (hand-made pool) + 1 message each way", \
     ''               using 1:3 with linespoints lw 1 pt 6 title "cafshm + XXH3 of the payload", \
     ''               using 1:4 with linespoints lw 1 pt 4 title "cafshm + writing the payload", \
     ''               using 1:5 with linespoints lw 1 pt 8 title "cafshm without pool (10 engine requests)", \
     ''               using 1:6 with linespoints lw 2 pt 5 title "plain CAF std::vector<char>", \
     ''               using 1:7 with linespoints lw 1 dt 2 pt 2 title "memcpy (one core)"
}

set terminal pngcairo size 900,560 font "sans,11" noenhanced
# 2. pipeline throughput vs frame size
unset logscale y
set key inside top left vertical
if (rows(dir."/pipeline.dat") > 0) {
set output dir."/pipeline_throughput.png"
set title "Pipeline producer -> transformer -> sink (median, bars: min-max)"
set xlabel "RGB frame"
set ylabel "GB/s (input RGB bytes)"
set xtics ("640x480" 921600, "1920x1080" 6220800, "3840x2160" 24883200)
set xrange [500000:45000000]
set yrange [0:*]
plot dir."/pipeline.dat" using 1:2:4:5 with yerrorlines lw 2 pt 7 title "cafshm (shm)", \
     ''                using 1:3:6:7 with yerrorlines lw 2 pt 5 title "plain CAF (caf)"
}

# 3. remote transfer throughput vs block size
if (rows(dir."/remote.dat") > 0) {
set output dir."/remote_throughput.png"
set title "Remote transfer on loopback (median, bars: min-max)"
set xlabel "block"
set ylabel "GB/s"
eval "set xtics ".sizes
set xrange [2000000:2200000000]
set yrange [0:*]
plot dir."/remote.dat" using 1:3:7:8 with yerrorlines lw 2 pt 5 title "raw TCP socket pair (ceiling)", \
     ''              using 1:2:5:6 with yerrorlines lw 2 pt 7 title "cafshm transmit (cafshmd -> cafshmd)", \
     ''              using 1:4:9:10 with yerrorlines lw 2 pt 4 title "plain CAF vector<char> chunks"
}
