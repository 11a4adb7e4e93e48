// Messages between the multi-process tests and cafshm-test-peer.
#pragma once

#include <caf/atom.hpp>

using verify_atom = caf::atom_constant<caf::atom("t_verify")>;
using probe_atom = caf::atom_constant<caf::atom("t_probe")>;
using ping_atom = caf::atom_constant<caf::atom("t_ping")>;
