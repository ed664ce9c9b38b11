// The subcommands of refbus-agent, one function each: it adds the subcommand, its options
// and help to app, and registers with c what runs when it is the one parsed (agent_main.cpp
// calls them in the order --help lists them).
//
//   run                                    the daemon (agent/daemon.h)     cli/run.cpp
//   backup, restore                        agent/backup.h                  cli/backup.cpp
// Commands for people, each one call to the daemon's local API (agent/API.md):
//   consent, consents, revoke-consent                                      cli/consent.cpp
//   send-referral, referrals, accept, decline, state                       cli/referral.cpp
//   handoff, ack-handoff                                                   cli/handoff.cpp
//   request-deletion, deletion-status, deletions                           cli/deletion.cpp
//   close, set-local-case, case                                            cli/case.cpp
//   inbox, open, status                                                    cli/inbox.cpp
#ifndef REFBUS_AGENT_CLI_COMMANDS_H_
#define REFBUS_AGENT_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>

#include "agent/cli/common.h"

namespace refbus::agent::cli {

void AddRun(CLI::App& app, Commands& c);
void AddBackup(CLI::App& app, Commands& c);
void AddRestore(CLI::App& app, Commands& c);
// operator add | list | disable | enable | role | passwd (agent/operators.h)  cli/operator.cpp
void AddOperator(CLI::App& app, Commands& c);

void AddConsent(CLI::App& app, Commands& c);
void AddConsents(CLI::App& app, Commands& c);
void AddRevokeConsent(CLI::App& app, Commands& c);

void AddSendReferral(CLI::App& app, Commands& c);
void AddReferrals(CLI::App& app, Commands& c);
void AddAccept(CLI::App& app, Commands& c);
void AddDecline(CLI::App& app, Commands& c);
void AddState(CLI::App& app, Commands& c);

void AddHandoff(CLI::App& app, Commands& c);
void AddAckHandoff(CLI::App& app, Commands& c);

void AddRequestDeletion(CLI::App& app, Commands& c);
void AddDeletionStatus(CLI::App& app, Commands& c);
void AddDeletions(CLI::App& app, Commands& c);

void AddClose(CLI::App& app, Commands& c);
void AddSetLocalCase(CLI::App& app, Commands& c);
void AddCase(CLI::App& app, Commands& c);

// link add | list | matches (PROTOCOL.md 13.6)                          cli/link.cpp
void AddLink(CLI::App& app, Commands& c);

void AddInbox(CLI::App& app, Commands& c);
void AddOpen(CLI::App& app, Commands& c);
void AddStatus(CLI::App& app, Commands& c);

}  // namespace refbus::agent::cli

#endif  // REFBUS_AGENT_CLI_COMMANDS_H_
