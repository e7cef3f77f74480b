// GPT-2: a decoder-only causal language model (Radford et al. 2019), laid out as Hugging Face's
// GPT2LMHeadModel so that its checkpoints load unchanged (see the HF section below).
//
// input ids [B, T] (i64), positions p [B, T] (default past .. past + T - 1):
//   x = drop(wte[ids] + wpe[p])                                           "transformer.wte" / ".wpe"
//   each of n_layer pre-LN blocks "transformer.h.<i>":
//     x = x + drop(c_proj(causal_attention(split_heads(c_attn(ln_1(x))))))   "ln_1", "attn.c_attn",
//     "attn.c_proj" x = x + drop(c_proj(gelu_tanh(c_fc(ln_2(x)))))                        "ln_2", "mlp.c_fc",
//     "mlp.c_proj"
//   logits = ln_f(x) wte^T        (lm_head tied to wte: "lm_head.weight" is the same tensor, never stored
//   twice) loss = cross_entropy(logits[:, :-1], labels[:, 1:])  mean over labels != -100, as transformers
//   shifts
//
// c_attn maps E -> 3E ([q | k | v]), each split into n_head heads of size D = E / n_head. Attention is
// causal_attention() below: the one place where a fused kernel can replace the composition.
//
// Init as transformers: Linear/Embedding weights N(0, 0.02), biases 0, LayerNorm 1/0, and the weights of
// the two c_proj of each block N(0, 0.02 / sqrt(2 n_layer)) (GPT-2's scaled residual init).
//
// HF layout: transformers' GPT-2 uses Conv1D, whose weight is [in, out] (y = x W + b), the transpose of
// nn::Linear's [out, in]. We keep nn::Linear (its fused GEMM + bias path), so Module::state_dict() has HF's
// names in Linear layout; hf_state_dict() / load_hf_state_dict() transpose the four Conv1D weights of every
// block, and save_pretrained() / from_pretrained() read and write model.safetensors + config.json in the
// transformers directory format.
//
// KV cache: generation runs the prompt once and then one token per step; each layer keeps its keys and
// values [B, H, capacity, D] in a KVCache and attends the new queries over all keys so far (generate.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/nn/layers.h"
#include "models/nn/lora.h"

namespace nabla::models {

// transformers' GPT2Config fields (names as in config.json).
struct GPTConfig {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_inner = 0;  // 0: 4 * n_embd (config.json's null)
  double resid_pdrop = 0.1, embd_pdrop = 0.1, attn_pdrop = 0.1;
  double layer_norm_epsilon = 1e-5;
  double initializer_range = 0.02;
  int64_t bos_token_id = 50256, eos_token_id = 50256;
  // Not a transformers field (never written to config.json): how causal_attention runs. true (default):
  // the fused op scaled_dot_product_attention (ops/attention.h), same maths and the same bottom-right
  // causal alignment; on the H200 its tensor-core kernel runs GPT-2's attention 7x faster than the
  // composition (docs/attention.md). false: the composition below (matmul, mask, softmax, matmul), the
  // reference the tests compare against.
  bool fused_attention = true;

  int64_t inner() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
  int64_t head_size() const { return n_embd / n_head; }
  // Throws naming the field when a value is out of range (n_embd % n_head != 0, ...).
  void validate() const;

  static GPTConfig gpt2();         // 124M: 12 layers, 768, 12 heads
  static GPTConfig gpt2_medium();  // 355M: 24 layers, 1024, 16 heads
  static GPTConfig gpt2_large();   // 774M: 36 layers, 1280, 20 heads
  static GPTConfig tiny();         // CI: vocab 96, 32 positions, 2 layers, 32 wide, 4 heads, no dropout
  // "gpt2", "gpt2-medium", "gpt2-large", "tiny"; throws listing them otherwise.
  static GPTConfig preset(const std::string& name);
  // transformers' config.json (model_type "gpt2"); absent fields keep the defaults above. Refuses
  // activation_function other than "gelu_new"/"gelu_pytorch_tanh", scale_attn_weights false,
  // scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn true and tie_word_embeddings false, naming
  // them.
  static GPTConfig from_json(const std::string& text, const std::string& source = "config.json");
  static GPTConfig from_file(const std::string& path);
  std::string to_json() const;  // a config.json that transformers' GPT2Config.from_pretrained reads
};

// Scaled dot-product attention with a causal mask aligned to the end of the keys: query i of Sq attends to
// keys j <= i + (Sk - Sq) (so with a KV cache of Sk - Sq earlier positions the new queries see all of them),
// and, where key_mask [B, Sk] is given, only to keys whose mask is nonzero (left padding).
//   q [B, H, Sq, D], k and v [B, H, Sk, D] -> [B, H, Sq, D];  softmax(q k^T / sqrt D + mask) v, dropout on
//   the probabilities when training. Masked scores take the dtype's lowest finite value, so a row whose keys
//   are all masked (a padding query) stays finite. Composition of matmul, masked_fill, softmax, dropout.
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask = Tensor(),
                        double dropout_p = 0.0, bool training = false);

