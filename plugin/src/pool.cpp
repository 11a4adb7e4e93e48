#include "cafshm/pool.hpp"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/block_view.hpp"
#include "cafshm/client.hpp"
#include "engine_link.hpp"
#include "pool_return_board.hpp"
#include "scheduler_thread.hpp"

namespace cafshm {

namespace {

// The return actor's messages. return: (pool id, index, sequence) from a reader, possibly in
// another process: a release by a reader without the board, or a wake-up after a release on
// the board while the pool waited; hold and loan only come from the pool's own process.
using pool_return_atom = caf::atom_constant<caf::atom("shm_pret")>;
using pool_hold_atom = caf::atom_constant<caf::atom("shm_phold")>;
using pool_loan_atom = caf::atom_constant<caf::atom("shm_ploan")>;
using pool_watch_atom = caf::atom_constant<caf::atom("shm_pwatch")>;

uint64_t page_size() {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

// Writes one byte per page, so that no loan pays a page fault later.
void prefault_for_writing(const block_view& v) {
  auto* p = reinterpret_cast<volatile char*>(v.data());
  for (uint64_t off = 0; off < v.size(); off += page_size())
    p[off] = 0;
}

// Reads one byte per page: the reader's mapping gets its page-table entries once.
void prefault_for_reading(const block_view& v) {
  auto* p = reinterpret_cast<const volatile char*>(v.data());
  char sink = 0;
  for (uint64_t off = 0; off < v.size(); off += page_size())
    sink ^= p[off];
  (void) sink;
}

uint64_t random_pool_id() {
  static std::mutex m;
  static std::mt19937_64 gen{std::random_device{}()};
  std::lock_guard<std::mutex> guard{m};
  uint64_t id = 0;
  while (id == 0)
    id = gen();
  return id;
}

} // namespace

// -- pool state ---------------------------------------------------------------------------------

// Shared by the pool object, its loans and (weakly) its return actor. Invariant: every index is
// either in `free` or out (`sequence[index]` names the loan; `sealed[index]` once it went to
// `holder[index]`). Releases on the board are collected when the free list runs empty.
struct pool::state {
  caf::actor_system* sys = nullptr;
  std::shared_ptr<detail::engine_link> link; // the client's: the engine now, across restarts
  session owner;
  uint64_t id = 0;
  uint64_t block_bytes = 0;
  std::vector<block_ref> refs;
  std::vector<block_view> views; // read-write, pre-faulted
  caf::actor returns;            // the return actor
  block_ref board_ref;           // the return board's block, shared read-write with readers
  block_view board_view;         // the pool's mapping of it
  pool_return_board board;

  mutable std::mutex mtx;
  std::condition_variable cv;
  std::vector<uint32_t> free;          // indices ready to loan
  std::vector<bool> out;               // by index: loaned or sealed
  std::vector<bool> sealed;            // by index: out in a frame (only these come back by board)
  std::vector<uint64_t> sequence;      // by index: number of the current loan
  std::vector<caf::actor_addr> holder; // by index: who holds the sealed frame
  // Holders the return actor monitors, held strongly until their down message: a proxy of an
  // actor in another process sends that message only if it lives until the peer ends, and
  // CAF's monitor(actor_addr) on an actor whose last strong reference is gone calls into a
  // half-destroyed object.
  std::map<caf::actor_addr, caf::actor> watched;
  uint64_t next_sequence = 1;
  std::deque<caf::response_promise> waiting; // async loans waiting for a block
  uint32_t blocked = 0;                      // threads in get_loan waiting for a block

  // Takes a free index (mtx held), collecting releases from the board when none is free; or
  // no_index.
  static constexpr uint32_t no_index = UINT32_MAX;
  uint32_t take_locked() {
    if (free.empty())
      collect_locked();
    if (free.empty())
      return no_index;
    auto i = free.back();
    free.pop_back();
    out[i] = true;
    sealed[i] = false;
    sequence[i] = next_sequence++;
    holder[i] = caf::actor_addr{};
    return i;
  }

