import type { Command } from 'commander';
import { fmtInt } from '../numbers.js';
import { loadCheckpoint, modelOptions, modelPath, type CommonOptions } from './common.js';
import { describeCheckpoint } from '../io/open.js';
import { backendsLines, backendsReport } from './backendsInfo.js';
import { availableParallelism } from 'node:os';

export function registerInfo(program: Command): void {
  modelOptions(program.command('info'))
    .description('print a checkpoint\'s architecture, parameter count, dtypes and tokenizer (--backends: the compute backends)')
    .option('--backends', 'print the compute backends instead: the CPU kernels, the WebGPU adapter (limits, subgroups, fma, GEMM design) and what --backend auto takes')
    .option('--json', 'print as JSON')
    .action(async (o: CommonOptions & { backends?: boolean }) => {
      if (o.backends) {
        const r = await backendsReport(availableParallelism());
        process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : backendsLines(r).join('\n') + '\n');
        return;
      }
      const s = describeCheckpoint(loadCheckpoint(o));
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
