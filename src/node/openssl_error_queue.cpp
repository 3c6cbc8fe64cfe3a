// Works around a bug in CAF 0.17.6's caf_openssl with OpenSSL 3: its sessions call
// SSL_read/SSL_write/SSL_accept/SSL_connect and then SSL_get_error() without clearing the
// thread's OpenSSL error queue first, which SSL_get_error() requires. All connections share
// the multiplexer thread, so an error left by one connection (OpenSSL 3 queues "unexpected
// eof while reading" whenever a peer closes without close_notify, which CAF never sends, and
// a handshake failure of a client without a valid certificate queues its reason) turns the
// next harmless SSL_ERROR_WANT_READ of another, healthy connection into SSL_ERROR_SSL, and
// CAF closes that connection. Observed: two nodes with valid certificates drop their link
// each time one of them closes the redundant second connection BASP opens between them,
// declare each other dead after --failure-timeout-ms and reconnect every ~400 ms forever.
//
// keyflowd defines these four functions itself: the executable's definitions take precedence
// over libssl's for libcaf_openssl.so, clear the queue, and call the libssl ones.

#include <dlfcn.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

template <class Fn>
Fn* next_symbol(const char* name) {
  return reinterpret_cast<Fn*>(dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto* real = next_symbol<int(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto* real = next_symbol<int(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  static auto* real = next_symbol<int(SSL*)>("SSL_accept");
  ERR_clear_error();
  return real(ssl);
}

int SSL_connect(SSL* ssl) {
  static auto* real = next_symbol<int(SSL*)>("SSL_connect");
  ERR_clear_error();
  return real(ssl);
}

} // extern "C"
