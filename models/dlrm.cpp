// DLRM: configurations, the dot interaction and the model (models/dlrm.h has the maths and the names).
#include "models/dlrm.h"

#include <cmath>
#include <sstream>

#include "autograd/autograd.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/index.h"
#include "ops/linalg.h"
#include "ops/multi_embedding.h"

namespace nabla::models {
namespace {

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "-" : "") + std::to_string(v[i]);
  return s;
}

// Linear layers with ReLU after each but (optionally) the last, initialised as the reference.
std::shared_ptr<nn::Sequential> make_mlp(int64_t in, const std::vector<int64_t>& widths, bool relu_last) {
  auto seq = std::make_shared<nn::Sequential>();
  for (size_t k = 0; k < widths.size(); ++k) {
    auto lin = std::make_shared<nn::Linear>(in, widths[k]);
    {
      NoGradGuard ng;
      normal_(lin->weight, 0.0, std::sqrt(2.0 / static_cast<double>(in + widths[k])));
      normal_(lin->bias, 0.0, std::sqrt(1.0 / static_cast<double>(widths[k])));
    }
    seq->add(lin);
    if (k + 1 < widths.size() || relu_last) seq->add(nn::ReLU());
    in = widths[k];
  }
  return seq;
}

}  // namespace

// ---- configuration ------------------------------------------------------------------------------------
DlrmConfig DlrmConfig::kaggle(std::vector<int64_t> sizes) {
  DlrmConfig c;
  c.table_sizes = std::move(sizes);
  c.embedding_dim = 16;
  c.bottom_mlp = {512, 256, 64, 16};
  c.top_mlp = {512, 256, 1};
  return c;
}
DlrmConfig DlrmConfig::terabyte(std::vector<int64_t> sizes) {
  DlrmConfig c;
  c.table_sizes = std::move(sizes);
  c.embedding_dim = 64;
  c.bottom_mlp = {512, 256, 64};
  c.top_mlp = {512, 512, 256, 1};
  return c;
}
DlrmConfig DlrmConfig::mlperf(std::vector<int64_t> sizes) {
  DlrmConfig c;
  c.table_sizes = std::move(sizes);
  c.embedding_dim = 128;
  c.bottom_mlp = {512, 256, 128};
  c.top_mlp = {1024, 1024, 512, 256, 1};
  return c;
}
DlrmConfig DlrmConfig::tiny(std::vector<int64_t> sizes) {
  DlrmConfig c;
  c.table_sizes = std::move(sizes);
  c.embedding_dim = 8;
  c.bottom_mlp = {32, 8};
  c.top_mlp = {32, 16, 1};
  return c;
}
DlrmConfig DlrmConfig::preset(const std::string& name, std::vector<int64_t> sizes) {
  if (name == "kaggle") return kaggle(std::move(sizes));
  if (name == "terabyte") return terabyte(std::move(sizes));
  if (name == "mlperf") return mlperf(std::move(sizes));
  if (name == "tiny") return tiny(std::move(sizes));
  throw Error(str_cat("dlrm: unknown preset '", name, "', expected kaggle, terabyte, mlperf or tiny"));
}

int64_t DlrmConfig::interaction_width() const {
  const int64_t F = num_tables(), D = embedding_dim;
  if (interaction == DlrmInteraction::cat) return D * (F + 1);
  const int64_t n = F + 1;
  return D + (self_interaction ? n * (n + 1) / 2 : n * (n - 1) / 2);
}

