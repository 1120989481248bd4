import type { Command } from 'commander';
import { fmtInt } from '../numbers.js';
import { loadCheckpoint, modelOptions, modelPath, type CommonOptions } from './common.js';
import type { ModelCheckpoint } from '../model/checkpoint.js';

/** What `lowbit info` reports: architecture, parameter count, stored dtypes, tokenizer. */
export function checkpointSummary(ckpt: ModelCheckpoint) {
  const tensors = ckpt.weights.list();
  const dtypes: Record<string, number> = {};
  let params = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    params += n;
    dtypes[t.storedAs] = (dtypes[t.storedAs] ?? 0) + n;
  }
  return {
    path: ckpt.path, format: ckpt.format, architecture: 'llama', config: ckpt.config,
    parameters: params, tensors: tensors.length, storedDtypes: dtypes,
    tokenizer: { kind: ckpt.tokenizer.kind, description: ckpt.tokenizer.description, vocabSize: ckpt.tokenizer.vocabSize, bos: ckpt.tokenizer.bosId, eos: ckpt.tokenizer.eosId },
  };
}

export function registerInfo(program: Command): void {
  modelOptions(program.command('info'))
    .description('print a checkpoint\'s architecture, parameter count, dtypes and tokenizer')
    .option('--json', 'print as JSON')
    .action((o: CommonOptions) => {
      const s = checkpointSummary(loadCheckpoint(o));
      if (o.json) { process.stdout.write(JSON.stringify(s, null, 2) + '\n'); return; }
      const c = s.config;
      console.log(`model        ${modelPath(o)}`);
      console.log(`format       ${s.format}`);
      console.log(`architecture LLaMA: ${c.numLayers} blocks, hidden ${c.hiddenSize}, intermediate ${c.intermediateSize}, ` +
        `${c.numHeads} heads / ${c.numKvHeads} KV heads (head dim ${c.headDim}), vocab ${c.vocabSize}`);
      console.log(`rope         theta ${c.ropeTheta}${c.ropeScaling ? `, llama3 scaling ×${c.ropeScaling.factor} (original context ${c.ropeScaling.originalMaxPositionEmbeddings})` : ''}; context ${c.maxPositionEmbeddings}; rms eps ${c.rmsNormEps}`);
      console.log(`embeddings   ${c.tieWordEmbeddings ? 'tied to the LM head' : 'separate LM head'}`);
      console.log(`parameters   ${fmtInt(s.parameters)} in ${fmtInt(s.tensors)} tensors`);
      console.log(`stored as    ${Object.entries(s.storedDtypes).map(([d, n]) => `${d} ${fmtInt(n)}`).join(', ')}`);
      console.log(`tokenizer    ${s.tokenizer.description} (BOS ${s.tokenizer.bos}, EOS ${s.tokenizer.eos})`);
    });
}
