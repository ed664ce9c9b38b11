// The codec: bytes <-> schema domain types. The only place that sees protobuf
// (schema/codec*.cpp and their shared codec_internal.h).
//
// Contract for every Decode*: the input size is checked against its limit before any
// parsing; anything that does not decode, has a field of the wrong size, an unknown enum
// value or an invalid id is refused with a kMalformed Status naming the object and the
// field (never the field's content). Decoders never abort on input.
//
// Signed objects are decoded together with the exact bytes that were signed; Encode* of
// a signed wrapper takes those bytes as they are and never re-encodes the inner object.
//
// Files on disk start with a magic line naming their type and format version
// ("refbus-directory/1\n"), followed by the serialized message.
//
// Thread safety: all functions are thread-safe.
#ifndef REFBUS_SCHEMA_CODEC_H_
#define REFBUS_SCHEMA_CODEC_H_

#include <string_view>

#include "core/bytes.h"
#include "core/status.h"
#include "schema/types.h"
#include "schema/workflow.h"

namespace refbus::schema {

// Identifier rules (PROTOCOL.md "Identifiers").
bool IsValidPartyId(std::string_view id);   // [a-z0-9-], 3..48, no leading/trailing '-'
bool IsValidCaseRef(std::string_view ref);  // [A-Za-z0-9-], 8..64

// Transport frames.
Result<Frame> DecodeFrame(ByteView bytes);
Bytes EncodeFrame(const Frame& frame);
// The request_id of a frame without decoding it: the top-level fields are skipped over,
// nothing is copied or checked (a refusal that must not cost a decode still echoes the
// id). 0 if the bytes are not a readable frame or carry none.
uint64_t PeekRequestId(ByteView bytes);

// Envelopes.
Result<EnvelopeHeader> DecodeEnvelopeHeader(ByteView bytes);
Bytes EncodeEnvelopeHeader(const EnvelopeHeader& header);
Result<SealedEnvelope> DecodeEnvelope(ByteView bytes);
// Serializes with header_bytes as they are (header is not re-encoded).
Bytes EncodeEnvelope(const SealedEnvelope& envelope);

// Directory and its parts.
Result<Prekey> DecodePrekey(ByteView bytes);
Bytes EncodePrekey(const Prekey& prekey);
// A SignedPrekey on its own (a published prekey, PROTOCOL.md "Prekey publication"): the
// Prekey is decoded from the signed bytes; the signature is the caller's to verify.
Result<SignedPrekey> DecodeSignedPrekey(ByteView bytes);
Bytes EncodeSignedPrekey(const SignedPrekey& prekey);
Result<Directory> DecodeDirectory(ByteView bytes);
Bytes EncodeDirectory(const Directory& directory);
Result<SignedDirectory> DecodeSignedDirectory(ByteView bytes);
Bytes EncodeSignedDirectory(const SignedDirectory& signed_directory);

Result<PartyRecord> DecodePartyRecord(ByteView bytes);
Bytes EncodePartyRecord(const PartyRecord& record);
Result<SignedPartyRecord> DecodeSignedPartyRecord(ByteView bytes);
Bytes EncodeSignedPartyRecord(const SignedPartyRecord& record);

// Consent.
Result<ConsentGrant> DecodeConsentGrant(ByteView bytes);
Bytes EncodeConsentGrant(const ConsentGrant& grant);
Result<SignedConsentGrant> DecodeSignedConsentGrant(ByteView bytes);
Bytes EncodeSignedConsentGrant(const SignedConsentGrant& grant);

// Audit entries: the stored bytes are the hashed bytes; decode never re-encodes.
Result<AuditEntry> DecodeAuditEntry(ByteView bytes);
Bytes EncodeAuditEntry(const AuditEntry& entry);

// Case messages: the plaintext of envelopes (schema/workflow.h). Nested signed grants
// are checked to decode; their signatures are the caller's to verify.
Result<CaseMessage> DecodeCaseMessage(ByteView bytes);
Bytes EncodeCaseMessage(const CaseMessage& message);
// The bytes an operator signs: the message without its operator signature (the prefix of
// EncodeCaseMessage's bytes when it has one).
Bytes EncodeCaseMessageBody(const CaseMessage& message);
// Signed statements and what they hold.
Result<SignedStatement> DecodeSignedStatement(ByteView bytes);
Bytes EncodeSignedStatement(const SignedStatement& statement);
Result<AccessRecord> DecodeAccessRecord(ByteView bytes);
Bytes EncodeAccessRecord(const AccessRecord& record);
Result<ConsentRevocation> DecodeConsentRevocation(ByteView bytes);
Bytes EncodeConsentRevocation(const ConsentRevocation& revocation);
Result<PurgeConfirmation> DecodePurgeConfirmation(ByteView bytes);
Bytes EncodePurgeConfirmation(const PurgeConfirmation& confirmation);

// Secret key file (the outer container; the payload layout is keys/keyfile.h's).
// The payload bytes pass through protobuf's own buffers: DecodeSecretKeyFile wipes its
// temporary copy; callers wipe theirs with SecretKeyFile::WipePayload().
Result<SecretKeyFile> DecodeSecretKeyFile(ByteView bytes);
Bytes EncodeSecretKeyFile(const SecretKeyFile& file);

// File magic lines.
inline constexpr std::string_view kDirectoryFileMagic = "refbus-directory/1\n";
inline constexpr std::string_view kPartyRecordFileMagic = "refbus-party-record/1\n";
inline constexpr std::string_view kSecretKeyFileMagic = "refbus-secret-key/1\n";
inline constexpr std::string_view kConsentGrantFileMagic = "refbus-consent-grant/1\n";

// Prepends the magic line.
Bytes WithMagic(std::string_view magic, ByteView body);
// Returns the bytes after the magic line, or an error that says what the file is instead
// (another refbus file type, a newer version, or not a refbus file at all).
Result<ByteView> StripMagic(std::string_view magic, ByteView file, std::string_view what);

}  // namespace refbus::schema

#endif  // REFBUS_SCHEMA_CODEC_H_
