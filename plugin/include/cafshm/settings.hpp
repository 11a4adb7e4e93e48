// Typed configuration of cafshm. Filled from YAML by load_config() (config.hpp) or set in code.
// Defaults here are the documented defaults of config/default.yaml.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cafshm {

enum class role : uint8_t { engine, client };

/// When freed memory is zeroed so that no process ever sees another process's old data.
enum class scrub_policy : uint8_t {
  on_free,     // zero what was written in a freed or reclaimed block, off the request path: on
               // the engine's scrubbing thread scrub_delay after the free, or by an allocation
               // that comes first, unless the allocating process alone wrote it
  on_allocate, // zero all of a block when it is handed out
  off,         // never (only for trusted single-tenant setups)
};

/// How a client holds its connection to the engine: registered until it closes or its process
/// ends (the only mode; client.mode: per-request is rejected as a configuration error).
enum class connection_mode : uint8_t {
  persistent,
};

struct endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  friend bool operator==(const endpoint&, const endpoint&) = default;
};

/// The quota of the processes of one Unix user or of one group (the primary group the engine
/// learns for a process). Exactly one of `user` and `group` is set: a name, or a numeric id.
struct quota_rule {
  std::string user;
  std::string group;
  uint64_t bytes = 0; // 0 = unlimited
  friend bool operator==(const quota_rule&, const quota_rule&) = default;
};

struct engine_settings {
  std::string name = "cafshm";        // segment names: /<name>.data and /<name>.admin
  uint64_t arena_bytes = 64ull << 20; // initial arena: the first data segment's size; a
                                      // multiple of min_block
  uint64_t max_arena_bytes = 0;       // ceiling up to which the engine adds data segments when
                                      // no free block fits; a multiple of min_block, at least
                                      // arena_bytes; 0 = arena_bytes (the arena never grows)
  uint64_t min_block_bytes = 4096;    // smallest block, a power of two >= page size
  uint32_t max_processes = 64;
  uint32_t max_processes_per_user = 0; // live processes one Unix user may have registered at
                                       // once (ticketless registrations count as one user);
                                       // 0 = unlimited, else below max_processes
  uint32_t max_blocks = 2048;
  uint32_t max_grants = 1024;       // grants + views of non-owners
  uint32_t max_names = 256;
  uint64_t default_quota_bytes = 0;   // per Unix user without a rule: all live processes of
                                      // one such user together (ticketless registrations count
                                      // as one user); 0 = unlimited
  std::vector<quota_rule> quotas;     // per-user / per-group quotas: a rule bounds all live
                                      // processes it applies to together; a user's rule wins
                                      // over a group's, the first matching one of each kind
                                      // counts; no match = default_quota_bytes for the user
  uint32_t max_copy_ranges = 1024;    // ranges one copy request may carry
  uint64_t max_copy_bytes = 256ull << 20; // bytes one copy request may move
  scrub_policy scrub = scrub_policy::on_free;
  std::chrono::milliseconds scrub_delay{2}; // on_free: freed memory waits this long for the
                                            // scrubbing thread (0 .. 1 min)
  uint32_t permissions = 0600;        // mode of both shared-memory objects
  std::string group;                  // Unix group of both objects, which then get group rw
                                      // (permissions | 0060); empty = the creator's group, no
                                      // group access beyond `permissions`. Must exist.
  endpoint listen{"127.0.0.1", 4242}; // where cafshmd publishes the engine
  std::string socket;                 // the local door (Unix-domain socket); empty =
                                      // /dev/shm/<name>.sock
  std::vector<std::string> allow_users;  // besides the engine's user, root and engine.group:
  std::vector<std::string> allow_groups; // who may register through the door
  bool unauthenticated_tcp = false;   // registration without a door ticket over engine.listen
                                      // (anyone who reaches the port; pids unverified)
  std::chrono::milliseconds liveness_interval{200}; // pid liveness check of clients

  /// The arena's ceiling: max_arena_bytes, or arena_bytes when that is 0.
  uint64_t arena_ceiling() const noexcept {
    return max_arena_bytes != 0 ? max_arena_bytes : arena_bytes;
  }
};

struct client_settings {
  endpoint engine{"127.0.0.1", 4242};
  connection_mode mode = connection_mode::persistent;
  std::chrono::milliseconds request_timeout{5000};
};

