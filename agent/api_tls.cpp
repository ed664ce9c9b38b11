#include "agent/api_tls.h"

#include <httplib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "agent/api.h"
#include "core/file.h"

namespace refbus::agent {
namespace {

struct TlsFileCloser {
  void operator()(FILE* f) const {
    if (f != nullptr) std::fclose(f);
  }
};
struct TlsX509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct TlsKeyFree {
  // EVP_PKEY_free clears the key's private numbers before freeing them.
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using TlsFile = std::unique_ptr<FILE, TlsFileCloser>;

// The passphrase callback of PEM reads: gives none, so an encrypted key is refused instead
// of OpenSSL's default asking for a passphrase on the terminal.
int NoTlsPassphrase(char*, int, int, void*) { return -1; }

Result<TlsFile> OpenTlsFile(const std::string& path, const char* setting) {
  TlsFile f(std::fopen(path.c_str(), "re"));
  if (!f) {
    return FailedPrecondition("cannot read " + path + " ([console] " + setting +
                              "): " + ErrnoText(errno));
  }
  return f;
}

Result<std::unique_ptr<X509, TlsX509Free>> LoadTlsCertificate(const std::string& path) {
  REFBUS_ASSIGN_OR_RETURN(TlsFile f, OpenTlsFile(path, "tls_cert"));
  std::unique_ptr<X509, TlsX509Free> cert(
      PEM_read_X509(f.get(), nullptr, &NoTlsPassphrase, nullptr));
  ERR_clear_error();
  if (!cert) {
    return InvalidArgument(path +
                           " ([console] tls_cert) is not a PEM certificate (a file "
                           "starting \"-----BEGIN CERTIFICATE-----\")");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) <= 0) {
    return FailedPrecondition("the certificate in " + path +
                              " ([console] tls_cert) has expired: browsers would refuse it; "
                              "install a renewed one");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) >= 0) {
    return FailedPrecondition("the certificate in " + path +
                              " ([console] tls_cert) is not valid yet (check the clock)");
  }
  return cert;
}

Result<std::unique_ptr<EVP_PKEY, TlsKeyFree>> LoadTlsKey(const std::string& path) {
  if (Status s = CheckPrivateFile(path); !s.ok()) {
    return s.WithContext("the TLS key ([console] tls_key)");
  }
  REFBUS_ASSIGN_OR_RETURN(TlsFile f, OpenTlsFile(path, "tls_key"));
  std::unique_ptr<EVP_PKEY, TlsKeyFree> key(
      PEM_read_PrivateKey(f.get(), nullptr, &NoTlsPassphrase, nullptr));
  ERR_clear_error();  // the queue may name what was parsed; it is not printed
  if (!key) {
    return InvalidArgument(path +
                           " ([console] tls_key) is not a PEM private key, or it is "
                           "encrypted (the agent starts unattended: store the key "
                           "unencrypted, mode 0600)");
  }
  return key;
}

}  // namespace

bool ApiServesTls(const ApiOptions& options) {
  return !options.tls_cert.empty() || !options.tls_key.empty();
}

Result<std::unique_ptr<httplib::Server>> MakeApiHttpServer(const ApiOptions& options) {
  if (!ApiServesTls(options)) return std::make_unique<httplib::Server>();
  if (options.tls_cert.empty() || options.tls_key.empty()) {
    return InvalidArgument("TLS needs both [console] tls_cert and tls_key");
  }
  REFBUS_ASSIGN_OR_RETURN(auto cert, LoadTlsCertificate(options.tls_cert));
  REFBUS_ASSIGN_OR_RETURN(auto key, LoadTlsKey(options.tls_key));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument("the key in " + options.tls_key +
                           " ([console] tls_key) does not match the certificate in " +
                           options.tls_cert + " ([console] tls_cert)");
  }
  // The chain comes from the file (intermediates after the leaf); the key is the one
  // checked above. httplib calls this once, inside the constructor.
  std::string failed;
  auto setup = [&](SSL_CTX& ctx) {
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(&ctx, options.tls_cert.c_str()) != 1) {
      failed = "cannot use the certificate chain in " + options.tls_cert;
    } else if (SSL_CTX_use_PrivateKey(&ctx, key.get()) != 1 ||
               SSL_CTX_check_private_key(&ctx) != 1) {
      failed = "the key in " + options.tls_key + " does not fit the certificate chain in " +
               options.tls_cert + " (was it replaced while the agent started?)";
    }
    ERR_clear_error();
    return failed.empty();
  };
  auto server = std::make_unique<httplib::SSLServer>(setup);
  if (!server->is_valid()) {
    return InvalidArgument(failed.empty() ? "cannot set up TLS with " + options.tls_cert : failed);
  }
  spdlog::info("api: TLS with the certificate in {}", options.tls_cert);
  return std::unique_ptr<httplib::Server>(std::move(server));
}

}  // namespace refbus::agent
