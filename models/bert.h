// BERT (Devlin et al. 2019), the way Hugging Face transformers builds it: one include for the config, the
// encoder, the task heads and the checkpoint reader/writer. docs/bert.md is the user's guide.
//
//   models/bert/config.h     BertConfig: fields, presets, config.json
//   models/bert/attention.h  attention(q, k, v, mask, dropout_p, training): the unfused reference
//   models/bert/model.h      BertModel: embeddings, post-LN encoder layers, pooler
//   models/bert/heads.h      BertForPreTraining (MLM + NSP), BertForSequenceClassification,
//                            BertForTokenClassification, the losses
//   models/bert/hf_io.h      transformers' state dicts in and out (model.safetensors)
#pragma once
#include "models/bert/attention.h"
#include "models/bert/config.h"
#include "models/bert/heads.h"
#include "models/bert/hf_io.h"
#include "models/bert/model.h"
