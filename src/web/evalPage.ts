/**
 * web/eval.html: the user picks a checkpoint (a folder: HF, lowbit/GPTQ/AWQ checkpoint; or loose
 * files: a .gguf, a llama2.c .bin with its tok*.bin), sets and options; one Web Worker per run
 * (evalWorker.ts) evaluates, and this page shows its progress, the backend line and the result tables
 * (perplexity per set, accuracy per task).
 * Only DOM code here: everything lowbit runs, runs in the worker. The last run's state is also in
 * `window.lowbitEval` (test/web/browserEval.test.ts reads it).
 */
import { BACKEND_CHOICES, type BackendChoice, type EvalMessage, type EvalRequest, type PickedFile, type PplRow, type TaskRow } from './protocol.js';

/** Default wasm threads: the cores the browser reports, at most this many (more rarely pays on one model's kernels). */
const MAX_DEFAULT_THREADS = 8;

interface PageState {
  state: 'idle' | 'running' | 'done' | 'error';
  backend?: { name: string; text: string };
  rows: PplRow[];
  taskRows: TaskRow[];
  /** the last progress message of the run */
  progress?: Extract<EvalMessage, { kind: 'progress' }>;
  taskProgress?: Extract<EvalMessage, { kind: 'taskProgress' }>;
  error?: string;
}

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`eval.html has no #${id}`);
  return el as T;
};

/** What the user picked: the files with their paths in the tab's file system, and the checkpoint path. */
let picked: { files: PickedFile[]; model: string; what: string } | undefined;

function setPicked(files: PickedFile[], model: string, what: string): void {
  picked = files.length ? { files, model, what } : undefined;
  $('picked').textContent = picked ? `${what}: ${files.length} file${files.length === 1 ? '' : 's'} (${model})` : 'nothing picked';
}

/** A folder from <input webkitdirectory>: paths as the browser gives them ("Folder/config.json"); the checkpoint is the folder. */
function fromFolderInput(list: FileList): void {
  const files = Array.from(list, (f) => ({ path: f.webkitRelativePath || f.name, file: f as Blob }));
  const top = files[0]?.path.split('/')[0] ?? '';
  setPicked(files, top, `folder ${top}`);
}

/** Loose files (a .gguf; a .bin with its tok*.bin; or an HF folder's files) go into the folder "picked", which openModel opens. */
function fromFileInput(list: FileList): void {
  const files = Array.from(list, (f) => ({ path: `picked/${f.name}`, file: f as Blob }));
  setPicked(files, 'picked', Array.from(list, (f) => f.name).join(', '));
}

interface DirHandle { name: string; kind: 'directory'; values(): AsyncIterable<DirHandle | FileHandle> }
interface FileHandle { name: string; kind: 'file'; getFile(): Promise<File> }

/** File System Access (Chromium): the picked folder, its sub-folders included. */
async function fromDirectoryPicker(): Promise<void> {
  const pick = (window as unknown as { showDirectoryPicker?: () => Promise<DirHandle> }).showDirectoryPicker;
  if (!pick) return;
  const root = await pick();
  const files: PickedFile[] = [];
  const walk = async (dir: DirHandle, prefix: string): Promise<void> => {
    for await (const h of dir.values()) {
      if (h.kind === 'file') files.push({ path: `${prefix}/${h.name}`, file: await h.getFile() });
      else await walk(h, `${prefix}/${h.name}`);
    }
  };
  await walk(root, root.name);
  setPicked(files, root.name, `folder ${root.name}`);
}

/** A result row: its cells' text, and data attributes the browser test reads the exact values from. */
function appendRow(body: HTMLTableSectionElement, data: Record<string, string>, cells: readonly string[]): void {
  const tr = body.insertRow();
  Object.assign(tr.dataset, data);
  for (const v of cells) tr.insertCell().textContent = v;
}

function show(state: PageState): void {
  (window as unknown as { lowbitEval: PageState }).lowbitEval = state;
}