// Keys and values of every layer, preallocated to `capacity` positions. `length` positions are filled.
struct KVCache {
  std::vector<Tensor> k, v;  // per layer [B, H, capacity, D]
  int64_t length = 0;
  int64_t capacity() const { return k.empty() ? 0 : k[0].size(2); }
  int64_t batch() const { return k.empty() ? 0 : k[0].size(0); }
  static KVCache allocate(const GPTConfig& config, int64_t batch, int64_t capacity, DType dtype = DType::f32,
                          Device device = Device::cpu());
};

// Children numbered "0", "1", ... (torch.nn.ModuleList), for blocks whose forward takes more than x.
class ModuleList : public nn::Module {
 public:
  ModuleList() : Module("ModuleList") {}
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    register_module(std::to_string(items_.size()), m);
    items_.push_back(m);
    return m;
  }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::shared_ptr<nn::Module>> items_;
};

class GPTAttention : public nn::Module {
 public:
  explicit GPTAttention(const GPTConfig& c);
  // x [B, T, E]; with a cache, writes this step's keys/values at cache->length of layer `layer`.
  Tensor forward(const Tensor& x, const Tensor& key_mask, KVCache* cache, int64_t layer);
  std::shared_ptr<nn::LoraLinear> c_attn, c_proj;
  int64_t n_head;
  double attn_pdrop, resid_pdrop;
  bool fused_attention;
};

class GPTMLP : public nn::Module {
 public:
  explicit GPTMLP(const GPTConfig& c);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::LoraLinear> c_fc, c_proj;
  double resid_pdrop;
};

class GPTBlock : public nn::Module {
 public:
  explicit GPTBlock(const GPTConfig& c);
  Tensor forward(const Tensor& x, const Tensor& key_mask, KVCache* cache, int64_t layer);
  std::shared_ptr<nn::LayerNorm> ln_1, ln_2;
  std::shared_ptr<GPTAttention> attn;
  std::shared_ptr<GPTMLP> mlp;
};

// transformers' GPT2Model: embeddings, blocks, final LayerNorm.
class GPTTransformer : public nn::Module {
 public:
  explicit GPTTransformer(const GPTConfig& c);
  std::shared_ptr<nn::Embedding> wte, wpe;
  std::shared_ptr<ModuleList> h;
  std::vector<std::shared_ptr<GPTBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> ln_f;
};

// transformers' GPT2LMHeadModel.
class GPT : public nn::Module {
 public:
  // Parameters drawn from a generator seeded with `seed` (the init above).
  explicit GPT(const GPTConfig& config, uint64_t seed = 0);
  const GPTConfig& config() const { return config_; }

  // Final hidden states [B, T, E] (after ln_f).
  //   attention_mask [B, past + T]: nonzero = a real token (HF's convention: covers the cached positions
  //     too); undefined = every key is real.
  //   position_ids [B, T] (i64); undefined = past .. past + T - 1 for every row.
  //   cache: the KV cache to read and extend (cache->length grows by T); use it under NoGradGuard.
  Tensor hidden(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                const Tensor& position_ids = Tensor(), KVCache* cache = nullptr);
  // Logits [B, T, vocab].
  Tensor logits(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                const Tensor& position_ids = Tensor(), KVCache* cache = nullptr);
  Tensor forward(const Tensor& input_ids) override { return logits(input_ids); }
  // Next-token cross entropy as transformers computes it for labels=...: logits[:, :-1] against
  // labels[:, 1:], the mean over labels that are not ignore_index. labels [B, T] i64 (often input_ids).
  Tensor loss(const Tensor& input_ids, const Tensor& labels, const Tensor& attention_mask = Tensor(),
              int64_t ignore_index = -100);
  // The classifier and its cross entropy on given hidden states [..., n_embd] (ln_f's output) against
  // targets with one i64 id per position (or ignore_index): what loss() runs after its shift.
  Tensor classifier_loss(const Tensor& hidden, const Tensor& targets, int64_t ignore_index = -100);
  // On CUDA the loss runs the classifier on a vocabulary padded to a multiple of 64 (see loss()); this turns
  // the same path on for the CPU too, so that tests can compare it with the plain one.
  void set_pad_loss_vocab(bool on) { pad_loss_vocab_ = on; }

  // ---- Hugging Face format ----
  // Our parameters with transformers' names and layouts (Conv1D weights [in, out]); no lm_head.weight (tied).
  NamedTensors hf_state_dict() const;
  // Loads a transformers state dict. Accepts GPT2Model keys without "transformer.", ignores the causal-mask
  // buffers "attn.bias" / "attn.masked_bias" of older checkpoints, and accepts "lm_head.weight" when it
  // equals wte (tied). Other dtypes are converted to the model's. strict: one Error lists every missing,
  // unexpected and mismatched (with both shapes) key.
  void load_hf_state_dict(const NamedTensors& state, bool strict = true);
  // dir/model.safetensors + dir/config.json, as transformers' save_pretrained (creates dir).
  void save_pretrained(const std::string& dir) const;
  static std::shared_ptr<GPT> from_pretrained(const std::string& dir);

  std::shared_ptr<GPTTransformer> transformer;

 private:
  GPTConfig config_;
  bool pad_loss_vocab_ = false;
};

// Every parameter's count of the 124M preset etc.: sum of numel (tied weights once).
int64_t gpt_num_parameters(const GPTConfig& c);

}  // namespace nabla::models
