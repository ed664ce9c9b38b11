// The auditor's own settings (<auditor folder>/auditor.toml, beside identity.key and the
// directory): which witnesses it requires before it believes a log, and how many.
//
//   [verify]
//   witnesses = ["busan-broker", "audit-office-2"]   # party ids from the directory
//   min_cosignatures = 1                              # default 1; 0 only for tests
//
// The auditor names its witnesses, not the log: a broker asks whom it likes to cosign its
// checkpoints, and a witness it picked (or set up) vouches for nothing. Verification counts
// only the cosignatures of the witnesses named here, and never the log's own broker. With
// no file, no witness is named and min_cosignatures is 1: every log fails verification
// until the auditor names whom it trusts (or lowers the requirement, loudly).
//
// Thread safety: free functions over values.
#ifndef REFBUS_AUDIT_AUDITOR_CONFIG_H_
#define REFBUS_AUDIT_AUDITOR_CONFIG_H_

#include <cstddef>
#include <string>
#include <vector>

#include "core/status.h"
#include "keys/witness.h"
#include "schema/types.h"

namespace refbus::audit {

inline constexpr char kAuditorConfigFile[] = "auditor.toml";

struct AuditorConfig {
  std::string file;  // the path read, or "" when there was none
  std::vector<std::string> witnesses;
  size_t min_cosignatures = 1;
};

// Reads <auditor_dir>/auditor.toml; defaults when it does not exist. InvalidArgument naming
// the file and setting for anything else wrong (unknown keys, a bad id, a repeated one).
Result<AuditorConfig> LoadAuditorConfig(const std::string& auditor_dir);

// The cosignature keys of the named witnesses, from the verified directory. The log's own
// broker (log_broker_id) is left out. NotFound naming the witness for a name that is not an
// active party with the witness role in the directory.
Result<std::vector<keys::WitnessKey>> NamedWitnessKeys(const schema::Directory& directory,
                                                       const AuditorConfig& config,
                                                       const std::string& log_broker_id);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_AUDITOR_CONFIG_H_
