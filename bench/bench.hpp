// The benchmark suite: shared types, statistics and the entry points of every row
// and of the helper roles (the same binary, started again with --role, plays the other
// processes). Benchmarks measure; they never assert.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bench {

// -- options --------------------------------------------------------------------------------

struct options {
  bool quick = false;
  std::vector<std::string> rows{"handoff", "pipeline", "alloc", "remote", "scale", "inbox",
                                "growth", "fanout"};
  std::string out_dir;    // bench/results
  std::string bin_dir;    // cafshmd, cafshm-pipeline
  std::string self;       // this program (for helper roles)
  // Scheduler of the CAF processes in the hand-off, allocation and scale rows. Empty policy:
  // the hand-off row measures a few settings and picks the fastest.
  std::string policy;
  int threads = 0;
  bool has(const std::string& row) const;
};

struct sched {
  std::string policy = "sharing"; // CAF's scheduler.policy: stealing | sharing
  int threads = 1;                // scheduler.max-threads
  std::string text() const { return policy + "/" + std::to_string(threads); }
};

// -- statistics -----------------------------------------------------------------------------

/// Summary of samples: median, p99 and the spread (min, max, p10, p90).
struct stat {
  double median = 0, p99 = 0, min = 0, max = 0, p10 = 0, p90 = 0, mean = 0;
  size_t n = 0;
  bool empty() const noexcept { return n == 0; }
};
stat summarize(std::vector<double> samples);

double seconds_since(std::chrono::steady_clock::time_point t0);

/// Fills `n` bytes at `p` with a pseudo-random pattern of `seed` (xorshift), the same for the
/// same seed: payload that no compression or cache of equal pages makes cheaper.
void fill_pattern(char* p, uint64_t n, uint64_t seed);

// -- row 1: hand-off --------------------------------------------------------------------------

struct handoff_row {
  uint64_t size = 0;
  stat shm;        // hand-made pool: block_ref each way, touch first+last byte (us)
  stat shm_library; // the library's pool: loan, seal, pool_frame each way, open, touch, release
                    // (us)
  stat shm_notify;  // hand-made pool plus one small message to the other process each way (us)
  stat shm_sum;    // pool, both sides XXH3 the whole payload (us)
  stat shm_fill;   // pool, the sender writes the whole payload before each send (us)
  stat shm_engine; // no pool: allocate+map, unmap+transfer, map, unmap+transfer back, map, unmap+free (us)
  stat caf;        // std::vector<char> through the io middleman and back (us)
  stat memcpy_us;  // memcpy of the payload on one core (us)
  // The hand-made pool (shm's protocol) with the handle from client::find_actor, messages
  // through the actor inboxes (us); empty when the column's fast path was not verified.
  stat fast_thread; // read by a thread of each client, the scheduler of `chosen`
  stat fast_park;   // read by cafshm::polling_scheduler's workers, local.idle park
  stat fast_spin;   // the same, local.idle spin for handoff_report::fast_spin_us
};

// One fast-path column of the hand-off: how its actor inboxes are read, and what showed that
// its messages went through them (or why the column has no numbers).
struct fast_column {
  std::string name;
  std::string scheduler;      // of both processes
  bool verified = false;      // inbox proxy, and the counters moved with every round trip
  uint64_t round_trips = 0;   // timed and warm-up, over all sizes and rounds
  uint64_t records_sent = 0;  // message records this process's proxies wrote meanwhile
  uint64_t records_delivered = 0; // message records delivered from its actor inbox meanwhile
  std::string error;
};

struct sched_trial {
  sched s;
  stat shm; // 64 B round trip
  stat caf; // 64 B round trip
  stat caf_1m;
};

// The iceoryx baseline of the hand-off (iceoryx.cpp): the same round trip through Eclipse
// iceoryx 2.0.3, polling and WaitSet subscribers, with a RouDi of the bench's own.
struct iceoryx_row {
  uint64_t size = 0;
  stat polling; // subscriber loops on take() (us)
  stat waitset; // subscriber blocks in a WaitSet (us)
};
struct iceoryx_report {
  std::vector<iceoryx_row> rows;
  std::string error;
};

