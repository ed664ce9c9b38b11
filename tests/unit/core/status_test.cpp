// Tests for core/status.h: Status, Result<T> and the propagation macros.
#include "core/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/unit/test_util.h"

namespace refbus {
namespace {

using Code = Status::Code;
using test::HasCode;

const std::vector<Code>& AllErrorCodes() {
  static const std::vector<Code> kCodes = {
      Code::kInvalidArgument,   Code::kNotFound,
      Code::kAlreadyExists,     Code::kPermissionDenied,
      Code::kMalformed,         Code::kUnauthenticated,
      Code::kExpired,           Code::kRevoked,
      Code::kRollback,          Code::kFailedPrecondition,
      Code::kResourceExhausted, Code::kUnavailable,
      Code::kIoError,           Code::kInternal,
  };
  return kCodes;
}

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_TRUE(s.message().empty());
  EXPECT_EQ(s.ToString(), "ok");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s(Code::kNotFound, "no such file: /x");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "no such file: /x");
  EXPECT_EQ(s.ToString(), "not found: no such file: /x");
}

TEST(StatusTest, CopiesAreIndependent) {
  Status a = Malformed("a");
  Status b = a;
  b = b.WithContext("ctx");
  EXPECT_EQ(a.message(), "a");
  EXPECT_EQ(b.message(), "ctx: a");
}

TEST(StatusTest, ShorthandsMakeTheirCodes) {
  struct Case {
    Status status;
    Code code;
  };
  const std::vector<Case> cases = {
      {InvalidArgument("m"), Code::kInvalidArgument},
      {NotFound("m"), Code::kNotFound},
      {AlreadyExists("m"), Code::kAlreadyExists},
      {PermissionDenied("m"), Code::kPermissionDenied},
      {Malformed("m"), Code::kMalformed},
      {Unauthenticated("m"), Code::kUnauthenticated},
      {Expired("m"), Code::kExpired},
      {Revoked("m"), Code::kRevoked},
      {Rollback("m"), Code::kRollback},
      {FailedPrecondition("m"), Code::kFailedPrecondition},
      {ResourceExhausted("m"), Code::kResourceExhausted},
      {Unavailable("m"), Code::kUnavailable},
      {IoError("m"), Code::kIoError},
      {Internal("m"), Code::kInternal},
  };
  ASSERT_EQ(cases.size(), AllErrorCodes().size());
  for (const auto& c : cases) {
    EXPECT_FALSE(c.status.ok());
    EXPECT_TRUE(HasCode(c.status, c.code));
    EXPECT_EQ(c.status.message(), "m");
  }
}

TEST(StatusTest, EveryCodeHasItsOwnName) {
  std::set<std::string_view> names;
  EXPECT_EQ(CodeName(Code::kOk), "ok");
  names.insert(CodeName(Code::kOk));
  for (Code c : AllErrorCodes()) {
    std::string_view name = CodeName(c);
    EXPECT_FALSE(name.empty());
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
  }
  EXPECT_EQ(CodeName(Code::kIoError), "I/O error");
  EXPECT_EQ(CodeName(static_cast<Code>(999)), "unknown");
}

TEST(StatusTest, ToStringStartsWithTheCodeName) {
  for (Code c : AllErrorCodes()) {
    Status s(c, "detail");
    EXPECT_EQ(s.ToString(), std::string(CodeName(c)) + ": detail");
  }
}

TEST(StatusTest, WithContextPrependsAndKeepsCode) {
  Status s = Expired("directory expired");
  Status w = s.WithContext("/etc/refbus/directory");
  EXPECT_EQ(w.code(), Code::kExpired);
  EXPECT_EQ(w.message(), "/etc/refbus/directory: directory expired");
  // The original is unchanged.
  EXPECT_EQ(s.message(), "directory expired");
  // Nesting reads outermost first.
  EXPECT_EQ(w.WithContext("agent").message(), "agent: /etc/refbus/directory: directory expired");
}

TEST(StatusTest, WithContextOnOkStaysOk) {
  Status w = Status::Ok().WithContext("context");
  EXPECT_TRUE(w.ok());
  EXPECT_TRUE(w.message().empty());
  EXPECT_EQ(w.ToString(), "ok");
}

// ---- Result<T> ----

struct Point {
  int x = 0;
  int y = 0;
};

TEST(ResultTest, HoldsAValue) {
  Result<int> r = 42;
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  EXPECT_TRUE(r.status().ok());
  r.value() = 7;
  EXPECT_EQ(*r, 7);
}

TEST(ResultTest, ArrowReachesMembers) {
  Result<Point> r = Point{3, 4};
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->x, 3);
  const Result<Point>& cr = r;
  EXPECT_EQ(cr->y, 4);
  EXPECT_EQ(cr.value().x, 3);
  EXPECT_EQ((*cr).y, 4);
}

TEST(ResultTest, HoldsAnError) {
  Result<int> r = NotFound("nothing here");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(HasCode(r, Code::kNotFound));
  EXPECT_EQ(r.status().message(), "nothing here");
}

