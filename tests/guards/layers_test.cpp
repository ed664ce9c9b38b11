// The layer order of STYLE.md, checked on every #include of the product code:
//   core <- schema <- keys <- linkage <- broker, agent, audit
// (linkage, issue 19, is a shared concern between keys and the three services: the agency
// side of the OPRF runs in the agent, the evaluator side in the broker.)
// A layer includes only itself and the layers below it; broker, agent and audit never
// include each other; product code never includes tests/; generated protobuf headers
// (*.pb.h) are included by schema/ only (everything else sees plain structs).
//
// CheckLayers is run on the repository (the test that keeps the tree in order) and on a
// small tree written here with one violation of each kind (the test that the check can
// fail).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "tests/unit/test_util.h"

namespace {

namespace fs = std::filesystem;

// Layer rank; same rank and different layer (broker/agent/audit) is forbidden.
const std::map<std::string, int>& Ranks() {
  static const std::map<std::string, int> ranks = {{"core", 0},    {"schema", 1}, {"keys", 2},
                                                   {"linkage", 3}, {"broker", 4}, {"agent", 4},
                                                   {"audit", 4}};
  return ranks;
}

std::string TopFolder(const std::string& path) {
  const auto slash = path.find('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// One line per violation: "<file>:<line>: <layer> includes <path> (<why>)".
std::vector<std::string> CheckLayers(const fs::path& root) {
  static const std::regex kInclude(R"re(^\s*#\s*include\s*"([^"]+)")re");
  std::vector<std::string> violations;
  for (const auto& [layer, rank] : Ranks()) {
    const fs::path dir = root / layer;
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
      const auto ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".h" && ext != ".cpp" && ext != ".cc")) continue;
      std::ifstream in(entry.path());
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        std::smatch m;
        if (!std::regex_search(line, m, kInclude)) continue;
        const std::string target = m[1];
        const std::string where =
            fs::relative(entry.path(), root).string() + ":" + std::to_string(n) + ": ";
        const std::string top = TopFolder(target);
        std::string why;
        if (top == "tests") {
          why = "product code includes a test file";
        } else if (target.ends_with(".pb.h") && layer != "schema") {
          why = "only schema/ includes generated protobuf headers";
        } else if (const auto it = Ranks().find(top); it != Ranks().end() && top != layer) {
          if (it->second > rank) why = "a lower layer includes a higher one";
          if (it->second == rank) why = "broker, agent and audit never include each other";
        }
        if (!why.empty())
          violations.push_back(where + layer + " includes " + target + " (" + why + ")");
      }
    }
  }
  return violations;
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

TEST(LayerOrderTest, RepositoryFollowsTheLayerOrder) {
  const fs::path root = REFBUS_SOURCE_DIR;
  ASSERT_TRUE(fs::is_directory(root / "core")) << "source tree not found at " << root;
  // The check reads something: every layer's folder exists and has sources.
  for (const char* layer : {"core", "schema", "keys", "linkage", "broker", "agent", "audit"}) {
    ASSERT_TRUE(fs::is_directory(root / layer)) << layer << "/ is missing";
  }
  const auto violations = CheckLayers(root);
  EXPECT_TRUE(violations.empty()) << "includes against the layer order:\n" << Joined(violations);
}

TEST(LayerOrderTest, CheckFindsEachKindOfViolation) {
  refbus::test::TempDir tmp;
  const fs::path root = tmp.path();
  const auto write = [&](const std::string& rel, const std::string& text) {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  };
  write("core/ok.h", "#include \"core/status.h\"\n#include <vector>\n");
  write("keys/ok.cpp", "#include \"schema/types.h\"\n#include \"core/bytes.h\"\n");
  write("core/up.cpp", "#include \"keys/crypto.h\"\n");              // lower includes higher
  write("broker/side.cpp", "// x\n#include \"agent/engine.h\"\n");   // sibling
  write("audit/side.h", "  #  include \"broker/store.h\"\n");        // sibling, odd spacing
  write("agent/test.cpp", "#include \"tests/unit/test_util.h\"\n");  // test file
  write("keys/pb.cpp", "#include \"refbus/v1/envelope.pb.h\"\n");    // protobuf outside schema
  write("linkage/up.cpp", "#include \"agent/engine.h\"\n");          // linkage includes a service
  write("agent/link.cpp", "#include \"linkage/oprf.h\"\n");          // allowed
  write("schema/codec.cpp", "#include \"refbus/v1/envelope.pb.h\"\n");  // allowed
  const auto v = CheckLayers(root);
  EXPECT_EQ(v.size(), 6u) << Joined(v);
  const std::string all = Joined(v);
  EXPECT_NE(all.find("core/up.cpp:1: core includes keys/crypto.h (a lower layer"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("broker/side.cpp:2: broker includes agent/engine.h (broker, agent and audit"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("audit/side.h:1: audit includes broker/store.h"), std::string::npos) << all;
  EXPECT_NE(all.find("agent/test.cpp:1: agent includes tests/unit/test_util.h (product code"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("keys/pb.cpp:1: keys includes refbus/v1/envelope.pb.h (only schema/"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("linkage/up.cpp:1: linkage includes agent/engine.h (a lower layer"),
            std::string::npos)
      << all;
}

}  // namespace