  // Gives back every sealed block whose current frame a reader marked released (mtx held).
  void collect_locked() {
    for (uint32_t i = 0; i < out.size(); ++i)
      if (out[i] && sealed[i] && board.released(i) == sequence[i])
        give_back_locked(i);
  }

  // Takes a free index, or announces on the board that the pool waits and collects once more,
  // so that a release racing with the announcement is seen here or wakes the return actor.
  uint32_t take_or_want_locked() {
    if (auto i = take_locked(); i != no_index)
      return i;
    board.want();
    auto i = take_locked();
    if (i != no_index && waiting.empty() && blocked == 0)
      board.unwant();
    return i;
  }

  // Puts index `i` back (mtx held): to the first async waiter, else to the free list.
  void give_back_locked(uint32_t i) {
    out[i] = false;
    sealed[i] = false;
    holder[i] = caf::actor_addr{};
    if (!waiting.empty()) {
      auto rp = std::move(waiting.front());
      waiting.pop_front();
      out[i] = true;
      sequence[i] = next_sequence++;
      rp.deliver(i);
      return;
    }
    free.push_back(i);
    cv.notify_one();
  }

  // Unmaps (the engine learns asynchronously) and frees every block and the board, in this
  // order per block (while the engine is down: once the client re-attached).
  void discard() {
    views.clear();
    for (auto& ref : refs)
      link->free(owner, ref);
    refs.clear();
    board = pool_return_board{};
    board_view = block_view{};
    if (board_ref.valid())
      link->free(owner, board_ref);
    board_ref = block_ref{};
    if (returns)
      caf::anon_send_exit(returns, caf::exit_reason::user_shutdown);
    returns = nullptr;
  }
};

namespace {

caf::behavior return_actor(caf::event_based_actor* self, std::weak_ptr<pool::state> weak) {
  // A holder that went down returns every block it still held.
  self->set_down_handler([weak](caf::down_msg& dm) {
    auto st = weak.lock();
    if (!st)
      return;
    caf::actor gone; // released after the lock: the last reference may end a proxy
    std::lock_guard<std::mutex> guard{st->mtx};
    if (auto i = st->watched.find(dm.source); i != st->watched.end()) {
      gone = std::move(i->second);
      st->watched.erase(i);
    }
    for (uint32_t i = 0; i < st->out.size(); ++i)
      if (st->out[i] && st->holder[i] == dm.source)
        st->give_back_locked(i);
  });
  return {
    [weak](pool_return_atom, uint64_t pool_id, uint32_t index, uint64_t seq) {
      auto st = weak.lock();
      if (!st || pool_id != st->id)
        return;
      std::lock_guard<std::mutex> guard{st->mtx};
      // A late or repeated return (e.g. after the holder's death gave the block back already)
      // names an older loan: ignore it, the block may be out again.
      if (index < st->out.size() && st->out[index] && st->sequence[index] == seq)
        st->give_back_locked(index);
      // A wake-up: hand what the board holds to the waiters, and keep waiting if that was not
      // enough.
      st->collect_locked();
      if (!st->waiting.empty() || st->blocked > 0) {
        st->board.want();
        st->collect_locked();
      }
    },
    [self](pool_hold_atom, const caf::actor& holder) {
      if (holder)
        self->monitor(holder);
    },
    [self, weak](pool_loan_atom) -> caf::result<uint32_t> {
      auto st = weak.lock();
      if (!st)
        return make_error(errc::pool_exhausted, "the pool is closed");
      std::lock_guard<std::mutex> guard{st->mtx};
      if (auto i = st->take_or_want_locked(); i != pool::state::no_index)
        return i;
      auto rp = self->make_response_promise();
      st->waiting.push_back(rp);
      return caf::delegated<uint32_t>{};
    },
  };
}

caf::error check_options(const pool_options& opts) {
  if (opts.count == 0 || opts.block_bytes == 0)
    return make_error(errc::invalid_argument, "a pool needs count > 0 and block_bytes > 0");
  return {};
}

std::shared_ptr<pool::state> new_state(client& c, const pool_options& opts) {
  auto st = std::make_shared<pool::state>();
  st->sys = &c.system();
  st->link = detail::link_of(c);
  st->owner = c.session();
  st->id = random_pool_id();
  st->block_bytes = opts.block_bytes;
  return st;
}

// The size of the return board's block for a pool of `count` blocks.
uint64_t board_bytes(const pool_options& opts) {
  return pool_return_board::bytes_for(opts.count);
}

// Keeps the board's mapping and writes its header (before it is shared with any reader).
caf::error keep_board(pool::state& st, block_ref ref, block_view view, uint32_t count) {
  st.board_ref = ref;
  st.board = pool_return_board::format(view.bytes(), st.id, count);
  st.board_view = std::move(view);
  if (!st.board)
    return make_error(errc::invalid_argument, "the return board's block is too small");
  return {};
}

// Makes the pool ready to loan: all blocks free, return actor running.
void open_for_loans(const std::shared_ptr<pool::state>& st) {
  auto n = static_cast<uint32_t>(st->refs.size());
  st->out.assign(n, false);
  st->sealed.assign(n, false);
  st->sequence.assign(n, 0);
  st->holder.assign(n, caf::actor_addr{});
  for (uint32_t i = n; i > 0; --i)
    st->free.push_back(i - 1); // loans start at index 0
  st->returns = st->sys->spawn<caf::hidden>(return_actor, std::weak_ptr<pool::state>{st});
}

} // namespace

// -- pool: creation -----------------------------------------------------------------------------

caf::expected<pool> pool::create(client& c, pool_options opts) {
  if (auto why = check_options(opts))
    return why;
  if (auto why = check_may_block(c.system(), "pool::create"))
    return why;
  auto st = new_state(c, opts);
  auto board = c.allocate(board_bytes(opts));
  if (!board)
    return board.error();
  st->board_ref = *board;
  auto board_view = c.map(*board, access_mode::read_write);
  if (!board_view) {
    st->discard();
    return board_view.error();
  }
  if (auto why = keep_board(*st, *board, std::move(*board_view), opts.count)) {
    st->discard();
    return why;
  }
  for (auto reader : opts.readers)
    if (auto r = c.share(*board, reader, access_mode::read_write); !r) {
      st->discard();
      return r.error();
    }
  for (uint32_t i = 0; i < opts.count; ++i) {
    auto ref = c.allocate(opts.block_bytes);
    if (!ref) {
      st->discard();
      return ref.error();
    }
    st->refs.push_back(*ref);
    auto view = c.map(*ref, access_mode::read_write);
    if (!view) {
      st->discard();
      return view.error();
    }
    prefault_for_writing(*view);
    st->views.push_back(std::move(*view));
    for (auto reader : opts.readers)
      if (auto r = c.share(*ref, reader, access_mode::read); !r) {
        st->discard();
        return r.error();
      }
  }
  open_for_loans(st);
  return pool{std::move(st)};
}

// Builds the pool's blocks one after the other through `self`'s requests.
struct pool_builder : std::enable_shared_from_this<pool_builder> {
  caf::event_based_actor* self;
  client* c;
  pool_options opts;
  std::shared_ptr<pool::state> st;
  async_result<pool>::value_handler on_value;
  async_result<pool>::error_handler on_error;

