// Engine: the directory's agencies for the console's directory page (GET /v1/directory).
// Only public listing fields: the signed directory is distributed to every party anyway,
// and key material is left out because no page needs it.
#include "agent/engine.h"
#include "agent/engine_impl.h"

namespace refbus::agent {

Result<Json> Engine::Agencies() {
  const schema::Directory& dir = impl_->dir();
  Json out = Json::array();
  for (const schema::Party& p : dir.agencies) {
    out.push_back({{"id", p.id},
                   {"display_name", p.display_name},
                   {"agency_type", schema::Name(p.agency_type)},
                   {"region", p.region},
                   {"status", schema::Name(p.status)}});
  }
  return out;
}

}  // namespace refbus::agent
