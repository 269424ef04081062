// tests/interop/check_llama_cpp.mjs: llama.cpp (node-llama-cpp) runs a GGUF that gptx wrote and
// must continue each prompt exactly as gptx did (greedy, 32 tokens) and, when given a tolerance,
// give the same next-token log-probabilities. Usage:
//   node check_llama_cpp.mjs MODEL.gguf REFERENCE.json LOGPROB_TOLERANCE|- f32|default
// The last argument is the KV cache: f32 (and no flash attention) compares float with float;
// llama.cpp's default F16 cache alone moves log-probabilities by up to ~2e-3 on the trained
// model. Its CPU GELU, which rounds through an F16 table, remains (some 1e-4).
// REFERENCE.json comes from gptx_interop_reference. Exit 0 when everything matches.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync} from "node:fs";

const [modelPath, refPath, tolArg, kv] = process.argv.slice(2);
const reference = JSON.parse(readFileSync(refPath, "utf8"));
const tolerance = tolArg === "-" ? null : Number(tolArg);

const llama = await getLlama({gpu: false, logLevel: LlamaLogLevel.error, build: "never"});
const model = await llama.loadModel({modelPath});
// One thread: ggml's workers spin while they wait, which crawls on a machine shared with builds.
const context = await model.createContext({
    contextSize: 128, batchSize: 128, threads: 1,
    ...(kv === "f32" ? {flashAttention: false, experimentalKvCacheKeyType: "F32",
                        experimentalKvCacheValueType: "F32"} : {})
});
let failures = 0, worst = 0;
for (const [i, r] of reference.entries()) {
    // The tokenizer: llama.cpp's reading of our GGUF vocabulary splits the prompt as gptx does.
    const ids = Array.from(model.tokenize(r.prompt));
    if (JSON.stringify(ids) !== JSON.stringify(r.ids)) {
        console.log(`prompt ${i}: llama.cpp tokenizes ${JSON.stringify(r.prompt)} as ` +
                    `${JSON.stringify(ids)}, gptx as ${JSON.stringify(r.ids)}`);
        ++failures;
    }
    // The prompt as gptx's ids, so the continuation compares the model alone. Probabilities
    // (the whole vocabulary) only for the first token: they cost a sort per step.
    let first = null;
    if (tolerance !== null) {
        const sequence = context.getSequence();
        for await (const out of sequence.evaluateWithMetadata(r.ids, {probabilities: true},
                                                              {temperature: 0})) {
            first = out.probabilities;
            break;
        }
        sequence.dispose();
    }
    const sequence = context.getSequence();
    const greedy = [];
    for await (const token of sequence.evaluate(r.ids, {temperature: 0})) {
        greedy.push(token);
        if (greedy.length === r.greedy.length)
            break;
    }
    sequence.dispose();
    const same = JSON.stringify(greedy) === JSON.stringify(r.greedy);
    console.log(`prompt ${i} ${JSON.stringify(r.prompt)}: ${same ? "same" : "DIFFERENT"} ` +
                `${greedy.length}-token greedy continuation ${JSON.stringify(r.text)}`);
    if (!same) {
        console.log(`  llama.cpp: ${JSON.stringify(greedy)}\n  gptx:      ${JSON.stringify(r.greedy)}`);
        ++failures;
    }
    if (tolerance !== null) {
        let d = 0, n = 0;
        for (const [token, p] of first) {
            if (p <= 0)
                continue; // underflowed to 0 in float: no log to compare
            d = Math.max(d, Math.abs(Math.log(p) - r.logprobs[token]));
            ++n;
        }
        if (n < r.logprobs.length * 0.99) {
            console.log(`  only ${n} of ${r.logprobs.length} probabilities came back`);
            ++failures;
        }
        worst = Math.max(worst, d);
        console.log(`  next-token log-probs: max |llama.cpp - gptx| = ${d.toExponential(3)} over ${n} tokens`);
        if (!(d <= tolerance))
            ++failures;
    }
}
if (tolerance !== null)
    console.log(`max next-token log-prob difference ${worst.toExponential(3)} (tolerance ${tolerance})`);
await context.dispose();
await model.dispose();
await llama.dispose();
console.log(failures === 0 ? "OK" : `${failures} FAILURES`);
process.exit(failures === 0 ? 0 : 1);