void DlrmConfig::validate() const {
  NABLA_CHECK(num_dense >= 1, "dlrm: num_dense must be >= 1, got ", num_dense);
  NABLA_CHECK(!table_sizes.empty(), "dlrm: at least one embedding table expected, got none");
  for (size_t f = 0; f < table_sizes.size(); ++f)
    NABLA_CHECK(table_sizes[f] >= 1, "dlrm: table ", f, " has ", table_sizes[f], " rows, expected >= 1");
  NABLA_CHECK(embedding_dim >= 1, "dlrm: embedding_dim must be >= 1, got ", embedding_dim);
  NABLA_CHECK(!bottom_mlp.empty() && bottom_mlp.back() == embedding_dim, "dlrm: the bottom MLP must end in ",
              "the embedding dimension ", embedding_dim, ", got ", num_dense, "-", join(bottom_mlp));
  NABLA_CHECK(!top_mlp.empty() && top_mlp.back() == 1, "dlrm: the top MLP must end in 1 output, got ",
              join(top_mlp));
  for (int64_t w : bottom_mlp) NABLA_CHECK(w >= 1, "dlrm: bottom MLP width ", w, " (", join(bottom_mlp), ")");
  for (int64_t w : top_mlp) NABLA_CHECK(w >= 1, "dlrm: top MLP width ", w, " (", join(top_mlp), ")");
  NABLA_CHECK(whole_table_sizes.size() == table_first_row.size() &&
                  (whole_table_sizes.empty() || whole_table_sizes.size() == table_sizes.size()),
              "dlrm: a shard needs whole_table_sizes and table_first_row for each of the ",
              table_sizes.size(), " tables, got ", whole_table_sizes.size(), " and ", table_first_row.size());
  for (size_t f = 0; f < whole_table_sizes.size(); ++f)
    NABLA_CHECK(table_first_row[f] == -1 ||
                    (table_first_row[f] >= 0 && table_first_row[f] + table_sizes[f] <= whole_table_sizes[f]),
                "dlrm: shard table ", f, ": rows [", table_first_row[f], ", ",
                table_first_row[f] + table_sizes[f], ") are not inside the whole table's ",
                whole_table_sizes[f], " rows (first row -1: a placeholder)");
}

std::string DlrmConfig::describe() const {
  return str_cat(
      "bottom ", num_dense, "-", join(bottom_mlp), " | ", num_tables(), " tables x ", embedding_dim, " | ",
      interaction == DlrmInteraction::dot ? (self_interaction ? "dot (self)" : "dot") : "cat", " | top ",
      interaction_width(), "-", join(top_mlp),
      !sparse_embeddings                                         ? ""
      : sparse_optimizer == DlrmSparseOptimizer::rowwise_adagrad ? " | sparse row-wise Adagrad tables"
                                                                 : " | sparse SGD tables");
}

std::vector<int64_t> parse_mlp(const std::string& text, const std::string& what) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, '-')) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    NABLA_CHECK(used == part.size() && !part.empty() && v >= 1, what, ": '", text,
                "' is not a list of positive widths like 13-512-256-64 (bad part '", part, "')");
    out.push_back(v);
  }
  NABLA_CHECK(!out.empty() && text.back() != '-', what, ": '", text,
              "' is not a list of widths like 13-512-256-64");
  return out;
}

// ---- interaction --------------------------------------------------------------------------------------
std::vector<std::pair<int64_t, int64_t>> dlrm_interaction_pairs(int64_t n, bool self) {
  std::vector<std::pair<int64_t, int64_t>> p;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i + (self ? 1 : 0); ++j) p.emplace_back(i, j);
  return p;
}

