// The op table drives the gradient checks: every differentiable op needs a registered case, and every
// registered case runs as its own test.
#include <set>

#include "testing.h"

namespace nabla {
namespace {

TEST(OpTable, EveryDifferentiableOpHasAGradientCheck) {
  std::set<std::string> covered;
  for (const auto& c : test::gradcheck_registry()) covered.insert(c.op);
  for (const auto& op : ops::op_table()) {
    if (op.kind != ops::OpKind::Differentiable) continue;
    EXPECT_TRUE(covered.count(op.name))
        << "op '" << op.name << "' (family " << op.family << ") has no NABLA_GRADCHECK case in tests/ops";
  }
}

TEST(OpTable, EveryGradientCheckNamesAnOpOfTheTable) {
  std::set<std::string> names;
  for (const auto& op : ops::op_table()) names.insert(op.name);
  for (const auto& c : test::gradcheck_registry()) EXPECT_TRUE(names.count(c.op)) << "unknown op " << c.op;
}

TEST(OpTable, NamesAreUnique) {
  std::set<std::string> names;
  for (const auto& op : ops::op_table()) EXPECT_TRUE(names.insert(op.name).second) << op.name;
}

class GradCheck : public ::testing::TestWithParam<size_t> {};

TEST_P(GradCheck, MatchesFiniteDifferences) { test::gradcheck_registry()[GetParam()].run(); }

std::vector<size_t> all_cases() {
  std::vector<size_t> ids(test::gradcheck_registry().size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
  return ids;
}

INSTANTIATE_TEST_SUITE_P(Ops, GradCheck, ::testing::ValuesIn(all_cases()), [](const auto& info) {
  const auto& c = test::gradcheck_registry()[info.param];
  return c.op + "_" + c.name;
});

}  // namespace
}  // namespace nabla
