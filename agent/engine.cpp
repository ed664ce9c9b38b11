// Engine core: creation, polling, the directory, status and the snapshot. The workflows
// live in engine_*.cpp (engine_impl.h lists them).
#include "agent/engine.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "agent/engine_impl.h"

namespace refbus::agent {

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<EngineSnapshot> Engine::Snapshot() {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(auto counters, d.transport_store->Counters());
  EngineSnapshot s;
  s.broker = d.client->home_broker_id();
  s.session_ready = d.client->session_ready();
  s.directory_serial = d.dir().serial;
  s.directory_expires_ms = d.dir().expires_at_ms;
  s.outbox = counters.outbox_messages;
  s.inbox = counters.inbox_messages;
  s.inbox_unprocessed = counters.last_inbox_sequence > counters.app_cursor
                            ? counters.last_inbox_sequence - counters.app_cursor
                            : 0;
  s.client = d.client->counters();
  return s;
}

const std::string& Engine::agency_id() const { return impl_->me(); }

void Engine::SetActingOperator(std::shared_ptr<const OperatorKey> op) {
  impl_->acting = std::move(op);
}

std::optional<schema::OperatorSignature> Engine::Impl::SignAsOperator(
    keys::OperatorAction action, ByteView record, const std::string& operator_ref) const {
  if (!acting || acting->name() != operator_ref) return std::nullopt;
  return schema::OperatorSignature{acting->name(), acting->public_key(),
                                   acting->Sign(keys::OperatorLabel(action), record)};
}

Result<std::unique_ptr<Engine>> Engine::Create(keys::Identity identity,
                                               schema::SignedDirectory directory,
                                               EngineOptions options) {
  auto impl = std::make_unique<Impl>(std::move(identity), std::move(directory), options);
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return IoError("cannot create " + options.data_dir + ": " + ec.message());
  REFBUS_ASSIGN_OR_RETURN(impl->transport_store,
                          TransportStore::Open(options.data_dir + "/transport", StoreOptions{}));
  REFBUS_ASSIGN_OR_RETURN(impl->case_store, CaseStore::Open(options.data_dir + "/cases"));
  const std::string key_dir =
      options.grant_key_dir.empty() ? options.data_dir + "/grant-keys" : options.grant_key_dir;
  REFBUS_ASSIGN_OR_RETURN(impl->grant_keys, GrantKeys::Open(key_dir, impl->identity));
  REFBUS_ASSIGN_OR_RETURN(impl->linkage_store, LinkageStore::Open(options.data_dir + "/linkage",
                                                                  options.escrow_threshold));
  REFBUS_RETURN_IF_ERROR(impl->SealLegacyText());
  REFBUS_RETURN_IF_ERROR(impl->SealInboxAtRest());
  REFBUS_RETURN_IF_ERROR(impl->LoadPublished());
  std::string endpoint = options.broker_endpoint;
  if (endpoint.empty()) {
    const schema::Party* self = impl->dir().Find(impl->me());
    if (self == nullptr) return NotFound(impl->me() + " is not in the directory");
    const schema::Party* broker = impl->dir().Find(self->home_broker);
    if (broker == nullptr || broker->endpoint.empty()) {
      return FailedPrecondition("the directory lists no endpoint for home broker " +
                                self->home_broker + "; set agent.broker_endpoint");
    }
    endpoint = broker->endpoint;
  }
  impl->client = std::make_unique<Client>(impl->identity, impl->dir(), endpoint,
                                          *impl->transport_store, options.client);
  REFBUS_RETURN_IF_ERROR(impl->client->Start());
  std::unique_ptr<Engine> e(new Engine(std::move(impl)));
  // What an earlier run queued but may not have handed over, and what arrived unprocessed.
  REFBUS_RETURN_IF_ERROR(e->impl_->FlushOutgoing());
  REFBUS_RETURN_IF_ERROR(e->impl_->LoadWaiting());
  REFBUS_RETURN_IF_ERROR(e->impl_->ProcessInbox());
  REFBUS_RETURN_IF_ERROR(e->impl_->RunPendingPurges());
  REFBUS_RETURN_IF_ERROR(e->impl_->EnforceRetention());
  return e;
}

Status Engine::Poll(int timeout_ms) {
  Status s = impl_->client->Poll(timeout_ms);
  for (const auto& ev : impl_->client->TakeEvents()) {
    if (ev.type == ClientEvent::Type::kAcked || ev.type == ClientEvent::Type::kRefused) {
      Status a = impl_->OnAnswer(ev);
      if (!a.ok()) spdlog::error("agent: recording a broker answer failed: {}", a.ToString());
    } else if (ev.type == ClientEvent::Type::kPrekey) {
      impl_->OnPublishedPrekey(ev.signed_prekey);
    }
  }
  Status p = impl_->ProcessInbox();
  if (!p.ok()) spdlog::error("agent: processing the inbox failed: {}", p.ToString());
  impl_->PrekeyTurn();
  Status c = impl_->DeletionChunkTurn();
  if (!c.ok()) spdlog::error("agent: checking chunked deletion requests failed: {}", c.ToString());
  Status w = impl_->WatchPartsTurn();
  if (!w.ok()) spdlog::error("agent: checking staged watch-list parts failed: {}", w.ToString());
  return s.ok() ? p : s;
}

Status Engine::EnforceRetention() { return impl_->EnforceRetention(); }

void Engine::Shutdown(int linger_ms) {
  impl_->client->PauseSubmissions(true);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(linger_ms);
  while (impl_->client->in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    (void)Poll(20);
  }
  impl_->client->Close(200);
}

Status Engine::UpdateDirectory(schema::SignedDirectory directory) {
  if (directory.directory.serial <= impl_->directory.directory.serial) return Status::Ok();
  impl_->directory = std::move(directory);
  return Status::Ok();
}

Result<Json> Engine::GetStatus() {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(auto counters, d.transport_store->Counters());
  REFBUS_ASSIGN_OR_RETURN(auto checkpoint, d.transport_store->LatestCheckpoint());
  Json status = {{"agency", d.me()},
                 {"broker", d.client->home_broker_id()},
                 {"session_ready", d.client->session_ready()},
                 {"outstanding", d.client->outstanding()},
                 {"inbox", counters.inbox_messages},
                 {"directory_serial", d.directory.directory.serial}};
  // The broker's latest checkpoint from its Acks (PROTOCOL.md 6): evidence for auditors.
  status["checkpoint"] = nullptr;
  if (checkpoint) {
    status["checkpoint_size"] = checkpoint->size;
    status["checkpoint_root"] = HexEncode(checkpoint->root);
    status["checkpoint"] = Json{{"broker", checkpoint->broker_id},
                                {"size", checkpoint->size},
                                {"root", HexEncode(checkpoint->root)},
                                {"received_at_ms", checkpoint->received_ms},
                                {"note", checkpoint->note}};
  }
  return status;
}

}  // namespace refbus::agent