namespace {
Tensor pair_index_tensor(int64_t n, bool self, Device device) {
  std::vector<double> flat;
  for (auto [i, j] : dlrm_interaction_pairs(n, self)) flat.push_back(static_cast<double>(i * n + j));
  return from_vector(flat, {static_cast<int64_t>(flat.size())}, {.dtype = DType::i64, .device = device});
}

// Z = T T^T [B, n, n] with its own backward dT = (dZ + dZ^T) T: one batched GEMM and an add over [B, n, n],
// where matmul's backward would run two GEMMs (one through a transposed copy of T) and add two [B, n, D]
// gradients.
Tensor gram(const Tensor& T) {
  Tensor Td = T.detach(), Z;
  {
    NoGradGuard ng;
    Z = matmul(Td, Td.transpose(1, 2));  // the transposed operand goes to GEMM as a flag, not a copy
  }
  autograd::record("dlrm_gram", Z, {T}, [Td](const Tensor& g) -> std::vector<Tensor> {
    return {matmul(g + g.transpose(1, 2), Td)};
  });
  return Z;
}

// T = [x, e_0, ..] [B, n, D] -> [x, Z's selected pairs] [B, D + pairs].
Tensor interact_stacked(const Tensor& x, const Tensor& T, const Tensor& pair_index) {
  const int64_t B = T.shape()[0], n = T.shape()[1];
  return cat({x, index_select(gram(T).reshape({B, n * n}), 1, pair_index)}, 1);
}

Tensor interact(const Tensor& x, const Tensor& emb, const Tensor& pair_index) {
  const int64_t B = x.shape()[0], D = x.shape()[1];
  return interact_stacked(x, cat({x.view({B, 1, D}), emb}, 1), pair_index);
}
}  // namespace

Tensor dlrm_dot_interaction(const Tensor& x, const Tensor& emb, bool self_interaction) {
  NABLA_CHECK(x.defined() && emb.defined() && x.dim() == 2 && emb.dim() == 3 &&
                  emb.shape()[0] == x.shape()[0] && emb.shape()[2] == x.shape()[1],
              "dlrm_dot_interaction: expected x [B, D] and emb [B, F, D], got x ",
              x.defined() ? str_cat(x.shape()) : std::string("undefined"), " and emb ",
              emb.defined() ? str_cat(emb.shape()) : std::string("undefined"));
  return interact(x, emb, pair_index_tensor(emb.shape()[1] + 1, self_interaction, x.device()));
}

// ---- model --------------------------------------------------------------------------------------------
namespace {
// The row-wise Adagrad accumulators: buffers "0".."F-1", so the model's state dict holds emb_adagrad.<f>.
class TableStates : public nn::Module {
 public:
  TableStates() : nn::Module("RowwiseAdagradState") {}
  Tensor add(const std::string& name, Tensor t) { return register_buffer(name, std::move(t)); }
};
}  // namespace

Dlrm::Dlrm(DlrmConfig config) : nn::Module("DLRM"), config_(std::move(config)) {
  config_.validate();
  bot_ = register_module("bot_l", make_mlp(config_.num_dense, config_.bottom_mlp, /*relu_last=*/true));
  auto emb = std::make_shared<nn::Sequential>();
  const bool shard = !config_.whole_table_sizes.empty();
  for (int64_t f = 0; f < config_.num_tables(); ++f) {
    const int64_t n = config_.table_sizes[f], D = config_.embedding_dim;
    const int64_t whole = shard ? config_.whole_table_sizes[f] : n;
    const double bound = std::sqrt(1.0 / static_cast<double>(whole));
    // Drawn once (U(+-bound)), not N(0, 1) first and then overwritten: Kaggle's 33.6M rows x 16 take one
    // pass; with init_tables = false not even that (the caller fills them, e.g. on the device).
    auto bag = std::make_shared<nn::EmbeddingBag>(n, D, BagMode::sum, /*init=*/false);
    if (config_.init_tables && !shard) {
      NoGradGuard ng;
      uniform_(bag->weight, -bound, bound);
    } else if (config_.init_tables) {
      // A shard: the whole table's counters are reserved; element i of the whole draw uses counter
      // offset + i / 2 (engine/random.h), so rows [first, first + n) are a draw at offset + e / 2 from an
      // even element e (one element earlier when first * D is odd, dropped).
      NoGradGuard ng;
      Generator& gen = default_generator();
      const uint64_t at = gen.advance(whole * D);
      const int64_t first = config_.table_first_row[f];
      if (first < 0) {
        bag->weight.zero_();
      } else {
        const int64_t e = first * D, odd = e % 2;
        Generator part{gen.seed, at + static_cast<uint64_t>(e / 2)};
        Tensor draw = empty({n * D + odd});
        uniform_(draw, -bound, bound, &part);
        bag->weight.copy_(draw.narrow(0, odd, n * D).reshape({n, D}));
      }
    }
    tables_.push_back(bag->weight);
    emb->add(bag);
  }
  register_module("emb_l", emb);
  if (config_.sparse_embeddings && config_.sparse_optimizer == DlrmSparseOptimizer::rowwise_adagrad) {
    auto states = std::make_shared<TableStates>();
    for (int64_t f = 0; f < config_.num_tables(); ++f)
      states_.push_back(states->add(std::to_string(f), zeros({config_.table_sizes[f]})));
    register_module("emb_adagrad", states);
  }
  top_ =
      register_module("top_l", make_mlp(config_.interaction_width(), config_.top_mlp, /*relu_last=*/false));
  anchor_ = zeros({1});
  anchor_.requires_grad_(true);
}

