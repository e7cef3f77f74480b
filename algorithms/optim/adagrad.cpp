// Adagrad, op by op (algorithms/optim/adagrad.h has the maths).
#include "algorithms/optim/adagrad.h"

#include <cmath>

#include "engine/memory.h"
#include "engine/trace.h"
#include "ops/elementwise.h"
#include "ops/factory.h"

namespace nabla::optim {

Adagrad::Adagrad(std::vector<ParamGroup> groups, AdagradOptions o)
    : Optimizer("Adagrad", std::move(groups), o.lr, o.weight_decay), o_(o) {
  NABLA_CHECK(std::isfinite(o.lr_decay) && o.lr_decay >= 0, "Adagrad: lr_decay must be >= 0, got ",
              o.lr_decay);
  NABLA_CHECK(std::isfinite(o.eps) && o.eps >= 0, "Adagrad: eps must be >= 0, got ", o.eps);
  NABLA_CHECK(std::isfinite(o.initial_accumulator_value) && o.initial_accumulator_value >= 0,
              "Adagrad: initial_accumulator_value must be >= 0, got ", o.initial_accumulator_value);
}

Adagrad::Adagrad(std::vector<Tensor> params, AdagradOptions o)
    : Adagrad(std::vector<ParamGroup>{ParamGroup{.params = std::move(params)}}, o) {}

void Adagrad::step() {
  trace::Scope range;  // engine/trace.h
  if (trace::enabled()) range.begin(name() + " step", "optim");
  memory::CreatorScope state_label("optimizer state");  // live-tensor snapshots (engine/memory.h)
  for_each_param([&](const ParamGroup& group, Tensor& p, const Tensor& grad, ParamState& st) {
    const bool fresh = st.buffers.find("sum") == st.buffers.end();
    Tensor& sum = buffer(st, "sum", p);
    if (fresh && o_.initial_accumulator_value != 0) sum.fill_(o_.initial_accumulator_value);
    Tensor g = group.weight_decay != 0 ? add(grad, p, group.weight_decay) : grad;
    const double clr = group.lr / (1.0 + static_cast<double>(st.step - 1) * o_.lr_decay);
    add_(sum, mul(g, g));
    add_(p, div(g, sqrt(sum) + o_.eps), -clr);
  });
}

}  // namespace nabla::optim