TEST(ResultTest, MoveOnlyValue) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 5);
}

TEST(ResultTest, StringValueIsNotConfusedWithStatus) {
  Result<std::string> r = std::string("text");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "text");
}

TEST(ResultDeathTest, OkStatusAsErrorAborts) {
  EXPECT_DEATH(
      {
        Result<int> r{Status::Ok()};
        (void)r;
      },
      "");
}

TEST(ResultDeathTest, ReadingAMissingValueAborts) {
  Result<int> r = Internal("x");
  EXPECT_DEATH({ (void)r.value(); }, "");
  EXPECT_DEATH({ (void)*r; }, "");
}

// ---- Macros ----

int g_calls = 0;

Status CountedStatus(Status s) {
  ++g_calls;
  return s;
}

Result<int> CountedResult(Result<int> r) {
  ++g_calls;
  return r;
}

// Returns early through REFBUS_RETURN_IF_ERROR; *reached records whether it fell through.
Status ReturnIfErrorUser(Status s, bool* reached) {
  REFBUS_RETURN_IF_ERROR(CountedStatus(std::move(s)));
  *reached = true;
  return Status::Ok();
}

TEST(MacroTest, ReturnIfErrorPassesOk) {
  g_calls = 0;
  bool reached = false;
  EXPECT_TRUE(ReturnIfErrorUser(Status::Ok(), &reached).ok());
  EXPECT_TRUE(reached);
  EXPECT_EQ(g_calls, 1);  // the expression is evaluated exactly once
}

TEST(MacroTest, ReturnIfErrorPropagatesError) {
  g_calls = 0;
  bool reached = false;
  Status s = ReturnIfErrorUser(Rollback("older serial"), &reached);
  EXPECT_FALSE(reached);
  EXPECT_TRUE(HasCode(s, Code::kRollback));
  EXPECT_EQ(s.message(), "older serial");
  EXPECT_EQ(g_calls, 1);
}

TEST(MacroTest, ReturnIfErrorWorksAsASingleStatement) {
  // do/while(0) makes the macro one statement, so it nests under an unbraced if/else.
  auto fn = [](bool fail) -> Status {
    if (fail)
      REFBUS_RETURN_IF_ERROR(Expired("x"));
    else
      REFBUS_RETURN_IF_ERROR(Status::Ok());
    return Status::Ok();
  };
  EXPECT_TRUE(HasCode(fn(true), Code::kExpired));
  EXPECT_TRUE(fn(false).ok());
}

Result<int> AddOne(Result<int> in) {
  REFBUS_ASSIGN_OR_RETURN(int v, CountedResult(std::move(in)));
  return v + 1;
}

Status AssignIntoExisting(Result<int> in, int* out) {
  int v = 0;
  REFBUS_ASSIGN_OR_RETURN(v, std::move(in));
  *out = v;
  return Status::Ok();
}

Result<int> SumTwo(Result<int> a, Result<int> b) {
  // Two uses in one scope: each gets its own hidden variable.
  REFBUS_ASSIGN_OR_RETURN(int x, std::move(a));
  REFBUS_ASSIGN_OR_RETURN(int y, std::move(b));
  return x + y;
}

Result<int> Deref(Result<std::unique_ptr<int>> in) {
  REFBUS_ASSIGN_OR_RETURN(auto p, std::move(in));
  return *p;
}

TEST(MacroTest, AssignOrReturnAssigns) {
  g_calls = 0;
  Result<int> r = AddOne(41);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(g_calls, 1);
}

TEST(MacroTest, AssignOrReturnPropagates) {
  g_calls = 0;
  Result<int> r = AddOne(PermissionDenied("mode 0644"));
  EXPECT_TRUE(HasCode(r, Code::kPermissionDenied));
  EXPECT_EQ(r.status().message(), "mode 0644");
  EXPECT_EQ(g_calls, 1);
}

TEST(MacroTest, AssignOrReturnIntoExistingVariableAndStatusFunction) {
  int out = 0;
  EXPECT_TRUE(AssignIntoExisting(9, &out).ok());
  EXPECT_EQ(out, 9);
  out = -1;
  EXPECT_TRUE(HasCode(AssignIntoExisting(Malformed("bad"), &out), Code::kMalformed));
  EXPECT_EQ(out, -1);
}

TEST(MacroTest, AssignOrReturnTwiceInOneFunction) {
  EXPECT_EQ(*SumTwo(2, 3), 5);
  EXPECT_TRUE(HasCode(SumTwo(2, NotFound("b")), Code::kNotFound));
  EXPECT_TRUE(HasCode(SumTwo(Expired("a"), NotFound("b")), Code::kExpired));
}

TEST(MacroTest, AssignOrReturnMovesMoveOnlyValues) {
  EXPECT_EQ(*Deref(std::make_unique<int>(8)), 8);
  EXPECT_TRUE(HasCode(Deref(Revoked("r")), Code::kRevoked));
}

}  // namespace
}  // namespace refbus