struct handoff_report {
  std::vector<sched_trial> trials;
  sched chosen;
  std::vector<handoff_row> rows;
  std::vector<fast_column> fast; // receiver thread, polling park, polling spin
  uint32_t fast_spin_us = 0;
  std::string nopool_path; // how the no-pool column's two messages travel
  iceoryx_report iceoryx; // the same sizes through iceoryx
  std::string error;
};

handoff_report run_handoff(const options& opts);
iceoryx_report run_iceoryx(const options& opts, const std::vector<uint64_t>& sizes);


// -- row 2: pipeline ------------------------------------------------------------------------

struct pipeline_row {
  std::string transport;
  uint32_t width = 0, height = 0, frames = 0;
  uint64_t frame_bytes = 0;
  stat fps, gbps;
  std::string error;
};
std::vector<pipeline_row> run_pipeline(const options& opts);

// -- row 3: allocator -----------------------------------------------------------------------

struct alloc_rate {
  std::string name;
  std::string note;
  stat pairs_per_s; // over runs
};
struct frag_row {
  std::string allocator;
  double fill = 0;             // target of requested live bytes / arena
  uint64_t arena = 0;
  uint64_t free_bytes = 0;     // at the end
  uint64_t largest_free = 0;   // at the end
  double ratio = 0;            // largest / free at the end
  double mean_ratio = 0;       // mean over samples taken during the run
  double min_ratio = 0;
  uint64_t ops = 0, failed = 0;
  double live_requested = 0;   // requested live bytes / arena at the end
  double occupied_per_requested = 0; // tlsf: occupied / requested bytes, requests >= 64 KiB
};
struct request_rtt {
  std::string engine;
  stat us; // blocking request round trip (client::find_process)
};
struct alloc_report {
  std::vector<request_rtt> request_rtts;
  std::string workload;
  std::string frag_workload;
  std::vector<alloc_rate> rates;
  std::vector<frag_row> frag;
  std::string error;
};
alloc_report run_alloc(const options& opts, const sched& s);

// in-process parts (alloc_local.cpp)
struct workload {
  std::vector<uint32_t> initial;  // sizes of the live set
  std::vector<uint32_t> sizes;    // op i: free slot victims[i], allocate sizes[i] into it
  std::vector<uint32_t> victims;
};
workload make_workload(uint64_t seed, size_t live, size_t ops, uint32_t min_size,
                       uint32_t max_size);
std::vector<alloc_rate> local_alloc_rates(const workload& w, int runs);
std::vector<frag_row> fragmentation(uint64_t arena, const std::vector<double>& fills, size_t ops,
                                    uint64_t seed, bool pow2);

// engine through messages (handoff.cpp, needs CAF)
std::vector<alloc_rate> engine_alloc_rates(const options& opts, const sched& s,
                                           const workload& w, int runs, double seconds,
                                           std::vector<request_rtt>& rtts);

// -- row 4: remote --------------------------------------------------------------------------