  void fail(caf::error& why) {
    st->discard();
    on_error(why);
  }

  // The board first: allocated, mapped, formatted and shared read-write with each reader.
  void start() {
    auto me = shared_from_this();
    c->allocate(self, board_bytes(opts)).then(
      [me](block_ref&& ref) {
        me->st->board_ref = ref;
        me->c->map(me->self, ref, access_mode::read_write)
          .then([me, ref](block_view&& view) {
                  if (auto why = keep_board(*me->st, ref, std::move(view), me->opts.count)) {
                    me->fail(why);
                    return;
                  }
                  me->share(ref, 0, access_mode::read_write);
                },
                [me](caf::error& e) { me->fail(e); });
      },
      [me](caf::error& e) { me->fail(e); });
  }

  void next() {
    if (st->refs.size() == opts.count) {
      open_for_loans(st);
      on_value(pool{std::move(st)});
      return;
    }
    auto me = shared_from_this();
    c->allocate(self, opts.block_bytes).then(
      [me](block_ref&& ref) {
        me->st->refs.push_back(ref);
        me->c->map(me->self, ref, access_mode::read_write)
          .then([me, ref](block_view&& view) {
                  prefault_for_writing(view);
                  me->st->views.push_back(std::move(view));
                  me->share(ref, 0, access_mode::read);
                },
                [me](caf::error& e) { me->fail(e); });
      },
      [me](caf::error& e) { me->fail(e); });
  }

