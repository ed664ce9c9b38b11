// Engine: the deletion centers' watch list over the bus (PROTOCOL.md 10.3). A center's
// published list goes to every other agency with the deletion role as a grant-less
// DELETION_WATCH_LIST message (no case, no victim data: content hashes only; the broker
// admits it between deletion-role agencies only, 9.1). The receiving center verifies and
// imports it exactly as the operator's import does (ImportWatchFile); a delta whose base
// it lacks makes it ask the publisher for the full list, which the publisher answers with
// the full file it published last.
#include <spdlog/spdlog.h>

#include "agent/case_message.h"
#include "agent/deletion_work.h"
#include "agent/engine_impl.h"

namespace refbus::agent {

Result<Bytes> Engine::Impl::SendWatchList(CaseStore::Txn& txn, schema::DeletionWatchList body,
                                          const std::string& to, const std::string& what) {
  SealCaseRequest req;
  req.message.type = schema::CaseMessage::Type::kDeletionWatchList;
  req.message.watch_list = std::move(body);
  req.recipients = {to};
  req.now = Now();
  req.lifetime_ms = options.message_lifetime_ms;
  req.published = published;
  REFBUS_ASSIGN_OR_RETURN(Bytes env, SealGrantless(identity, dir(), req));
  return QueueEnvelope(txn, std::move(env), req.recipients, what);
}

Result<Json> Engine::Impl::SendWatchListToCenters(CaseStore::Txn& txn, const Json& file) {
  Json sent = Json::array();
  Json not_sent = Json::object();
  const std::string text = file.dump();
  for (const schema::Party& p : dir().agencies) {
    if (p.id == me() || p.status != schema::PartyStatus::kActive ||
        !p.HasRole(schema::Role::kDeletion)) {
      continue;
    }
    if (text.size() > schema::kMaxWatchListFileBytes) {
      not_sent[p.id] = "the file is " + std::to_string(text.size()) + " bytes, over the " +
                       std::to_string(schema::kMaxWatchListFileBytes) +
                       " one message carries: carry it by hand (import)";
      continue;
    }
    auto queued = SendWatchList(txn, {text, false, 0}, p.id, "deletion-watch-list");
    if (queued.ok()) {
      sent.push_back(p.id);
    } else {
      if (queued.status().code() == Status::Code::kIoError) return queued.status();
      not_sent[p.id] = queued.status().message();
    }
  }
  spdlog::info("agent {}: watch list sent to {} deletion center(s), {} not sent", me(), sent.size(),
               not_sent.size());
  return Json{{"sent_to", sent}, {"not_sent", not_sent}};
}

namespace {

// What a center answers a request for its full list with: the full file it published
// last, if any (and if one message carries it), and its version.
std::optional<std::pair<std::string, uint64_t>> FullListAnswer(const std::optional<Json>& file,
                                                               std::string* why) {
  if (!file || !file->is_object() || !file->contains("list") || !(*file)["list"].is_string()) {
    *why = "no list published yet";
    return std::nullopt;
  }
  auto list = ParseWatchListText((*file)["list"].get<std::string>());
  if (!list.ok()) {
    *why = "the list kept is unreadable: " + list.status().message();
    return std::nullopt;
  }
  std::string text = file->dump();
  if (text.size() > schema::kMaxWatchListFileBytes) {
    *why = "the full list is " + std::to_string(text.size()) + " bytes, over what one message " +
           "carries";
    return std::nullopt;
  }
  return std::make_pair(std::move(text), list->version);
}

}  // namespace

Status Engine::Impl::ProcessWatchListMessage(CaseStore::Txn& txn, ByteView envelope,
                                             MessageRecord& msg) {
  auto opened = OpenGrantless(identity, envelope, dir(), Now());
  if (!opened.ok()) {
    REFBUS_RETURN_IF_ERROR(Refuse(txn, msg, "", opened.status().message()));
    return Save(txn, msg.message_id, msg);
  }
  const std::string from = opened->envelope.header.sender_id;
  const schema::DeletionWatchList& wl = opened->message.watch_list;
  Status s = Status::Ok();
  if (wl.request_full) {
    REFBUS_ASSIGN_OR_RETURN(auto file, txn.Get(Table::kMeta, kWatchPublishedFileKey));
    std::string why;
    if (auto answer = FullListAnswer(file, &why)) {
      auto queued = SendWatchList(txn, {answer->first, false, 0}, from, "deletion-watch-list-full");
      s = queued.status();
      if (s.ok()) {
        msg.watch_list =
            "answered " + from + " with the full list, version " + std::to_string(answer->second);
      }
    } else {
      msg.watch_list = from + " asked for the full list: not answered, " + why;
      spdlog::warn("agent {}: {}", me(), *msg.watch_list);
    }
  } else {
    Json file = Json::parse(wl.file, nullptr, false);
    auto imported = file.is_discarded() ? Result<Json>(Malformed("the watch list file is not JSON"))
                                        : ImportWatchFile(txn, file, from);
    s = imported.status();
    if (s.ok() && imported->contains("needs_full")) {
      schema::DeletionWatchList ask{"", true, (*imported)["held_version"].get<uint64_t>()};
      auto queued = SendWatchList(txn, std::move(ask), from, "deletion-watch-list-request");
      s = queued.status();
      msg.watch_list = "delta without its base: asked " + from + " for the full list";
      spdlog::info("agent {}: {}", me(), *msg.watch_list);
    } else if (s.ok()) {
      msg.watch_list = "imported version " +
                       std::to_string((*imported)["version"].get<uint64_t>()) + " of " + from +
                       "'s list";
    }
  }
  if (!s.ok()) {
    if (s.code() == Status::Code::kInternal || s.code() == Status::Code::kIoError) return s;
    REFBUS_RETURN_IF_ERROR(Refuse(txn, msg, "", s.message()));
  }
  return Save(txn, msg.message_id, msg);
}

}  // namespace refbus::agent