struct rss_figures {
  double hwm_mib = 0;        // VmHWM (includes touched shared memory)
  double anon_peak_mib = 0;  // peak RssAnon during the row minus before (heap, buffers)
};
struct remote_row {
  uint64_t size = 0;
  stat xmit_gbps, tcp_gbps, caf_gbps;
  rss_figures daemon_a, daemon_b, xmit_client, tcp_source, tcp_sink, caf_source, caf_sink;
  std::string error;
};
struct sweep_row {
  uint64_t chunk = 0;
  uint32_t window = 0;
  uint64_t cache = 0; // remote.cache of the receiving daemon
  stat gbps;
  rss_figures daemon_a, daemon_b;
  std::string error;
};
// Both engines with remote.tls (certificates of a CA made for the run) against a raw TLS 1.3
// socket pair with the same certificates, mutual verification, the raw TCP pair's framing.
struct tls_row {
  uint64_t size = 0;
  stat xmit_gbps, pair_gbps;
  rss_figures daemon_a, daemon_b, pair_source, pair_sink;
  std::string error;
};
// Blocking engine requests (client::find_process, 1 ms apart) of a second client of the sending
// engine, idle and while a transmit of `size` between the plain engines runs; the two phases
// alternate.
struct requests_during_transfer {
  uint64_t size = 0;
  std::string transport;   // how the requests travel: shm (the fast path) or basp
  stat idle_us, during_us; // round trips
  stat transfer_gbps;      // of the transfers they overlapped
  size_t transfers = 0;
  std::string error;
};
// Transmits of content the destination's cache holds, against a miss of the same size through
// the same engines: remote.cache_hit copy or hand_over at the destination.
struct cache_row {
  std::string policy; // remote.cache_hit of the destination
  uint64_t size = 0;
  stat miss_ms, hit_ms;
  std::string error;
};
struct remote_report {
  uint64_t chunk = 0;
  uint32_t window = 0;
  std::vector<remote_row> rows;
  uint64_t sweep_size = 0;
  std::vector<sweep_row> sweep;
  std::vector<tls_row> tls;
  std::string tls_cipher; // protocol and cipher suite the raw TLS pair negotiated
  std::string tls_error;  // why the TLS rows are missing (no certificates, no daemons)
  requests_during_transfer requests;
  std::vector<cache_row> cache;
  std::string error;
};
remote_report run_remote(const options& opts);

// -- row 5: scale ---------------------------------------------------------------------------

struct scale_row {
  int clients = 0;
  stat pool_rtt;        // us, all pairs' samples
  double pool_rate = 0; // round trips/s, all pairs
  stat engine_rtt;
  double engine_rate = 0;
  double alloc_rate = 0;       // allocate+free pairs/s, all clients
  stat alloc_per_client;       // pairs/s of each client
  std::string error;
};
struct scale_report {
  uint64_t size = 0;
  double seconds = 0;
  std::vector<scale_row> rows;
  std::string error;
};
scale_report run_scale(const options& opts, const sched& s);

// -- row 6: inbox ping-pong ----------------------------------------------------------------

struct inbox_row {
  std::string variant; // idle strategy of both readers
  long spin_us = 0;    // < 0: a yielding spin of -spin_us (local.idle: yield)
  stat rtt;            // us
  std::string error;
};
struct inbox_report {
  size_t record_bytes = 0;
  std::vector<inbox_row> rows;
  iceoryx_report iceoryx; // 64 B through iceoryx in the same run, for comparison
};
inbox_report run_inbox(const options& opts);

// -- row 7: an arena that grows ------------------------------------------------------------

struct growth_report {
  uint64_t arena = 0;          // engine.arena
  uint64_t max_arena = 0;      // engine.max_arena
  uint64_t big_block = 0;      // the large block asked for (1 GiB unless /dev/shm is too small)
  uint64_t shm_free = 0;       // free bytes of /dev/shm before the row
  std::string scaled_note;     // why big_block is smaller than 1 GiB, if it is
  uint64_t admin_bytes = 0;    // admin memory for arena/max_arena at default capacities
  // In-process (memory_manager, no messages): one allocation that adds a segment, in ms.
  stat add_big_ms;             // a segment of big_block bytes for a block of that size
  stat remove_big_ms;          // the free that removes it again
  stat add_step_ms;            // a segment of `arena` bytes for a 4 KiB block (arena full)
  stat remove_step_ms;         // the free that lets it go
  stat plain_alloc_us;         // allocate+free of 4 KiB that fits (no segment added), µs
  // Through cafshmd (64 MiB arena, max_arena 4 GiB): the large block.
  stat engine_big_alloc_ms;    // client::allocate round trip, the segment added on the way
  stat engine_map_ms;          // client::map of it
  bool big_bytes_ok = false;   // first and last byte written through the view, read back
  uint32_t segments_with_big = 0; // data segments while it lived
  uint32_t segments_after = 0; // after its free
  // The pipeline example at 3840x2160 through the same cafshmd.
  uint32_t frames = 0;
  stat fps;
  uint64_t peak_arena = 0;     // high-water mark of used arena bytes after the pipeline
  uint32_t segments_added = 0; // during the whole row (engine statistics)
  std::string error;
};
growth_report run_growth(const options& opts);

