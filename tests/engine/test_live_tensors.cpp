// The live-tensor snapshot (engine/memory.h snapshot()): storages allocated through known ops on shapes
// drawn afresh each run are listed with exactly their bytes, dtype, shape, device and creating op, largest
// first, with totals per creator; freed ones vanish; storages allocated before tracking, or after it was
// turned off, are not listed; a backward's gradients and a kernel's outputs name the op; the text and JSON
// forms agree with the snapshot.
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "engine/memory.h"
#include "testing.h"

namespace nabla {
namespace {

struct LiveOn {
  LiveOn() { memory::set_live_tracking(true); }
  ~LiveOn() { memory::set_live_tracking(false); }
};

// The storages of `now` that were not in `before` (other tests may have left long-lived ones behind).
std::vector<memory::LiveTensor> added(const memory::Snapshot& before, const memory::Snapshot& now) {
  std::set<uint64_t> old;
  for (const auto& t : before.tensors) old.insert(t.order);
  std::vector<memory::LiveTensor> out;
  for (const auto& t : now.tensors)
    if (!old.count(t.order)) out.push_back(t);
  return out;
}

struct Want {
  size_t bytes;
  DType dtype;
  Shape shape;
  std::string creator;
};

void expect_exactly(const std::vector<memory::LiveTensor>& got, std::vector<Want> want) {
  std::string listing;
  for (const auto& t : got)
    listing += std::to_string(t.nbytes) + " " + dtype_name(t.dtype) + " " + shape_str(t.shape) + " " +
               t.creator + "\n";
  ASSERT_EQ(got.size(), want.size()) << listing;
  for (const auto& t : got) {
    auto it = std::find_if(want.begin(), want.end(), [&](const Want& w) {
      return w.bytes == t.nbytes && w.dtype == t.dtype && w.shape == t.shape && w.creator == t.creator;
    });
    EXPECT_NE(it, want.end()) << "unexpected storage " << t.nbytes << " " << dtype_name(t.dtype) << " "
                              << shape_str(t.shape) << " " << t.creator << "\nlisting:\n"
                              << listing;
    if (it != want.end()) want.erase(it);
    EXPECT_EQ(t.device, Device::cpu());
  }
  for (const Want& w : want)
    ADD_FAILURE() << "missing storage " << w.bytes << " " << shape_str(w.shape) << " " << w.creator << "\n"
                  << listing;
}

TEST(LiveTensors, ListsExactlyTheTensorsOfKnownOpsWithTheirCreators) {
  std::mt19937_64 rng(test::next_seed());
  auto dim = [&](int lo, int hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int64_t n = dim(2, 40), k = dim(2, 40), m = dim(2, 40), e = dim(1, 30);
  Tensor before_tracking = randn({n, k});  // not listed: allocated before tracking
  LiveOn on;
  const memory::Snapshot s0 = memory::snapshot();
  Tensor a = randn({n, k});                         // randn
  Tensor b = zeros({k, m}, {.dtype = DType::f64});  // full (zeros runs the fill kernel)
  Tensor c = matmul(a, b.to(DType::f32));           // the f32 copy of b dies at once
  Tensor d = exp(c);                                // exp
  Tensor u = Tensor::empty({e}, DType::i64);        // no kernel writes it: user
  Tensor v =
      from_vector({1.0, 2.0, 3.0}, {3}, {.dtype = DType::f32});  // from_vector (and its f64 temporary dies)
  Tensor w = a.narrow(0, 0, 1);                                  // a view: a's storage, not listed again
  const memory::Snapshot s1 = memory::snapshot();
  const size_t f4 = 4, f8 = 8;
  expect_exactly(added(s0, s1), {{n * k * f4, DType::f32, {n, k}, "randn"},
                                 {k * m * f8, DType::f64, {k, m}, "full"},
                                 {n * m * f4, DType::f32, {n, m}, "matmul"},
                                 {n * m * f4, DType::f32, {n, m}, "exp"},
                                 {e * f8, DType::i64, {e}, "user"},
                                 {3 * f4, DType::f32, {3}, "from_vector"}});
  // Largest first, totals per creator, and the total.
  const auto got = added(s0, s1);
  for (size_t i = 1; i < s1.tensors.size(); ++i) EXPECT_GE(s1.tensors[i - 1].nbytes, s1.tensors[i].nbytes);
  std::map<std::string, size_t> by;
  size_t total = 0;
  for (const auto& t : s1.tensors) {
    by[t.creator] += t.nbytes;
    total += t.nbytes;
  }
  EXPECT_EQ(s1.total_bytes, total);
  for (const auto& c_total : s1.creators) EXPECT_EQ(c_total.nbytes, by[c_total.creator]) << c_total.creator;
  for (size_t i = 1; i < s1.creators.size(); ++i) EXPECT_GE(s1.creators[i - 1].nbytes, s1.creators[i].nbytes);

  // Freed ones vanish.
  c = Tensor();
  d = Tensor();
  u = Tensor();
  const memory::Snapshot s2 = memory::snapshot();
  expect_exactly(added(s0, s2), {{n * k * f4, DType::f32, {n, k}, "randn"},
                                 {k * m * f8, DType::f64, {k, m}, "full"},
                                 {3 * f4, DType::f32, {3}, "from_vector"}});
  EXPECT_EQ(s1.total_bytes - s2.total_bytes, 2 * n * m * f4 + e * f8);
}

TEST(LiveTensors, GradientsAndInPlaceWritesAndTrackingOff) {
  std::mt19937_64 rng(test::next_seed());
  const int64_t n = std::uniform_int_distribution<int64_t>(3, 50)(rng);
  LiveOn on;
  const memory::Snapshot s0 = memory::snapshot();
  Tensor x = randn({n}, {.requires_grad = true});
  {
    Tensor y = (x * x).sum();
    y.backward();
  }
  // The gradient 2x came from the backward's kernels (an op's name, not "user"), the size of x.
  auto got = added(s0, memory::snapshot());
  ASSERT_EQ(got.size(), 2u);
  std::set<std::string> creators;
  for (const auto& t : got) {
    EXPECT_EQ(t.nbytes, static_cast<size_t>(n) * 4);
    EXPECT_EQ(t.shape, Shape{n});
    creators.insert(t.creator);
  }
  EXPECT_TRUE(creators.count("randn"));
  EXPECT_FALSE(creators.count("user"));
  // A kernel writing into a "user" storage claims it; one that was already named keeps its name.
  Tensor u = Tensor::empty({n}, DType::f32);
  u.copy_(x.detach());
  Tensor f = full({n}, 2.0);
  f.copy_(x.detach());
  auto later = added(s0, memory::snapshot());
  int copies = 0, fulls = 0;
  for (const auto& t : later) {
    EXPECT_NE(t.creator, "user");
    fulls += t.creator == "full";
  }
  for (const auto& t : later) copies += t.creator != "full" && t.creator != "randn" && t.creator != "user";
  EXPECT_EQ(fulls, 1);
  EXPECT_EQ(copies, 2);  // x's gradient and u (named after the copy kernel)
  // Off: nothing new is registered; what is registered is still removed when freed.
  memory::set_live_tracking(false);
  Tensor not_listed = randn({n, 3});
  x = Tensor();
  u = Tensor();
  memory::set_live_tracking(true);
  later = added(s0, memory::snapshot());
  EXPECT_EQ(later.size(), 1u);  // f
  for (const auto& t : later) EXPECT_NE(t.shape, (Shape{n, 3}));
}

TEST(LiveTensors, TextAndJsonAgreeWithTheSnapshot) {
  LiveOn on;
  Generator g{test::next_seed(), 0};
  Tensor a = randn({17, 3}, {}, &g), b = relu(a), c = Tensor::empty({5}, DType::u8);
  const memory::Snapshot s = memory::snapshot();
  const nlohmann::json j = nlohmann::json::parse(memory::snapshot_json(s));
  EXPECT_EQ(j.at("count").get<size_t>(), s.tensors.size());
  EXPECT_EQ(j.at("total_bytes").get<size_t>(), s.total_bytes);
  size_t sum = 0;
  for (const auto& t : j.at("tensors")) sum += t.at("bytes").get<size_t>();
  EXPECT_EQ(sum, s.total_bytes);
  bool relu_row = false;
  for (const auto& t : j.at("tensors"))
    relu_row |= t.at("creator") == "relu" && t.at("shape") == nlohmann::json::array({17, 3}) &&
                t.at("dtype") == "f32" && t.at("device") == "cpu" && t.at("bytes") == 17 * 3 * 4;
  EXPECT_TRUE(relu_row) << j.dump();
  const std::string text = memory::snapshot_text(s, 0);
  EXPECT_NE(text.find("live tensors"), std::string::npos) << text;
  EXPECT_NE(text.find("by creator:"), std::string::npos) << text;
  EXPECT_NE(text.find("[17,3]"), std::string::npos) << text;
  EXPECT_NE(text.find("relu"), std::string::npos) << text;
  const std::string short_text = memory::snapshot_text(s, 1);
  if (s.tensors.size() > 1) {
    EXPECT_NE(short_text.find("smaller storages"), std::string::npos) << short_text;
  }
}

}  // namespace
}  // namespace nabla
