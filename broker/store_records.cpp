#include "broker/store_records.h"

#include <algorithm>
#include <cstring>

#include "schema/codec.h"

namespace refbus::broker::records {

Bytes SealRecord(ByteView body) {
  Bytes out = Sha256(body);
  Append(out, body);
  return out;
}

Result<ByteView> OpenSealedRecord(ByteView stored, size_t min_body_bytes) {
  if (stored.size() < kHashBytes + min_body_bytes) return Malformed("too short");
  ByteView body = stored.subspan(kHashBytes);
  Bytes h = Sha256(body);
  if (std::memcmp(h.data(), stored.data(), kHashBytes) != 0) return Malformed("hash mismatch");
  return body;
}

Bytes MailboxKey(const std::string& recipient, uint64_t seq) {
  Bytes k(recipient.begin(), recipient.end());
  k.push_back(0);
  AppendU64BigEndian(k, seq);
  return k;
}

Bytes MailboxValue(ByteView message_id, const std::vector<std::string>* serves) {
  Bytes v(message_id.begin(), message_id.end());
  if (serves != nullptr && !serves->empty()) {
    v.push_back(static_cast<uint8_t>(serves->size()));
    for (const auto& r : *serves) {
      v.push_back(static_cast<uint8_t>(r.size()));
      Append(v, AsBytes(r));
    }
  }
  return v;
}

bool ValueIs(ByteView value, ByteView message_id) {
  return value.size() >= message_id.size() &&
         std::memcmp(value.data(), message_id.data(), message_id.size()) == 0;
}

Result<std::vector<std::string>> ServesOf(ByteView value) {
  std::vector<std::string> out;
  if (value.size() <= schema::kMessageIdBytes) return out;
  size_t pos = schema::kMessageIdBytes;
  size_t n = value[pos++];
  for (size_t i = 0; i < n; ++i) {
    if (pos >= value.size()) return Malformed("store: a mailbox entry is truncated");
    size_t len = value[pos++];
    if (value.size() - pos < len) return Malformed("store: a mailbox entry is truncated");
    out.emplace_back(AsChars(value.subspan(pos, len)));
    pos += len;
  }
  return out;
}

const std::vector<std::string>* ServesFor(const std::map<std::string, std::vector<std::string>>& m,
                                          const std::string& target) {
  auto it = m.find(target);
  return it == m.end() ? nullptr : &it->second;
}

Bytes SenderKey(const std::string& sender, const std::string& mailbox) {
  Bytes k(sender.begin(), sender.end());
  k.push_back(0);
  Append(k, AsBytes(mailbox));
  return k;
}

Bytes ExpiryKey(uint64_t expires, ByteView message_id) {
  Bytes k;
  AppendU64BigEndian(k, expires);
  Append(k, message_id);
  return k;
}

Bytes EncodeTombstone(const schema::ConsentRevocation& r) {
  Bytes v;
  v.push_back(static_cast<uint8_t>(r.revoked_by.size()));
  Append(v, AsBytes(r.revoked_by));
  v.push_back(static_cast<uint8_t>(r.case_ref.size()));
  Append(v, AsBytes(r.case_ref));
  AppendU64BigEndian(v, r.revoked_at_ms);
  return v;
}

std::optional<Tombstone> DecodeTombstone(ByteView v) {
  Tombstone t;
  size_t pos = 0;
  for (std::string* out : {&t.revoked_by, &t.case_ref}) {
    if (pos >= v.size()) return std::nullopt;
    size_t len = v[pos++];
    if (v.size() - pos < len) return std::nullopt;
    *out = std::string(AsChars(v.subspan(pos, len)));
    pos += len;
  }
  if (v.size() - pos != 8) return std::nullopt;
  t.revoked_at_ms = lmdb::ReadU64Key(v.subspan(pos));
  return t;
}

Bytes SeenValue(UnixMillis expires, ByteView envelope_sha256) {
  Bytes v = lmdb::U64Key(expires);
  v.insert(v.end(), envelope_sha256.begin(), envelope_sha256.end());
  return v;
}

bool ServesRecipients(const schema::EnvelopeHeader& h, const std::string& mailbox,
                      const std::vector<std::string>* serves) {
  auto is_recipient = [&h](const std::string& id) {
    for (const auto& r : h.recipients) {
      if (r.agency_id == id) return true;
    }
    return false;
  };
  if (serves == nullptr || serves->empty()) return is_recipient(mailbox);
  return std::all_of(serves->begin(), serves->end(), is_recipient);
}

Result<uint64_t> GetU64(const lmdb::Txn& txn, MDB_dbi dbi, ByteView key) {
  auto v = txn.Get(dbi, key);
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return uint64_t{0};
    return v.status();
  }
  if (v->size() != 8) return Malformed("store: a counter has the wrong size");
  return lmdb::ReadU64Key(*v);
}

Status PutU64(lmdb::Txn& txn, MDB_dbi dbi, ByteView key, uint64_t v) {
  Bytes b = lmdb::U64Key(v);
  return txn.Put(dbi, key, b);
}