// -- row 8: fan-out ---------------------------------------------------------------------------

// One way of sending the block to all N receivers: in turn over links made by the first send
// ("in turn, new peers"), in turn over linked peers, or all N at once (one thread each).
struct fanout_case {
  std::string mode;
  stat wall_s;            // of each pass: in turn the sum of its transmits, at once start to end
  double gbps = 0;        // N × block ÷ median wall (10^9 bytes/s)
  stat xmit_s;            // each transmit of every pass
  uint64_t transmits = 0, failed = 0, verified = 0; // verified: copies read back at the receiver
  // Sending daemon A, MiB: RssAnon before the passes, its peak during them (sampled every
  // 4 ms), after them; VmHWM (reset before the passes; includes the arena pages it touched).
  double anon_before_mib = 0, anon_peak_mib = 0, anon_after_mib = 0, hwm_mib = 0;
  std::string error;      // the first failure, if any
};
struct fanout_row {
  size_t peers = 0;
  double anon_start_mib = 0;              // A's RssAnon with the block written, before any send
  std::vector<double> anon_after_peer_mib; // A's RssAnon after the send to each new peer
  std::vector<fanout_case> cases;
  std::string error;
};
struct fanout_report {
  uint64_t size = 0, chunk = 0;
  uint32_t window = 0;
  int reps = 0; // passes of "in turn" and "all at once"
  std::vector<fanout_row> rows;
};
fanout_report run_fanout(const options& opts);

// -- machine --------------------------------------------------------------------------------

std::map<std::string, std::string> machine_description();

// -- output ---------------------------------------------------------------------------------

struct report {
  options opts;
  std::map<std::string, std::string> machine;
  double total_seconds = 0;
  handoff_report handoff;
  std::vector<pipeline_row> pipeline;
  alloc_report alloc;
  remote_report remote;
  scale_report scale;
  inbox_report inbox;
  growth_report growth;
  fanout_report fanout;
};
void write_outputs(const report& r);

// -- helper roles -----------------------------------------------------------------------------

/// argv after "--role NAME". Returns the exit code.
int role_peer(const std::map<std::string, std::string>& args);        // handoff.cpp
int role_caf_sink(const std::map<std::string, std::string>& args);    // remote.cpp
int role_caf_source(const std::map<std::string, std::string>& args);
int role_tcp_sink(const std::map<std::string, std::string>& args);
int role_tcp_source(const std::map<std::string, std::string>& args);
int role_tls_sink(const std::map<std::string, std::string>& args);
int role_tls_source(const std::map<std::string, std::string>& args);
int role_xmit(const std::map<std::string, std::string>& args);
int role_engine_host(const std::map<std::string, std::string>& args); // handoff.cpp
int role_inbox_echo(const std::map<std::string, std::string>& args);  // inbox.cpp
int role_inbox_caf_echo(const std::map<std::string, std::string>& args);
int role_iox_ping(const std::map<std::string, std::string>& args);    // iceoryx.cpp
int role_iox_pong(const std::map<std::string, std::string>& args);
int role_fanout(const std::map<std::string, std::string>& args);      // fanout.cpp

// small helpers
std::string human_size(uint64_t bytes);      // 64B, 4KiB, 16MiB, 1GiB
uint64_t parse_size(const std::string& text); // same forms
std::vector<uint64_t> parse_list(const std::string& text);
double vm_hwm_mib();                           // of this process

} // namespace bench
