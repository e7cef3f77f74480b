/*
 * Hugging Face `tokenizers` (the Rust library, through its npm package `tokenizers`, the same core as the
 * Python wheel of the same version) as a reference for benchmarks/tokenizer_oracle.py where Python's
 * `tokenizers`/`transformers` cannot be installed (this CPU machine reaches npm but not PyPI).
 *
 * Builds BertWordPieceTokenizer's pipeline (BertNormalizer lower-casing, BertPreTokenizer, WordPiece with
 * [UNK] and "##", BertProcessing, the five special tokens) from a vocab.txt, then for texts.jsonl (one JSON
 * string a line) writes one JSON object a line: {"bert": ids without specials} for every text and, for the
 * first --pairs texts, "pair": {input_ids, token_type_ids, attention_mask} of text i with text i + 1,
 * truncated longest-first to --max-length and padded to it (enable_truncation + enable_padding).
 *
 *   npm install --prefix /tmp/hftok tokenizers@0.23.2
 *   NODE_PATH=/tmp/hftok/node_modules node benchmarks/hf_tokenizers_node.js VOCAB TEXTS OUT [--pairs N] [--max-length L]
 */
'use strict';
const fs = require('fs');

function usage(msg) {
  process.stderr.write(`hf_tokenizers_node.js: ${msg}\n` +
    'usage: node hf_tokenizers_node.js VOCAB_TXT TEXTS_JSONL OUT_JSONL [--pairs N] [--max-length L]\n');
  process.exit(2);
}

const args = process.argv.slice(2);
const pos = [];
let pairs = 2000, maxLength = 32;
for (let i = 0; i < args.length; ++i) {
  if (args[i] === '--pairs') pairs = Number(args[++i]);
  else if (args[i] === '--max-length') maxLength = Number(args[++i]);
  else pos.push(args[i]);
}
if (pos.length !== 3) usage(`expected 3 positional arguments, got ${pos.length}`);
if (!Number.isInteger(pairs) || pairs < 0) usage(`--pairs must be a non-negative integer, got ${pairs}`);
if (!Number.isInteger(maxLength) || maxLength < 3) usage(`--max-length must be an integer >= 3, got ${maxLength}`);

let tokenizers;
try {
  tokenizers = require('tokenizers');
} catch (e) {
  usage(`cannot load the npm package "tokenizers" (set NODE_PATH to a node_modules holding it): ${e.message}`);
}
const { Tokenizer } = tokenizers;

const lines = fs.readFileSync(pos[0], 'utf8').split('\n');
if (lines[lines.length - 1] === '') lines.pop();
const vocab = {};
lines.forEach((t, i) => { if (!(t in vocab)) vocab[t] = i; });
const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
for (const s of specials) if (!(s in vocab)) usage(`${pos[0]} has no ${s}`);

// tokenizer.json as tokenizers' BertWordPieceTokenizer(vocab, lowercase=True) would save it.
function build() {
  return Tokenizer.fromString(JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t) => ({
      id: vocab[t], content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', vocab['[SEP]']], cls: ['[CLS]', vocab['[CLS]']] },
    decoder: null,
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  }));
}

(async () => {
  const texts = fs.readFileSync(pos[1], 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
  const single = build();
  const pair = build();
  pair.setTruncation(maxLength, { strategy: 'LongestFirst' });
  pair.setPadding({ maxLength, padId: vocab['[PAD]'], padToken: '[PAD]' });
  const probe = (await single.encode('hello world', null, { addSpecialTokens: false })).getIds();
  if (vocab['hello'] === 7592 && JSON.stringify(probe) !== '[7592,2088]') usage(`probe gave ${probe}`);
  const out = fs.openSync(pos[2], 'w');
  const chunk = 4096;
  for (let s = 0; s < texts.length; s += chunk) {
    const part = texts.slice(s, s + chunk);
    const enc = await single.encodeBatch(part, { addSpecialTokens: false });
    const np = Math.max(0, Math.min(pairs, texts.length - 1) - s);
    const pe = [];  // encodeBatch takes no pairs in the npm binding: one encode(a, b) each
    for (let k = 0; k < np && k < part.length; ++k) pe.push(await pair.encode(part[k], texts[s + k + 1]));
    let buf = '';
    for (let k = 0; k < part.length; ++k) {
      const row = { bert: enc[k].getIds() };
      if (k < pe.length)
        row.pair = { input_ids: pe[k].getIds(), token_type_ids: pe[k].getTypeIds(), attention_mask: pe[k].getAttentionMask() };
      buf += JSON.stringify(row) + '\n';
    }
    fs.writeSync(out, buf);
  }
  fs.closeSync(out);
  console.log(`hf_tokenizers_node.js: tokenizers (npm) on ${texts.length} texts, ${Math.min(pairs, texts.length - 1)} pairs -> ${pos[2]}`);
})().catch((e) => { process.stderr.write(`hf_tokenizers_node.js: ${e.stack || e}\n`); process.exit(1); });
