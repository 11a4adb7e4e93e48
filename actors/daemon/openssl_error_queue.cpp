// A workaround for CAF 0.17.6's openssl module with OpenSSL 3, linked into cafshmd.
//
// OpenSSL requires the thread's error queue to be empty before SSL_read, SSL_write, SSL_accept
// or SSL_connect, because SSL_get_error() consults it afterwards. CAF 0.17.6 never empties it.
// With OpenSSL 3, every TLS connection that fails (a peer refused for an untrusted certificate,
// a peer that closes without close_notify) leaves errors queued on the multiplexer thread, and
// the next of these calls on any other connection that merely would block is then taken for a
// fatal error, and a healthy peer link breaks. Seen here: when engine b dials engine a, which
// already linked to b, CAF closes the redundant connection and that cut the existing link too
// (every time; tests/test_tls.cpp sends a block back to check); once, refusing an untrusted
// engine cut the link to a trusted one.
//
// cafshmd therefore defines these four functions itself. The dynamic linker binds
// libcaf_openssl's calls to the executable's definitions first; each empties the queue and calls
// the real function from libssl (found with dlsym(RTLD_NEXT)).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

template <class F>
F real(const char* name) {
  auto* f = reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
  if (f == nullptr) {
    std::fprintf(stderr, "cafshmd: cannot find %s in libssl\n", name);
    std::abort();
  }
  return f;
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto f = real<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return f(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto f = real<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return f(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  static auto f = real<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return f(ssl);
}

int SSL_connect(SSL* ssl) {
  static auto f = real<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return f(ssl);
}

} // extern "C"