NamedTensors Dlrm::dense_parameters() const {
  NamedTensors out;
  for (auto& [name, t] : named_parameters())
    if (name.rfind("emb_l.", 0) != 0) out.emplace_back(name, t);
  return out;
}

Tensor Dlrm::mlp(nn::Sequential& seq, Tensor x) {
  for (size_t i = 0; i < seq.size(); ++i) {
    auto lin = std::dynamic_pointer_cast<nn::Linear>(seq[i]);
    if (!lin) {  // (make_mlp puts a ReLU only after a Linear; run anything else as it is)
      x = seq[i]->forward(x);
      continue;
    }
    const bool relu = i + 1 < seq.size() && seq[i + 1]->type_name() == "ReLU";
    x = linear(x, lin->weight, lin->bias, relu);
    if (relu) ++i;
  }
  return x;
}

Tensor Dlrm::bottom(const Tensor& dense) {
  NABLA_CHECK(dense.defined() && dense.dim() == 2 && dense.shape()[1] == config_.num_dense,
              "dlrm: dense input ", "must be [B, ", config_.num_dense, "], got ",
              dense.defined() ? str_cat(dense.shape()) : "undefined");
  return mlp(*bot_, dense);
}

Tensor Dlrm::lookup(int64_t f, const Tensor& ids) {
  NABLA_CHECK(f >= 0 && f < config_.num_tables(), "dlrm: table ", f, " of ", config_.num_tables());
  const Tensor& w = tables_[f];
  Tensor bags = ids.reshape({ids.numel(), 1});
  if (!config_.sparse_embeddings) return embedding_bag(w, bags, BagMode::sum);
  Tensor out = embedding_bag(w.detach(), bags, BagMode::sum);
  if (autograd::grad_enabled() && is_training()) {
    Tensor table = w, idx = bags.detach(), state = states_.empty() ? Tensor() : states_[f];
    autograd::record("embedding_bag_sparse_sgd", out, {anchor_},
                     [this, table, state, idx](const Tensor& g) mutable -> std::vector<Tensor> {
                       if (state.defined())
                         embedding_bag_sparse_rowwise_adagrad_(table, state, idx, Tensor(), BagMode::sum, g,
                                                               sparse_lr_, config_.sparse_eps);
                       else
                         embedding_bag_sparse_sgd_(table, idx, Tensor(), BagMode::sum, g, sparse_lr_);
                       return {Tensor()};
                     });
  }
  return out;
}

