#pragma once

// Owning pointers to OpenSSL objects: `openssl_ptr<EVP_PKEY, EVP_PKEY_free>` frees its object
// with the function OpenSSL names for it, once, when the pointer goes.

#include <memory>

namespace cafshm {

template <class T, void (*Free)(T*)>
struct openssl_free {
  void operator()(T* p) const noexcept { Free(p); }
};

template <class T, void (*Free)(T*)>
using openssl_ptr = std::unique_ptr<T, openssl_free<T, Free>>;

} // namespace cafshm