/// How a process talks to an engine in another process of the same machine.
enum class local_transport : uint8_t {
  shm,  // requests through the engine's shared-memory request inbox, replies through the
        // process's own inbox (docs/fastpath.md); a remote engine is always reached over BASP
  basp, // CAF requests over the io middleman (TCP loopback)
};

/// What a worker of cafshm::polling_scheduler does when it has no job and no record
/// (docs/fastpath.md: spinning pays only when every process has a core of its own).
enum class local_idle : uint8_t {
  automatic, // spin spin_us only on machines with at least 4 cores, else park at once
  park,      // sleep at once (no CPU while idle)
  spin,      // poll without sleeping for spin_us after the last work, then sleep
  yield,     // the same, giving the core to any thread that waits for it between polls
             // (sched_yield): where the peer's woken worker waits behind the spinner
};

struct local_settings {
  local_transport transport = local_transport::shm;
  local_idle idle = local_idle::automatic;
  uint32_t spin_us = 20; // how long `spin` (and `automatic` where it spins) polls; ≤ 1000000
  uint64_t request_inbox_bytes = 1ull << 20; // the engine's request inbox (power of two,
                                             // 4 KiB .. 16 MiB)
  uint64_t reply_inbox_bytes = 256ull << 10; // each client's reply inbox (same bounds)
  uint64_t actor_inbox_bytes = 1ull << 20;   // each client's actor inbox: messages of other
                                             // local processes' actors (same bounds)
};

struct remote_peer {
  std::string name;
  endpoint address;
};

/// Mutual TLS between engines through CAF's openssl module (paths of PEM files). All empty: no
/// TLS. Mutual TLS needs certificate, key and cafile (or capath); validate() checks the rest.
struct tls_settings {
  std::string certificate; // this engine's certificate (chain), presented to peers
  std::string key;         // its private key
  std::string cafile;      // CA certificates that peers' certificates must chain to
  std::string passphrase;  // of an encrypted key
  std::string capath;      // directory of hashed CA certificates (with or instead of cafile)

  bool enabled() const noexcept {
    return !certificate.empty() || !key.empty() || !cafile.empty() || !passphrase.empty()
           || !capath.empty();
  }
};

/// What a transmit gets whose content the destination engine's cache (remote.cache) holds.
enum class cache_hit_policy : uint8_t {
  copy,      // a new block with a copy of the cached bytes; the cache keeps its entry
  hand_over, // the cached block itself, with no copy; the entry leaves the cache, so the next
             // transmit of the same content moves its payload again
};

struct remote_settings {
  std::vector<remote_peer> peers;
  endpoint listen{"127.0.0.1", 0}; // where peer engines connect; port 0 = they use engine.listen
  tls_settings tls;                // peers connect with TLS to `listen` (needs port != 0)
  // How a peer engine proves its engine id in the hello of a link: with `tls`, a signature by
  // its certificate's key (the certificate must chain to tls.cafile/capath); else with
  // `peer_key_file`, an HMAC-SHA256 with the key shared by all peers (a file of at least 16
  // bytes that only its owner may read); else only with `unauthenticated_peers` (anyone who
  // reaches a port of the engine may link as any engine id). None of the three: no peer links.
  std::string peer_key_file;
  bool unauthenticated_peers = false;
  // Where `link` and `transmit` may make this engine dial: the addresses of `peers`, and hosts
  // matching one of these patterns: a host name or address ("db1", "10.0.0.7"), a glob over
  // host names ("*.cluster.local"), or an address range ("10.0.0.0/8", "fd00::/8").
  std::vector<std::string> allow_dial;
  uint64_t chunk_bytes = 1ull << 20;
  uint32_t window_chunks = 4;
  uint64_t cache_bytes = 0;
  cache_hit_policy cache_hit = cache_hit_policy::copy;
  uint32_t checksum_retries = 2;
  // A transmit fails when it waited this long for its destination without any answer from
  // that engine (to this transmit or to any other it carries); a receiving engine drops an
  // incoming transmit whose sender has been silent this long, and a remote read whose block's
  // engine has sent nothing this long. A slow link never fails a transmit or a remote read
  // while bytes keep moving.
  std::chrono::milliseconds stall_timeout{30000};
  // Pause before re-dialing a peer of `peers` that is not linked; doubles after each failed
  // attempt up to `redial_max`.
  std::chrono::milliseconds redial_min{200};
  std::chrono::milliseconds redial_max{10000};
};

struct settings {
  cafshm::role role = role::engine;
  engine_settings engine;
  client_settings client;
  remote_settings remote;
  local_settings local;
};

} // namespace cafshm