  void share(block_ref ref, size_t reader, access_mode mode) {
    if (reader == opts.readers.size()) {
      next();
      return;
    }
    auto me = shared_from_this();
    c->share(self, ref, opts.readers[reader], mode)
      .then([me, ref, reader, mode](done&&) { me->share(ref, reader + 1, mode); },
            [me](caf::error& e) { me->fail(e); });
  }
};

async_result<pool> pool::create(caf::event_based_actor* self, client& c, pool_options opts) {
  return async_result<pool>{[self, &c, opts](auto on_value, auto on_error) {
    if (auto why = check_options(opts)) {
      on_error(why);
      return;
    }
    auto b = std::make_shared<pool_builder>();
    b->self = self;
    b->c = &c;
    b->opts = opts;
    b->st = new_state(c, opts);
    b->on_value = std::move(on_value);
    b->on_error = std::move(on_error);
    b->start();
  }};
}

// -- pool: loans --------------------------------------------------------------------------------

pool& pool::operator=(pool&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
  }
  return *this;
}

pool::~pool() {
  close();
}

void pool::close() {
  if (!state_)
    return;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    for (auto& rp : state_->waiting)
      rp.deliver(make_error(errc::pool_exhausted, "the pool closed"));
    state_->waiting.clear();
  }
  state_->discard();
  state_.reset();
}

std::optional<pool::loan> pool::try_loan() {
  if (!state_)
    return std::nullopt;
  std::lock_guard<std::mutex> guard{state_->mtx};
  auto i = state_->take_locked();
  if (i == state::no_index)
    return std::nullopt;
  return loan{state_, i};
}

caf::expected<pool::loan> pool::get_loan(std::chrono::milliseconds wait) {
  if (!state_)
    return make_error(errc::invalid_argument, "the pool is closed");
  std::unique_lock<std::mutex> guard{state_->mtx};
  auto i = state_->take_locked();
  if (i != state::no_index)
    return loan{state_, i};
  guard.unlock();
  // Blocks come back through the return actor, which needs a scheduler thread.
  if (auto why = check_may_block(*state_->sys, "pool::get_loan"))
    return why;
  guard.lock();
  auto deadline = std::chrono::steady_clock::now() + wait;
  ++state_->blocked;
  for (;;) {
    if (auto i = state_->take_or_want_locked(); i != state::no_index) {
      --state_->blocked;
      if (state_->blocked == 0 && state_->waiting.empty())
        state_->board.unwant();
      return loan{state_, i};
    }
    if (state_->cv.wait_until(guard, deadline) == std::cv_status::timeout
        && state_->free.empty()) {
      --state_->blocked;
      if (state_->blocked == 0 && state_->waiting.empty())
        state_->board.unwant();
      return make_error(errc::pool_exhausted, "no block of the pool came back within "
                                                + std::to_string(wait.count()) + " ms");
    }
  }
}

