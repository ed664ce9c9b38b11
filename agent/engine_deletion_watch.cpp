// Engine: the deletion centers' watch list over the bus (PROTOCOL.md 10.3). A center's
// published list goes to every other agency with the deletion role as a grant-less
// DELETION_WATCH_LIST message (no case, no victim data: content hashes only; the broker
// admits it between deletion-role agencies only, 9.1). The receiving center verifies and
// imports it exactly as the operator's import does (ImportWatchFile); a delta whose base
// it lacks makes it ask the publisher for the full list, which the publisher answers with
// the full file it published last. A file over one message travels as parts
// (agent/watch_parts.h), staged by the receiver until every part is held; parts that stop
// coming make the receiver ask for the full list again (WatchPartsTurn).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/case_message.h"
#include "agent/deletion_work.h"
#include "agent/engine_impl.h"
#include "agent/watch_parts.h"

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

Result<size_t> Engine::Impl::SendWatchFile(CaseStore::Txn& txn, const std::string& text,
                                           const std::vector<schema::WatchListPart>& parts,
                                           const std::string& to, const std::string& what) {
  if (parts.empty()) {
    REFBUS_ASSIGN_OR_RETURN(Bytes id, SendWatchList(txn, {text, false, 0, std::nullopt}, to, what));
    (void)id;
    return size_t{1};
  }
  size_t sent = 0;
  for (const schema::WatchListPart& p : parts) {
    if (static_cast<int64_t>(p.index) == options.test_skip_watch_part && !watch_part_dropped) {
      watch_part_dropped = true;  // tests: kept, not sent; the receiver will ask again
      continue;
    }
    schema::DeletionWatchList body;
    body.part = p;
    REFBUS_ASSIGN_OR_RETURN(Bytes id, SendWatchList(txn, std::move(body), to, what + "-part"));
    (void)id;
    ++sent;
  }
  return sent;
}

Result<Json> Engine::Impl::SendWatchListToCenters(CaseStore::Txn& txn, const Json& file) {
  std::vector<std::string> centers;
  for (const schema::Party& p : dir().agencies) {
    if (p.id != me() && p.status == schema::PartyStatus::kActive &&
        p.HasRole(schema::Role::kDeletion)) {
      centers.push_back(p.id);
    }
  }
  Json sent = Json::array();
  Json not_sent = Json::object();
  const std::string text = file.dump();
  std::vector<schema::WatchListPart> parts;
  std::string unsendable;
  // Until the broker acks them, the envelopes wait in the case store's outgoing table (hex:
  // twice their size), all queued in this one transaction.
  const uint64_t queued_bytes = 2 * uint64_t{text.size()} * centers.size();
  if (queued_bytes > kMaxWatchQueuedBytes) {
    unsendable = "sending it to " + std::to_string(centers.size()) + " centers would queue " +
                 std::to_string(queued_bytes) + " bytes, over " +
                 std::to_string(kMaxWatchQueuedBytes) + ": carry it by hand (import)";
  } else if (text.size() > schema::kMaxWatchListFileBytes) {
    auto split = SplitWatchFile(text);
    if (split.ok()) {
      parts = std::move(*split);
    } else {
      unsendable = split.status().message() + ": carry it by hand (import)";
    }
  }
  for (const std::string& id : centers) {
    if (!unsendable.empty()) {
      not_sent[id] = unsendable;
      continue;
    }
    auto queued = SendWatchFile(txn, text, parts, id, "deletion-watch-list");
    if (queued.ok()) {
      sent.push_back(id);
    } else {
      if (queued.status().code() == Status::Code::kIoError) return queued.status();
      not_sent[id] = queued.status().message();
    }
  }
  const size_t messages = std::max<size_t>(1, parts.size());
  spdlog::info(
      "agent {}: watch list ({} bytes, {} part(s)) sent to {} deletion center(s), {} not sent",
      me(), text.size(), messages, sent.size(), not_sent.size());
  return Json{
      {"sent_to", sent}, {"not_sent", not_sent}, {"bytes", text.size()}, {"parts", messages}};
}

