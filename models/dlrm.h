// DLRM (Naumov et al. 2019, facebookresearch/dlrm's dlrm_s_pytorch.py): a click-through-rate model over 13
// dense and 26 categorical features.
//
//   x   = bottom_mlp(dense)                          [B, 13] -> [B, D]   (Linear + ReLU each layer)
//   e_f = embedding_bag_f(ids[:, f])  (sum, one id)  [B] -> [B, D]       f = 0..F-1
//   z   = interaction(x, e)                          dot: [B, D + (F+1)F/2]  (self: + F+1)   cat: [B, D
//   (F+1)] y   = top_mlp(z)                                 [B, 1] (Linear + ReLU, the last Linear without
//   ReLU) p   = sigmoid(y)                                 the click probability
//
// The dot interaction, as the reference's interact_features: T = [x, e_0, .., e_{F-1}] stacked to
// [B, F+1, D], Z = T T^T (a batched matmul), the strictly lower triangle Z[:, i, j], j < i, taken row by row
// (i = 1..F, j = 0..i-1; with self-interaction j <= i), concatenated after x. It is a composition of ops
// (T T^T with its own backward dT = (dZ + dZ^T) T, dZ zero outside the selected entries; index_select, cat).
//
// forward() returns the logit y [B] (the loss is binary_cross_entropy_with_logits, stable where the
// reference's sigmoid + BCELoss clamps); probabilities() applies the sigmoid.
//
// Parameter names follow the reference's state_dict (a PyTorch user can map a checkpoint 1:1):
//   bot_l.<2k>.weight / bias   bottom MLP's k-th Linear ([out, in]); odd indices are the ReLUs
//   emb_l.<f>.weight           table f, [table_sizes[f], D]
//   top_l.<2k>.weight / bias   top MLP's k-th Linear; the last one has out = 1
// Initialisation as the reference: Linear W ~ N(0, sqrt(2 / (in + out))), b ~ N(0, sqrt(1 / out)); table f
// ~ U(-sqrt(1 / n_f), sqrt(1 / n_f)).
//
// Lookups (config.fused_embeddings, the default): one multi_embedding_bag (ops/multi_embedding.h) for all
// tables, writing x and the F lookups straight into T [B, F + 1, D]: one kernel each way and no stack/cat;
// false: one embedding_bag per table and a stack (the reference's loop; kept for the equivalence test and
// for the hybrid-parallel model, which looks up only its own tables through lookup()). The dot
// interaction's T T^T has its own backward, dT = (dZ + dZ^T) T (one batched GEMM). The MLPs run each Linear
// with its ReLU fused (linear(x, w, b, relu): the cuBLASLt RELU_BIAS epilogue on CUDA).
//
// Sparse tables (config.sparse_embeddings): the tables stay parameters (checkpoints, to(device)) but get no
// dense gradient; the lookups' backward applies multi_embedding_bag_sparse_sgd_ to all tables (fused path;
// embedding_bag_sparse_sgd_ to its table per lookup otherwise) at once with the learning rate set by
// set_sparse_lr(): only the rows of the batch are touched (the reference's sparse SGD; TorchRec's fused
// optimizer). The optimizer then takes dense_parameters() only. Plain SGD, no momentum or weight decay on the
// tables; or, with config.sparse_optimizer = rowwise_adagrad, row-wise Adagrad (TorchRec's
// EXACT_ROWWISE_ADAGRAD, the reference's rwsadagrad: one accumulator per row, ops/embedding.h) with the same
// learning rate, its accumulators buffers named emb_adagrad.<f> ([table_sizes[f]], zeros), so they travel
// with the model (checkpoints, to(device)). Every other optimizer needs dense tables.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/nn/layers.h"
#include "ops/elementwise.h"

namespace nabla::models {

enum class DlrmInteraction { dot, cat };
enum class DlrmSparseOptimizer { sgd, rowwise_adagrad };

struct DlrmConfig {
  int64_t num_dense = 13;
  std::vector<int64_t> table_sizes;  // one per categorical feature (>= 1 row each)
  int64_t embedding_dim = 16;
  std::vector<int64_t> bottom_mlp;  // layer widths after num_dense; the last must be embedding_dim
  std::vector<int64_t> top_mlp;     // layer widths after the interaction; the last must be 1
  DlrmInteraction interaction = DlrmInteraction::dot;
  bool self_interaction = false;  // dot: include Z[i, i]
  bool sparse_embeddings = false;
  DlrmSparseOptimizer sparse_optimizer = DlrmSparseOptimizer::sgd;  // the sparse tables' update
  double sparse_eps = 1e-10;                                        // rowwise_adagrad's eps (the reference's)
  bool init_tables = true;       // false: the tables are left uninitialised for the caller to fill
  bool fused_embeddings = true;  // one multi_embedding_bag for all tables (false: one embedding_bag each)
  // A shard of a whole model (dist/sharded_embedding.h); both empty for a whole model. Table f holds rows
  // [table_first_row[f], table_first_row[f] + table_sizes[f]) of a table of whole_table_sizes[f] rows and is
  // initialised to exactly those rows of the whole model's table (the same generator counters and bound),
  // the generator left where the whole model leaves it, so a sharded model starts where the whole one does.
  // First row -1: a placeholder for a table held elsewhere (zeros).
  std::vector<int64_t> whole_table_sizes, table_first_row;