async_result<pool::loan> pool::get_loan(caf::event_based_actor* self) {
  auto st = state_;
  return async_result<loan>{[self, st](auto on_value, auto on_error) {
    if (!st) {
      auto why = make_error(errc::invalid_argument, "the pool is closed");
      on_error(why);
      return;
    }
    uint32_t i = state::no_index;
    {
      std::lock_guard<std::mutex> guard{st->mtx};
      i = st->take_locked();
    }
    if (i != state::no_index) { // outside the lock: the handler may end the loan at once
      on_value(loan{st, i});
      return;
    }
    self->request(st->returns, caf::infinite, pool_loan_atom::value)
      .then([st, on_value](uint32_t i) { on_value(loan{st, i}); },
            [on_error](caf::error& e) { on_error(e); });
  }};
}

pool_frame pool::seal(loan&& l, uint64_t length, const caf::actor& holder) {
  auto st = std::move(l.state_);
  pool_frame f;
  f.ref = st->refs[l.index_];
  f.pool = st->id;
  f.index = l.index_;
  f.length = std::min<uint64_t>(length, st->block_bytes);
  f.owner = st->returns;
  f.board = st->board_ref;
  bool watch = false;
  {
    std::lock_guard<std::mutex> guard{st->mtx};
    f.sequence = st->sequence[l.index_];
    st->holder[l.index_] = holder.address();
    st->sealed[l.index_] = true;
    watch = holder && st->watched.emplace(holder.address(), holder).second;
  }
  if (watch) // the return actor monitors each holder once
    caf::anon_send(st->returns, pool_hold_atom::value, holder);
  return f;
}

caf::expected<void> pool::share_with(process_id process) {
  if (!state_)
    return make_error(errc::invalid_argument, "the pool is closed");
  if (auto why = check_may_block(*state_->sys, "pool::share_with"))
    return why;
  caf::scoped_actor self{*state_->sys, true};
  auto& link = *state_->link; // the engine now, also after an adopting restart
  auto share = [&](const block_ref& ref, access_mode mode) -> caf::error {
    if (auto why = link.unavailable())
      return why;
    caf::error why;
    auto engine = link.engine();
    auto answer = self->request(engine, std::chrono::seconds(30), share_atom::value,
                                state_->owner, ref, process, mode);
    auto ticket = link.awaiting(self->address(), answer.id(), engine.address());
    if (!ticket)
      return ticket.error();
    answer.receive([](done_atom) {}, [&](caf::error& e) { why = engine_error(std::move(e)); });
    link.answered(*ticket);
    return why;
  };
  if (auto why = share(state_->board_ref, access_mode::read_write))
    return why;
  for (auto& ref : state_->refs)
    if (auto why = share(ref, access_mode::read))
      return why;
  return {};
}

uint32_t pool::count() const noexcept {
  return state_ ? static_cast<uint32_t>(state_->refs.size()) : 0;
}

uint64_t pool::block_bytes() const noexcept {
  return state_ ? state_->block_bytes : 0;
}

uint32_t pool::available() const {
  if (!state_)
    return 0;
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->collect_locked();
  return static_cast<uint32_t>(state_->free.size());
}

const std::vector<block_ref>& pool::blocks() const {
  static const std::vector<block_ref> none;
  return state_ ? state_->refs : none;
}

// -- loan ---------------------------------------------------------------------------------------

pool::loan::loan(loan&& other) noexcept
  : state_(std::move(other.state_)), index_(other.index_) {
}

pool::loan& pool::loan::operator=(loan&& other) noexcept {
  if (this != &other) {
    give_back();
    state_ = std::move(other.state_);
    index_ = other.index_;
  }
  return *this;
}

pool::loan::~loan() {
  give_back();
}