namespace {

// What a center answers a request for its full list with: the full file it published
// last, if any, its parts when one message does not carry it, and its version.
struct WatchFullAnswer {
  std::string text;
  std::vector<schema::WatchListPart> parts;
  uint64_t version = 0;
};
std::optional<WatchFullAnswer> FullListAnswer(const std::optional<Json>& file, std::string* why) {
  if (!file || !file->is_object() || !file->contains("list") || !(*file)["list"].is_string()) {
    *why = "no list published yet";
    return std::nullopt;
  }
  auto list = ParseWatchListText((*file)["list"].get<std::string>());
  if (!list.ok()) {
    *why = "the list kept is unreadable: " + list.status().message();
    return std::nullopt;
  }
  WatchFullAnswer a;
  a.text = file->dump();
  a.version = list->version;
  if (a.text.size() > schema::kMaxWatchListFileBytes) {
    auto parts = SplitWatchFile(a.text);
    if (!parts.ok()) {
      *why = parts.status().message();
      return std::nullopt;
    }
    a.parts = std::move(*parts);
  }
  return a;
}

}  // namespace

Status Engine::Impl::AnswerFullWatchListRequest(CaseStore::Txn& txn, const std::string& from,
                                                MessageRecord& msg) {
  // One answer per requesting center per half chunk timeout: a center asking in a loop
  // cannot make this one queue its full list (up to 64 MiB) again and again.
  const UnixMillis pause =
      static_cast<UnixMillis>(std::max<int64_t>(options.deletion_chunk_timeout_ms / 2, 1));
  auto last = watch_full_answered.find(from);
  if (last != watch_full_answered.end() && Now() - std::min(Now(), last->second) < pause) {
    msg.watch_list = from + " asked for the full list again within " + std::to_string(pause) +
                     " ms: not answered";
    spdlog::warn("agent {}: {}", me(), *msg.watch_list);
    return Status::Ok();
  }
  REFBUS_ASSIGN_OR_RETURN(auto file, txn.Get(Table::kMeta, kWatchPublishedFileKey));
  std::string why;
  auto answer = FullListAnswer(file, &why);
  if (!answer) {
    msg.watch_list = from + " asked for the full list: not answered, " + why;
    spdlog::warn("agent {}: {}", me(), *msg.watch_list);
    return Status::Ok();
  }
  REFBUS_ASSIGN_OR_RETURN(size_t sent, SendWatchFile(txn, answer->text, answer->parts, from,
                                                     "deletion-watch-list-full"));
  watch_full_answered[from] = Now();
  msg.watch_list =
      "answered " + from + " with the full list, version " + std::to_string(answer->version);
  if (!answer->parts.empty()) {
    msg.watch_list = *msg.watch_list + " (" + std::to_string(sent) + " of " +
                     std::to_string(answer->parts.size()) + " parts)";
  }
  return Status::Ok();
}

Status Engine::Impl::ImportWatchText(CaseStore::Txn& txn, const std::string& text,
                                     const std::string& from, MessageRecord& msg, size_t* hashes) {
  Json file = Json::parse(text, nullptr, false);
  auto imported = file.is_discarded() ? Result<Json>(Malformed("the watch list file is not JSON"))
                                      : ImportWatchFile(txn, file, from);
  if (!imported.ok()) return imported.status();
  if (imported->contains("needs_full")) {
    schema::DeletionWatchList ask{"", true, (*imported)["held_version"].get<uint64_t>(),
                                  std::nullopt};
    REFBUS_ASSIGN_OR_RETURN(
        Bytes id, SendWatchList(txn, std::move(ask), from, "deletion-watch-list-request"));
    (void)id;
    msg.watch_list = "delta without its base: asked " + from + " for the full list";
    spdlog::info("agent {}: {}", me(), *msg.watch_list);
    return Status::Ok();
  }
  msg.watch_list = "imported version " + std::to_string((*imported)["version"].get<uint64_t>()) +
                   " of " + from + "'s list";
  if (hashes != nullptr) *hashes = (*imported)["hashes"].get<size_t>();
  return Status::Ok();
}