function run(): void {
  const state: PageState = { state: 'running', rows: [], taskRows: [] };
  show(state);
  const status = $('status'), backendLine = $('backend'), errorLine = $('error'), progress = $<HTMLProgressElement>('progress');
  const body = $<HTMLTableElement>('results').tBodies[0]!, taskBody = $<HTMLTableElement>('task-results').tBodies[0]!;
  body.replaceChildren();
  taskBody.replaceChildren();
  errorLine.textContent = '';
  backendLine.textContent = '';
  const fail = (text: string): void => {
    state.state = 'error';
    state.error = text;
    errorLine.textContent = text;
    status.textContent = 'failed';
    $<HTMLButtonElement>('run').disabled = false;
  };
  if (!picked) { fail('pick a model first (a folder, or a .gguf / .bin file)'); return; }
  const sets = Array.from(document.querySelectorAll<HTMLInputElement>('input[name=set]:checked'), (c) => c.value);
  const files = [...picked.files];
  const text = $<HTMLInputElement>('textfile').files?.[0];
  if (text) {
    files.push({ path: `text/${text.name}`, file: text });
    sets.push(`file:text/${text.name.replace(/\.gz$/, '')}`);
  }
  const num = (id: string): number | undefined => {
    const v = $<HTMLInputElement>(id).value.trim();
    return v === '' ? undefined : Number(v);
  };
  const tasks = Array.from(document.querySelectorAll<HTMLInputElement>('input[name=task]:checked'), (c) => c.value);
  const backend = $<HTMLSelectElement>('backend-choice').value as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) { fail(`unknown backend ${backend}`); return; }
  const req: EvalRequest = {
    kind: 'eval', model: picked.model, files, sets, tasks, backend,
    dataUrl: new URL('../assets/data/', location.href).href,
    ...(num('limit') !== undefined ? { limit: num('limit')! } : {}),
    ...(num('task-limit') !== undefined ? { taskLimit: num('task-limit')! } : {}),
    ...(num('threads') !== undefined ? { threads: num('threads')! } : {}),
    ...(num('seqlen') !== undefined ? { seqlen: num('seqlen')! } : {}),
  };
  $<HTMLButtonElement>('run').disabled = true;
  status.textContent = 'starting the worker';
  const worker = new Worker(new URL('./evalWorker.js', import.meta.url), { type: 'module' });
  worker.onerror = (e) => { fail(`lowbit: internal error: the worker failed: ${e.message}`); worker.terminate(); };
  worker.onmessage = (e: MessageEvent<EvalMessage>) => {
    const m = e.data;
    switch (m.kind) {
      case 'status': status.textContent = m.text; break;
      case 'backend': state.backend = { name: m.name, text: m.text }; backendLine.textContent = m.text; break;
      case 'progress':
        state.progress = m;
        progress.max = Math.max(1, m.windows * (m.blocks + 1));
        progress.value = m.windowsDone * (m.blocks + 1) + m.block;
        status.textContent = `${m.set}: window ${Math.min(m.windowsDone + 1, m.windows)}/${m.windows}, block ${m.block}/${m.blocks}, ` +
          `${m.windowsDone}/${m.windows} windows done, ${m.tokensPerSecond.toFixed(0)} tokens/s`;
        break;
      case 'result': {
        state.rows.push(m.row);
        appendRow(body, { set: m.row.set, ppl: String(m.row.ppl) }, [m.row.set, m.row.ppl.toFixed(6),
          `${m.row.windows}/${m.row.windowsTotal} of ${m.row.seqlen}`, m.row.backend, m.row.seconds.toFixed(1)]);
        break;
      }
      case 'taskProgress':
        state.taskProgress = m;
        progress.max = Math.max(1, m.total);
        progress.value = m.done;
        status.textContent = `${m.task}: ${m.done}/${m.total} examples, ${m.examplesPerSecond.toFixed(1)} examples/s`;
        break;
      case 'taskResult': {
        state.taskRows.push(m.row);
        const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(100 * x).toFixed(2)} %`);
        appendRow(taskBody, { task: m.row.task, acc: String(m.row.acc), ...(m.row.acc_norm !== undefined ? { accNorm: String(m.row.acc_norm) } : {}) },
          [m.row.task, pct(m.row.acc), pct(m.row.acc_norm), String(m.row.n), m.row.backend, m.row.seconds.toFixed(1)]);
        break;
      }
      case 'done':
        state.state = 'done';
        status.textContent = `done in ${m.seconds.toFixed(1)} s` + (state.progress
          ? ` (${state.progress.set}: ${state.progress.windows} windows, ${state.progress.tokensPerSecond.toFixed(0)} tokens/s)` : '');
        $<HTMLButtonElement>('run').disabled = false;
        worker.terminate();
        break;
      case 'error': fail(m.text); worker.terminate(); break;
    }
    show(state);
  };
  worker.postMessage(req);
}

$<HTMLInputElement>('folder').addEventListener('change', (e) => fromFolderInput((e.target as HTMLInputElement).files!));
$<HTMLInputElement>('files').addEventListener('change', (e) => fromFileInput((e.target as HTMLInputElement).files!));
const dirButton = $<HTMLButtonElement>('pick-dir');
if ('showDirectoryPicker' in window) dirButton.addEventListener('click', () => { fromDirectoryPicker().catch((e: Error) => { if (e.name !== 'AbortError') $('error').textContent = e.message; }); });
else dirButton.hidden = true;
$<HTMLButtonElement>('run').addEventListener('click', run);
$<HTMLInputElement>('threads').value = String(Math.max(1, Math.min(MAX_DEFAULT_THREADS, navigator.hardwareConcurrency || 1)));
show({ state: 'idle', rows: [], taskRows: [] });