void pool::loan::give_back() noexcept {
  if (!state_)
    return;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    if (index_ < state_->out.size() && state_->out[index_])
      state_->give_back_locked(index_);
  }
  state_.reset();
}

std::span<std::byte> pool::loan::bytes() const noexcept {
  if (!state_ || index_ >= state_->views.size())
    return {};
  auto b = state_->views[index_].bytes();
  return b.first(std::min<size_t>(b.size(), state_->block_bytes));
}

// -- receiving side -----------------------------------------------------------------------------

// A reader's mapping of a pool's return board (empty board: the header did not match, and
// releases go by message).
struct board_mapping {
  block_view view;
  pool_return_board board;
};

struct frame_view::mapping {
  block_view view;
  std::shared_ptr<board_mapping> board; // null: this reader has no board of the pool
};

frame_view::frame_view(frame_view&& other) noexcept
  : mapping_(std::move(other.mapping_)), frame_(std::move(other.frame_)) {
}

frame_view& frame_view::operator=(frame_view&& other) noexcept {
  if (this != &other) {
    release();
    mapping_ = std::move(other.mapping_);
    frame_ = std::move(other.frame_);
  }
  return *this;
}

frame_view::~frame_view() {
  release();
}

std::span<const std::byte> frame_view::bytes() const noexcept {
  if (!mapping_)
    return {};
  auto b = mapping_->view.bytes();
  return b.first(std::min<size_t>(b.size(), frame_.length));
}

void frame_view::release() {
  if (!mapping_)
    return;
  auto m = std::move(mapping_);
  // On the board the release costs two atomic operations; a message goes only to wake a pool
  // that waits for a block, or when there is no board.
  bool send = true;
  if (m->board && m->board->board)
    send = m->board->board.release(frame_.index, frame_.sequence);
  m.reset();
  if (send && frame_.owner)
    caf::anon_send(frame_.owner, pool_return_atom::value, frame_.pool, frame_.index,
                   frame_.sequence);
}

// Mappings by (pool, index). The watcher actor monitors each pool's return actor and drops
// that pool's mappings when it goes down; frame_views still open keep theirs until released.
struct pool_reader::state {
  client* c = nullptr;
  mutable std::mutex mtx;
  std::map<std::pair<uint64_t, uint32_t>, std::shared_ptr<const frame_view::mapping>> mappings;
  std::map<uint64_t, std::shared_ptr<board_mapping>> boards; // by pool id
  std::set<uint64_t> watched;
  caf::actor watcher;

  // The board of the frame's pool if this reader has mapped it already (or knows it has none).
  std::optional<std::shared_ptr<board_mapping>> board_of(const pool_frame& f) const {
    if (!f.board.valid())
      return std::shared_ptr<board_mapping>{};
    std::lock_guard<std::mutex> guard{mtx};
    auto i = boards.find(f.pool);
    if (i == boards.end() || (i->second && !(i->second->view.ref() == f.board)))
      return std::nullopt;
    return i->second;
  }

  // Keeps the reader's mapping of the frame's board; a failed map leaves the pool without one.
  std::shared_ptr<board_mapping> keep_board(const pool_frame& f, caf::expected<block_view> v) {
    std::shared_ptr<board_mapping> b;
    if (v) {
      b = std::make_shared<board_mapping>();
      b->board = pool_return_board::attach(v->bytes(), f.pool);
      b->view = std::move(*v);
    }
    std::lock_guard<std::mutex> guard{mtx};
    boards[f.pool] = b;
    return b;
  }

  std::shared_ptr<const frame_view::mapping> find(const pool_frame& f) const {
    std::lock_guard<std::mutex> guard{mtx};
    auto i = mappings.find({f.pool, f.index});
    if (i == mappings.end() || !(i->second->view.ref() == f.ref))
      return nullptr;
    return i->second;
  }

