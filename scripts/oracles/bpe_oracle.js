// bpe_oracle.js: token ids from tokenizers nobody in this project wrote,
// for tests/test_bpe.cpp and scripts/bpe_oracle.sh.
//
//   node scripts/oracles/bpe_oracle.js gpt2 < texts.jsonl > ids.txt
//   node scripts/oracles/bpe_oracle.js hf tokenizer.json < texts.jsonl > ids.txt
//   node scripts/oracles/bpe_oracle.js hfjs tokenizer.json < texts.jsonl > ids.txt
//   node scripts/oracles/bpe_oracle.js hfdecode tokenizer.json < texts.jsonl > out.jsonl
//
// gpt2: npm gpt-3-encoder (GPT-2's encoder.json + vocab.bpe, its own JS
// BPE); hf: npm tokenizers (Hugging Face's Rust tokenizers library through
// its node binding: the implementation transformers' fast tokenizers use);
// hfjs: npm @huggingface/tokenizers (Hugging Face's pure-JS port).
// hfdecode: npm tokenizers too; each output line is the JSON [ids,
// decode(ids)] (decode without skipping special tokens).
// Input: one JSON string (a text) a line. Output: that text's ids,
// space-separated, one line each. stderr: "oracle MODE: N texts, B bytes,
// encode S s, cpu C s" (the encode calls only: wall time, and CPU time of
// the process, all its threads; RAYON_NUM_THREADS=1 keeps Rust on one).
// The packages come from scripts/setup.sh (build/npm-oracles, pinned);
// BPE_ORACLE_MODULES overrides that folder.
"use strict";
const fs = require("fs");
const path = require("path");

const modules = process.env.BPE_ORACLE_MODULES ||
  path.join(__dirname, "..", "..", "build", "npm-oracles", "node_modules");
const mode = process.argv[2];
const lines = fs.readFileSync(0, "utf8").split("\n").filter((l) => l.length > 0);
const texts = lines.map((l) => JSON.parse(l));
const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);

async function main() {
  let encode, batch = null;
  if (mode === "gpt2") {
    const enc = require(path.join(modules, "gpt-3-encoder"));
    encode = async (t) => enc.encode(t);
  } else if (mode === "hf") {
    const { Tokenizer } = require(path.join(modules, "tokenizers"));
    const tok = Tokenizer.fromFile(process.argv[3]);
    encode = async (t) => (await tok.encode(t)).getIds();
    // Batches of 256 texts: one call into Rust each, so the binding's
    // per-call overhead (a promise and a thread hop) does not swamp the
    // tokenizer; RAYON_NUM_THREADS=1 keeps it on one thread.
    batch = async (ts) => (await tok.encodeBatch(ts)).map((e) => e.getIds());
  } else if (mode === "hfdecode") {
    const { Tokenizer } = require(path.join(modules, "tokenizers"));
    const tok = Tokenizer.fromFile(process.argv[3]);
    encode = async (t) => {
      const ids = Array.from((await tok.encode(t)).getIds());
      return JSON.stringify([ids, await tok.decode(ids, false)]);
    };
  } else if (mode === "hfjs") {
    const m = require(path.join(modules, "@huggingface", "tokenizers", "dist", "tokenizers.cjs"));
    const tok = new m.Tokenizer(JSON.parse(fs.readFileSync(process.argv[3], "utf8")), {});
    encode = async (t) => tok.encode(t).ids;
  } else {
    console.error("error: bpe_oracle.js: mode is gpt2, hf, hfdecode or hfjs");
    process.exit(2);
  }
  const out = [];
  const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
  if (batch) {
    for (let i = 0; i < texts.length; i += 256) for (const ids of await batch(texts.slice(i, i + 256))) out.push(ids);
  } else {
    for (const t of texts) out.push(await encode(t));
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  const cpu_secs = (cpu.user + cpu.system) / 1e6;
  const line = (r) => (typeof r === "string" ? r : Array.from(r).join(" "));
  fs.writeFileSync(1, out.map(line).join("\n") + (out.length ? "\n" : ""));
  console.error(`oracle ${mode}: ${texts.length} texts, ${bytes} bytes, encode ${secs.toFixed(3)} s, cpu ${cpu_secs.toFixed(3)} s`);
}
main().catch((e) => { console.error("error: bpe_oracle.js: " + e.message); process.exit(1); });