  // The reference's Kaggle run (bench/dlrm_s_criteo_kaggle.sh): D 16, bottom 13-512-256-64-16, top 512-256-1.
  static DlrmConfig kaggle(std::vector<int64_t> table_sizes);
  // The reference's Terabyte run: D 64, bottom 13-512-256-64, top 512-512-256-1.
  static DlrmConfig terabyte(std::vector<int64_t> table_sizes);
  // MLPerf's DLRM (and ../shared/DEVICE.md's benchmark): D 128, bottom 13-512-256-128, top
  // 1024-1024-512-256-1.
  static DlrmConfig mlperf(std::vector<int64_t> table_sizes);
  // A small model for tests and CPU runs: D 8, bottom 13-32-8, top 32-16-1.
  static DlrmConfig tiny(std::vector<int64_t> table_sizes);
  // By name: kaggle, terabyte, mlperf, tiny.
  static DlrmConfig preset(const std::string& name, std::vector<int64_t> table_sizes);

  int64_t num_tables() const { return static_cast<int64_t>(table_sizes.size()); }
  int64_t interaction_width() const;  // the top MLP's input width
  void validate() const;              // throws naming the field
  std::string describe() const;       // "bottom 13-512-256-64-16 | 26 tables x 16 | dot | top 415-512-256-1"
};

// "13-512-256-1" -> {13, 512, 256, 1} (the reference's --arch-mlp-* syntax); throws naming `what`.
std::vector<int64_t> parse_mlp(const std::string& text, const std::string& what);

// The dot interaction alone (see the file comment): x [B, D], emb [B, F, D] -> [B, D + pairs].
Tensor dlrm_dot_interaction(const Tensor& x, const Tensor& emb, bool self_interaction = false);
// The (i, j) pairs it takes, in order (i > j, or i >= j with self-interaction), over F + 1 vectors.
std::vector<std::pair<int64_t, int64_t>> dlrm_interaction_pairs(int64_t num_vectors, bool self_interaction);

class Dlrm : public nn::Module {
 public:
  explicit Dlrm(DlrmConfig config);

  // dense f32 [B, num_dense], sparse i64/i32 [B, F] -> logits [B].
  Tensor forward(const Tensor& dense, const Tensor& sparse);
  // packed f64 [B, num_dense + F] (dense then ids; exact for ids below 2^53), as the shared training step
  // passes one input tensor: forward(dense, sparse) of its two parts.
  Tensor forward(const Tensor& packed) override;
  Tensor probabilities(const Tensor& dense, const Tensor& sparse) { return sigmoid(forward(dense, sparse)); }

  // Parts of forward, for the hybrid-parallel model (dist/sharded_embedding.h).
  Tensor bottom(const Tensor& dense);               // [B, D]
  Tensor lookup(int64_t table, const Tensor& ids);  // ids [B] -> [B, D], sparse or dense gradient
  Tensor top(const Tensor& x, const Tensor& emb);   // x [B, D], emb [B, F, D] -> logits [B]
  // All tables at once (fused_embeddings): ids [B, F] -> T = [x, e_0, .., e_{F-1}] [B, F + 1, D].
  Tensor lookup_all(const Tensor& x, const Tensor& ids);
  // The interaction and the top MLP from T = [x, e_0, ..] [B, F + 1, D] (x as passed: T[:, 0]).
  Tensor top_stacked(const Tensor& x, const Tensor& T);

  const DlrmConfig& config() const { return config_; }
  const std::vector<Tensor>& tables() const { return tables_; }
  // rowwise_adagrad: the accumulators, one [table_sizes[f]] per table (else empty).
  const std::vector<Tensor>& table_states() const { return states_; }
  // Everything but the tables (with sparse tables: what the optimizer takes).
  NamedTensors dense_parameters() const;
  // The learning rate of the sparse tables' SGD in the next backward (sparse_embeddings only).
  void set_sparse_lr(double lr) { sparse_lr_ = lr; }
  double sparse_lr() const { return sparse_lr_; }

 private:
  DlrmConfig config_;
  std::shared_ptr<nn::Sequential> bot_, top_;
  std::vector<Tensor> tables_, states_;
  Tensor mlp(nn::Sequential& seq, Tensor x);  // the Linear layers, each with its following ReLU fused
  Tensor anchor_;  // sparse tables: a 1-element tensor requiring grad that their backward nodes hang on
  Tensor pair_index_;
  Device pair_index_device_ = Device::cpu();
  double sparse_lr_ = 0;
};

// Packs a batch for Dlrm::forward(packed): f64 [B, num_dense + F].
Tensor dlrm_pack(const Tensor& dense, const Tensor& sparse);

}  // namespace nabla::models