Bytes EncodeRecord(UnixMillis accepted, UnixMillis expires, uint8_t hops, const std::string& sender,
                   const std::vector<std::pair<std::string, uint64_t>>& mailboxes,
                   ByteView envelope) {
  Bytes body;
  body.reserve(64 + envelope.size());
  body.push_back(kEnvelopeRecordV2);
  AppendU64BigEndian(body, accepted);
  AppendU64BigEndian(body, expires);
  body.push_back(hops);
  body.push_back(static_cast<uint8_t>(sender.size()));
  Append(body, AsBytes(sender));
  body.push_back(static_cast<uint8_t>(mailboxes.size() >> 8));
  body.push_back(static_cast<uint8_t>(mailboxes.size()));
  for (const auto& [r, seq] : mailboxes) {
    body.push_back(static_cast<uint8_t>(r.size()));
    Append(body, AsBytes(r));
    AppendU64BigEndian(body, seq);
  }
  AppendLengthPrefixed(body, envelope);
  return SealRecord(body);
}

Result<Record> DecodeRecord(ByteView stored, ByteView message_id) {
  auto damaged = [&](std::string_view why) {
    return Malformed("stored envelope " + HexEncode(message_id) + " is damaged (" +
                     std::string(why) + "); it will not be delivered");
  };
  auto opened = OpenSealedRecord(stored, 1);
  if (!opened.ok()) return damaged(opened.status().message());
  ByteView body = *opened;
  size_t pos = 0;
  auto need = [&](size_t n) { return body.size() - pos >= n; };
  auto u64 = [&]() {
    uint64_t v = lmdb::ReadU64Key(body.subspan(pos, 8));
    pos += 8;
    return v;
  };
  if (!need(1 + 16 + 2) || (body[0] != kRecordVersion && body[0] != kEnvelopeRecordV2)) {
    return damaged("unknown record version");
  }
  const bool v2 = body[0] == kEnvelopeRecordV2;
  pos = 1;
  Record r;
  r.accepted_ms = u64();
  r.expires_ms = u64();
  if (v2) {
    if (!need(2)) return damaged("truncated");
    r.hops = body[pos++];
    size_t slen = body[pos++];
    if (!need(slen + 2)) return damaged("truncated");
    r.sender = std::string(AsChars(body.subspan(pos, slen)));
    pos += slen;
  }
  size_t n = (size_t{body[pos]} << 8) | body[pos + 1];
  pos += 2;
  for (size_t i = 0; i < n; ++i) {
    if (!need(1)) return damaged("truncated");
    size_t len = body[pos++];
    if (!need(len + 8)) return damaged("truncated");
    std::string id(AsChars(body.subspan(pos, len)));
    pos += len;
    r.mailboxes.emplace_back(std::move(id), u64());
  }
  if (!need(4)) return damaged("truncated");
  uint32_t elen = (uint32_t{body[pos]} << 24) | (uint32_t{body[pos + 1]} << 16) |
                  (uint32_t{body[pos + 2]} << 8) | body[pos + 3];
  pos += 4;
  if (body.size() - pos != elen) return damaged("wrong length");
  r.envelope = body.subspan(pos, elen);
  return r;
}

Bytes EncodeGrantRecord(ByteView signed_grant, bool revoked, UnixMillis revoked_at) {
  Bytes body;
  body.reserve(10 + signed_grant.size());
  body.push_back(kRecordVersion);
  body.push_back(revoked ? 1 : 0);
  AppendU64BigEndian(body, revoked_at);
  Append(body, signed_grant);
  return SealRecord(body);
}

Result<GrantState> DecodeGrantRecord(ByteView stored, ByteView grant_id) {
  auto damaged = [&](std::string_view why) {
    return Malformed("stored consent grant " + HexEncode(grant_id) + " is damaged (" +
                     std::string(why) + ")");
  };
  auto opened = OpenSealedRecord(stored, 10);
  if (!opened.ok()) return damaged(opened.status().message());
  ByteView body = *opened;
  if (body[0] != kRecordVersion || body[1] > 1) return damaged("unknown record version");
  GrantState g;
  g.revoked = body[1] == 1;
  g.revoked_at_ms = lmdb::ReadU64Key(body.subspan(2, 8));
  g.signed_grant.assign(body.begin() + 10, body.end());
  auto decoded = schema::DecodeSignedConsentGrant(g.signed_grant);
  if (!decoded.ok()) return damaged("grant does not decode");
  g.grant = std::move(*decoded);
  return g;
}

Result<std::optional<GrantState>> LoadGrant(lmdb::Txn& txn, MDB_dbi dbi, ByteView grant_id) {
  auto v = txn.Get(dbi, grant_id);
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return std::optional<GrantState>();
    return v.status();
  }
  REFBUS_ASSIGN_OR_RETURN(GrantState g, DecodeGrantRecord(*v, grant_id));
  return std::optional<GrantState>(std::move(g));
}

}  // namespace refbus::broker::records
