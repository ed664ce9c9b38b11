// ApiClient (agent/api.h): the CLI's side of the local API, in a file of its own.
#include <httplib.h>
#include <sodium.h>

#include <string>
#include <utility>

#include "agent/api.h"
#include "core/bytes.h"

namespace refbus::agent {
namespace {

std::string DumpForClient(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

// ---------------------------------------------------------------- ApiClient

ApiClient::ApiClient(std::string url, keys::SecretBuffer token, int timeout_s, std::string ca_cert)
    : url_(std::move(url)),
      token_(std::move(token)),
      timeout_s_(timeout_s),
      ca_cert_(std::move(ca_cert)) {}

Result<ApiReply> ApiClient::Call(std::string_view method, const std::string& path,
                                 const Json* body) {
  httplib::Client client(url_);
  if (!client.is_valid()) return InvalidArgument("not a usable API URL: " + url_);
  if (url_.rfind("https://", 0) == 0) {
    if (ca_cert_.empty()) return InvalidArgument("no certificate to check " + url_ + " against");
    client.set_ca_cert_path(ca_cert_.c_str());
    client.enable_server_certificate_verification(true);
  }
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(timeout_s_, 0);
  client.set_write_timeout(timeout_s_, 0);
  client.set_keep_alive(false);
  std::string auth = "Bearer ";
  auth.append(AsChars(token_.view()));
  httplib::Headers headers = {{"Authorization", auth}};
  sodium_memzero(auth.data(), auth.size());
  std::string payload = body != nullptr ? DumpForClient(*body) : std::string();
  if (method != "GET" && method != "POST" && method != "PUT") {
    return InvalidArgument("unsupported method " + std::string(method));
  }
  httplib::Result res = method == "GET"    ? client.Get(path, headers)
                        : method == "POST" ? client.Post(path, headers, payload, "application/json")
                                           : client.Put(path, headers, payload, "application/json");
  for (auto& [k, v] : headers) sodium_memzero(v.data(), v.size());
  if (!res) {
    return Unavailable("cannot reach the agent's API at " + url_ + " (" +
                       httplib::to_string(res.error()) + ")");
  }
  ApiReply reply;
  reply.http_status = res->status;
  if (res->get_header_value("Content-Type").rfind("text/csv", 0) == 0) {
    reply.text = std::move(res->body);
    return reply;
  }
  if (!res->body.empty()) {
    reply.body = Json::parse(res->body, nullptr, /*allow_exceptions=*/false);
    if (reply.body.is_discarded()) {
      return Malformed("the reply from " + url_ + " (HTTP " + std::to_string(res->status) +
                       ") is not JSON: is that URL a refbus agent?");
    }
  }
  return reply;
}

}  // namespace refbus::agent
