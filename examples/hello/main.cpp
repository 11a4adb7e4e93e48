// cafshm-hello: one process, one engine, two actors.
// The writer allocates a block, fills it through a mapped view and sends the block_ref to the
// reader in an ordinary CAF message. The reader (a process of its own, as far as the engine is
// concerned) reads it in place through a view, copies it into a block of its own through the
// engine, and frees. Both print what happened.
#include <cstring>
#include <iostream>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exec_main.hpp>
#include <caf/scoped_actor.hpp>

#include "cafshm/client.hpp"
#include "cafshm/module.hpp"

using namespace cafshm;

namespace {

using greet_atom = caf::atom_constant<caf::atom("greet")>;

struct reader_state {
  std::optional<client> me;
  static inline const char* name = "reader";
};

caf::behavior reader(caf::stateful_actor<reader_state>* self) {
  if (auto me = client::connect(self->system(), "reader"))
    self->state.me.emplace(std::move(*me));
  else
    self->quit(me.error());
  return {
    [self](caf::get_atom) { return self->state.me->id(); }, // who am I, for the writer
    [self](greet_atom, const block_ref& ref) -> caf::result<std::string> {
      auto& me = *self->state.me;
      auto view = me.map(ref, access_mode::read); // zero-copy: the writer's pages, read-only
      if (!view)
        return view.error();
      std::string text(view->chars().data(), strnlen(view->chars().data(), view->size()));
      std::cout << "reader: read \"" << text << "\" in place from " << to_string(ref) << "\n";
      auto mine = me.allocate(ref.size);
      if (!mine)
        return mine.error();
      if (auto ok = me.copy(ref, *mine, {{0, 0, ref.size}}); !ok)
        return ok.error();
      auto copied = me.read(*mine, 0, text.size());
      std::cout << "reader: copied it through the engine into " << to_string(*mine) << ": \""
                << std::string(copied->begin(), copied->end()) << "\"\n";
      me.free(*mine);
      return text;
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  caf::actor_system_config cfg;
  cfg.load<cafshm::module>();
  if (auto err = cfg.parse(argc, argv)) {
    std::cerr << "cafshm-hello: " << cfg.render(err) << "\n";
    return 1;
  }
  settings s;
  s.engine.name = "cafshm-hello-" + std::to_string(::getpid());
  s.engine.arena_bytes = 16 << 20;
  module::configure(cfg, s);
  caf::actor_system sys{cfg};
  if (auto engine = local_engine(sys); !engine) {
    std::cerr << "cafshm-hello: " << describe(engine.error()) << "\n";
    return 1;
  }
  auto writer = client::connect(sys, "writer");
  if (!writer) {
    std::cerr << "cafshm-hello: " << describe(writer.error()) << "\n";
    return 1;
  }
  auto rd = sys.spawn(reader);
  caf::scoped_actor self{sys};
  int rc = 1;
  self->request(rd, caf::infinite, caf::get_atom::value)
    .receive(
      [&](process_id reader) {
        const std::string text = "hello from the writer, through shared memory";
        auto ref = writer->allocate(text.size() + 1);
        auto view = writer->map(*ref, access_mode::read_write);
        std::memcpy(view->data(), text.c_str(), text.size() + 1);
        view->close();
        std::cout << "writer: wrote \"" << text << "\" into " << to_string(*ref) << "\n";
        writer->share(*ref, reader, access_mode::read);
        self->request(rd, std::chrono::seconds(5), greet_atom::value, *ref)
          .receive(
            [&](const std::string& echoed) {
              rc = echoed == text ? 0 : 1;
              std::cout << "writer: reader confirmed " << echoed.size() << " bytes\n";
            },
            [&](caf::error& e) { std::cerr << "writer: " << describe(e) << "\n"; });
        writer->free(*ref);
        auto st = writer->stats();
        std::cout << "engine: " << st->processes << " processes, " << st->blocks
                  << " blocks, " << st->free_bytes << " of " << st->arena_bytes
                  << " bytes free\n";
      },
      [&](caf::error& e) { std::cerr << "cafshm-hello: " << describe(e) << "\n"; });
  self->send_exit(rd, caf::exit_reason::user_shutdown);
  return rc;
}