Status Engine::Impl::StageWatchListPart(CaseStore::Txn& txn, const schema::WatchListPart& part,
                                        const std::string& from, MessageRecord& msg) {
  REFBUS_ASSIGN_OR_RETURN(WatchPartStaged staged, StageWatchPart(txn, from, part, Now()));
  const std::string of = " of " + std::to_string(part.count);
  if (staged.complete()) {
    size_t hashes = 0;
    REFBUS_RETURN_IF_ERROR(ImportWatchText(txn, staged.file_text, from, msg, &hashes));
    if (hashes > 0) {  // imported (not a delta without its base)
      msg.watch_list = *msg.watch_list + " (" + std::to_string(part.count) + " parts, " +
                       std::to_string(hashes) + " hashes)";
    }
    return Status::Ok();
  }
  if (staged.stale) {
    msg.watch_list = "part " + std::to_string(part.index) + of + " of a list of " + from +
                     " already imported or replaced: ignored";
  } else {
    msg.watch_list = "part " + std::to_string(part.index) + of + " of " + from + "'s list" +
                     (staged.duplicate ? " (held already)" : "") + ": " +
                     std::to_string(staged.staged.held.size()) + of + " held";
  }
  if (staged.replaced) {
    spdlog::info("agent {}: a newer watch list of {} replaced its unfinished one", me(), from);
  }
  return Status::Ok();
}

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
    s = AnswerFullWatchListRequest(txn, from, msg);
  } else if (wl.part) {
    s = StageWatchListPart(txn, *wl.part, from, msg);
  } else {
    s = ImportWatchText(txn, wl.file, from, msg);
  }
  if (!s.ok()) {
    if (s.code() == Status::Code::kInternal || s.code() == Status::Code::kIoError) return s;
    REFBUS_RETURN_IF_ERROR(Refuse(txn, msg, "", s.message()));
  }
  return Save(txn, msg.message_id, msg);
}

// From Poll: a parted file whose parts stopped coming for a chunk timeout makes this center
// ask its publisher for the full list again (at most kWatchPartAsks times for one file:
// the publisher answers with every part of its latest full list, and parts held already
// count once); a staged file expires kWatchStagedLifetimeMs after its first part.
Status Engine::Impl::WatchPartsTurn() {
  if (!ChunkCheckDue(next_watch_parts_check)) return Status::Ok();
  const int64_t timeout = options.deletion_chunk_timeout_ms;
  REFBUS_ASSIGN_OR_RETURN(auto txn, case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto staged, ListWatchStaged(txn));
  size_t changed = 0;
  for (WatchStaged& s : staged) {
    if (s.idle()) continue;
    const UnixMillis now = Now();
    if (now - std::min(now, s.first_at_ms) >= kWatchStagedLifetimeMs) {
      spdlog::warn("agent {}: watch list of {}: {} of {} parts after a day; dropped", me(),
                   s.sender, s.held.size(), s.count);
      REFBUS_RETURN_IF_ERROR(DropWatchStaged(txn, s));
      ++changed;
      continue;
    }
    if (s.asks > kWatchPartAsks ||
        now - std::min(now, s.progress_at_ms) < static_cast<UnixMillis>(timeout)) {
      continue;
    }
    if (s.asks == kWatchPartAsks) {  // said once, then left to expire or be replaced
      spdlog::error(
          "agent {}: watch list of {}: {} of {} parts held after asking {} times; "
          "waiting for its next list (staged parts expire a day after the first)",
          me(), s.sender, s.held.size(), s.count, kWatchPartAsks);
      ++s.asks;
      REFBUS_RETURN_IF_ERROR(SaveWatchStaged(txn, s));
      ++changed;
      continue;
    }
    REFBUS_ASSIGN_OR_RETURN(auto held_json, txn.Get(Table::kMeta, kWatchHeldPrefix + s.sender));
    uint64_t held_version = 0;
    if (held_json) {
      REFBUS_ASSIGN_OR_RETURN(WatchHeld held, WatchHeldFromJson(*held_json));
      held_version = held.version;
    }
    spdlog::warn(
        "agent {}: watch list of {}: {} of {} parts held after {} ms; asking for the "
        "full list again ({} of {})",
        me(), s.sender, s.held.size(), s.count, timeout, s.asks + 1, kWatchPartAsks);
    schema::DeletionWatchList ask{"", true, held_version, std::nullopt};
    REFBUS_ASSIGN_OR_RETURN(
        Bytes id, SendWatchList(txn, std::move(ask), s.sender, "deletion-watch-list-request"));
    (void)id;
    ++s.asks;
    s.progress_at_ms = now;
    REFBUS_RETURN_IF_ERROR(SaveWatchStaged(txn, s));
    ++changed;
  }
  if (changed == 0) return Status::Ok();
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  FlushAfterCommit();
  return Status::Ok();
}

}  // namespace refbus::agent
