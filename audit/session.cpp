#include "audit/session.h"

#include <algorithm>

#include "keys/ceremony.h"
#include "keys/keyfile.h"

namespace refbus::audit {

using schema::Frame;

Frame Query(Frame::Type type) {
  Frame f;
  f.type = type;
  return f;
}

std::vector<keys::Hash> ToHashes(const std::vector<Bytes>& in) {
  std::vector<keys::Hash> out;
  for (const Bytes& b : in) {
    keys::Hash h;
    std::copy(b.begin(), b.end(), h.begin());  // the codec checked 32 bytes
    out.push_back(h);
  }
  return out;
}

// The auditor's identity from its folder, checked against the verified directory: an active
// auditor with the audit role (and the witness role when witness), holding its active keys.
Result<keys::Identity> LoadAuditor(const schema::Directory& dir, const std::string& auditor_dir,
                                   const std::string& passphrase_file, bool witness) {
  std::optional<keys::SecretBuffer> pass;
  if (!passphrase_file.empty()) {
    REFBUS_ASSIGN_OR_RETURN(auto p, keys::ReadPassphraseFile(passphrase_file));
    pass = std::move(p);
  }
  REFBUS_ASSIGN_OR_RETURN(keys::Identity me,
                          keys::LoadIdentity(keys::JoinPath(auditor_dir, keys::kIdentityFile),
                                             pass ? &*pass : nullptr));
  const schema::Party* self = dir.Find(me.party_id());
  if (me.kind() != schema::PartyKind::kAuditor || self == nullptr ||
      self->kind != schema::PartyKind::kAuditor || self->status != schema::PartyStatus::kActive ||
      !self->HasRole(schema::Role::kAudit)) {
    return PermissionDenied(me.party_id() + " is not an active auditor with the audit role in " +
                            "directory serial " + std::to_string(dir.serial));
  }
  if (witness && !self->HasRole(schema::Role::kWitness)) {
    return PermissionDenied(me.party_id() + " does not have the witness role in directory serial " +
                            std::to_string(dir.serial) +
                            ": its cosignatures would count for nobody");
  }
  const schema::KeyRecord* my_keys = self->ActiveKeys();
  if (my_keys == nullptr || my_keys->transport_key != me.transport_public_key() ||
      my_keys->signing_key != me.signing_public_key()) {
    return PermissionDenied("the keys in " + auditor_dir + " are not auditor " + me.party_id() +
                            "'s active keys in directory serial " + std::to_string(dir.serial));
  }
  return me;
}

Result<BrokerTarget> ResolveBroker(const schema::Directory& dir, const std::string& broker_id,
                                   const std::string& endpoint) {
  BrokerTarget t;
  REFBUS_ASSIGN_OR_RETURN(t.log_keys, BrokerLogKeys(dir, broker_id));
  const schema::KeyRecord* broker_keys = dir.Find(broker_id)->ActiveKeys();
  if (broker_keys == nullptr) {
    return FailedPrecondition("broker " + broker_id + " has no active key to connect to");
  }
  t.transport_key = broker_keys->transport_key;
  t.endpoint = endpoint.empty() ? dir.Find(broker_id)->endpoint : endpoint;
  if (t.endpoint.empty()) {
    return InvalidArgument("the directory lists no endpoint for broker " + broker_id +
                           ": give --endpoint");
  }
  return t;
}

Result<std::string> AskFreshCheckpoint(AuditSession& session, const std::string& broker_id) {
  REFBUS_ASSIGN_OR_RETURN(schema::AuditReply fresh_reply,
                          session.Ask(Query(Frame::Type::kAuditCheckpoint)));
  if (fresh_reply.checkpoints.size() != 1) {
    return Malformed("broker " + broker_id + " answered AuditCheckpoint with " +
                     std::to_string(fresh_reply.checkpoints.size()) + " notes");
  }
  return std::move(fresh_reply.checkpoints[0]);
}

}  // namespace refbus::audit
