// Internals shared by audit/verify.cpp, audit/query.cpp and audit/proof_bundle.cpp: the
// streaming scan of a local store's entries into a Merkle tree, and checkpoint helpers.
// Not part of the audit library's interface.
//
// Thread safety: free functions over values.
#ifndef REFBUS_AUDIT_SCAN_H_
#define REFBUS_AUDIT_SCAN_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "audit/local_store.h"
#include "core/bytes.h"
#include "core/status.h"
#include "keys/checkpoint.h"
#include "keys/merkle.h"

namespace refbus::audit {

// "checkpoint #seq (size N, received <UTC>)" for messages.
std::string Describe(const LocalCheckpoint& c, uint64_t size);

// Streams the local entries in key order into a MemoryTree, stopping at the first gap.
struct Scan {
  keys::MemoryTree tree;
  std::optional<uint64_t> gap;       // the first missing index
  std::optional<uint64_t> next_key;  // the key found where gap was expected
};

// Visits the entries in key order, appending each to scan.tree, and stops at the first gap
// (scan.gap and scan.next_key then say where). Errors only for a store that cannot be read.
Status ScanEntries(const LocalAuditStore& store, Scan& scan,
                   const std::function<void(uint64_t, ByteView)>& visit);

// "entry N is missing from the local store (...)" for a scan that stopped at a gap.
std::string GapMessage(const Scan& scan);

// A checkpoint parsed without checking its signature (queries and reports only).
std::optional<keys::Checkpoint> ParseUnverified(std::string_view note);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_SCAN_H_
