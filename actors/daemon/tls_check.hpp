// cafshmd's check of remote.tls before CAF sees it: CAF's openssl module loads the certificate
// and key only when a connection opens, and a file it cannot load then ends the process (an
// exception on the multiplexer thread) or, for an encrypted key without passphrase, prompts on
// the terminal. So cafshmd loads them once up front, exactly as CAF will, and reports a config
// error instead.
#pragma once

#include <optional>
#include <string>

#include "cafshm/settings.hpp"

namespace cafshm::daemon {

/// Loads certificate, key (with the passphrase, never prompting) and the CA certificates into an
/// OpenSSL context and checks that the key belongs to the certificate. Returns "key: reason" or
/// nullopt. Call only when tls.enabled() and validate() accepted the settings.
std::optional<std::string> check_tls(const tls_settings& tls);

} // namespace cafshm::daemon