  std::shared_ptr<const frame_view::mapping> keep(const pool_frame& f, block_view&& v,
                                                  std::shared_ptr<board_mapping> board) {
    prefault_for_reading(v);
    auto m = std::make_shared<frame_view::mapping>(
      frame_view::mapping{std::move(v), std::move(board)});
    std::lock_guard<std::mutex> guard{mtx};
    mappings[{f.pool, f.index}] = m;
    if (watched.insert(f.pool).second && f.owner)
      caf::anon_send(watcher, pool_watch_atom::value, f.pool, f.owner);
    return m;
  }
};

namespace {

caf::behavior reader_watcher(caf::event_based_actor* self, std::weak_ptr<pool_reader::state> weak) {
  auto pools = std::make_shared<std::multimap<caf::actor_addr, uint64_t>>();
  self->set_down_handler([weak, pools](caf::down_msg& dm) {
    auto st = weak.lock();
    auto range = pools->equal_range(dm.source);
    std::vector<std::shared_ptr<const frame_view::mapping>> dropped; // unmapped outside the lock
    std::vector<std::shared_ptr<board_mapping>> dropped_boards;
    if (st) {
      std::lock_guard<std::mutex> guard{st->mtx};
      for (auto i = range.first; i != range.second; ++i) {
        st->watched.erase(i->second);
        if (auto b = st->boards.find(i->second); b != st->boards.end()) {
          dropped_boards.push_back(std::move(b->second));
          st->boards.erase(b);
        }
        for (auto j = st->mappings.begin(); j != st->mappings.end();) {
          if (j->first.first == i->second) {
            dropped.push_back(std::move(j->second));
            j = st->mappings.erase(j);
          } else {
            ++j;
          }
        }
      }
    }
    pools->erase(range.first, range.second);
  });
  return {
    [self, pools](pool_watch_atom, uint64_t pool_id, const caf::actor& owner) {
      pools->emplace(owner.address(), pool_id);
      self->monitor(owner);
    },
  };
}

} // namespace

pool_reader::pool_reader(client& c) : state_(std::make_shared<state>()) {
  state_->c = &c;
  state_->watcher = c.system().spawn<caf::hidden>(reader_watcher,
                                                  std::weak_ptr<state>{state_});
}

pool_reader::~pool_reader() {
  if (!state_)
    return;
  caf::anon_send_exit(state_->watcher, caf::exit_reason::user_shutdown);
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->mappings.clear();
}

caf::expected<frame_view> pool_reader::open(const pool_frame& f) {
  if (auto m = state_->find(f))
    return frame_view{std::move(m), f};
  auto board = state_->board_of(f);
  if (!board)
    board = state_->keep_board(f, state_->c->map(f.board, access_mode::read_write));
  auto view = state_->c->map(f.ref, access_mode::read);
  if (!view)
    return view.error();
  return frame_view{state_->keep(f, std::move(*view), std::move(*board)), f};
}

async_result<frame_view> pool_reader::open(caf::event_based_actor* self, const pool_frame& f) {
  auto st = state_;
  return async_result<frame_view>{[self, st, f](auto on_value, auto on_error) {
    if (auto m = st->find(f)) {
      on_value(frame_view{std::move(m), f});
      return;
    }
    auto map_block = [self, st, f, on_value, on_error](std::shared_ptr<board_mapping> board) {
      st->c->map(self, f.ref, access_mode::read)
        .then([st, f, on_value, board](block_view&& v) {
                on_value(frame_view{st->keep(f, std::move(v), board), f});
              },
              on_error);
    };
    if (auto board = st->board_of(f)) {
      map_block(std::move(*board));
      return;
    }
    st->c->map(self, f.board, access_mode::read_write)
      .then([st, f, map_block](block_view&& v) { map_block(st->keep_board(f, std::move(v))); },
            [st, f, map_block](caf::error& e) { map_block(st->keep_board(f, std::move(e))); });
  }};
}

size_t pool_reader::mapped() const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  return state_->mappings.size();
}

} // namespace cafshm
