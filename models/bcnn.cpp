// BCNN and DARTS networks, search and evaluation forms (bcnn.h). The comments mark where each piece
// sits in model_search_b.py / model_b.py.
#include "models/bcnn.h"

#include <algorithm>

#include "autograd/autograd.h"
#include "ops/conv.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/nn.h"

namespace nabla::models {
using namespace darts;
using nn::Module;
using nn::Sequential;

namespace {

std::shared_ptr<Module> ke(int64_t c_in, int64_t c_out) {  // knowledge embedding (affine BN, as the code)
  return std::make_shared<ReLUConvBN>(c_in, c_out, 1, 1, 0, true);
}
std::shared_ptr<Module> fr(int64_t c) { return std::make_shared<FactorizedReduce>(c, c, true); }

Tensor stem(nn::Conv2d& conv, nn::BatchNorm& bn, const Tensor& x) {
  return bn.forward(counted_conv(conv, x));
}

Tensor head(nn::Linear& classifier, const std::vector<Tensor>& features) {
  Tensor f = features.size() == 1 ? features[0] : cat(features, 1);
  Tensor pooled = adaptive_avg_pool2d(f, {1, 1}).flatten(1);
  return counted_linear(classifier, pooled);
}

// Applies (*seq)[index++] to each of the first `count` entries of `v`.
void reduce_taps(std::vector<Tensor>& v, size_t count, Sequential& seq, size_t& index) {
  for (size_t k = 0; k < count; ++k) v[k] = seq[index++]->forward(v[k]);
}

}  // namespace

// ---- BCNN search supernet (model_search_b.py Network) ----
BcnnSearch::BcnnSearch(BcnnOptions o) : SearchNetwork("BcnnSearch"), options(o) {
  NABLA_CHECK(o.c >= 1 && o.layers >= 2 && o.en_layers >= 1, "BcnnSearch: need C >= 1, layers >= 2 and ",
              "en_layers >= 1 (got C ", o.c, ", layers ", o.layers, ", en_layers ", o.en_layers, ")");
  const int64_t mult = multiplier;
  int64_t c_curr = 3 * o.c;
  stem_conv = register_module("stem_conv", conv_no_bias(o.in_channels, c_curr, 3, 1, 1));
  stem_bn = register_module("stem_bn", nn::BatchNorm2d(c_curr));
  gap_ke = register_module("gap_ke", std::make_shared<Sequential>());
  gap_fr = register_module("gap_fr", std::make_shared<Sequential>());
  en_ke = register_module("en_ke", std::make_shared<Sequential>());
  en_fr = register_module("en_fr", std::make_shared<Sequential>());
  out_ke = register_module("out_ke", std::make_shared<Sequential>());
  int64_t c_pp = c_curr, c_p = c_curr;
  c_curr = o.c;
  std::vector<int64_t> c_gap, c_en;
  bool reduction_prev = false;
  for (int64_t i = 0; i < o.layers; ++i) {
    const int64_t c_out = i == 0 ? o.c : c_curr, c_in = i == 0 ? 3 * o.c : mult * c_curr;
    gap_ke->add(ke(c_in, c_out));
    c_gap.push_back(c_out);
    for (size_t t = 0; t + 1 < c_gap.size(); ++t) gap_fr->add(fr(c_gap[t]));
    c_curr *= 2;
    auto cell = std::make_shared<SearchCell>(steps, multiplier, c_pp, c_p, c_curr, true, reduction_prev);
    conv_cells.push_back(register_module("conv_cell" + std::to_string(i), cell));
    reduction_prev = true;
    c_pp = c_p;
    c_p = mult * c_curr;
    const bool last = i + 1 == o.layers;
    const int64_t c_out_conv = last ? c_curr * mult : c_curr;
    en_ke->add(ke(c_p, c_out_conv));
    c_en.push_back(c_out_conv);
    for (size_t t = 0; t + 1 < c_en.size(); ++t) en_fr->add(fr(c_en[t]));
    if (last)
      for (int64_t cg : c_gap) gap_fr->add(fr(cg));
  }
  for (int64_t j = 0; j < o.en_layers; ++j) {
    auto cell = j == 0
                    ? std::make_shared<SearchCell>(steps, multiplier, c_en[0], c_en[1], c_curr, false, false)
                    : std::make_shared<SearchCell>(steps, multiplier, c_pp, c_p, c_curr, false, false);
    en_cells.push_back(register_module("en_cell" + std::to_string(j), cell));
    c_pp = c_p;
    c_p = mult * c_curr;
    out_ke->add(ke(c_p, j + 1 == o.en_layers ? c_p : c_curr));
  }
  int64_t c_final = (o.en_layers - 1) * c_curr + c_p;
  for (int64_t cg : c_gap) c_final += cg;
  classifier = register_module("classifier", std::make_shared<nn::Linear>(c_final, o.num_classes));
  init_alphas();
}

Tensor BcnnSearch::forward(const Tensor& x) {
  std::vector<Tensor> conv_inputs, en_inputs, en_outputs;
  size_t rg = 0, re = 0;
  Tensor s0 = stem(*stem_conv, *stem_bn, x), s1 = s0;
  const Tensor w_conv = softmax(alphas_normal, -1), w_en = softmax(alphas_reduce, -1);
  for (size_t i = 0; i < conv_cells.size(); ++i) {
    conv_inputs.push_back((*gap_ke)[i]->forward(s1));
    reduce_taps(conv_inputs, conv_inputs.size() - 1, *gap_fr, rg);
    if (i + 1 == conv_cells.size()) reduce_taps(conv_inputs, conv_inputs.size(), *gap_fr, rg);
    Tensor next = conv_cells[i]->forward(s0, s1, w_conv);
    s0 = s1;
    s1 = next;
    en_inputs.push_back((*en_ke)[i]->forward(s1));
    reduce_taps(en_inputs, en_inputs.size() - 1, *en_fr, re);
  }
  for (size_t j = 0; j < en_cells.size(); ++j) {
    Tensor next =
        j == 0 ? en_cells[j]->forward(en_inputs[0], en_inputs[1], w_en) : en_cells[j]->forward(s0, s1, w_en);
    s0 = s1;
    s1 = next;
    en_outputs.push_back((*out_ke)[j]->forward(s1));
  }
  conv_inputs.insert(conv_inputs.end(), en_outputs.begin(), en_outputs.end());
  return head(*classifier, conv_inputs);
}

// ---- BCNN evaluation network (model_b.py Network) ----
BcnnEval::BcnnEval(BcnnOptions o, Genotype g) : EvalNetwork("BcnnEval", std::move(g)), options(o) {
  genotype.validate();
  NABLA_CHECK(o.pool_time == 2 && o.layers >= 2 && o.layers % 2 == 0 && o.en_layers >= 1, "BcnnEval: ",
              "needs pool_time 2 (two enhancement taps), an even layers >= 2 and en_layers >= 1 (got ",
              o.pool_time, ", ", o.layers, ", ", o.en_layers, ")");
  const int64_t distance = o.layers / o.pool_time;
  for (int64_t p = 0; p < o.pool_time; ++p) pool_layers.push_back((p + 1) * distance - 1);
  auto is_pool = [&](int64_t i) {
    return std::find(pool_layers.begin(), pool_layers.end(), i) != pool_layers.end();
  };
  int64_t c_curr = 3 * o.c;
  stem_conv = register_module("stem_conv", conv_no_bias(o.in_channels, c_curr, 3, 1, 1));
  stem_bn = register_module("stem_bn", nn::BatchNorm2d(c_curr));
  gap_ke = register_module("gap_ke", std::make_shared<Sequential>());
  gap_fr = register_module("gap_fr", std::make_shared<Sequential>());
  en_ke = register_module("en_ke", std::make_shared<Sequential>());
  en_fr = register_module("en_fr", std::make_shared<Sequential>());
  out_ke = register_module("out_ke", std::make_shared<Sequential>());
  int64_t c_pp = c_curr, c_p = c_curr;
  c_curr = o.c;
  std::vector<int64_t> c_gap, c_en;
  bool reduction_prev = false;
  for (int64_t i = 0; i < o.layers; ++i) {
    const bool reduction = is_pool(i);
    if (reduction) c_curr *= 2;
    auto cell = std::make_shared<EvalCell>(genotype.normal, genotype.normal_concat, c_pp, c_p, c_curr,
                                           reduction, reduction_prev);
    const int64_t mult = cell->multiplier();
    if (is_pool(i + 1)) {
      gap_ke->add(ke(mult * c_curr, c_curr));
      c_gap.push_back(c_curr);
      for (size_t t = 0; t + 1 < c_gap.size(); ++t) gap_fr->add(fr(c_gap[t]));
    }
    reduction_prev = reduction;
    conv_cells.push_back(register_module("conv_cell" + std::to_string(i), cell));
    c_pp = c_p;
    c_p = mult * c_curr;
    if (reduction) {
      const int64_t c_out_conv = i == pool_layers.back() ? c_curr * mult : c_curr;
      c_en.push_back(c_out_conv);
      en_ke->add(ke(c_p, c_out_conv));
      for (size_t t = 0; t + 1 < c_en.size(); ++t) en_fr->add(fr(c_en[t]));
    }
    if (i + 1 == o.layers)
      for (int64_t cg : c_gap) gap_fr->add(fr(cg));
  }
  for (int64_t j = 0; j < o.en_layers; ++j) {
    auto cell = std::make_shared<EvalCell>(genotype.reduce, genotype.reduce_concat, j == 0 ? c_en[0] : c_pp,
                                           j == 0 ? c_en[1] : c_p, c_curr, false, false);
    en_cells.push_back(register_module("en_cell" + std::to_string(j), cell));
    c_pp = c_p;
    c_p = cell->multiplier() * c_curr;
    out_ke->add(ke(c_p, j + 1 == o.en_layers ? c_p : c_curr));
  }
  int64_t c_final = (o.en_layers - 1) * c_curr + c_p;
  for (int64_t cg : c_gap) c_final += cg;
  classifier = register_module("classifier", std::make_shared<nn::Linear>(c_final, o.num_classes));
}

Tensor BcnnEval::forward(const Tensor& x) {
  std::vector<Tensor> conv_inputs, en_inputs, en_outputs;
  size_t rg = 0, re = 0, pool_time = 0;
  Tensor s0 = stem(*stem_conv, *stem_bn, x), s1 = s0;
  for (size_t i = 0; i < conv_cells.size(); ++i) {
    Tensor next = conv_cells[i]->forward(s0, s1, drop_path_prob);
    s0 = s1;
    s1 = next;
    const auto ii = static_cast<int64_t>(i);
    if (std::find(pool_layers.begin(), pool_layers.end(), ii + 1) != pool_layers.end()) {
      conv_inputs.push_back((*gap_ke)[pool_time]->forward(s1));
      reduce_taps(conv_inputs, conv_inputs.size() - 1, *gap_fr, rg);
    }
    if (std::find(pool_layers.begin(), pool_layers.end(), ii) != pool_layers.end()) {
      en_inputs.push_back((*en_ke)[pool_time]->forward(s1));
      reduce_taps(en_inputs, en_inputs.size() - 1, *en_fr, re);
      if (ii == pool_layers.back()) reduce_taps(conv_inputs, conv_inputs.size(), *gap_fr, rg);
      ++pool_time;
    }
  }
  for (size_t j = 0; j < en_cells.size(); ++j) {
    Tensor next = j == 0 ? en_cells[j]->forward(en_inputs[0], en_inputs[1], drop_path_prob)
                         : en_cells[j]->forward(s0, s1, drop_path_prob);
    s0 = s1;
    s1 = next;
    en_outputs.push_back((*out_ke)[j]->forward(s1));
  }
  conv_inputs.insert(conv_inputs.end(), en_outputs.begin(), en_outputs.end());
  return head(*classifier, conv_inputs);
}

// ---- DARTS ----
namespace {
bool darts_reduction(int64_t i, int64_t layers) { return i == layers / 3 || i == 2 * layers / 3; }
}  // namespace

DartsSearch::DartsSearch(DartsOptions o) : SearchNetwork("DartsSearch"), options(o) {
  NABLA_CHECK(o.c >= 1 && o.layers >= 3, "DartsSearch: need C >= 1 and layers >= 3, got ", o.c, ", ",
              o.layers);
  int64_t c_curr = 3 * o.c;
  stem_conv = register_module("stem_conv", conv_no_bias(o.in_channels, c_curr, 3, 1, 1));
  stem_bn = register_module("stem_bn", nn::BatchNorm2d(c_curr));
  int64_t c_pp = c_curr, c_p = c_curr;
  c_curr = o.c;
  bool reduction_prev = false;
  for (int64_t i = 0; i < o.layers; ++i) {
    const bool reduction = darts_reduction(i, o.layers);
    if (reduction) c_curr *= 2;
    cells.push_back(register_module(
        "cell" + std::to_string(i),
        std::make_shared<SearchCell>(steps, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev)));
    reduction_prev = reduction;
    c_pp = c_p;
    c_p = multiplier * c_curr;
  }
  classifier = register_module("classifier", std::make_shared<nn::Linear>(c_p, o.num_classes));
  init_alphas();
}

Tensor DartsSearch::forward(const Tensor& x) {
  Tensor s0 = stem(*stem_conv, *stem_bn, x), s1 = s0;
  const Tensor w_normal = softmax(alphas_normal, -1), w_reduce = softmax(alphas_reduce, -1);
  for (auto& cell : cells) {
    Tensor next = cell->forward(s0, s1, cell->reduction ? w_reduce : w_normal);
    s0 = s1;
    s1 = next;
  }
  return head(*classifier, {s1});
}

DartsEval::DartsEval(DartsOptions o, Genotype g) : EvalNetwork("DartsEval", std::move(g)), options(o) {
  genotype.validate();
  NABLA_CHECK(o.c >= 1 && o.layers >= 3, "DartsEval: need C >= 1 and layers >= 3, got ", o.c, ", ", o.layers);
  int64_t c_curr = 3 * o.c;
  stem_conv = register_module("stem_conv", conv_no_bias(o.in_channels, c_curr, 3, 1, 1));
  stem_bn = register_module("stem_bn", nn::BatchNorm2d(c_curr));
  int64_t c_pp = c_curr, c_p = c_curr;
  c_curr = o.c;
  bool reduction_prev = false;
  for (int64_t i = 0; i < o.layers; ++i) {
    const bool reduction = darts_reduction(i, o.layers);
    if (reduction) c_curr *= 2;
    auto cell = reduction ? std::make_shared<EvalCell>(genotype.reduce, genotype.reduce_concat, c_pp, c_p,
                                                       c_curr, true, reduction_prev)
                          : std::make_shared<EvalCell>(genotype.normal, genotype.normal_concat, c_pp, c_p,
                                                       c_curr, false, reduction_prev);
    cells.push_back(register_module("cell" + std::to_string(i), cell));
    reduction_prev = reduction;
    c_pp = c_p;
    c_p = cell->multiplier() * c_curr;
  }
  classifier = register_module("classifier", std::make_shared<nn::Linear>(c_p, o.num_classes));
}

Tensor DartsEval::forward(const Tensor& x) {
  Tensor s0 = stem(*stem_conv, *stem_bn, x), s1 = s0;
  for (auto& cell : cells) {
    Tensor next = cell->forward(s0, s1, drop_path_prob);
    s0 = s1;
    s1 = next;
  }
  return head(*classifier, {s1});
}

int64_t count_macs(Module& model, int64_t in_channels, int64_t image_size) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  MacCounter counter;
  Device dev = model.parameters().empty() ? Device::cpu() : model.parameters()[0].device();
  (void)model.forward(zeros({1, in_channels, image_size, image_size}, {.device = dev}));
  model.train(was_training);
  return counter.macs();
}

}  // namespace nabla::models
