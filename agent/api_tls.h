// The local API's HTTP server object (agent/api.cpp), plain or TLS, made after its
// certificate and key are checked: the TLS half of ApiServer::Start, in a file of its own.
//
// With ApiOptions::tls_cert and tls_key the server is an httplib::SSLServer (TLS 1.2 or
// later, no compression, no renegotiation) holding the certificate chain and the key; the
// checks before it, each refused with the file, the setting and the fix, never with key
// bytes: the key file is a regular file of this user that group and others cannot read
// (like every secret key file of refbus), both files are PEM, the key is not encrypted
// (the daemon starts unattended: there is no one to ask for a passphrase), the certificate
// is valid now, and the key is the certificate's.
//
// Thread safety: a free function; call it before the server serves.
#ifndef REFBUS_AGENT_API_TLS_H_
#define REFBUS_AGENT_API_TLS_H_

#include <memory>

#include "core/status.h"

namespace httplib {
class Server;
}

namespace refbus::agent {

struct ApiOptions;

// Whether options ask for TLS (either file set; a single one is refused by
// MakeApiHttpServer).
bool ApiServesTls(const ApiOptions& options);

// The server to bind: an httplib::SSLServer for TLS options, else a plain httplib::Server.
Result<std::unique_ptr<httplib::Server>> MakeApiHttpServer(const ApiOptions& options);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_API_TLS_H_