Tensor Dlrm::lookup_all(const Tensor& x, const Tensor& ids) {
  const int64_t F = config_.num_tables();
  if (!config_.sparse_embeddings) return multi_embedding_bag(tables_, ids, BagMode::sum, x);
  std::vector<Tensor> detached;
  for (const Tensor& t : tables_) detached.push_back(t.detach());
  Tensor out;
  {
    NoGradGuard ng;
    out = multi_embedding_bag(detached, ids, BagMode::sum, x.detach());
  }
  // One node: x's gradient is g[:, 0]; the tables' SGD runs on g[:, 1:] (training only), at once.
  const bool train = autograd::grad_enabled() && is_training();
  std::vector<Tensor> inputs{x};
  if (train) inputs.push_back(anchor_);
  autograd::record(
      "multi_embedding_bag_sparse_sgd", out, inputs,
      [this, tables = tables_, states = states_, idx = ids.detach(), train,
       F](const Tensor& g) -> std::vector<Tensor> {
        if (train && !states.empty())
          multi_embedding_bag_sparse_rowwise_adagrad_(tables, states, idx, BagMode::sum, g.narrow(1, 1, F),
                                                      sparse_lr_, config_.sparse_eps);
        else if (train)
          multi_embedding_bag_sparse_sgd_(tables, idx, BagMode::sum, g.narrow(1, 1, F), sparse_lr_);
        std::vector<Tensor> grads{g.select(1, 0)};
        if (train) grads.emplace_back();
        return grads;
      });
  return out;
}

Tensor Dlrm::top_stacked(const Tensor& x, const Tensor& T) {
  const int64_t B = T.shape()[0];
  Tensor z;
  if (config_.interaction == DlrmInteraction::cat) {
    z = T.reshape({B, T.shape()[1] * T.shape()[2]});  // [x, e_0, ..] flattened: cat's order
  } else {
    if (!pair_index_.defined() || pair_index_device_ != x.device()) {
      pair_index_ = pair_index_tensor(config_.num_tables() + 1, config_.self_interaction, x.device());
      pair_index_device_ = x.device();
    }
    z = interact_stacked(x, T, pair_index_);
  }
  Tensor y = mlp(*top_, z);
  return y.reshape({B});
}

Tensor Dlrm::top(const Tensor& x, const Tensor& emb) {
  const int64_t B = x.shape()[0], D = x.shape()[1];
  return top_stacked(x, cat({x.view({B, 1, D}), emb}, 1));
}

Tensor Dlrm::forward(const Tensor& dense, const Tensor& sparse) {
  const int64_t F = config_.num_tables();
  NABLA_CHECK(sparse.defined() && sparse.dim() == 2 && sparse.shape()[1] == F && dense.defined() &&
                  dense.dim() == 2 && sparse.shape()[0] == dense.shape()[0],
              "dlrm: expected sparse ids [B, ", F, "] beside dense [B, ", config_.num_dense, "], got sparse ",
              sparse.defined() ? str_cat(sparse.shape()) : "undefined", " and dense ",
              dense.defined() ? str_cat(dense.shape()) : "undefined");
  Tensor x = bottom(dense);
  if (config_.fused_embeddings) return top_stacked(x, lookup_all(x, sparse));
  std::vector<Tensor> e;
  e.reserve(F);
  for (int64_t f = 0; f < F; ++f) e.push_back(lookup(f, sparse.select(1, f)));
  return top(x, stack(e, 1));
}

Tensor Dlrm::forward(const Tensor& packed) {
  const int64_t nd = config_.num_dense, F = config_.num_tables();
  NABLA_CHECK(
      packed.defined() && packed.dim() == 2 && packed.shape()[1] == nd + F && packed.dtype() == DType::f64,
      "dlrm: a packed batch is f64 [B, ", nd + F, "] (dense then ids, dlrm_pack), got ",
      packed.defined() ? str_cat(packed.dtype(), " ", packed.shape()) : "undefined");
  return forward(packed.narrow(1, 0, nd).to(DType::f32), packed.narrow(1, nd, F).to(DType::i64));
}

Tensor dlrm_pack(const Tensor& dense, const Tensor& sparse) {
  return cat({dense.detach().to(DType::f64), sparse.detach().to(DType::f64)}, 1);
}

}  // namespace nabla::models
